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
        raise LabcoreError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise LabcoreError(f"{name} contains NaN or infinite values")
    return arr


def boolean_mask(
    mask: Any, shape: tuple[int, ...], *, name: str = "mask", of: str = "Y"
) -> np.ndarray:
    """A boolean mask of the given shape; a 0/1 integer array is converted."""
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise LabcoreError(
            f"{name} must have the same shape as {of} {tuple(shape)}, got {arr.shape}"
        )
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer):
            raise LabcoreError(
                f"{name} must be a boolean array (or integers 0/1), got dtype {arr.dtype}"
            )
        if not np.isin(arr, (0, 1)).all():
            raise LabcoreError(f"{name} is an integer array with values other than 0 and 1")
        arr = arr.astype(bool)
    return arr


def observed_matrix(
    values: Any, mask: Any, *, name: str = "Y", mask_name: str = "mask"
) -> tuple[np.ndarray, np.ndarray]:
    """``(P_Ω(values), mask)`` for a partly observed matrix: a numeric 2-D array (anything,
    NaN included, outside the mask), a boolean mask of its shape selecting at least one entry,
    and finite values at the selected entries. Unobserved entries are returned as 0."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 2:
        raise LabcoreError(f"{name} must be 2-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise LabcoreError(f"{name} is empty (shape {arr.shape})")
    m = boolean_mask(mask, arr.shape, name=mask_name, of=name)
    if not m.any():
        raise LabcoreError(f"{name}: all entries are missing ({mask_name} selects no entries)")
    bad = int(np.count_nonzero(~np.isfinite(arr[m])))
    if bad:
        raise LabcoreError(f"{name} has {bad} NaN or infinite value(s) at observed entries")
    return np.where(m, arr, 0.0), m
