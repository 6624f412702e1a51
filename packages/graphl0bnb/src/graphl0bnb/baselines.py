"""Baselines: graphical lasso, neighbourhood selection, CONCORD-l1, each at a target sparsity.

All three work on standardized data (as GraphL0BnB does by default) and return a symmetric
estimate whose off-diagonal pattern is the selected graph. ``*_matched`` helpers tune each
method's single l1 weight to reach a target edge count (the estimate whose count is closest), so
methods are compared at the same sparsity.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from graphl0bnb import _kernels as K
from graphl0bnb.problem import check_data, covariance, start_point, upper_pairs


@dataclass
class BaselineFit:
    precision: np.ndarray  # standardized scale
    n_edges: int
    alpha: float
    n_fits: int


def _edges(theta: np.ndarray) -> int:
    return int(np.count_nonzero(np.triu(theta, 1)))


def concord_l1(
    S: np.ndarray, lam: float, *, tol: float = 1e-7, max_sweeps: int = 200
) -> np.ndarray:
    """CONCORD (Khare, Oh and Rajaratnam, 2015) with an l1 penalty, by coordinate descent.

    Minimises −Σ log ω_ii + ½ Σ_i ω_iᵀ S ω_i + λ Σ_{i<j} |ω_ij| (closed-form coordinate steps).
    """
    Omega, V = start_point(S)
    lam = float(lam)
    for _ in range(max_sweeps):
        # Active set: sweep the current support to convergence, then one full sweep.
        rows, cols = upper_pairs(Omega)
        for _ in range(max_sweeps):
            if K.concord_l1_sweep(S, Omega, V, lam, rows, cols, False) < tol:
                break
        if K.concord_l1_sweep(S, Omega, V, lam, rows, cols, True) < tol:
            break
    return Omega


def _bisect(fit, target: int, lo: float, hi: float, *, max_fits: int = 14) -> BaselineFit:
    """Geometric bisection on an l1 weight (edges fall as it grows) towards ``target`` edges."""
    best = None
    n = 0
    for _ in range(max_fits):
        mid = math.sqrt(lo * hi)
        theta = fit(mid)
        n += 1
        e = _edges(theta)
        if best is None or abs(e - target) < abs(best.n_edges - target):
            best = BaselineFit(theta, e, mid, n)
        if e == target:
            break
        if e > target:
            lo = mid
        else:
            hi = mid
    best.n_fits = n
    return best


def concord_matched(S: np.ndarray, target: int, **kw) -> BaselineFit:
    off = np.abs(S - np.diag(np.diag(S)))
    # Below ~1% of the largest correlation every method is near-dense: no point searching there.
    return _bisect(lambda a: concord_l1(S, a), target, 1e-2 * off.max(), 2.0 * off.max(), **kw)


def graphical_lasso(S: np.ndarray, alpha: float, *, max_iter: int = 200) -> np.ndarray:
    """scikit-learn's graphical lasso on a covariance matrix; its precision estimate."""
    from sklearn.covariance import graphical_lasso as sk_glasso

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, prec = sk_glasso(S, alpha=alpha, max_iter=max_iter, tol=1e-4, mode="cd")
        except (FloatingPointError, ValueError):
            # The coordinate-descent solver fails on ill-conditioned systems for small alpha
            # (a known scikit-learn limitation); report a dense graph so bisection moves up.
            return np.ones_like(S)
    prec = np.where(np.abs(prec) > 1e-10, prec, 0.0)
    return (prec + prec.T) / 2.0


def glasso_matched(S: np.ndarray, target: int, **kw) -> BaselineFit:
    off = np.abs(S - np.diag(np.diag(S)))
    return _bisect(lambda a: graphical_lasso(S, a), target, 1e-2 * off.max(), off.max(), **kw)


def neighborhood_selection_path(
    X: np.ndarray, alphas: np.ndarray, *, rule: str = "or"
) -> list[np.ndarray]:
    """Meinshausen-Bühlmann: one Lasso path per variable on the others (scikit-learn).

    Returns, for each alpha, a symmetric 0/1-pattern matrix with the averaged regression
    coefficients on its support (``rule`` "or" keeps an edge found by either regression,
    "and" needs both).
    """
    from sklearn.linear_model import lasso_path

    X = check_data(X)
    Xs = (X - X.mean(0)) / X.std(0)
    _n, p = Xs.shape
    G = Xs.T @ Xs
    coefs = np.zeros((len(alphas), p, p))
    for i in range(p):
        others = np.r_[0:i, i + 1 : p]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, path, _ = lasso_path(
                Xs[:, others],
                Xs[:, i],
                alphas=alphas,
                precompute=np.ascontiguousarray(G[np.ix_(others, others)]),
                Xy=G[others, i],
            )
        coefs[:, i, others] = path.T
    out = []
    for k in range(len(alphas)):
        B = coefs[k]
        nz = np.abs(B) > 0
        keep = (nz | nz.T) if rule == "or" else (nz & nz.T)
        est = np.where(keep, -(B + B.T) / 2.0, 0.0)
        np.fill_diagonal(est, 1.0)
        out.append(est)
    return out


def neighborhood_matched(
    X: np.ndarray, target: int, *, n_alphas: int = 30, refine: int = 3
) -> BaselineFit:
    """Neighbourhood selection at the edge count nearest ``target``: a geometric grid of
    ``n_alphas`` penalties, then up to ``refine`` finer grids between the two neighbouring
    penalties whose counts bracket the target (the count jumps between grid points; one grid
    missed targets by up to 40%, issue 40). ``n_fits`` counts the grids (each is one Lasso path
    per variable)."""
    X = check_data(X)
    S, _ = covariance(X)
    off = np.abs(S - np.diag(np.diag(S)))
    alphas = np.geomspace(off.max(), off.max() * 1e-2, n_alphas)
    best: BaselineFit | None = None
    for grid in range(1 + refine):
        ests = neighborhood_selection_path(X, alphas)
        counts = np.array([_edges(e) for e in ests])
        k = int(np.argmin(np.abs(counts - target)))
        if best is None or abs(counts[k] - target) < abs(best.n_edges - target):
            best = BaselineFit(ests[k], int(counts[k]), float(alphas[k]), grid + 1)
        best.n_fits = grid + 1
        if best.n_edges == target:
            break
        # Counts grow as α falls: the last grid point below the target and the next one.
        below = np.flatnonzero(counts < target)
        above = np.flatnonzero(counts > target)
        if below.size == 0 or above.size == 0 or above[0] != below[-1] + 1:
            break
        alphas = np.geomspace(alphas[below[-1]], alphas[above[0]], n_alphas)
    return best
