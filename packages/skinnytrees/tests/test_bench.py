"""The bench follows the shared contract: run_bench(config) -> BenchReport, one JSON document."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skinnytrees.bench as bench
import skinnytrees.data as data
from skinnytrees.cli import build_parser, main

from labcore.bench import BenchConfig


@pytest.fixture
def tiny(monkeypatch):
    """One small synthetic regression (known support) and one small classification set,
    with short training."""

    def load(name, *, seed=0):
        if name == "tiny-regression":
            d = data.synthetic_regression(n=120, p=16, k=2, n_test=200, seed=seed)
            return data.Dataset(
                name, d.X, d.y, d.task, d.feature_names, d.relevant, d.X_test, d.y_test
            )
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(150, 8))
        y = (X[:, 0] - X[:, 3] > 0).astype(int)
        return data.Dataset(name, X, y, "classification", tuple(f"x{j}" for j in range(8)))

    monkeypatch.setattr(data, "load_dataset", load)
    monkeypatch.setattr(
        bench, "QUICK", {"datasets": ["tiny-classes", "tiny-regression"], "budgets": [0.25, 0.5]}
    )
    monkeypatch.setattr(
        bench, "SOFT_TREES", {"n_trees": 3, "depth": 2, "max_epochs": 15, "max_path": 3}
    )
    monkeypatch.setattr(bench, "TIMING_ROWS", 500)


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert {"--quick", "--out", "--seeds", "--json", "--device"} <= flags
    assert not {"--data-root", "--seed"} & flags


def test_run_bench_rows_per_seed_and_budget(tmp_path, tiny):
    config = BenchConfig(quick=True, seeds=(0, 1), out=tmp_path)
    report = bench.run_bench(config)
    for seed in (0, 1):
        for ds, budgets in (
            ("tiny-classes", [0.25, 0.5]),
            ("tiny-regression", [0.25, 0.5, "true support"]),
        ):
            rows = [r for r in report.rows if r.seed == seed and r.dataset == ds]
            assert [r.method for r in rows[:2]] == ["soft-trees-all", "lightgbm-all"]
            for b in budgets:
                got = [r for r in rows if r.params.get("budget") == b]
                assert [r.method for r in got] == list(bench.METHODS)
                k = got[0].params["k"]
                assert all(r.status == "ok" for r in got)
                assert all(0 < r.metrics["n_selected"] <= k for r in got)  # equal budgets
    reg = [r for r in report.rows if r.dataset == "tiny-regression" and r.status == "ok"]
    assert all("rmse" in r.metrics and "support_f1" in r.metrics for r in reg)
    assert "### Budget: 25% of the features" in report.summary
    report.stamp(config, argv=["skinnytrees", "bench"])
    report.validate()


def test_bench_cli_json_is_one_document(tmp_path, tiny, capsys):
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["provenance"]["seeds"] == [0]
    assert (tmp_path / "results.json").is_file() and (tmp_path / "summary.md").is_file()
