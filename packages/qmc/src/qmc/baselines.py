"""Baselines run side by side with QMC-BIF in the benchmark.

- :func:`prox_grad_mle`: the same convex problem (trace-norm penalized ordinal likelihood)
  solved by accelerated proximal gradient with singular value thresholding, the solver family
  of 1-bit matrix completion (Davenport et al. 2014) and trace-norm ML (Klopp et al.). It
  gives the time ratio at equal objective.
- :func:`soft_impute_levels`: Soft-Impute (Mazumder, Hastie, Tibshirani 2010) on the raw levels
  as real numbers, the usual naive approach.
- :func:`als_squared`: a rank-r factorization with squared loss and ridge penalty by
  alternating least squares (the matrix-factorization recommender baseline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from labcore.checks import finite_float, positive_int
from labcore.lowrank import soft_impute, svt
from qmc.alm import ObservedLevels
from qmc.likelihood import OrdinalLikelihood


@dataclass(frozen=True)
class BaselineFit:
    """A completed latent matrix and how it was obtained."""

    Z: np.ndarray
    n_iter: int
    converged: bool
    objective: float
    time_s: float
    objective_history: np.ndarray | None = None
    time_history: np.ndarray | None = None
    params: dict | None = None  # hyperparameters chosen by validation, if any


def prox_grad_mle(
    data: ObservedLevels,
    model: OrdinalLikelihood,
    lam: float,
    *,
    rank: int,
    max_iter: int = 1000,
    tol: float = 1e-7,
    init: np.ndarray | None = None,
    random_state=0,
) -> BaselineFit:
    """min f_Ω(Z) + λ‖Z‖_* by FISTA with adaptive restart (O'Donoghue and Candès 2015).

    The step is 1/sup f'' (f_Ω's gradient is Lipschitz with that constant); each step is a
    singular value thresholding of a dense m×n matrix, capped at ``rank`` values. Stops when
    the relative objective change stays below ``tol`` for 5 iterations in a row."""
    lam = finite_float("lam", lam, minimum=0.0, strict=True)
    rank = positive_int("rank", rank)
    t0 = time.perf_counter()
    step = 1.0 / model.curvature_bound
    rows, cols, levels = data.rows, data.cols, data.levels
    Z = np.zeros(data.shape) if init is None else np.array(init, dtype=np.float64)
    W = Z.copy()
    momentum = 1.0
    previous = np.inf
    history, times = [], []
    quiet = 0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        _, g, _ = model.nll_derivatives(W[rows, cols], levels, value=False)
        A = W.copy()
        A[rows, cols] -= step * g
        Z_new, shrunk = svt(A, step * lam, rank=rank, random_state=random_state)
        nuclear = float(shrunk.sum())
        value = model.nll(Z_new[rows, cols], levels) + lam * nuclear
        if value > previous:  # restart the momentum when the objective rises
            momentum = 1.0
        next_momentum = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
        W = Z_new + ((momentum - 1.0) / next_momentum) * (Z_new - Z)
        momentum = next_momentum
        Z = Z_new
        history.append(value)
        times.append(time.perf_counter() - t0)
        change = abs(previous - value) / max(abs(value), 1e-300)
        previous = value
        quiet = quiet + 1 if change < tol else 0
        if quiet >= 5:
            converged = True
            break
    return BaselineFit(
        Z=Z,
        n_iter=it,
        converged=converged,
        objective=history[-1],
        time_s=time.perf_counter() - t0,
        objective_history=np.asarray(history),
        time_history=np.asarray(times),
    )


def soft_impute_levels(
    data: ObservedLevels,
    lam: float,
    *,
    rank: int,
    values: np.ndarray | None = None,
    init: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 1e-5,
    random_state=0,
) -> BaselineFit:
    """Soft-Impute on the level values (``values[level − 1]``, default the level itself),
    centred at their mean first (and the mean added back), as is usual: otherwise the
    nuclear norm shrinks every missing entry toward 0."""
    t0 = time.perf_counter()
    y = data.levels.astype(np.float64) if values is None else values[data.levels - 1]
    mean = float(y.mean())
    Y = np.zeros(data.shape)
    Y[data.rows, data.cols] = y - mean
    mask = np.zeros(data.shape, dtype=bool)
    mask[data.rows, data.cols] = True
    res = soft_impute(
        Y,
        mask,
        lam=lam,
        rank=rank,
        max_iter=max_iter,
        tol=tol,
        init=None if init is None else init - mean,
        random_state=random_state,
    )
    return BaselineFit(
        Z=res.Z + mean,
        n_iter=res.n_iter,
        converged=res.converged,
        objective=res.objective,
        time_s=time.perf_counter() - t0,
    )


def _ridge_rows(
    target_rows: np.ndarray,
    other_idx: np.ndarray,
    y: np.ndarray,
    other: np.ndarray,
    n_rows: int,
    lam: float,
) -> np.ndarray:
    """For each row i, argmin_u Σ_{j∈Ω_i} (y_ij − u·w_j)² + λ‖u‖²: batched r×r solves from
    per-row Gram matrices summed with reduceat (no loop over rows)."""
    r = other.shape[1]
    order = np.argsort(target_rows, kind="stable")
    rows_sorted = target_rows[order]
    W = other[other_idx[order]]
    starts = np.flatnonzero(np.r_[True, rows_sorted[1:] != rows_sorted[:-1]])
    present = rows_sorted[starts]
    gram = np.add.reduceat(W[:, :, None] * W[:, None, :], starts, axis=0)
    rhs = np.add.reduceat(W * y[order][:, None], starts, axis=0)
    out = np.zeros((n_rows, r))
    out[present] = np.linalg.solve(gram + lam * np.eye(r), rhs[..., None])[..., 0]
    return out


def als_squared(
    data: ObservedLevels,
    lam: float,
    *,
    rank: int,
    values: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    random_state=0,
) -> BaselineFit:
    """min_{U,V} Σ_Ω (y_ij − u_i·v_j)² + λ(‖U‖² + ‖V‖²) by alternating ridge regressions,
    with the global mean removed first and added back (rows or columns without observations
    predict the mean)."""
    lam = finite_float("lam", lam, minimum=0.0, strict=True)
    rank = positive_int("rank", rank)
    t0 = time.perf_counter()
    y = data.levels.astype(np.float64) if values is None else values[data.levels - 1]
    mean = float(y.mean())
    yc = y - mean
    m, n = data.shape
    rng = np.random.default_rng(random_state)
    U = 0.1 * rng.standard_normal((m, rank))
    V = 0.1 * rng.standard_normal((n, rank))
    previous = np.inf
    converged = False
    it = 0
    value = np.inf
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        U = _ridge_rows(data.rows, data.cols, yc, V, m, lam)
        V = _ridge_rows(data.cols, data.rows, yc, U, n, lam)
        fit = np.einsum("ij,ij->i", U[data.rows], V[data.cols])
        value = float(((yc - fit) ** 2).sum() + lam * ((U**2).sum() + (V**2).sum()))
        if abs(previous - value) <= tol * max(value, 1e-300):
            converged = True
            break
        previous = value
    return BaselineFit(
        Z=mean + U @ V.T,
        n_iter=it,
        converged=converged,
        objective=value,
        time_s=time.perf_counter() - t0,
    )
