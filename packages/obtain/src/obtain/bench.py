"""``obtain bench``: OBTAIN (online) against librosa-offline and madmom (online), one process.

Data sets:

- ``synthetic``: click and drum tracks with known beats (constant tempo, ramps, jumps, swing,
  noise), made here.
- ``rendered``: excerpts of music21's corpus rendered by fluidsynth with a General MIDI
  soundfont under tempo maps we set, so the beats are exact (built by :mod:`obtain.render`
  into ``--render-dir``, a cache, on first use; skipped without fluidsynth or music21).
- every folder of ``--data-root`` holding annotated audio (``x.wav`` + ``x.beats``), such as
  ``beats-gtzan``. Clips shorter than 10 s are a smoke test: reported, never averaged with
  the others (mir_eval ignores the first 5 s, the trackers' warm-up).

Methods: ``obtain`` (our defaults), ``obtain-official`` (:meth:`TrackerConfig.official`: the
official code's settings where ours deviate, to show what the deviations do), librosa and
madmom.

Seeds: the synthetic clips are drawn anew for each seed (clip ``k`` uses generator seed
``1000 * seed + k``, so seed 0 gives the clips the bench always used); the rendered and real
clips are the same for every seed, where only the timings vary.

Metrics: mean F-measure (±70 ms), CMLt, AMLt and P-score over clips (mir_eval, first 5 s
trimmed); the real-time factor (processing time / audio duration); for the online trackers,
the decision latency (when a beat was emitted, relative to the reference beat it matched).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.io import atomic_write_json
from obtain import __version__
from obtain.render import DEFAULT_RENDER_DIR

log = logging.getLogger(__name__)

SMOKE_S = 10.0
STREAM_BLOCK = 512  # what a sound card delivers (11.6 ms at 44.1 kHz)

SYNTHETIC = (
    dict(kind="click", bpm=120.0),
    dict(kind="click", bpm=90.0, snr_db=10.0),
    dict(kind="click", bpm=150.0),
    dict(kind="drums", bpm=100.0),
    dict(kind="drums", bpm=72.0, snr_db=5.0),
    dict(kind="drums", bpm=110.0, swing=1 / 6),
    dict(kind="click", bpm=100.0, bpm_end=140.0, jump_at=15.0),
    dict(kind="drums", bpm=130.0, bpm_end=95.0, jump_at=15.0),
    dict(kind="click", bpm=90.0, bpm_end=130.0),
    dict(kind="drums", bpm=140.0, bpm_end=100.0),
    dict(kind="drums", bpm=125.0, snr_db=0.0),
    dict(kind="click", bpm=80.0, swing=0.1, snr_db=5.0),
)
QUICK_SYNTHETIC = (SYNTHETIC[0], SYNTHETIC[3], SYNTHETIC[6], SYNTHETIC[8])


def _synthetic_clips(quick: bool, sr: int = 44100, seed: int = 0):
    from obtain.synth import synth_track

    seconds = 20.0 if quick else 30.0
    for k, spec in enumerate(QUICK_SYNTHETIC if quick else SYNTHETIC):
        y, beats = synth_track(seconds=seconds, sr=sr, seed=1000 * seed + k, **spec)
        name = f"{spec['kind']}-{spec['bpm']:g}" + (
            f"-{'jump' if 'jump_at' in spec else 'ramp'}{spec['bpm_end']:g}"
            if "bpm_end" in spec
            else ""
        )
        yield name, y, sr, beats


def _rendered_clips(render_dir: Path, quick: bool):
    from obtain.evaluate import load_audio, load_beats
    from obtain.render import DEFAULT_PIECES, build_rendered_set

    pieces = DEFAULT_PIECES[::3] if quick else DEFAULT_PIECES
    entries = build_rendered_set(render_dir, pieces=pieces)
    for e in entries:
        y, sr = load_audio(render_dir / f"{e['name']}.wav")
        yield e["name"], y, sr, load_beats(render_dir / f"{e['name']}.beats")


def _folder_clips(folder: Path):
    from obtain.evaluate import find_clips, load_audio, load_beats

    for clip in find_clips(folder):
        y, sr = load_audio(clip.audio)
        yield clip.name, y, sr, load_beats(clip.beats)


def _run_obtain(y: np.ndarray, sr: int, config=None) -> tuple[np.ndarray, float, np.ndarray, int]:
    from obtain import BeatTracker

    tracker = BeatTracker(sr=sr, config=config)
    t = time.perf_counter()
    for s in range(0, len(y), STREAM_BLOCK):
        tracker.process(y[s : s + STREAM_BLOCK])
    dt = time.perf_counter() - t
    decided = np.array([b.decided_at for b in tracker.events])
    return np.asarray(tracker.beats), dt, decided, tracker._n


def _latencies(ref: np.ndarray, est: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """``decided_at - reference beat`` for estimated beats within 70 ms of a reference beat."""
    if len(ref) == 0 or len(est) == 0:
        return np.zeros(0)
    idx = np.clip(np.searchsorted(ref, est), 1, len(ref) - 1)
    near = np.where(np.abs(est - ref[idx - 1]) < np.abs(est - ref[idx]), idx - 1, idx)
    ok = np.abs(est - ref[near]) <= 0.07
    return decided[ok] - ref[near][ok]


def run_datasets(
    datasets: dict[str, Any], methods: list[str], seed: int | None = None
) -> tuple[list[Row], list[dict]]:
    """Every method on every clip; rows aggregated per (data set, method), labelled ``seed``."""
    from obtain import TrackerConfig
    from obtain.baselines import BASELINES
    from obtain.evaluate import beat_scores, matched_offsets

    per_clip: list[dict] = []
    rows: list[Row] = []
    for ds_name, clips in datasets.items():
        acc: dict[str, dict[str, list]] = {}
        n_clips = 0
        for name, y, sr, ref in clips:
            n_clips += 1
            dur = len(y) / sr
            dataset = ds_name if dur >= SMOKE_S else f"{ds_name} (smoke, {dur:.1f} s)"
            for method in methods:
                a = acc.setdefault(dataset, {}).setdefault(
                    method,
                    {"scores": [], "time": 0.0, "dur": 0.0, "lat": [], "off": [], "hops": 0},
                )
                if method.startswith("obtain"):
                    cfg = TrackerConfig.official() if method == "obtain-official" else None
                    est, dt, decided, n_hops = _run_obtain(y, sr, cfg)
                    lat = _latencies(ref, est, decided)
                    a["lat"].extend(lat.tolist())
                    a["hops"] += n_hops
                else:
                    t = time.perf_counter()
                    est = BASELINES[method](y, sr)
                    dt = time.perf_counter() - t
                sc = beat_scores(ref, est)
                off = matched_offsets(ref[ref >= 5], est[est >= 5])
                a["scores"].append(sc)
                a["off"].extend(off.tolist())
                a["time"] += dt
                a["dur"] += dur
                per_clip.append(
                    {
                        "seed": seed,
                        "dataset": dataset,
                        "clip": name,
                        "method": method,
                        **sc,
                        "rtf": dt / dur,
                        "n_beats": len(est),
                        "n_ref": len(ref),
                    }
                )
                log.info("%s/%s %s: F=%.3f rtf=%.4f", dataset, name, method, sc["F"], dt / dur)
        if n_clips == 0:
            rows.append(Row.skipped("all", {}, ds_name, "no annotated clips found", seed=seed))
        for dataset, by_method in acc.items():
            for method, a in by_method.items():
                metrics: dict[str, float | None] = {
                    k: float(np.mean([s[k] for s in a["scores"]]))
                    for k in ("F", "CMLt", "AMLt", "P")
                }
                metrics["rtf"] = a["time"] / a["dur"]
                metrics["median_offset_ms"] = (
                    1000 * float(np.median(a["off"])) if a["off"] else None
                )
                if method.startswith("obtain"):
                    metrics["median_latency_ms"] = (
                        1000 * float(np.median(a["lat"])) if a["lat"] else None
                    )
                    metrics["us_per_hop"] = 1e6 * a["time"] / max(a["hops"], 1)
                rows.append(
                    Row(
                        method=method,
                        params={"online": method != "librosa-offline", "clips": len(a["scores"])},
                        dataset=dataset,
                        seed=seed,
                        metrics=metrics,
                        time_s=a["time"],
                    )
                )
    return rows, per_clip


def run_bench(config: BenchConfig) -> BenchReport:
    """Every method on the synthetic, rendered and ``--data-root`` clips, once per seed.

    Writes ``per_clip.json`` (every clip's scores) into ``config.out``.
    """
    from obtain.baselines import madmom_available

    quick = config.quick
    render_dir = Path(config.option("render_dir", DEFAULT_RENDER_DIR)).expanduser()
    methods = ["obtain", "obtain-official", "librosa-offline"]
    skipped: list[tuple[str, str, str]] = []  # (method, dataset, reason)
    why = madmom_available()
    if why is None:
        methods.append("madmom-online")
    else:
        skipped.append(("madmom-online", "all", why))

    # The rendered and real clips do not depend on the seed: load them once.
    fixed: dict[str, Any] = {}
    try:
        fixed["rendered"] = list(_rendered_clips(render_dir, quick))
    except Exception as e:  # no fluidsynth / music21 / soundfont
        skipped.append(("all", "rendered", str(e).splitlines()[0]))
    if config.data_root is not None:
        for folder in sorted(p for p in config.data_root.iterdir() if p.is_dir()):
            clips = list(_folder_clips(folder))
            if clips:
                fixed[folder.name] = clips

    rows: list[Row] = []
    per_clip: list[dict] = []
    n_clips: dict[str, int] = {}
    for seed in config.seeds:
        datasets = {"synthetic": list(_synthetic_clips(quick, seed=seed)), **fixed}
        n_clips = {k: len(v) for k, v in datasets.items()}
        seed_rows, seed_clips = run_datasets(datasets, methods, seed=seed)
        rows += seed_rows
        rows += [Row.skipped(m, {}, ds, reason, seed=seed) for m, ds, reason in skipped]
        per_clip += seed_clips

    report = BenchReport(
        package="obtain",
        version=__version__,
        config={
            "quick": quick,
            "stream_block": STREAM_BLOCK,
            "trim_s": 5.0,
            "datasets": n_clips,
        },
    )
    report.extend(rows)
    atomic_write_json(Path(config.out) / "per_clip.json", per_clip)
    return report


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--render-dir",
        type=Path,
        default=DEFAULT_RENDER_DIR,
        help=f"cache where the rendered music21 set is built and kept (default {DEFAULT_RENDER_DIR})",
    )


BENCH = BenchSpec(
    package="obtain",
    version=__version__,
    run=run_bench,
    help="OBTAIN against librosa and madmom (one process)",
    uses=frozenset({"seeds", "data_root"}),
    add_arguments=_add_arguments,
)
