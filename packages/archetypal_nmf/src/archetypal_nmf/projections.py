"""Projections and step-size helpers shared by the solvers.

Notation (the paper's): X is m × n (m points, n features); H (k × n) holds the archetypes;
W (m × k) and W̃ (k × m) are row-stochastic.
"""

from __future__ import annotations

import numpy as np

from labcore.checks import positive_int


def project_rows_to_simplex(V: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``V`` onto the probability simplex
    {w ≥ 0, Σ w = 1}, vectorized over rows (the sort-based algorithm of Held, Wolfe and
    Crowder; Duchi et al. 2008).

    >>> project_rows_to_simplex(np.array([[0.5, 0.5], [2.0, 0.0], [-1.0, -1.0]])).tolist()
    [[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]]
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim == 1:
        return project_rows_to_simplex(V[None, :])[0]
    m, k = V.shape
    U = -np.sort(-V, axis=1)  # descending
    css = np.cumsum(U, axis=1) - 1.0
    idx = np.arange(1, k + 1)
    cond = U - css / idx > 0
    # ρ = the last index where the condition holds (it holds at index 1 always).
    rho = k - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = css[np.arange(m), rho] / (rho + 1)
    return np.maximum(V - theta[:, None], 0.0)


def hard_threshold_nonnegative(V: np.ndarray, n_nonzero: int) -> np.ndarray:
    """max(V, 0) with all but its ``n_nonzero`` largest entries set to zero (a total budget
    over the whole matrix; ties broken by position, so the result is deterministic).

    >>> hard_threshold_nonnegative(np.array([[3.0, -1.0], [1.0, 2.0]]), 2).tolist()
    [[3.0, 0.0], [0.0, 2.0]]
    """
    n_nonzero = positive_int("n_nonzero", n_nonzero, minimum=0)
    P = np.maximum(np.asarray(V, dtype=np.float64), 0.0)
    flat = P.ravel()
    if n_nonzero >= np.count_nonzero(flat):
        return P
    out = np.zeros_like(flat)
    if n_nonzero > 0:
        keep = np.argsort(-flat, kind="stable")[:n_nonzero]
        out[keep] = flat[keep]
    return out.reshape(P.shape)
