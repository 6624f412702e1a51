"""The bench plugs into the shared contract: its flags, its seeds, its rows per seed."""

from __future__ import annotations

import json
from pathlib import Path

import batchroute.bench as bench
import pytest
from batchroute.cli import build_parser, main

from labcore.bench import BenchConfig, Row

DATA = Path(__file__).parent / "data"


def _bench_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices["bench"]._actions for s in a.option_strings}


def test_bench_offers_exactly_the_flags_it_reads():
    assert bench.BENCH.uses == frozenset({"seeds"})
    assert bench.BENCH.seeds_for(False) == (0,) and bench.BENCH.seeds_for(True) == (0,)
    flags = _bench_flags()
    assert {"--quick", "--out", "--seeds", "--encoder", "--table", "--json"} <= flags
    assert not flags & {"--data-root", "--device", "--seed"}


def test_run_bench_runs_every_part_once_per_seed(monkeypatch, tmp_path, capsys):
    calls = []

    def experiment(name, data, *, seed, report, **kw):
        calls.append(("routing", name, seed, data.n))
        report.add(
            Row(
                "batch-fast",
                {"predictor": "knn", "batches": "random"},
                name,
                seed,
                {"quality": 0.5 + seed, "predicted": 0.6},
                0.01,
            )
        )

    synthetic = bench.synthetic
    monkeypatch.setattr(bench, "synthetic", lambda n, seed: synthetic(n=50, seed=seed))
    monkeypatch.setattr(bench, "routing_experiment", experiment)
    monkeypatch.setattr(bench, "load_builtin", lambda: (_ for _ in ()).throw(OSError("gone")))
    for part in ("speed_rows", "allocation_rows", "load_test_row"):
        monkeypatch.setattr(
            bench, part, lambda report, *a, seed, part=part, **kw: calls.append((part, seed))
        )
    report = bench.run_bench(BenchConfig(seeds=(3, 5), out=tmp_path))
    assert capsys.readouterr().out == ""  # library code: nothing on stdout
    assert [c[:3] for c in calls if c[0] == "routing"] == [
        ("routing", "synthetic", 3),
        ("routing", "synthetic", 5),
    ]
    assert [c for c in calls if c[0] != "routing"] == [
        ("speed_rows", 3),
        ("allocation_rows", 3),
        ("load_test_row", 3),
        ("speed_rows", 5),
        ("allocation_rows", 5),
        ("load_test_row", 5),
    ]
    skipped = [r for r in report.rows if r.status != "ok"]
    assert [(r.dataset, r.seed, r.status) for r in skipped] == [
        ("real-matrix", 3, "skipped: gone"),
        ("real-matrix", 5, "skipped: gone"),
    ]
    # The summary averages over the seeds.
    assert "| synthetic | random | knn | batch-fast | 4.500 | 0.600 |" in report.summary
    assert "mean over 2 seeds" in report.summary and "real matrix skipped: gone" in report.summary
    assert list(tmp_path.iterdir()) == []  # the CLI writes the results, not run_bench


def test_route_json_is_one_document(capsys):
    argv = ["route", str(DATA / "batch.jsonl"), "--models", str(DATA / "models.yaml"), "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["model"] for a in data["assignment"]] == ["small", "large"]


@pytest.mark.parametrize("command", ["route", "allocate", "serve"])
def test_commands_offer_only_the_common_options_they_read(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices[command]._actions for s in a.option_strings}
    assert ("--out" in flags) == (command == "route")
    assert not flags & {"--seed", "--device"}
