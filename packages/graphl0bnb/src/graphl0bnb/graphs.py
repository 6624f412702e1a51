"""Synthetic sparse precision matrices and Gaussian samples from them.

Every generator builds a symmetric pattern B with the graph's edges and sets the diagonal so that
Θ = B + δI has condition number ``cond`` (the construction of the paper's experiments), then
rescales Θ so the implied covariance has unit maximal variance.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from graphl0bnb.problem import GraphL0BnBError

GRAPHS = ("banded", "random", "hub", "lattice")


def _finish(B: np.ndarray, cond: float) -> np.ndarray:
    if cond <= 1:
        raise GraphL0BnBError(f"cond must be > 1, got {cond}")
    ev = np.linalg.eigvalsh(B)
    delta = (ev[-1] - cond * ev[0]) / (cond - 1.0)
    Theta = B + delta * np.eye(B.shape[0])
    sigma_diag = np.diag(np.linalg.inv(Theta))
    return Theta * sigma_diag.max()


def banded(p: int, *, bandwidth: int = 2, rho: float = 0.5, cond: float = 10.0) -> np.ndarray:
    """Banded Toeplitz: θ_ij ∝ ρ^|i−j| for 0 < |i − j| ≤ bandwidth."""
    d = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    B = np.where((d > 0) & (d <= bandwidth), rho ** d.astype(float), 0.0)
    return _finish(B, cond)


def random_graph(
    p: int, *, degree: float = 4.0, value: float = 0.5, cond: float = 10.0, seed: int = 0
) -> np.ndarray:
    """Erdős–Rényi pattern with mean degree ``degree``; edges carry ±``value``."""
    rng = np.random.default_rng(seed)
    prob = min(1.0, degree / max(p - 1, 1))
    upper = np.triu(rng.random((p, p)) < prob, 1)
    signs = rng.choice([-1.0, 1.0], size=(p, p))
    B = np.where(upper, value * signs, 0.0)
    return _finish(B + B.T, cond)


def hub(p: int, *, hub_size: int = 20, value: float = 0.5, cond: float = 10.0) -> np.ndarray:
    """Disjoint stars: every ``hub_size`` consecutive nodes hang off their first node."""
    B = np.zeros((p, p))
    for start in range(0, p, hub_size):
        members = np.arange(start + 1, min(start + hub_size, p))
        B[start, members] = B[members, start] = value
    return _finish(B, cond)


def lattice(p: int, *, value: float = 0.5, cond: float = 10.0) -> np.ndarray:
    """Four-neighbour grid on a ⌈√p⌉-wide layout (nodes numbered row by row)."""
    w = int(np.ceil(np.sqrt(p)))
    B = np.zeros((p, p))
    idx = np.arange(p)
    right = idx[(idx % w != w - 1) & (idx + 1 < p)]
    down = idx[idx + w < p]
    B[right, right + 1] = B[right + 1, right] = value
    B[down, down + w] = B[down + w, down] = value
    return _finish(B, cond)


def make_precision(kind: str, p: int, *, seed: int = 0, **kwargs) -> np.ndarray:
    """One of :data:`GRAPHS` by name."""
    if kind == "banded":
        return banded(p, **kwargs)
    if kind == "random":
        return random_graph(p, seed=seed, **kwargs)
    if kind == "hub":
        return hub(p, **kwargs)
    if kind == "lattice":
        return lattice(p, **kwargs)
    raise GraphL0BnBError(f"unknown graph {kind!r}; choose one of {', '.join(GRAPHS)}")


def sample(precision: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """n draws from N(0, Θ⁻¹), via Θ = LLᵀ and X = Z L⁻ᵀ (no explicit inverse)."""
    L = np.linalg.cholesky(precision)
    Z = np.random.default_rng(seed).standard_normal((n, precision.shape[0]))
    return solve_triangular(L, Z.T, lower=True, trans="T").T
