"""``obtain`` command line: track, click, plot, bench."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from obtain.bench import BENCH
from obtain.render import DEFAULT_RENDER_DIR

CLICK_FREQ = 2000.0


def mix_clicks(
    y: np.ndarray, sr: int, beats, *, click_gain: float = 0.5
) -> tuple[np.ndarray, float]:
    """``y`` with a short ``CLICK_FREQ`` Hz click at every beat time.

    Returns the mix and the scale applied to keep it within [-1, 1] (1.0 when no scaling
    was needed): ``out = scale * (y + click_gain * clicks)``.
    """
    import librosa

    if not 0 <= click_gain <= 10:
        raise LabcoreError(f"click_gain must be between 0 and 10, got {click_gain}")
    clicks = librosa.clicks(
        times=np.asarray(beats, dtype=float), sr=sr, length=len(y), click_freq=CLICK_FREQ
    )
    mix = y + click_gain * clicks
    peak = float(np.abs(mix).max()) if len(mix) else 0.0
    scale = 1.0 if peak <= 0.99 else 0.99 / peak
    return mix * scale, scale


def _click_gain(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 10:  # negative inverts the clicks; NaN or huge drowns the music
        raise argparse.ArgumentTypeError(f"must be between 0 and 10, got {text}")
    return value


def write_wav(path: Path, y: np.ndarray, sr: int) -> Path:
    """16-bit PCM WAV, written atomically."""
    import soundfile as sf

    from labcore.io import atomic_write_bytes

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return atomic_write_bytes(Path(path), buf.getvalue())


def _config(args: argparse.Namespace):
    from obtain import TrackerConfig

    kw = {}
    if args.bpm_min is not None:
        kw["bpm_min"] = args.bpm_min
    if args.bpm_max is not None:
        kw["bpm_max"] = args.bpm_max
    if args.no_octave_correction:
        kw["octave_correction"] = False
    return TrackerConfig(**kw)


def _run_tracker(args: argparse.Namespace, *, record: bool = False):
    from obtain import BeatTracker
    from obtain.evaluate import load_audio

    y, sr = load_audio(args.audio)
    tracker = BeatTracker(sr=sr, config=_config(args), record=record)
    for s in range(0, len(y), 4096):
        tracker.process(y[s : s + 4096])
    return y, sr, tracker


def _track(args: argparse.Namespace) -> int:
    y, sr, tracker = _run_tracker(args)
    beats = tracker.beats
    curve = tracker.tempo_curve()
    payload = {
        "audio": str(args.audio),
        "duration_s": len(y) / sr,
        "beats": beats,
        "decided_at": [b.decided_at for b in tracker.events],
        "forced": [b.forced for b in tracker.events],
        "tempo_bpm": tracker.tempo,
        "tempo_curve": curve.tolist(),
        "onset_delay_s": tracker.onset_delay,
        "config": tracker.config.to_dict(),
    }
    if args.out:
        from labcore.io import atomic_write_text

        atomic_write_text(args.out, "".join(f"{b:.4f}\n" for b in beats))
    tempo = "none (too short or silent)" if tracker.tempo is None else f"{tracker.tempo:.1f} BPM"
    text = "\n".join(f"{b:.3f}" for b in beats) + f"\n# {len(beats)} beats, final tempo {tempo}"
    emit(args, payload, text)
    return 0


def _click(args: argparse.Namespace) -> int:
    if args.out is None:
        raise LabcoreError("obtain click needs --out OUT.wav")
    y, sr, tracker = _run_tracker(args)
    mix, scale = mix_clicks(y, sr, tracker.beats, click_gain=args.click_gain)
    write_wav(args.out, mix, sr)
    emit(
        args,
        {"out": str(args.out), "beats": tracker.beats, "scale": scale, "click_hz": CLICK_FREQ},
        f"wrote {args.out}: {len(tracker.beats)} clicks at {CLICK_FREQ:g} Hz",
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from obtain.evaluate import load_beats
    from obtain.plot import plot_tracking

    if args.out is None:
        raise LabcoreError("obtain plot needs --out FIG.png")
    y, sr, tracker = _run_tracker(args, record=True)
    ref = load_beats(args.reference) if args.reference else None
    plot_tracking(y, sr, tracker, args.out, reference=ref)
    emit(args, {"out": str(args.out), "beats": tracker.beats}, f"wrote {args.out}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from obtain.render import build_rendered_set

    out = args.out or DEFAULT_RENDER_DIR.expanduser()
    entries = build_rendered_set(out, soundfont=args.soundfont, overwrite=args.overwrite)
    lines = [
        f"{e['name']}: {e['time_signature']}, {e['n_beats']} beats, {e['seconds']:g} s"
        for e in entries
    ]
    emit(args, {"out": str(out), "pieces": entries}, "\n".join(lines) + f"\nin {out}")
    return 0


def _add_tracker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", type=Path, help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--bpm-min", type=float, default=None, help="lowest tempo searched (50)")
    p.add_argument("--bpm-max", type=float, default=None, help="highest tempo searched (210)")
    p.add_argument(
        "--no-octave-correction", action="store_true", help="keep the histogram's tempo octave"
    )


def build_parser() -> argparse.ArgumentParser:
    from obtain import __version__

    parser = make_parser("obtain", "OBTAIN real-time (causal) beat tracking.", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub, "track", _track, help="print the beat times of an audio file", uses=("out",)
    )
    _add_tracker_options(p)
    p = add_command(
        sub, "click", _click, help="write the audio with a click on every beat", uses=("out",)
    )
    _add_tracker_options(p)
    p.add_argument("--click-gain", type=_click_gain, default=0.5, help="click level, 0 to 10 (0.5)")
    p = add_command(
        sub, "plot", _plot, help="draw audio, OSS, CBSS, tempo and beats", uses=("out",)
    )
    _add_tracker_options(p)
    p.add_argument("--reference", type=Path, default=None, help="reference .beats file")
    r = add_command(
        sub,
        "render",
        _render,
        help="build the rendered benchmark set (music21 scores + fluidsynth) into --out",
        uses=("out",),
    )
    r.add_argument("--soundfont", type=Path, default=None, help="a General MIDI .sf2 file")
    r.add_argument("--overwrite", action="store_true", help="render again what exists")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
