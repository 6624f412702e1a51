"""Argument checks for the packages: one clear error (LabcoreError) per bad value.

>>> positive_int("k", 3)
3
>>> finite_float("rho", 0.5, minimum=0.0)
0.5
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labcore.errors import LabcoreError


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise LabcoreError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def finite_float(name: str, value: Any, *, minimum: float | None = None, strict: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise LabcoreError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise LabcoreError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise LabcoreError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise LabcoreError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def finite_array(name: str, value: Any, *, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != ndim:
        raise LabcoreError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise LabcoreError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise LabcoreError(f"{name} contains NaN or infinite values")
    return arr
