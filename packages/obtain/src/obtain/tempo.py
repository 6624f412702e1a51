"""Running tempo: Percival & Tzanetakis (2014) period estimates on the recent OSS, a lag
histogram over recent estimates, octave correction and hysteresis.

Lags are 0-based here: a period of ``lag`` OSS frames is ``60 * f_oss / lag`` BPM. (The
official MATLAB code is 1-based and writes ``f_oss * 60 / (lag - 1)``: the same thing.)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from obtain.config import Frames, TrackerConfig

N_CANDIDATES = 10
# Pulse trains of Percival & Tzanetakis: 4 pulses at multiples of P (weight 1), of 2P (0.5)
# and of 1.5P (0.5).
_PULSE_MULTIPLES = (
    (np.arange(4) * 1.0, 1.0),
    (np.arange(4) * 2.0, 0.5),
    (np.arange(4) * 1.5, 0.5),
)


def generalized_autocorrelation(x: np.ndarray, n_fft: int) -> np.ndarray:
    """``IFFT(|FFT(x)|^0.5)`` with ``x`` zero-padded to ``n_fft`` (no circular wrap-around)."""
    spec = np.abs(np.fft.rfft(x, n_fft)) ** 0.5
    return np.fft.irfft(spec, n_fft)


def enhance_harmonics(acf: np.ndarray, max_lag: int) -> np.ndarray:
    """``A(l) + A(2l) + A(4l)`` for ``l <= max_lag`` (terms beyond the array count 0)."""
    lags = np.arange(max_lag + 1)
    out = acf[lags].copy()
    for m in (2, 4):
        idx = lags * m
        ok = idx < len(acf)
        out[ok] += acf[idx[ok]]
    return out


def pulse_scores(x_rev: np.ndarray, period: int) -> np.ndarray:
    """Pulse-train correlation of the OSS (newest sample first) for every phase in [0, P).

    Returns an array of length ``period``; pulses past the window's start count 0.
    """
    offsets = []
    weights = []
    for mult, w in _PULSE_MULTIPLES:
        offsets.append(np.round(mult * period).astype(np.int64))
        weights.append(np.full(len(mult), w))
    off = np.concatenate(offsets)
    wts = np.concatenate(weights)
    idx = np.arange(period)[:, None] + off[None, :]
    ok = idx < len(x_rev)
    vals = np.where(ok, x_rev[np.minimum(idx, len(x_rev) - 1)], 0.0)
    return vals @ wts


def _parabolic(y: np.ndarray, i: int) -> float:
    """Vertex of the parabola through ``y[i-1:i+2]`` (``i`` where undefined)."""
    if i <= 0 or i >= len(y) - 1:
        return float(i)
    a, b, c = y[i - 1], y[i], y[i + 1]
    den = a - 2 * b + c
    if den >= 0:
        return float(i)
    return float(i + 0.5 * (a - c) / den)


def window_period(x: np.ndarray, fr: Frames) -> tuple[float | None, np.ndarray]:
    """Period (in OSS frames, sub-frame precision) of one OSS window, and its GACF.

    Percival & Tzanetakis (2014): generalized autocorrelation, harmonic enhancement, the 10
    highest local maxima in the lag range as candidates, each scored by pulse trains over all
    phases (tempo score: the best phase; onset score: the variance over phases), the two
    scores normalised to sum 1 over the candidates and added. Returns ``None`` for a window
    without any candidate (silence, or no periodicity in range).
    """
    n_fft = 1 << math.ceil(math.log2(2 * max(len(x), fr.max_lag + 1)))
    acf = generalized_autocorrelation(x, n_fft)
    if not np.isfinite(acf).all() or acf[0] <= 1e-12:
        return None, acf
    enh = enhance_harmonics(acf, fr.max_lag + 1)
    lo, hi = fr.min_lag, fr.max_lag
    seg = enh[lo - 1 : hi + 2]
    is_max = (seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])
    cand = np.flatnonzero(is_max) + lo
    if len(cand) == 0:
        return None, acf
    cand = cand[np.argsort(-enh[cand], kind="stable")[:N_CANDIDATES]]
    x_rev = x[::-1]
    tempo_score = np.empty(len(cand))
    onset_score = np.empty(len(cand))
    for i, p in enumerate(cand):
        s = pulse_scores(x_rev, int(p))
        tempo_score[i] = s.max()
        onset_score[i] = s.var()

    def norm(v):
        tot = v.sum()
        return v / tot if tot > 0 else np.zeros_like(v)

    best = int(cand[np.argmax(norm(tempo_score) + norm(onset_score))])
    return _parabolic(enh, best), acf


def comb_contrast(x: np.ndarray, period: float) -> float:
    """How well a ``period``-spaced comb fits the OSS window ``x`` (newest sample last): the
    largest mean OSS on the comb over all phases, minus the median OSS."""
    x_rev = x[::-1]
    reps = int(len(x_rev) // period)
    p = max(1, round(period))
    if reps < 1:
        return 0.0
    idx = np.rint(np.arange(p)[:, None] + period * np.arange(reps)[None, :]).astype(np.int64)
    idx = np.minimum(idx, len(x_rev) - 1)
    return max(float(x_rev[idx].mean(axis=1).max() - np.median(x)), 0.0)


@dataclass
class TempoEstimate:
    """One tempo update: when it was made (OSS frame), the raw and the accepted tempo."""

    frame: int
    window_bpm: float | None
    histogram_bpm: float | None
    bpm: float | None


class TempoTracker:
    """Lag histogram, octave correction and hysteresis over per-window period estimates."""

    def __init__(self, cfg: TrackerConfig, fr: Frames):
        self.cfg = cfg
        self.fr = fr
        self.lags: deque[float] = deque(maxlen=cfg.lag_history)
        self.history: deque[float] = deque(maxlen=20)
        self.n_updates = 0
        self._insist = 0
        self.bpm: float | None = None
        self._grid = np.arange(fr.max_lag + 2, dtype=float)

    def histogram(self) -> np.ndarray:
        """Votes of the recent lags (newest weight 1, halving every ``tempo_half_life``)."""
        lags = np.fromiter(self.lags, float, len(self.lags))
        age = np.arange(len(lags))[::-1]
        w = 0.5 ** (age / self.cfg.tempo_half_life)
        d = self._grid[:, None] - lags[None, :]
        return np.exp(-0.5 * (d / self.fr.lag_sigma) ** 2) @ w

    def _octave(self, lag: float, window: np.ndarray) -> float:
        """Pick among ``lag``, ``lag / 2`` and ``2 lag`` by comb fit times the tempo prior.

        The fit of a period is how far the best-phased comb of that period stands above the
        window's median OSS; it is weighted by a log-normal prior on the tempo.
        """
        fr, cfg = self.fr, self.cfg
        best, best_score = lag, -np.inf
        for c in (lag, lag / 2, lag * 2):
            if not fr.min_lag - 0.5 <= c <= fr.max_lag + 0.5:
                continue
            octaves = math.log2(fr.lag_to_bpm(c) / cfg.prior_bpm) / cfg.prior_octaves
            score = comb_contrast(window, c) * math.exp(-0.5 * octaves**2)
            if score > best_score + 1e-12:
                best, best_score = c, score
        return best

    def _smooth(self, bpm: float) -> float:
        cfg = self.cfg
        if self.bpm is None or len(self.history) < cfg.change_warmup:
            self._insist = 0
            return bpm
        ref = float(np.mean(list(self.history)[-3:]))
        if abs(bpm - ref) <= cfg.change_bpm:
            self._insist = 0
            return bpm
        ratio = bpm / ref
        if any(abs(ratio / r - 1.0) <= cfg.ratio_tol for r in (2.0, 0.5, 1.5, 2.0 / 3.0)):
            self._insist = 0
            return self.bpm
        self._insist += 1
        if self._insist >= cfg.change_patience:
            self._insist = 0
            return bpm
        return self.bpm

    def update(self, window: np.ndarray, frame: int) -> TempoEstimate:
        """One estimate from the OSS ``window`` (oldest first) ending at OSS ``frame``."""
        lag, _ = window_period(window, self.fr)
        if lag is None:
            return TempoEstimate(frame, None, None, self.bpm)
        self.n_updates += 1
        self.lags.append(lag)
        hist = self.histogram()
        peak = _parabolic(hist, int(np.argmax(hist)))
        if self.cfg.octave_correction:
            peak = self._octave(peak, window)
        hist_bpm = self.fr.lag_to_bpm(peak)
        self.bpm = self._smooth(hist_bpm)
        self.history.append(self.bpm)
        return TempoEstimate(frame, self.fr.lag_to_bpm(lag), hist_bpm, self.bpm)
