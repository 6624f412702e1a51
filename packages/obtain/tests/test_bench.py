"""The bench's command line, its seed loop and its output folder, on one short synthetic clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from obtain import bench
from obtain.cli import build_parser, main
from obtain.synth import synth_track

DATA = Path(__file__).parent / "data"


def _flags(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


def _subparsers():
    return next(a for a in build_parser()._actions if a.dest == "command").choices


def test_bench_offers_exactly_the_flags_it_reads():
    assert bench.BENCH.uses == {"seeds", "data_root"}
    common = {"--help", "--json", "--verbose", "--quiet"}
    assert _flags(_subparsers()["bench"]) == common | {
        "--quick",
        "--out",
        "--seeds",
        "--data-root",
        "--render-dir",
    }
    for name in ("track", "click", "plot", "render"):
        flags = _flags(_subparsers()[name])
        assert "--out" in flags and not {"--seed", "--device"} & flags, name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--device", "cpu"])  # parse only: never runs


def test_seed_zero_keeps_the_synthetic_clips():
    (name, y, sr, beats), *_ = bench._synthetic_clips(quick=True, seed=0)
    y0, b0 = synth_track(seconds=20.0, sr=sr, seed=0, **bench.QUICK_SYNTHETIC[0])
    assert name == "click-120" and np.array_equal(y, y0) and np.array_equal(beats, b0)


def test_bench_json_rows_per_seed(monkeypatch, tmp_path, capsys):
    """``obtain bench --json``: one JSON document; every row once per seed; per_clip.json."""
    import obtain.baselines

    def no_render(render_dir, quick):
        raise RuntimeError("no fluidsynth (test)")

    monkeypatch.setattr(bench, "QUICK_SYNTHETIC", bench.QUICK_SYNTHETIC[:1])
    monkeypatch.setattr(bench, "_rendered_clips", no_render)
    monkeypatch.setattr(obtain.baselines, "madmom_available", lambda: "not installed (test)")
    root = tmp_path / "data"
    (root / "clicks").mkdir(parents=True)
    for f in ("click120.flac", "click120.beats"):
        shutil.copy(DATA / f, root / "clicks" / f)
    out = tmp_path / "out"
    argv = ["bench", "--quick", "--seeds", "0,1", "--data-root", str(root), "--out", str(out)]
    assert main([*argv, "--render-dir", str(tmp_path / "render"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["rows"]
    assert {r["seed"] for r in rows} == {0, 1}
    for seed in (0, 1):
        mine = [r for r in rows if r["seed"] == seed]
        assert {(r["method"], r["dataset"]) for r in mine if r["status"] == "ok"} == {
            (m, d)
            for m in ("obtain", "obtain-official", "librosa-offline")
            for d in ("synthetic", "clicks (smoke, 8.0 s)")
        }
        assert {r["dataset"] for r in mine if r["status"] != "ok"} == {"all", "rendered"}
    assert doc["provenance"]["seeds"] == [0, 1] and doc["config"]["datasets"]["clicks"] == 1
    assert (out / "results.json").is_file() and (out / "results.md").is_file()
    per_clip = json.loads((out / "per_clip.json").read_text())
    assert len(per_clip) == 2 * 2 * 3  # seeds x clips x methods
