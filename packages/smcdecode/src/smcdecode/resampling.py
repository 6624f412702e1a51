"""Resampling schemes for particle weights: systematic, multinomial, residual.

Each returns ancestor indices whose expected counts are ``N * w`` (unbiased), and the
effective sample size decides when to resample.
"""

from __future__ import annotations

import numpy as np

from labcore.errors import LabcoreError

SCHEMES = ("systematic", "multinomial", "residual")


def normalize_log_weights(logw: np.ndarray) -> np.ndarray:
    """Normalised weights from log weights (stable; ``-inf`` allowed, not all)."""
    logw = np.asarray(logw, dtype=float)
    if np.isnan(logw).any():
        raise LabcoreError("particle log-weights contain NaN")
    m = logw.max()
    if not np.isfinite(m):
        raise LabcoreError("every particle has zero weight (all log-weights are -inf)")
    w = np.exp(logw - m)
    return w / w.sum()


def ess(logw: np.ndarray) -> float:
    """Effective sample size ``1 / sum(w_i^2)`` of normalised weights."""
    w = normalize_log_weights(logw)
    return float(1.0 / np.sum(w**2))


def systematic(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    u = (rng.random() + np.arange(n)) / n
    cum = np.cumsum(w)
    cum[-1] = 1.0
    return np.searchsorted(cum, u, side="right").clip(max=len(w) - 1)


def multinomial(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(len(w), size=n, p=w)


def residual(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    counts = np.floor(n * w).astype(np.int64)
    idx = np.repeat(np.arange(len(w)), counts)
    rest = n - int(counts.sum())
    if rest > 0:
        r = n * w - counts
        idx = np.concatenate([idx, rng.choice(len(w), size=rest, p=r / r.sum())])
    return np.sort(idx)


def resample(logw: np.ndarray, scheme: str, rng: np.random.Generator, n: int | None = None):
    """Ancestor indices (length ``n``, default the particle count) drawn by ``scheme``."""
    if scheme not in SCHEMES:
        raise LabcoreError(f"unknown resampling scheme {scheme!r}; choose from {SCHEMES}")
    w = normalize_log_weights(logw)
    n = len(w) if n is None else n
    return {"systematic": systematic, "multinomial": multinomial, "residual": residual}[scheme](
        w, n, rng
    )
