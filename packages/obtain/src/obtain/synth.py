"""Synthetic tracks with known beats: clicks and a drum kit, at constant tempo, with tempo
ramps or jumps, swing and noise. For tests, and the synthetic rows of the benchmark."""

from __future__ import annotations

import numpy as np

from labcore.errors import LabcoreError


def beat_grid(
    *,
    bpm: float,
    seconds: float,
    bpm_end: float | None = None,
    jump_at: float | None = None,
    start: float = 0.5,
) -> np.ndarray:
    """Beat times under a tempo that is constant, ramps linearly in time to ``bpm_end``, or
    jumps to ``bpm_end`` at ``jump_at`` seconds (first beat at ``start``)."""
    if not 10 <= bpm <= 600 or (bpm_end is not None and not 10 <= bpm_end <= 600):
        raise LabcoreError(f"tempo out of range [10, 600] BPM: {bpm}, {bpm_end}")
    if jump_at is not None and bpm_end is None:
        raise LabcoreError("jump_at needs bpm_end (the tempo after the jump)")

    def tempo(t: float) -> float:
        if bpm_end is None:
            return bpm
        if jump_at is not None:
            return bpm if t < jump_at else bpm_end
        return bpm + (bpm_end - bpm) * min(t / seconds, 1.0)

    times = []
    t = start
    while t < seconds:
        times.append(t)
        t += 60.0 / tempo(t)
    return np.asarray(times)


def _click(sr: int, freq: float = 1000.0, dur: float = 0.03, decay: float = 0.006) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    return np.sin(2 * np.pi * freq * t) * np.exp(-t / decay)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    f = 40 + 80 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)


def _noise_burst(sr: int, rng, dur: float, decay: float, highpass: bool) -> np.ndarray:
    n = rng.standard_normal(int(dur * sr))
    if highpass:
        n = np.diff(n, prepend=0.0)
    t = np.arange(len(n)) / sr
    return n * np.exp(-t / decay) / max(np.abs(n).max(), 1e-9)


def _place(y: np.ndarray, sound: np.ndarray, t: float, sr: int, gain: float) -> None:
    i = round(t * sr)
    if i >= len(y):
        return
    j = min(len(y), i + len(sound))
    y[i:j] += gain * sound[: j - i]


def synth_track(
    *,
    kind: str = "click",
    bpm: float = 120.0,
    seconds: float = 30.0,
    sr: int = 44100,
    bpm_end: float | None = None,
    jump_at: float | None = None,
    swing: float = 0.0,
    snr_db: float | None = None,
    start: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic track and its beat times.

    Parameters
    ----------
    kind
        ``"click"``: a decaying 1 kHz click on every beat (accented on the bar's first beat)
        and a quieter 2 kHz click on the off-beat eighth. ``"drums"``: kick on beats 1 and 3,
        snare on 2 and 4, hi-hat on every eighth.
    bpm, bpm_end, jump_at, start
        Tempo (see :func:`beat_grid`).
    swing
        Delay of the off-beat eighth as a fraction of the beat (0 = straight, 1/6 = triplet
        swing).
    snr_db
        Add white noise at this signal-to-noise ratio (``None``: none).

    Returns
    -------
    y : np.ndarray
        Mono float audio, peak 0.9.
    beats : np.ndarray
        Beat times in seconds.
    """
    if kind not in ("click", "drums"):
        raise LabcoreError(f"kind must be 'click' or 'drums', got {kind!r}")
    if not 0 <= swing < 0.5:
        raise LabcoreError(f"swing must be in [0, 0.5), got {swing}")
    rng = np.random.default_rng(seed)
    beats = beat_grid(bpm=bpm, seconds=seconds, bpm_end=bpm_end, jump_at=jump_at, start=start)
    y = np.zeros(int(seconds * sr))
    periods = np.diff(np.append(beats, beats[-1] + 60.0 / (bpm_end or bpm)))
    offbeats = beats + (0.5 + swing) * periods
    if kind == "click":
        hi, lo = _click(sr, 1000.0), _click(sr, 2000.0, decay=0.004)
        for k, t in enumerate(beats):
            _place(y, hi, t, sr, 1.0 if k % 4 == 0 else 0.7)
        for t in offbeats:
            _place(y, lo, t, sr, 0.25)
    else:
        kick, snare = _kick(sr), _noise_burst(sr, rng, 0.2, 0.05, False)
        hat = _noise_burst(sr, rng, 0.05, 0.01, True)
        for k, t in enumerate(beats):
            _place(y, kick if k % 2 == 0 else snare, t, sr, 1.0 if k % 2 == 0 else 0.6)
            _place(y, hat, t, sr, 0.3)
        for t in offbeats:
            _place(y, hat, t, sr, 0.2)
    if snr_db is not None:
        p = float(np.mean(y**2))
        y = y + rng.standard_normal(len(y)) * np.sqrt(p / 10 ** (snr_db / 10))
    y *= 0.9 / max(float(np.abs(y).max()), 1e-12)
    return y, beats


def click_track(
    *, bpm: float = 120.0, seconds: float = 30.0, sr: int = 44100, **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Shorthand for ``synth_track(kind="click", ...)``."""
    return synth_track(kind="click", bpm=bpm, seconds=seconds, sr=sr, **kwargs)
