"""Input checks shared by the bpseg modules (each raises LabcoreError naming the problem)."""

from __future__ import annotations

import operator

import numpy as np

from labcore.errors import LabcoreError


def check_int(value: object, name: str, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``; bools are refused (``k=True`` is a bug)."""
    if isinstance(value, bool):
        raise LabcoreError(f"{name} must be an integer, got {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise LabcoreError(f"{name} must be an integer, got {type(value).__name__}") from None
    if out < minimum:
        raise LabcoreError(f"{name} must be >= {minimum}, got {out}")
    return out


def check_embeddings(embeddings: object) -> np.ndarray:
    """A finite float (n, d) array with n, d >= 1."""
    try:
        x = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"embeddings must be a numeric (n, d) array: {exc}") from None
    if x.ndim != 2:
        raise LabcoreError(f"embeddings must be a 2-D (n, d) array, got shape {x.shape}")
    if x.shape[0] < 1:
        raise LabcoreError("embeddings must have at least one row (sentence), got 0")
    if x.shape[1] < 1:
        raise LabcoreError(f"embeddings must have at least one column, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
        raise LabcoreError(f"embeddings contain NaN or infinite values (in {bad} rows)")
    return x
