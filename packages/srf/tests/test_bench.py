"""The bench follows the shared contract: run_bench(config) -> BenchReport, one JSON document."""

from __future__ import annotations

import json

import numpy as np
import pytest
import srf.bench as bench
from srf.cli import build_parser, main
from srf.data import LabelledData, load, planted

from labcore.bench import BenchConfig


@pytest.fixture
def tiny(monkeypatch):
    """The quick bench on a 30 × 20 rank-2 matrix and 120 breast-cancer items × 8 features."""
    full = load("breast_cancer")
    rows = np.random.default_rng(0).choice(full.X.shape[0], 120, replace=False)

    def small(name):
        return LabelledData(full.X[rows, :8], full.y[rows], name)

    monkeypatch.setattr(bench, "planted", lambda m, n, rank, seed: planted(30, 20, 2, seed=seed))
    monkeypatch.setattr(bench, "load", small)


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert bench.BENCH.uses == {"seeds"}
    assert {"--quick", "--out", "--seeds", "--json"} <= flags
    assert not {"--data-root", "--device", "--seed"} & flags
    assert bench.BENCH.seeds_for(False) == (0, 1, 2) and bench.BENCH.seeds_for(True) == (0,)


def test_run_bench_runs_every_row_once_per_seed(tmp_path, tiny):
    config = BenchConfig(quick=True, seeds=(0, 1), out=tmp_path)
    report = bench.run_bench(config)
    completion = [r for r in report.rows if r.method in bench.COMPLETION_METHODS]
    transduction = [r for r in report.rows if r.method in bench.TRANSDUCTION_METHODS]
    # 2 block settings x 3 rates x 2 seeds x 4 methods; 2 settings x 2 seeds x 5 methods
    assert len(completion) == 48 and len(transduction) == 20
    assert all(r.status == "ok" for r in report.rows)
    assert {r.seed for r in report.rows} == {0, 1}
    assert "srf time / svt time" in report.summary and "Total" not in report.summary
    assert not (tmp_path / "results.json").exists()  # the CLI writes, not run_bench
    report.stamp(config, argv=["srf", "bench"])
    report.validate()


def test_bench_cli_json_is_one_document(tmp_path, tiny, capsys):
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["provenance"]["seeds"] == [0] and payload["provenance"]["quick"] is True
    for name in ("results.json", "results.md", "summary.md"):
        assert (tmp_path / name).is_file()
