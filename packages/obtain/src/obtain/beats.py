"""Cumulative beat strength (CBSS) and the causal beat decision (AMPD peak test, phase check).

CBSS (Stark, Davies & Plumbley's real-time form of Ellis's recursion)::

    CBSS(n) = (1 - alpha) * OSS(n) + alpha * max_{v in [-2 tau, -tau/2]} W(v) * CBSS(n + v)
    W(v)    = exp(-(eta * ln(-v / tau))^2 / 2)

AMPD (Scholkmann et al. 2012) decides whether the newest CBSS sample is a peak: on the
detrended buffer followed by zero padding, scale ``k`` marks sample ``i`` a local maximum when
``x[i] > x[i-k]`` and ``x[i] > x[i+k]``; the scale ``lambda`` with the most maxima (the
smallest sum of the non-maximum entries of the scalogram) is chosen; the newest sample is a
peak if it is a maximum at every scale ``1..lambda``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=512)
def transition_window(tau: int, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``v`` in ``[-2 tau, -round(tau/2)]`` (oldest first) and their weights ``W(v)``."""
    v = np.arange(-2 * tau, -round(tau / 2) + 1)
    w = np.exp(-0.5 * (tightness * np.log(-v / tau)) ** 2)
    v.setflags(write=False)
    w.setflags(write=False)
    return v, w


def cbss_step(cbss: np.ndarray, n: int, oss: float, tau: int, alpha: float, eta: float) -> float:
    """CBSS value at index ``n`` of ``cbss`` (indices < n hold the past; ``tau`` >= 2)."""
    v, w = transition_window(tau, eta)
    start = n + int(v[0])
    if start < 0:  # the buffer does not reach back 2 tau yet
        keep = v >= -n
        v, w = v[keep], w[keep]
        if len(v) == 0:
            return (1 - alpha) * oss
        start = n + int(v[0])
    past = cbss[start : n + int(v[-1]) + 1]
    return (1 - alpha) * oss + alpha * float((w * past).max())


def detrend(x: np.ndarray) -> np.ndarray:
    """``x`` minus its least-squares line."""
    n = len(x)
    t = np.arange(n, dtype=float) - (n - 1) / 2
    slope = float(t @ x) / float(t @ t) if n > 1 else 0.0
    return x - x.mean() - slope * t


def ampd_newest_is_peak(
    x: np.ndarray, *, n_scales: int, pad: int, rng: np.random.Generator | None = None
) -> bool:
    """AMPD test of the last sample of ``x`` (already detrended), with ``pad`` zeros after it.

    With ``rng`` the non-maximum scalogram entries are ``1 + U(0, 1)`` (the published AMPD);
    without, they are 1, so ``lambda`` is the scale with the most local maxima.
    """
    xp = np.concatenate([x, np.zeros(pad)])
    n = len(xp)
    last = len(x) - 1
    n_scales = min(n_scales, (n - 1) // 2)
    if n_scales < 1:
        return False
    gamma = np.empty(n_scales)
    for k in range(1, n_scales + 1):
        mid = xp[k : n - k]
        is_max = np.zeros(n, dtype=bool)  # the k samples at either end are never maxima
        is_max[k : n - k] = (mid > xp[: n - 2 * k]) & (mid > xp[2 * k :])
        if rng is None:
            gamma[k - 1] = n - int(is_max.sum())
        else:
            gamma[k - 1] = float((1.0 + rng.random(n))[~is_max].sum())
    lam = int(np.argmin(gamma)) + 1
    ks = np.arange(1, lam + 1)
    left_ok = last - ks >= 0
    if not left_ok.all():
        return False
    return bool(np.all(xp[last] > xp[last - ks]) and np.all(xp[last] > xp[last + ks]))


def best_phase(x: np.ndarray, tau: int, max_periods: int | None = None) -> tuple[int, float]:
    """Phase ``phi`` in ``[0, tau)`` (frames before the newest sample) whose ``tau``-periodic
    pulse train has the largest mean over ``x`` (over its last ``max_periods`` periods), and
    that mean."""
    n = len(x)
    reps = n // tau
    if max_periods is not None:
        reps = min(reps, max_periods)
    if reps < 1:
        return 0, float("-inf")
    rev = x[::-1][: reps * tau].reshape(reps, tau)
    means = rev.mean(axis=0)
    phi = int(np.argmax(means))
    return phi, float(means[phi])
