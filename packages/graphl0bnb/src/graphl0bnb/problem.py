"""Input checks, preprocessing and objective evaluation shared by every solver."""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse as sp

from graphl0bnb import _kernels as K
from labcore.checks import finite_array
from labcore.errors import LabcoreError


class GraphL0BnBError(LabcoreError, ValueError):
    """Bad input to graphl0bnb (a ValueError too, as scikit-learn expects)."""


def check_data(X, *, min_samples: int = 2) -> np.ndarray:
    """Validate a data matrix: 2-D, finite, at least 2 samples and 2 variables, no constant column."""
    try:
        X = finite_array("X", X, ndim=2)
    except LabcoreError as exc:  # the same message, as graphl0bnb's own (ValueError) type
        raise GraphL0BnBError(str(exc)) from None
    n, p = X.shape
    if n < min_samples:
        raise GraphL0BnBError(f"X has {n} sample(s); at least {min_samples} are needed")
    if p < 2:
        raise GraphL0BnBError(f"X has {p} variable(s); a graph needs at least 2")
    sd = X.std(axis=0)
    const = np.flatnonzero(sd <= 1e-12 * np.maximum(1.0, np.abs(X).max(axis=0)))
    if const.size:
        raise GraphL0BnBError(
            f"X has constant column(s) {const[:10].tolist()}: their precision is undefined; "
            "drop them first"
        )
    return X


def covariance(X: np.ndarray, *, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """S = X̃ᵀX̃ with X̃ the centred (and by default unit-variance) data over √n; also the scales."""
    Xc = X - X.mean(axis=0)
    scale = Xc.std(axis=0) if standardize else np.ones(X.shape[1])
    Xc = Xc / scale
    S = (Xc.T @ Xc) / X.shape[0]
    S = np.ascontiguousarray((S + S.T) / 2.0)
    return S, scale


def check_penalties(l0: float, l2: float, M: float | None) -> None:
    for name, v in (("l0", l0), ("l2", l2)):
        if not (isinstance(v, numbers.Real) and math.isfinite(v) and v >= 0):
            raise GraphL0BnBError(f"{name} must be a finite number ≥ 0, got {v!r}")
    if M is not None and not (isinstance(M, numbers.Real) and 0 < M < math.inf):
        raise GraphL0BnBError(
            f"M must be finite and > 0 (or None to choose it from the data), got {M!r}"
        )


def start_point(S: np.ndarray, Theta0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Θ, V = ΘS) from a warm start, or from the diagonal solution θ_ii = 1/S_ii."""
    if Theta0 is None:
        Theta = np.diag(1.0 / np.diag(S))
    else:
        Theta = np.array(Theta0, dtype=np.float64, order="C", copy=True)
    V = np.ascontiguousarray(sp.csr_matrix(Theta) @ S)
    return Theta, V


def objective(S: np.ndarray, Theta: np.ndarray, l0: float, l2: float) -> float:
    """The l0-l2 pseudolikelihood objective of a symmetric Θ with a positive diagonal."""
    V = np.ascontiguousarray(sp.csr_matrix(Theta) @ S)
    state = np.zeros(Theta.shape, dtype=np.int8)
    return float(K.smooth_value(Theta, V) + K.l0_penalty(Theta, l0, l2, state))


def upper_pairs(Theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i < j) of the nonzero off-diagonal entries."""
    i, j = np.nonzero(np.triu(Theta, 1))
    return i.astype(np.int64), j.astype(np.int64)


def top_correlation_pairs(S: np.ndarray, per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs holding each row's ``per_row`` largest |S_ij| (a cheap initial active set)."""
    p = S.shape[0]
    k = min(per_row, p - 1)
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    A = np.abs(S).copy()
    np.fill_diagonal(A, -1.0)
    cols = np.argpartition(-A, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(p), k)
    cols = cols.ravel()
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    return merge_pairs(p, (lo, hi))


def merge_pairs(p: int, *pair_lists) -> tuple[np.ndarray, np.ndarray]:
    """Union of (I, J) lists of upper pairs, sorted row-major, without duplicates."""
    keys = [np.asarray(i, np.int64) * p + np.asarray(j, np.int64) for i, j in pair_lists]
    keys = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    return keys // p, keys % p
