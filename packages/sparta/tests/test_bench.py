"""The bench and CLI follow the shared contract."""

from __future__ import annotations

import json

import pytest
import sparta.bench as bench
from sparta.cli import build_parser, main

from labcore.bench import BenchConfig


@pytest.fixture
def tiny(monkeypatch):
    task = bench.DIGITS_MLP | {"epochs": 2, "probe_epochs": 0}
    monkeypatch.setattr(bench, "QUICK", {"tasks": [task], "epsilons": [4.0, 8.0]})
    monkeypatch.setattr(bench, "METHODS", ("sparta", "full", "last-layer"))


def test_the_non_private_ceiling_runs_once_per_seed(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(bench, "METHODS", ("full", "non-private"))
    report = bench.run_bench(BenchConfig(quick=True, seeds=(0,), out=tmp_path))
    ceilings = [r for r in report.rows if r.method == "non-private"]
    assert [r.dataset for r in ceilings] == ["digits-mlp-eps4", "digits-mlp-eps8"]
    assert ceilings[0].metrics["accuracy"] == ceilings[1].metrics["accuracy"]
    assert ceilings[0].params["epsilon"] is None


def test_a_task_without_its_data_gives_skipped_rows(tmp_path, monkeypatch):
    task = bench.FASHION | {"epochs": 2, "probe_epochs": 0}
    monkeypatch.setattr(bench, "QUICK", {"tasks": [task], "epsilons": [4.0]})
    (tmp_path / "empty").mkdir()
    config = BenchConfig(quick=True, seeds=(0,), out=tmp_path, data_root=tmp_path / "empty")
    report = bench.run_bench(config)
    assert len(report.rows) == len(bench.METHODS)
    assert all(r.status.startswith("skipped: Fashion-MNIST file") for r in report.rows)


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert {"--quick", "--out", "--seeds", "--json", "--data-root"} <= flags
    assert not {"--device", "--seed"} & flags


def test_run_bench_one_row_per_method_at_the_same_epsilon(tmp_path, tiny):
    config = BenchConfig(quick=True, seeds=(0,), out=tmp_path)
    report = bench.run_bench(config)
    assert [r.method for r in report.rows] == ["sparta", "full", "last-layer"] * 2
    for r in report.rows:
        assert r.metrics["epsilon_spent"] <= r.params["epsilon"]
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
