"""The bench and CLI follow the shared contract."""

from __future__ import annotations

import json

import pytest
import sparta.bench as bench
from sparta.cli import build_parser, main

from labcore.bench import BenchConfig


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(
        bench, "QUICK", {"tasks": ["digits"], "epsilons": [4.0], "epochs": 2, "probe_epochs": 0}
    )
    monkeypatch.setattr(bench, "METHODS", ("sparta", "full", "last-layer"))


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert {"--quick", "--out", "--seeds", "--json"} <= flags
    assert not {"--data-root", "--device", "--seed"} & flags


def test_run_bench_one_row_per_method_at_the_same_epsilon(tmp_path, tiny):
    config = BenchConfig(quick=True, seeds=(0,), out=tmp_path)
    report = bench.run_bench(config)
    assert [r.method for r in report.rows] == ["sparta", "full", "last-layer"]
    for r in report.rows:
        assert r.metrics["epsilon_spent"] <= 4.0
        assert 0 < r.metrics["trainable_fraction"] <= 1
    full = next(r for r in report.rows if r.method == "full")
    assert full.metrics["trainable_fraction"] == pytest.approx(1.0)
    report.stamp(config, argv=["sparta", "bench"])
    report.validate()


def test_train_json_is_one_document(capsys):
    argv = ["train", "--epochs", "2", "--probe-epochs", "0", "--method", "last-layer", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epsilon_spent"] <= 4.0 and out["method"] == "last-layer"
