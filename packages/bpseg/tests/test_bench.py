"""The bench plugs into the shared contract: its flags, its seeds, its rows and files."""

from __future__ import annotations

import json
from pathlib import Path

import bpseg.bench as bench
from bpseg.cli import build_parser, main

DATA = Path(__file__).parent / "data"


def test_bench_offers_exactly_the_flags_it_reads():
    assert bench.BENCH.uses == frozenset({"seeds", "data_root"})
    assert bench.BENCH.seeds_for(False) == (0, 1, 2) and bench.BENCH.seeds_for(True) == (0,)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {s for a in sub.choices["bench"]._actions for s in a.option_strings}
    assert {"--quick", "--out", "--seeds", "--data-root", "--encoder", "--json"} <= flags
    assert not flags & {"--device", "--seed"}


def test_bench_cli_json_on_two_tiny_documents(monkeypatch, tmp_path, capsys):
    bbc, speed = bench.bbc_documents, bench._speed_document
    monkeypatch.setattr(
        bench,
        "bbc_documents",
        lambda n_docs, interleaved, seed: bbc(n_docs=2, interleaved=interleaved, seed=seed),
    )
    monkeypatch.setattr(bench, "_speed_document", lambda docs, n=500: speed(docs, 30))
    keep = ("bpseg", "texttiling")
    monkeypatch.setattr(bench, "METHODS", {k: bench.METHODS[k] for k in keep})
    argv = ["bench", "--quick", "--seeds", "0,1", "--encoder", "tfidf", "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    rows = payload["rows"]
    ok = [(r["method"], r["dataset"], r["seed"]) for r in rows if r["status"] == "ok"]
    # The seed-dependent method runs per seed, the deterministic one with the first seed.
    for dataset in ("bbc-contiguous", "bbc-interleaved"):
        assert [(m, s) for m, d, s in ok if d == dataset] == [
            ("bpseg", 0),
            ("bpseg", 1),
            ("texttiling", 0),
        ]
    assert ("encoder", "all", None) in ok and ("bpseg", "speed-500", 0) in ok
    # Without --data-root the Choi rows are kept as skipped, not dropped.
    skipped = [
        (r["method"], r["dataset"], r["seed"], r["status"]) for r in rows if r["status"] != "ok"
    ]
    assert skipped == [
        (m, "choi", seed, "skipped: no --data-root") for seed in (0, 1) for m in keep
    ]
    assert payload["provenance"]["seeds"] == [0, 1] and payload["provenance"]["quick"]
    assert "bbc-interleaved: ARI" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "results.md").is_file() and (tmp_path / "results.json").is_file()
    per_doc = json.loads((tmp_path / "per_doc.json").read_text())
    assert per_doc["notes"] == ["Choi skipped: no --data-root"]
    assert len(per_doc["rows"]) == 2 * 2 * 3  # 2 sets x 2 documents x 3 (method, seed) runs


def test_segment_json_is_one_document(capsys):
    argv = ["segment", str(DATA / "two_topics.txt"), "--k", "2", "--encoder", "tfidf", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["boundaries"] == [2, 4, 6]
