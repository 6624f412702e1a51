"""The command line: init → plan → run → serve's errors, with --json."""

from __future__ import annotations

import json

import pytest
from slm.cli import config_toml, main
from slm.config import load_config


def test_init_writes_a_config_that_loads(tmp_path, capsys):
    path = tmp_path / "p.toml"
    assert main(["init", str(path), "--run-out", "runs/x", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"config": str(path)}
    config = load_config(path)
    assert config.out == tmp_path / "runs/x"
    text = config_toml(config)
    for section in ("data", "teacher", "distill", "prune", "quantize", "compress", "serve"):
        assert f"\n[{section}]\n" in text
    assert main(["init", str(path)]) == 2  # exists: not replaced without --overwrite
    assert "pass --overwrite" in capsys.readouterr().err


def test_plan_and_run_resume(tmp_path, capsys, make_config):
    path = tmp_path / "p.toml"
    config = make_config(tmp_path / "run", stages=("teacher", "distill", "compress"))
    path.write_text(config_toml(config))
    assert main(["plan", str(path), "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert [s["stage"] for s in steps] == ["teacher", "distill", "compress"]
    assert steps[2]["parent"].endswith("02-distill")
    assert main(["run", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["stages"]) == {"teacher", "distill", "compress"}
    assert main(["run", str(path)]) == 2  # the stage folders exist
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["run", str(path), "--from", "compress", "--overwrite", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["stages"]["compress"]
    assert again["ndcg@10"] == pytest.approx(out["stages"]["compress"]["ndcg@10"])


def test_serve_rejects_bad_items(tmp_path, capsys):
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"id": "a", "text": ""}\n')
    (tmp_path / "run").mkdir()
    assert main(["serve", str(tmp_path / "run"), "--items", str(bad)]) == 2
    assert "'text' must be a non-empty string" in capsys.readouterr().err
