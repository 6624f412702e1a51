"""The bench follows the shared contract: run_bench(config) -> BenchReport, one JSON document."""

from __future__ import annotations

import json

import archetypal_nmf.bench as bench
import pytest
from archetypal_nmf.cli import build_parser, main

from labcore.bench import BenchConfig
from labcore.errors import LabcoreError


@pytest.fixture
def tiny(monkeypatch):
    """The bench on one tiny planted regime, the real data sets reported as unavailable."""

    def unavailable():
        raise LabcoreError("not in this test")

    monkeypatch.setattr(
        bench, "REGIMES", {"tiny": {"m": 20, "k": 3, "n": 8, "mixing": "dirichlet"}}
    )
    monkeypatch.setattr(bench, "load_faces", unavailable)
    monkeypatch.setattr(bench, "load_tissue_expression", unavailable)


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert bench.BENCH.uses == {"seeds"}
    assert {"--quick", "--out", "--seeds", "--json"} <= flags
    assert not {"--data-root", "--device", "--seed"} & flags
    assert bench.BENCH.seeds_for(False) == (0, 1, 2, 3, 4) and bench.BENCH.seeds_for(True) == (0, 1)


def test_run_bench_runs_every_cell_once_per_seed(tmp_path, tiny):
    config = BenchConfig(quick=True, seeds=(0, 3), out=tmp_path)
    report = bench.run_bench(config)
    ok = [r for r in report.rows if r.status == "ok"]
    # 2 densities x 3 noise levels x 2 seeds x 5 methods (the MILP start runs on "demo" only)
    assert len(ok) == 2 * 3 * 2 * 5 and {r.seed for r in ok} == {0, 3}
    skipped = [r for r in report.rows if r.status != "ok"]
    expected = [("faces", 0), ("faces", 3), ("tissue", 0), ("tissue", 3)]
    assert [(r.dataset, r.seed) for r in skipped] == expected
    assert report.summary.count("| tiny |") == 2 * 3 * 5
    runs = json.loads((tmp_path / "synthetic_runs.json").read_text())
    assert len(runs) == len(ok)
    assert not (tmp_path / "results.json").exists()  # the CLI writes, not run_bench
    report.stamp(config, argv=["archetypal-nmf", "bench"])
    report.validate()


def test_bench_cli_json_is_one_document(tmp_path, tiny, capsys):
    assert main(["bench", "--quick", "--seeds", "1", "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["provenance"]["seeds"] == [1]
    for name in ("results.json", "results.md", "summary.md", "synthetic_runs.json"):
        assert (tmp_path / name).is_file()


def test_fit_json_on_the_bundled_csv_is_one_document(capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "planted30x6.csv"
    assert main(["fit", str(data), "-k", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_samples"] == 30 and len(payload["H"]) == 3
