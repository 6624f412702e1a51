"""The bench follows the shared contract: run_bench(config) -> BenchReport, one JSON document."""

from __future__ import annotations

import json

import graphl0bnb.bench as bench
import pytest
from graphl0bnb.cli import build_parser, main

from labcore.bench import BenchConfig

TINY = {
    "sizes": [(8, 40)],
    "graphs": ["banded"],
    "glasso_max_p": 8,
    "time_limit": {8: 5.0},
    "gap_instance": None,
    "fast_p": None,
    "scip_p": [],
}


@pytest.fixture
def tiny_quick(monkeypatch):
    """The quick bench cut to one p = 8 instance, psych/bfi skipped (no data needed)."""

    def no_bfi(out, seed):
        return bench.Row.skipped("graphl0bnb", {}, "psych-bfi", "not in this test", seed=seed), None

    monkeypatch.setattr(bench, "QUICK", TINY)
    monkeypatch.setattr(bench, "_bfi_row", no_bfi)


def _bench_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices["bench"]._actions for s in a.option_strings}


def test_bench_offers_exactly_the_flags_it_reads():
    flags = _bench_flags()
    assert bench.BENCH.uses == {"seeds"}
    assert {"--quick", "--out", "--seeds", "--json", "--time-limit"} <= flags
    assert not {"--data-root", "--device", "--seed"} & flags


def test_run_bench_runs_every_row_once_per_seed(tmp_path, tiny_quick):
    config = BenchConfig(quick=True, seeds=(0, 1), out=tmp_path)
    report = bench.run_bench(config)
    methods = ["graphl0bnb-fast", "graphl0bnb", "neighborhood", "concord-l1", "glasso"]
    for seed in (0, 1):
        rows = [r for r in report.rows if r.seed == seed]
        assert [r.method for r in rows] == [*methods, "graphl0bnb"]
        assert all(r.status == "ok" for r in rows[:5])
    assert not (tmp_path / "results.json").exists()  # the CLI writes, not run_bench
    report.stamp(config, argv=["graphl0bnb", "bench"])
    report.validate()


def test_bench_cli_json_is_one_document(tmp_path, tiny_quick, capsys):
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path), "--time-limit", "2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["provenance"]["seeds"] == [0]
    assert (tmp_path / "results.json").is_file() and (tmp_path / "results.md").is_file()
    bnb = next(r for r in payload["rows"] if r["method"] == "graphl0bnb")
    assert bnb["params"]["time_limit"] == pytest.approx(2.0)


def test_fit_json_on_the_bundled_csv_is_one_document(capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "banded6.csv"
    assert main(["fit", str(data), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_variables"] == 6 and payload["certificate"]["status"] == "optimal"
