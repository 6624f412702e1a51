"""The streaming beat tracker and its offline wrapper."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np

from labcore.errors import LabcoreError
from obtain.beats import ampd_newest_is_peak, best_phase, cbss_step, detrend
from obtain.config import Frames, TrackerConfig
from obtain.oss import OnsetStrength
from obtain.tempo import TempoEstimate, TempoTracker

MIN_SR = 4000
MAX_SR = 768000
# Where, within the OSS frame that the FIR centres on an onset, the onset lies: the flux of
# a frame jumps as soon as an attack enters the end of the analysis window (log compression
# makes even the window's tapered edge count), so the attack is about this many hops before
# the frame's end. Measured on clicks (tests/test_tracker.py checks the resulting alignment).
ONSET_OFFSET_HOPS = 0.5


@dataclass(frozen=True)
class Beat:
    """One emitted beat.

    Attributes
    ----------
    time
        Estimated time of the beat, in seconds from the start of the stream.
    decided_at
        Stream time at which the tracker emitted it (the end of the OSS frame that decided).
    forced
        True when no CBSS peak came within the slack and the beat was forced one period on.
    """

    time: float
    decided_at: float
    forced: bool

    @property
    def latency(self) -> float:
        return self.decided_at - self.time


def as_mono_float(x, *, what: str = "audio", allow_2d: bool = False) -> np.ndarray:
    """Validate samples and convert them to float64.

    Integer PCM is scaled to [-1, 1) (int16 by 2^15, int32 by 2^31, uint8 centred at 128).
    With ``allow_2d``, a 2-D array is taken as channels-first (librosa's convention, shape
    ``(channels, n)``) and averaged to mono; otherwise 2-D input is an error.
    """
    try:
        a = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise LabcoreError(f"{what} is not an array of samples: {e}") from None
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise LabcoreError(
            f"{what} must be real numbers (float or integer PCM), got dtype {a.dtype}"
        )
    if a.dtype.kind == "u":
        bits = 8 * a.dtype.itemsize
        a = (a.astype(np.float64) - 2 ** (bits - 1)) / 2 ** (bits - 1)
    elif a.dtype.kind == "i":
        a = a.astype(np.float64) / 2 ** (8 * a.dtype.itemsize - 1)
    else:
        a = a.astype(np.float64, copy=False)
    if a.ndim == 2:
        if not allow_2d:
            raise LabcoreError(
                f"{what} must be mono (1-D), got shape {a.shape}; downmix first, e.g. "
                "block.mean(axis=0) for channels-first or block.mean(axis=1) for frames-first"
            )
        if a.shape[0] > a.shape[1]:
            raise LabcoreError(
                f"{what} of shape {a.shape} looks frames-first; pass channels-first "
                "(channels, n) as librosa does, or mono"
            )
        a = a.mean(axis=0)
    elif a.ndim != 1:
        raise LabcoreError(f"{what} must be a 1-D array of samples, got shape {a.shape}")
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise LabcoreError(f"{what} contains NaN or infinite samples (first at index {bad})")
    return a


def check_sr(sr) -> int:
    ok = isinstance(sr, numbers.Real) and not isinstance(sr, bool)
    ok = ok and math.isfinite(sr) and float(sr) == int(sr) and MIN_SR <= int(sr) <= MAX_SR
    if not ok:
        raise LabcoreError(
            f"sample rate must be an integer from {MIN_SR} to {MAX_SR} Hz, got {sr!r}"
        )
    return int(sr)


class BeatTracker:
    """OBTAIN real-time beat tracker: feed audio blocks, get beats as they are decided.

    Strictly causal: a beat emitted by :meth:`process` depends only on the audio passed so
    far, and the beats do not depend on the block size.

    Parameters
    ----------
    sr
        Sample rate of the audio (any rate >= 4 kHz; the analysis keeps the same time scale).
    config
        A :class:`TrackerConfig`; keyword ``overrides`` replace its fields.
    record
        Keep the per-frame OSS, CBSS and period for plotting (:meth:`trace`).

    Examples
    --------
    >>> import numpy as np
    >>> from obtain import BeatTracker
    >>> from obtain.synth import click_track
    >>> y, true_beats = click_track(bpm=120, seconds=12, sr=22050)
    >>> tracker = BeatTracker(sr=22050)
    >>> beats = []
    >>> for start in range(0, len(y), 512):  # blocks as they would come from a sound card
    ...     beats += tracker.process(y[start : start + 512])
    >>> round(tracker.tempo)
    120
    """

    def __init__(
        self,
        sr: int = 44100,
        config: TrackerConfig | None = None,
        *,
        record: bool = False,
        **overrides,
    ):
        self.sr = check_sr(sr)
        if config is not None and not isinstance(config, TrackerConfig):
            raise LabcoreError(f"config must be a TrackerConfig, got {type(config).__name__}")
        cfg = config or TrackerConfig()
        if overrides:
            try:
                cfg = replace(cfg, **overrides)
            except TypeError as e:
                raise LabcoreError(f"unknown tracker setting: {e}") from None
        self.config = cfg
        self.frames = Frames.of(cfg, self.sr)
        self.record = record
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything heard so far."""
        fr, cfg = self.frames, self.config
        self._oss = OnsetStrength(cfg, fr)
        self._tempo = TempoTracker(cfg, fr)
        self._rng = np.random.default_rng(cfg.seed) if cfg.ampd_random else None
        self._n = 0  # OSS frames processed
        keep = max(fr.tempo_window, fr.cbss_len) + 2 * fr.max_lag + 2
        self._keep = keep
        self._oss_buf = np.zeros(4 * keep)
        self._cbss_buf = np.zeros(4 * keep)
        self._pos = 0  # next write index into both buffers
        self._since_tempo = 0
        self._tau: int | None = None
        self._count = 0
        self._phase_done = False
        self._beat_frames: list[int] = []
        self._oss_level = 0.0  # long-run mean OSS (for the silence gate)
        self.events: list[Beat] = []
        self.tempo_updates: list[TempoEstimate] = []
        self._trace: dict[str, list] = {"oss": [], "cbss": [], "tau": []}

    # ------------------------------------------------------------- properties
    @property
    def tempo(self) -> float | None:
        """Current tempo in BPM (``None`` during the warm-up)."""
        return self._tempo.bpm

    @property
    def beats(self) -> list[float]:
        """Times (s) of all beats emitted so far."""
        return [b.time for b in self.events]

    @property
    def time(self) -> float:
        """Seconds of audio consumed."""
        return (self._oss.n_frames * self.frames.hop + len(self._oss._buf)) / self.sr - (
            self.frames.n_fft - self.frames.hop
        ) / self.sr

    @property
    def onset_delay(self) -> float:
        """Seconds between an onset and the end of the OSS frame whose peak it makes (FIR
        delay plus where the attack sits in its frame)."""
        return (self._oss.delay_frames + ONSET_OFFSET_HOPS) * self.frames.hop / self.sr

    @property
    def next_beat(self) -> float | None:
        """Predicted time of the next beat (last beat plus one period), for schedulers that
        must act ahead of time; ``None`` before the first beat."""
        if not self.events or self._tau is None:
            return None
        return self.events[-1].time + self._tau / self.frames.f_oss

    def tempo_curve(self) -> np.ndarray:
        """``(m, 2)`` array of (time s, BPM) at every tempo update with a tempo."""
        rows = [(self._frame_end(u.frame), u.bpm) for u in self.tempo_updates if u.bpm is not None]
        return np.array(rows, dtype=float).reshape(-1, 2)

    def trace(self) -> dict[str, np.ndarray]:
        """Per-frame ``time``, ``oss``, ``cbss`` and ``tau`` (needs ``record=True``)."""
        if not self.record:
            raise LabcoreError("BeatTracker(record=True) is needed for trace()")
        n = len(self._trace["oss"])
        return {
            "time": self._frame_end(np.arange(n)) - self.onset_delay,
            **{k: np.asarray(v, dtype=float) for k, v in self._trace.items()},
        }

    def _frame_end(self, n):
        return (np.asarray(n) + 1) * self.frames.hop / self.sr

    # --------------------------------------------------------------- process
    def process(self, block) -> list[float]:
        """Feed the next samples (mono; float, or integer PCM which is scaled).

        Returns the times (s from the stream start) of the beats decided while processing
        this block; an empty block returns ``[]``.
        """
        x = as_mono_float(block, what="block")
        if len(x) == 0:
            return []
        oss, _ = self._oss.process(x)
        start = len(self.events)
        for o in oss:
            self._frame(float(o))
        return [b.time for b in self.events[start:]]

    def _compact(self) -> None:
        keep = self._keep
        for buf in (self._oss_buf, self._cbss_buf):
            buf[:keep] = buf[self._pos - keep : self._pos]
        self._pos = keep

    def _frame(self, o: float) -> None:
        fr, cfg = self.frames, self.config
        if self._pos == len(self._oss_buf):
            self._compact()
        p = self._pos
        self._oss_buf[p] = o
        n = self._n
        self._n += 1
        # Long-run OSS level with a ~10 s memory, for the silence gate.
        k = 1.0 / (10.0 * fr.f_oss)
        self._oss_level += k * (o - self._oss_level) if n else o

        self._since_tempo += 1
        if self._n >= fr.tempo_start and (
            self._since_tempo >= fr.tempo_interval or self._n == fr.tempo_start
        ):
            self._since_tempo = 0
            m = min(self._n, fr.tempo_window)
            window = self._oss_buf[p - m + 1 : p + 1]
            if window.max() > 0:
                est = self._tempo.update(window, n)
                self.tempo_updates.append(est)
                if est.bpm is not None:
                    self._tau = max(2, round(fr.bpm_to_lag(est.bpm)))

        tau = self._tau
        if tau is None:
            c = (1 - cfg.alpha) * o
        else:
            lo = max(0, p - self._keep)
            c = cbss_step(self._cbss_buf[lo:], p - lo, o, tau, cfg.alpha, cfg.tightness)
        self._cbss_buf[p] = c
        self._pos += 1
        if self.record:
            self._trace["oss"].append(o)
            self._trace["cbss"].append(c)
            self._trace["tau"].append(np.nan if tau is None else tau)
        if tau is None:
            return

        self._count += 1
        lo = max(0, self._pos - fr.cbss_len)
        if cfg.phase_correction and not self._phase_done and self._count >= math.ceil(tau / 2):
            self._phase_done = True
            self._phase_check(detrend(self._cbss_buf[lo : self._pos]), tau)

        if self._silent():
            return
        forced = self._count > tau + fr.beat_slack
        if forced or (
            self._count > tau - fr.beat_slack
            and ampd_newest_is_peak(
                detrend(self._cbss_buf[lo : self._pos]),
                n_scales=cfg.ampd_scales,
                pad=fr.ampd_pad,
                rng=self._rng,
            )
        ):
            self._emit(n, forced)

    def _silent(self) -> bool:
        fr = self.frames
        m = min(self._n, round(fr.f_oss))
        recent = float(self._oss_buf[self._pos - m : self._pos].mean())
        return recent <= 0.0 or recent < self.config.silence_ratio * self._oss_level

    def _phase_check(self, x: np.ndarray, tau: int) -> None:
        """Re-align the beat counter to the best-fitting pulse train (once per beat)."""
        phi, score = best_phase(x, tau, self.config.phase_periods)
        first = self._n - len(x)  # global frame index of x[0]
        prev = [f - first for f in self._beat_frames if f >= first]
        if not prev:
            return
        prev_score = float(x[prev].mean())
        offset = abs(phi - self._count)
        offset = min(offset, tau - offset)
        if score > prev_score and offset > self.frames.phase_min_offset:
            self._count = phi

    def _emit(self, n: int, forced: bool) -> None:
        end = float(self._frame_end(n))
        # The beat sits where the counter expects it (tau frames after the last one): the
        # AMPD test passes as soon as the window opens on a rising CBSS (see beats.py), up to
        # `beat_slack` frames ahead of the beat, and a forced beat comes that much after it.
        ahead = (self._tau - self._count) / self.frames.f_oss
        self.events.append(Beat(time=end - self.onset_delay + ahead, decided_at=end, forced=forced))
        self._beat_frames.append(n)
        if len(self._beat_frames) > 64:
            del self._beat_frames[:-64]
        self._count = 0
        self._phase_done = False


def track(
    y, sr: int, *, config: TrackerConfig | None = None, block: int = 4096, **overrides
) -> tuple[np.ndarray, np.ndarray]:
    """Track a whole signal with the causal tracker, as if it were streamed.

    Parameters
    ----------
    y
        Audio samples: mono, or channels-first ``(channels, n)`` which is averaged to mono.
    sr
        Sample rate in Hz.
    config, overrides
        Tracker settings (see :class:`TrackerConfig`).
    block
        Block size used to stream ``y`` (the beats do not depend on it).

    Returns
    -------
    beats : np.ndarray
        Beat times in seconds.
    tempo_curve : np.ndarray
        ``(m, 2)`` array of (time s, BPM) at each tempo update.

    Examples
    --------
    >>> from obtain import track
    >>> from obtain.synth import click_track
    >>> y, ref = click_track(bpm=100, seconds=15, sr=22050)
    >>> beats, tempo = track(y, 22050)
    >>> bool(abs(tempo[-1, 1] - 100) < 2)
    True
    """
    x = as_mono_float(y, what="audio", allow_2d=True)
    if len(x) == 0:
        raise LabcoreError("audio is empty")
    if not isinstance(block, numbers.Integral) or isinstance(block, bool) or block < 1:
        raise LabcoreError(f"block must be an integer >= 1, got {block!r}")
    tracker = BeatTracker(sr=sr, config=config, **overrides)
    for s in range(0, len(x), int(block)):
        tracker.process(x[s : s + int(block)])
    return np.asarray(tracker.beats), tracker.tempo_curve()
