"""Instance allocation against brute force; the configuration file and the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from batchroute.allocate import allocate_instances, uniform_allocation
from batchroute.cli import main
from batchroute.config import load_config
from batchroute.predictors import KNNPredictor
from batchroute.uncertainty import bootstrap_deviation
from scipy.optimize import linprog

from labcore.errors import LabcoreError


def routed_value(quality, cost, capacity, weight, budget_total):
    """LP value of routing the sample under capacities (queries are fractional shares)."""
    n, m = quality.shape
    a_eq = np.kron(np.eye(n), np.ones(m))
    a_cap = weight * np.kron(np.ones(n), np.eye(m))
    a_ub, b_ub = [a_cap], [capacity]
    if budget_total is not None:
        a_ub.append(cost.reshape(1, -1))
        b_ub.append([budget_total])
    res = linprog(
        -quality.ravel(),
        A_ub=np.vstack(a_ub),
        b_ub=np.concatenate(b_ub),
        A_eq=a_eq,
        b_eq=np.ones(n),
        bounds=(0, 1),
        method="highs",
    )
    return -res.fun if res.status == 0 else -np.inf


@pytest.mark.parametrize("seed", range(6))
def test_allocation_matches_enumeration_of_instance_counts(seed):
    rng = np.random.default_rng(seed)
    n, m = 12, 3
    quality = rng.random((n, m)) * np.array([0.5, 0.8, 1.0])
    cost = rng.random((n, m)) * np.array([1.0, 3.0, 9.0])
    gpus, conc = np.array([1.0, 2.0, 4.0]), np.array([8.0, 6.0, 4.0])
    gpu_budget, traffic, b = 8.0, 20.0, 3.0
    best = -np.inf
    for counts in itertools.product(range(9), repeat=m):
        counts = np.array(counts)
        if counts @ gpus > gpu_budget:
            continue
        best = max(best, routed_value(quality, cost, conc * counts, traffic / n, b * n))
    alloc = allocate_instances(
        quality,
        cost,
        gpus_per_instance=gpus,
        concurrency=conc,
        gpu_budget=gpu_budget,
        traffic=traffic,
        budget_per_query=b,
        max_instances=8,
    )
    assert alloc.gpus_used <= gpu_budget
    assert alloc.expected_quality * n == pytest.approx(best, abs=1e-6)
    # The routing shares fit the capacities the instances give.
    assert np.all(alloc.shares * traffic <= alloc.capacity + 1e-6)


def test_allocation_errors_and_uniform_split():
    q = np.full((4, 2), 0.5)
    with pytest.raises(LabcoreError, match="at least 4 GPUs are needed"):
        allocate_instances(q, gpus_per_instance=[1, 2], concurrency=[2, 2], gpu_budget=1, traffic=8)
    with pytest.raises(LabcoreError, match="positive"):
        allocate_instances(q, gpus_per_instance=[0, 2], concurrency=[2, 2], gpu_budget=4, traffic=1)
    instances, capacity = uniform_allocation(
        gpus_per_instance=[1, 2], concurrency=[8, 4], gpu_budget=8, m=2
    )
    assert instances.tolist() == [4, 2] and capacity.tolist() == [32, 8]


def test_bootstrap_deviation_is_larger_where_data_are_scarce():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.1, size=(300, 2)), rng.normal(5, 0.1, size=(6, 2))])
    y = (rng.random((306, 1)) < 0.5).astype(float)
    d = bootstrap_deviation(
        lambda: KNNPredictor(calibrate=False, n_neighbors=5, prior_strength=0.0),
        x,
        y,
        np.array([[0.0, 0.0], [5.0, 5.0]]),
        n_boot=12,
    )
    assert d[1, 0] > d[0, 0]
    with pytest.raises(LabcoreError, match="n_boot"):
        bootstrap_deviation(KNNPredictor, x, y, x, n_boot=1)


@pytest.fixture
def setup(tmp_path):
    cfg = tmp_path / "models.yaml"
    cfg.write_text(
        "models:\n  - name: small\n  - name: large\n    capacity: 1\nbudget_per_query: 3\n"
    )
    queries = tmp_path / "q.jsonl"
    rows = [
        {"query": "a", "quality": {"small": 0.5, "large": 0.9}, "cost": {"small": 1, "large": 5}},
        {"query": "b", "quality": {"small": 0.2, "large": 0.8}, "cost": {"small": 1, "large": 5}},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return cfg, queries, tmp_path


def test_cli_route_solves_the_batch(setup, capsys):
    cfg, queries, tmp = setup
    out = tmp / "routing.json"
    assert main(["route", str(queries), "--models", str(cfg), "--json", "--out", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)  # pure JSON: no solver banner on stdout
    assert [a["model"] for a in data["assignment"]] == ["small", "large"]
    assert data["cost"] == 6.0 and data["budget"] == 6.0
    assert json.loads(out.read_text())["loads"] == {"small": 1, "large": 1}
    assert main(["route", str(queries), "--models", str(cfg), "--robust", "1"]) == 0


def test_cli_route_errors(setup, capsys):
    cfg, queries, tmp = setup
    assert main(["route", str(queries), "--models", str(cfg), "--budget", "1"]) == 2
    assert "minimum feasible budget under the capacity limits is 2" in capsys.readouterr().err
    empty = tmp / "empty.jsonl"
    empty.write_text("\n")
    assert main(["route", str(empty), "--models", str(cfg)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["route", str(tmp / "nope.jsonl"), "--models", str(cfg)]) == 2
    assert "file not found" in capsys.readouterr().err
    bad = tmp / "bad.jsonl"
    bad.write_text('{"query": "a", "quality": {"small": 0.5}, "cost": {"small": 1, "large": 5}}\n')
    assert main(["route", str(bad), "--models", str(cfg)]) == 2
    assert "lacks models ['large']" in capsys.readouterr().err
    nan = tmp / "nan.jsonl"
    nan.write_text(
        '{"query": "a", "quality": {"small": NaN, "large": 1}, "cost": {"small": 1, "large": 5}}\n'
    )
    assert main(["route", str(nan), "--models", str(cfg)]) == 2
    assert "NaN" in capsys.readouterr().err
    noquality = tmp / "plain.jsonl"
    noquality.write_text('{"query": "a"}\n')
    assert main(["route", str(noquality), "--models", str(cfg)]) == 2
    assert "training 'table'" in capsys.readouterr().err


def test_config_validation(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("models:\n  - name: a\n  - name: a\n")
    with pytest.raises(LabcoreError, match="duplicate"):
        load_config(path)
    path.write_text("models:\n  - name: a\n    capacty: 3\n")
    with pytest.raises(LabcoreError, match="unknown keys"):
        load_config(path)
    path.write_text("models: [a, b]\npredictor: svm\n")
    with pytest.raises(LabcoreError, match="unknown predictor"):
        load_config(path)
    path.write_text("models: [a, b]\ntable: t.csv\nbudget_per_query: 2\n")
    cfg = load_config(path)
    assert cfg.names == ("a", "b") and cfg.table == tmp_path / "t.csv"
    assert cfg.batch_budget(10) == 20.0
    with pytest.raises(LabcoreError, match="not found"):
        load_config(tmp_path / "missing.yaml")
