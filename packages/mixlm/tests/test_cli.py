"""The command line end to end with tiny models: train, index (incremental), serve."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from mixlm.cli import main

PAIRS = [
    {"query": q, "item": t, "label": float(q in t)}
    for q in ("goal", "vote")
    for t in ("a late goal won it", "a vote next week", "phones on sale")
]


@pytest.fixture
def run_dir(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--ranker", "tiny-llama", "--encoder", "tiny-bert",
            "--k", "2", "--epochs", "1", "--answer-words", "the,a", "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 6
    return out


def test_train_index_and_refresh(run_dir, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(5))
    )
    cache = tmp_path / "items.db"
    assert main(["index", str(run_dir), str(items), "--cache", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 5
    items.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"text {i % 4}"}) + "\n" for i in range(5))
    )
    assert main(["index", str(run_dir), str(items), "--cache", str(cache), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["added"], stats["updated"], stats["unchanged"]) == (0, 1, 4)
    bad = tmp_path / "bad.jsonl"
    for content, says in [
        ('{"id": "x"}\n', "lacks ['text']"),
        ('{"id": "x", "text": null}\n', "'text' must be a non-empty string"),
        ('{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n', "line 2 repeats the item id"),
    ]:
        bad.write_text(content)
        assert main(["index", str(run_dir), str(bad), "--cache", str(cache)]) == 2
        assert says in capsys.readouterr().err
    assert main(["index", str(run_dir), str(items), "--cache", str(cache), "--rebuild",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["added"] == 5


@pytest.mark.parametrize(
    ("label", "says"), [('"yes"', "labels must be 0 or 1, got 'yes'"), ("true", "got True")]
)
def test_bad_training_records_and_an_existing_run_are_refused_before_training(
    run_dir, tmp_path, capsys, label, says
):
    data = tmp_path / "bad.jsonl"
    data.write_text(f'{{"query": "q", "item": "an item", "label": {label}}}\n')
    argv = ["train", "--data", str(data), "--ranker", "tiny-llama", "--encoder", "tiny-bert",
            "--answer-words", "the,a", "--out", str(tmp_path / "other")]  # fmt: skip
    assert main(argv) == 2
    assert says in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    argv = ["train", "--data", str(good), "--ranker", "tiny-llama", "--encoder", "tiny-bert",
            "--answer-words", "the,a", "--out", str(run_dir)]  # fmt: skip
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_serve_answers_scores_over_http(run_dir, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(3))
    )
    cache = tmp_path / "items.db"
    assert main(["index", str(run_dir), str(items), "--cache", str(cache)]) == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixlm", "serve", str(run_dir), "--cache", str(cache), "--port", "0", "--json"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = json.loads(proc.stdout.readline())["url"]
        req = urllib.request.Request(
            url + "/score", data=json.dumps({"query": "goal", "items": ["d0", "d2"]}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        assert len(body["scores"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
