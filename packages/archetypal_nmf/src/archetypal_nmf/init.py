"""Starting points for the sparse archetypal NMF solvers.

Notation (the paper's, Behdin & Mazumder): X is m × n (m points, n features, X ≥ 0); H
(k × n, ≥ 0, at most ℓ nonzeros in total) holds the archetypes; W (m × k) and W̃ (``Wt``,
k × m) are row-stochastic. The objective is Ψ = ‖X − WH‖² + λ‖H − W̃X‖².

Methods (:func:`initialize`):

``"spa"``
    The successive projection algorithm picks k points that are vertices of the data's
    convex hull; H is those points hard-thresholded to ℓ nonzeros. Cheap (O(kmn)); the
    default, and the alternative to ``"mip"`` for large inputs.
``"furthest"``
    Furthest-point sampling: the same construction with another vertex heuristic.
``"random"``
    Random convex combinations of a few data points (Dirichlet weights, seeded).
``"mip"``
    The outer-approximation MILP of the authors' ``InitializeMIP.jl`` (reconstructed; see
    :func:`outer_approximation`): it chooses the support of H (binary Z, ΣZ ≤ ℓ) to minimize
    the archetypal term F(Z) = min ‖H − W̃X‖² over W̃ row-stochastic and 0 ≤ H ≤ M·Z, with
    HiGHS solving the master problem.

Every method returns an :class:`InitResult` whose W is the projection of the data onto the
convex hull of the archetypes (:func:`convex_hull_projection`), so the first block
coordinate descent step starts from the best W for the chosen H.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archetypal_nmf.projections import hard_threshold_nonnegative, project_rows_to_simplex
from labcore.checks import choice, finite_array, finite_float, positive_int
from labcore.errors import LabcoreError
from labcore.highs import HIGHS_LOCK, silent_highs
from labcore.lowrank import spectral_norm_squared

METHODS = ("spa", "furthest", "random", "mip")

# Every HiGHS instance made here lives (creation, runs, destruction) inside labcore's one
# process-wide HIGHS_LOCK, shared with every other package that uses HiGHS.

_TINY = np.finfo(np.float64).tiny
# Above this size σ_max² comes from power iteration instead of an exact k × k (or m × m)
# eigenvalue problem.
_EXACT_LIPSCHITZ_MAX = 600
# Power iteration estimates σ_max² from below; a step 1/L with L a little too small can
# diverge, so the estimate gets this margin.
_POWER_MARGIN = 1.05


@dataclass
class InitResult:
    """A starting point (W, H, W̃) and what the initialization reported.

    Attributes
    ----------
    W : ndarray, shape (m, k)
        Rows on the simplex: each point as a convex combination of the archetypes.
    H : ndarray, shape (k, n)
        The archetypes: nonnegative, at most ``n_nonzero`` nonzeros in total.
    Wt : ndarray, shape (k, m)
        The paper's W̃, rows on the simplex: each archetype's anchor in conv(X).
    info : dict
        The method and its diagnostics (the MILP's bounds, gap and status for ``"mip"``).
    """

    W: np.ndarray
    H: np.ndarray
    Wt: np.ndarray
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Small numerical helpers


def _sigma_max_squared(A: np.ndarray) -> float:
    """σ_max(A)², exactly from the smaller Gram matrix when that is small, else by power
    iteration with a safety margin (the step sizes 1/L must not overshoot)."""
    r, c = A.shape
    if min(r, c) <= _EXACT_LIPSCHITZ_MAX:
        gram = A @ A.T if r <= c else A.T @ A
        return float(max(np.linalg.eigvalsh(gram)[-1], 0.0))
    value, _ = spectral_norm_squared(A, iters=100)
    return _POWER_MARGIN * value


def _momentum(t: float) -> tuple[float, float]:
    """The next FISTA parameter and the extrapolation weight (t − 1)/t_next."""
    t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
    return t_next, (t - 1.0) / t_next


def _check_nonnegative(X: Any, name: str = "X") -> np.ndarray:
    X = finite_array(name, X, ndim=2)
    if (X < 0).any():
        raise LabcoreError(
            f"{name} has negative entries (min {X.min():.4g}); archetypal NMF needs {name} >= 0"
        )
    return X


def _check_k(k: Any, m: int) -> int:
    k = positive_int("k", k)
    if k > m:
        raise LabcoreError(
            f"k={k} is larger than the number of points ({m}): archetypes are combinations of "
            "points, so k must be at most m"
        )
    return k


# ---------------------------------------------------------------------------------------
# W given H


def _stochastic_start(start: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """A row-stochastic starting matrix: uniform rows, or ``start`` projected row-wise."""
    if start is None:
        return np.full(shape, 1.0 / shape[1])
    start = finite_array(name, start, ndim=2)
    if start.shape != shape:
        raise LabcoreError(f"{name} must have shape {shape}, got {start.shape}")
    return project_rows_to_simplex(start)


def convex_hull_projection(
    X: Any, H: Any, *, max_iter: int = 500, tol: float = 1e-9, W0: Any = None
) -> np.ndarray:
    """Project each point onto the convex hull of the archetypes.

    Solves, for every row x_i of X, min over w in the simplex of ‖x_i − wᵀH‖², all rows at
    once by FISTA (accelerated projected gradient with adaptive restart):
    W ← proj_simplex_rows(V − (VH − X)Hᵀ / L), L = σ_max(H)².

    Parameters
    ----------
    X : array_like, shape (m, n)
        The points.
    H : array_like, shape (k, n)
        The archetypes.
    max_iter : int, default 500
        Iteration cap.
    tol : float, default 1e-9
        Stop when ‖W_new − W‖_F ≤ tol · max(1, ‖W‖_F).
    W0 : array_like, shape (m, k), optional
        Warm start (projected to the simplex first); uniform weights by default.

    Returns
    -------
    W : ndarray, shape (m, k)
        Rows on the simplex.

    Notes
    -----
    The gradient is formed from the precomputed HHᵀ (k × k) and XHᵀ (m × k), so an
    iteration costs O(mk²) rather than O(mkn). When H has full row rank the problem is
    strongly convex and the restarted iteration converges linearly; the answer is then
    unique.

    >>> H = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> np.round(convex_hull_projection(np.array([[0.25, 0.5]]), H), 6).tolist()
    [[0.25, 0.25, 0.5]]
    """
    X = finite_array("X", X, ndim=2)
    H = finite_array("H", H, ndim=2)
    if X.shape[1] != H.shape[1]:
        raise LabcoreError(f"X has {X.shape[1]} features but H has {H.shape[1]}: they must match")
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    m, k = X.shape[0], H.shape[0]
    W = _stochastic_start(W0, (m, k), "W0")
    if k == 1:
        return np.ones((m, 1))
    HHt = H @ H.T
    XHt = X @ H.T
    L = float(max(np.linalg.eigvalsh(HHt)[-1], 0.0))
    if L <= 0.0:
        # H = 0: every W is optimal.
        return W
    V, t = W, 1.0
    for _ in range(max_iter):
        W_new = project_rows_to_simplex(V - (V @ HHt - XHt) / L)
        step = W_new - W
        # Adaptive restart (O'Donoghue & Candès): drop the momentum when it points uphill,
        # which restores linear convergence on strongly convex problems.
        if np.vdot(V - W_new, step) > 0.0:
            V, t = W_new, 1.0
        else:
            t, beta = _momentum(t)
            V = W_new + beta * step
        change = float(np.linalg.norm(step))
        W = W_new
        if change <= tol * max(1.0, float(np.linalg.norm(W))):
            break
    return W


# ---------------------------------------------------------------------------------------
# Vertex heuristics


def spa_archetypes(X: Any, k: int) -> np.ndarray:
    """The successive projection algorithm (Gillis & Vavasis 2014).

    Repeatedly picks the row of the residual with the largest Euclidean norm and projects
    every row onto the orthogonal complement of the picked one. For separable data (the k
    archetypes are rows of X, every other row a convex combination of them, the archetypes
    linearly independent) it returns exactly the archetypes' rows: a strictly convex
    function (the norm) is maximized over a polytope at a vertex.

    Parameters
    ----------
    X : array_like, shape (m, n)
        The points (rows).
    k : int
        How many rows to pick, at most m.

    Returns
    -------
    indices : ndarray of int, shape (k,)
        Distinct row indices, in the order they were picked.

    Notes
    -----
    When the residual vanishes before k rows are picked (rank(X) < k) the remaining rows
    are chosen by furthest-point sampling in the original space, so the indices are always
    distinct.

    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    >>> sorted(spa_archetypes(X, 2).tolist())
    [0, 1]
    """
    X = finite_array("X", X, ndim=2)
    m = X.shape[0]
    k = _check_k(k, m)
    R = X.copy()
    norms = np.einsum("ij,ij->i", R, R)
    scale = float(norms.max())
    chosen: list[int] = []
    available = np.ones(m, dtype=bool)
    for _ in range(k):
        candidates = np.where(available, norms, -np.inf)
        j = int(np.argmax(candidates))
        if not candidates[j] > 1e-24 * max(scale, _TINY):
            break
        chosen.append(j)
        available[j] = False
        u = R[j] / np.sqrt(norms[j])
        R -= np.outer(R @ u, u)
        # A second pass keeps the residual orthogonal despite rounding (Gram–Schmidt twice).
        R -= np.outer(R @ u, u)
        norms = np.einsum("ij,ij->i", R, R)
    if len(chosen) < k:
        chosen = _furthest_fill(X, chosen, k, np.random.default_rng(0))
    return np.asarray(chosen, dtype=np.int64)


def _furthest_fill(X: np.ndarray, chosen: list[int], k: int, rng: np.random.Generator) -> list[int]:
    """Extend ``chosen`` to k distinct rows by furthest-point sampling; ties (within a
    relative 1e-12) are broken at random with ``rng``."""
    chosen = list(chosen)
    m = X.shape[0]
    if not chosen:
        d = np.einsum("ij,ij->i", X - X.mean(0), X - X.mean(0))
        chosen.append(_pick_max(d, rng))
    # Squared distance from every point to the nearest chosen one.
    diff = X - X[chosen[0]]
    dmin = np.einsum("ij,ij->i", diff, diff)
    for j in chosen[1:]:
        diff = X - X[j]
        dmin = np.minimum(dmin, np.einsum("ij,ij->i", diff, diff))
    while len(chosen) < min(k, m):
        d = dmin.copy()
        d[chosen] = -np.inf
        j = _pick_max(d, rng)
        chosen.append(j)
        diff = X - X[j]
        dmin = np.minimum(dmin, np.einsum("ij,ij->i", diff, diff))
    return chosen


def _pick_max(d: np.ndarray, rng: np.random.Generator) -> int:
    top = float(d.max())
    ties = np.flatnonzero(d >= top - 1e-12 * abs(top))
    return int(ties[0] if ties.size == 1 else rng.choice(ties))


def furthest_point_archetypes(X: Any, k: int, seed: int = 0) -> np.ndarray:
    """Furthest-point sampling: start from the point furthest from the mean, then add, k − 1
    times, the point whose distance to the nearest chosen point is largest.

    Parameters
    ----------
    X : array_like, shape (m, n)
        The points (rows).
    k : int
        How many rows to pick, at most m.
    seed : int, default 0
        Breaks exact ties (duplicate points, symmetric data) at random; otherwise the
        result does not depend on it.

    Returns
    -------
    indices : ndarray of int, shape (k,)
        Distinct row indices, in the order they were picked.

    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.4, 0.4]])
    >>> furthest_point_archetypes(X, 3).tolist()
    [2, 1, 0]
    """
    X = finite_array("X", X, ndim=2)
    k = _check_k(k, X.shape[0])
    rng = np.random.default_rng(seed)
    return np.asarray(_furthest_fill(X, [], k, rng), dtype=np.int64)


# ---------------------------------------------------------------------------------------
# The archetypal term for a fixed support (the MILP's inner problem)


@dataclass
class SupportFit:
    """F(Z) = min ‖H − W̃X‖² over W̃ row-stochastic and 0 ≤ H ≤ M·Z, as solved inexactly.

    Attributes
    ----------
    value : float
        ‖H − W̃X‖² at the returned (W̃, H): an upper bound on F(Z), attained.
    Wt : ndarray, shape (k, m)
        Row-stochastic.
    H : ndarray, shape (k, n)
        clip(W̃X, 0, M·Z): the exact H-step for this W̃, so H ≤ M·Z and supp(H) ⊆ supp(Z).
    multiplier : ndarray, shape (k, n)
        μ = max(2(W̃X − H), 0), the multiplier of H ≤ M·Z; ∂F/∂Z ≈ −M·μ.
    fw_gap : float
        The Frank–Wolfe duality gap at W̃: F(Z) ≥ value − fw_gap (a certificate).
    iterations : int
        Inner iterations used.
    """

    value: float
    Wt: np.ndarray
    H: np.ndarray
    multiplier: np.ndarray
    fw_gap: float
    iterations: int


def _fw_gap(G: np.ndarray, Wt: np.ndarray) -> float:
    """max over S row-stochastic of ⟨G, W̃ − S⟩: the minimum over a product of simplices is
    at a vertex per row, the smallest gradient entry."""
    return float(max(np.vdot(G, Wt) - G.min(axis=1).sum(), 0.0))


def _fit_support(
    X: np.ndarray,
    upper: np.ndarray,
    Wt0: np.ndarray,
    L: float,
    iters: int,
    tol: float,
) -> SupportFit:
    """FISTA on W̃ ↦ Σ dist²((W̃X)_ij, [0, U_ij]) with U = M·Z.

    Eliminating H (its exact step is the clip) leaves a smooth convex function of W̃ with
    gradient 2(W̃X − clip(W̃X, 0, U))Xᵀ, Lipschitz with constant 2σ_max(X)²: the alternating
    "H ← clip, W̃ ← gradient step" scheme, accelerated.
    """
    Wt = Wt0
    V, t = Wt, 1.0
    used = 0
    for it in range(1, iters + 1):
        used = it
        P = V @ X
        G = 2.0 * (P - np.clip(P, 0.0, upper)) @ X.T
        Wt_new = project_rows_to_simplex(V - G / L)
        step = Wt_new - Wt
        if np.vdot(V - Wt_new, step) > 0.0:
            V, t = Wt_new, 1.0
        else:
            t, beta = _momentum(t)
            V = Wt_new + beta * step
        Wt = Wt_new
        if it % 10 == 0 and tol > 0.0:
            P = Wt @ X
            R = P - np.clip(P, 0.0, upper)
            value = float(np.vdot(R, R))
            if _fw_gap(2.0 * R @ X.T, Wt) <= tol * value or value <= _TINY:
                break
    P = Wt @ X
    H = np.clip(P, 0.0, upper)
    R = P - H
    value = float(np.vdot(R, R))
    gap = _fw_gap(2.0 * R @ X.T, Wt)
    # P ≥ 0 (X ≥ 0, W̃ ≥ 0), so R > 0 exactly where the bound H ≤ M·Z is active.
    return SupportFit(value, Wt, H, 2.0 * np.maximum(R, 0.0), gap, used)


def support_objective(
    X: Any,
    Z: Any,
    *,
    big_m: float | np.ndarray | None = None,
    inner_iters: int = 200,
    inner_tol: float = 1e-7,
    Wt0: Any = None,
) -> SupportFit:
    """The archetypal term for a fixed support: F(Z) = min ‖H − W̃X‖² over W̃ row-stochastic
    and 0 ≤ H ≤ M·Z (the inner problem of the MILP initialization).

    Parameters
    ----------
    X : array_like, shape (m, n)
        Nonnegative data.
    Z : array_like of bool or {0, 1}, shape (k, n)
        The support allowed for H.
    big_m : float, optional
        M; ``max(X)`` by default (then the bound never binds inside the support: every
        entry of W̃X is at most max(X)).
    inner_iters : int, default 200
        FISTA iterations on W̃ at most.
    inner_tol : float, default 1e-7
        Stop early when the Frank–Wolfe gap is below ``inner_tol`` times the value.
    Wt0 : array_like, shape (k, m), optional
        Warm start for W̃ (projected to the simplex); uniform rows by default.

    Returns
    -------
    SupportFit
    """
    X = _check_nonnegative(X)
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] != X.shape[1]:
        raise LabcoreError(f"Z must have shape (k, {X.shape[1]}), got {Z.shape}")
    if not np.isin(Z, (0, 1)).all():
        raise LabcoreError("Z must be binary (0/1 or boolean)")
    M = _check_big_m(big_m, X)
    k, m = Z.shape[0], X.shape[0]
    Wt = _stochastic_start(Wt0, (k, m), "Wt0")
    L = max(2.0 * _sigma_max_squared(X), _TINY)
    return _fit_support(
        X,
        M * Z.astype(np.float64),
        Wt,
        L,
        positive_int("inner_iters", inner_iters),
        finite_float("inner_tol", inner_tol, minimum=0.0),
    )


def _check_big_m(big_m: Any, X: np.ndarray) -> np.ndarray:
    """M as a per-column vector: the default, a number, or one value per feature."""
    if big_m is None:
        return _default_big_m(X)
    if np.ndim(big_m) == 0:
        return np.full(X.shape[1], finite_float("big_m", big_m, minimum=0.0))
    M = finite_array("big_m", big_m, ndim=1)
    if M.shape != (X.shape[1],) or (M < 0).any():
        raise LabcoreError(f"big_m must be a number or {X.shape[1]} nonnegative values")
    return M


def _default_big_m(X: np.ndarray) -> np.ndarray:
    """M_j = max_i X_ij, per feature column: an archetype row W̃X is a convex combination
    of data rows, so (W̃X)_ij ≤ M_j and the bound H ≤ M·Z never cuts off an optimal H, while
    the cuts are tighter than with one M = max(X) (the cut's slope is −M·multiplier)."""
    return X.max(axis=0)


# ---------------------------------------------------------------------------------------
# The outer-approximation MILP


class _Master:
    """min η s.t. ΣZ ≤ ℓ, η ≥ a_t − ⟨c_t, Z⟩ for every cut t, Z binary, η ≥ 0.

    The variables are made once (column 0 is η, columns 1.. are Z row-major); each cut is
    one added row and HiGHS keeps the model between solves. η is measured in units of
    ``scale`` (the first F value) so that the master's tolerances are relative.
    """

    def __init__(self, k: int, n: int, ell: int, scale: float, mip_rel_gap: float):
        import highspy

        self.highspy = highspy
        self.size = k * n
        self.scale = scale
        self.inf = highspy.kHighsInf
        h = silent_highs()
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        lower = np.zeros(self.size + 1)
        upper = np.ones(self.size + 1)
        upper[0] = self.inf
        h.addVars(self.size + 1, lower, upper)
        h.changeColCost(0, 1.0)
        cols = np.arange(1, self.size + 1, dtype=np.int32)
        h.changeColsIntegrality(
            self.size, cols, np.full(self.size, int(highspy.HighsVarType.kInteger), np.uint8)
        )
        h.addRow(-self.inf, float(ell), self.size, cols, np.ones(self.size))
        self.h = h

    def add_cut(self, intercept: float, coef: np.ndarray) -> None:
        """η ≥ intercept − ⟨coef, Z⟩ (unscaled), coef ≥ 0 flattened row-major."""
        coef = coef / self.scale
        rhs = intercept / self.scale
        # Tiny coefficients would be zeroed by HiGHS, which tightens the row (η + ΣcZ ≥ b
        # with a c dropped is a stronger constraint). Dropping them ourselves and lowering
        # b by their sum (Z ≤ 1) keeps the cut valid.
        top = float(coef.max()) if coef.size else 0.0
        keep = coef > 1e-9 * top if top > 0 else np.zeros(coef.shape, bool)
        rhs -= float(coef[~keep].sum())
        idx = np.flatnonzero(keep)
        self.h.addRow(
            rhs,
            self.inf,
            idx.size + 1,
            np.concatenate([[0], idx + 1]).astype(np.int32),
            np.concatenate([[1.0], coef[idx]]),
        )

    def solve(self, time_limit: float) -> tuple[float | None, np.ndarray | None, str]:
        """(lower bound, Z or None, HiGHS status) with the lower bound unscaled."""
        h = self.h
        h.setOptionValue("time_limit", max(float(time_limit), 0.01))
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        info = h.getInfo()
        bound = float(info.mip_dual_bound)
        bound = bound * self.scale if np.isfinite(bound) else None
        Z = None
        if info.primal_solution_status == 2:  # kSolutionStatusFeasible
            Z = np.asarray(h.getSolution().col_value)[1:] > 0.5
        return bound, Z, status

    def close(self) -> None:
        del self.h


def outer_approximation(
    X: Any,
    k: int,
    n_nonzero: int,
    *,
    big_m: float | np.ndarray | None = None,
    gap: float = 0.05,
    max_cuts: int = 10,
    time_limit: float = 60.0,
    inner_iters: int = 200,
    inner_tol: float = 1e-7,
    mip_rel_gap: float = 1e-6,
    start: Any = None,
) -> InitResult:
    """The MILP initialization: choose the support of H by outer approximation.

    With binary Z ∈ {0,1}^{k×n}, ΣZ ≤ ℓ, let F(Z) = min ‖H − W̃X‖² over W̃ row-stochastic
    and 0 ≤ H ≤ M·Z (the archetypal term only; :func:`support_objective`). F is convex in
    the relaxed Z ∈ [0,1]^{k×n}: it is the partial minimum of a jointly convex problem over
    a set that is linear in Z. Hence each evaluation gives a cut
    η ≥ F(Z_t) + ⟨g_t, Z − Z_t⟩ with g_t = −M·μ_t, μ_t the multiplier of H ≤ M·Z, and the
    master MILP min η over the cuts (solved by HiGHS) gives a lower bound and the next Z.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Nonnegative data.
    k : int
        Number of archetypes (at most m).
    n_nonzero : int
        ℓ, the total number of nonzeros allowed in H.
    big_m : float, optional
        M in H ≤ M·Z. Default: per feature column, M_j = max_i X_ij. Archetypes W̃X are
        convex combinations of points, so this never cuts off an optimal H, and it gives
        tighter cuts than one global M. (The authors' demo uses M = 1 with data on a
        [0, 1]-like scale.)
    gap : float, default 0.05
        Stop when (UB − LB)/UB < gap.
    max_cuts : int, default 10
        Stop after this many cuts (master solves).
    time_limit : float, default 60
        Seconds for the whole loop; the remainder is also HiGHS's limit for each master
        solve, and a master stopped by it still gives a valid (weaker) lower bound.
    inner_iters, inner_tol
        The inner solve of F (see :func:`support_objective`).
    mip_rel_gap : float, default 1e-6
        HiGHS's relative gap for the master problem.
    start : array_like of int, shape (k,), optional
        Rows of X whose top-ℓ entries give Z_0 (and one-hot W̃_0); SPA's rows by default.

    Returns
    -------
    InitResult
        The best support's (W̃, H), W = :func:`convex_hull_projection` (X, H), and ``info``
        with ``lower_bounds`` (one per master solve, nondecreasing), ``upper_bounds``
        (best F after each evaluation, nonincreasing), ``gap`` (final relative gap),
        ``cuts``, ``status`` (``"converged"``, ``"max_cuts"``, ``"time_limit"``,
        ``"stalled"`` or ``"master_failed: …"``), ``support`` (the best Z, boolean),
        ``big_m``, ``fw_gaps`` (inner certificates), ``seconds``.

    Notes
    -----
    The inner problem is solved inexactly (``inner_iters`` FISTA steps), so the value F̃
    found is only an upper bound on F(Z_t), and the textbook cut F̃ + ⟨g, Z − Z_t⟩ could
    over-estimate F elsewhere by up to the inner suboptimality. Each cut is therefore
    lowered by the Frank–Wolfe duality gap δ_t of the inner solve: with μ_t fixed, weak
    Lagrangian duality gives F(Z) ≥ D(μ_t) − M⟨μ_t, Z⟩ for every Z, and at the computed W̃
    the Lagrangian's value and gradient coincide with F̃'s, so D(μ_t) ≥ F̃ + M⟨μ_t, Z_t⟩ − δ_t.
    The cuts are thus valid lower bounds up to rounding, LB ≤ min F ≤ UB holds at every
    step, and the reported gap bounds the distance to the best support (for F, not for the
    full objective Ψ). δ_t → 0 as the inner solve converges, recovering the textbook cut.

    The big-M cuts are weak: per entry F behaves like max(P − M·z, 0)², whose tangent at
    z = 0 predicts a drop of 2MP (more than the P² there is to gain) and at z = 1 is flat
    (dropping a support entry looks free). With many binaries and few cuts the master
    can then satisfy every cut with η = 0, so the lower bound stays near 0 and the
    proposals are poor; the result is still never worse in F than the starting support,
    which is always evaluated. The bounds become informative on small problems (a
    handful of binaries), where the loop converges to the best support.

    The master has k·n binaries (k = 20, n = 500 gives 10,000); HiGHS handles that with a
    few cuts, but each cut is a dense row and the master grows harder as cuts accumulate.
    For large inputs ``method="spa"`` is the cheap alternative.
    """
    X = _check_nonnegative(X)
    m, n = X.shape
    k = _check_k(k, m)
    ell = positive_int("n_nonzero", n_nonzero)
    M = _check_big_m(big_m, X)
    gap = finite_float("gap", gap, minimum=0.0)
    max_cuts = positive_int("max_cuts", max_cuts)
    time_limit = finite_float("time_limit", time_limit, minimum=0.0, strict=True)
    inner_iters = positive_int("inner_iters", inner_iters)
    inner_tol = finite_float("inner_tol", inner_tol, minimum=0.0)
    mip_rel_gap = finite_float("mip_rel_gap", mip_rel_gap, minimum=0.0)
    began = time.perf_counter()

    idx = spa_archetypes(X, k) if start is None else _check_indices(start, k, m)
    Z = hard_threshold_nonnegative(X[idx], ell) > 0
    Wt = np.zeros((k, m))
    Wt[np.arange(k), idx] = 1.0
    L = max(2.0 * _sigma_max_squared(X), _TINY)

    def evaluate(Z: np.ndarray, Wt0: np.ndarray) -> SupportFit:
        return _fit_support(X, M * Z, Wt0, L, inner_iters, inner_tol)

    lower_bounds: list[float] = []
    upper_bounds: list[float] = []
    fw_gaps: list[float] = []
    seen = {Z.tobytes()}
    fit = evaluate(Z, Wt)
    best, best_Z = fit, Z
    upper_bounds.append(fit.value)
    fw_gaps.append(fit.fw_gap)
    LB = 0.0  # F ≥ 0
    cuts = 0
    status = "max_cuts"

    def rel_gap(ub: float, lb: float) -> float:
        return max(ub - lb, 0.0) / max(ub, _TINY)

    if best.value <= _TINY:
        status = "converged"  # F = 0 cannot be improved.
    else:
        with HIGHS_LOCK:
            master = _Master(k, n, ell, best.value, mip_rel_gap)
            try:
                while True:
                    if lower_bounds and rel_gap(best.value, LB) < gap:
                        status = "converged"
                        break
                    if cuts >= max_cuts:
                        status = "max_cuts"
                        break
                    remaining = time_limit - (time.perf_counter() - began)
                    if remaining <= 0.0:
                        status = "time_limit"
                        break
                    coef = (M * fit.multiplier).ravel()
                    intercept = fit.value - fit.fw_gap + float(coef @ Z.ravel())
                    master.add_cut(intercept, coef)
                    cuts += 1
                    bound, Z_next, master_status = master.solve(remaining)
                    if bound is not None:
                        # Earlier bounds stay valid (cuts only accumulate), so keep the max.
                        LB = max(LB, bound)
                    lower_bounds.append(LB)
                    if rel_gap(best.value, LB) < gap:
                        status = "converged"
                        break
                    if Z_next is None:
                        status = (
                            "time_limit"
                            if master_status == "Time limit reached"
                            else f"master_failed: {master_status}"
                        )
                        break
                    Z_next = Z_next.reshape(k, n)
                    key = Z_next.tobytes()
                    if key in seen:
                        # The master proposes an evaluated support: its cut already forces
                        # η ≥ F̃ − δ there, so the gap is the inner inexactness; stop.
                        status = "stalled"
                        break
                    seen.add(key)
                    Z = Z_next
                    # Warm start from the best W̃ so far: F changes little between supports.
                    fit = evaluate(Z, best.Wt)
                    fw_gaps.append(fit.fw_gap)
                    if fit.value < best.value:
                        best, best_Z = fit, Z
                    upper_bounds.append(best.value)
            finally:
                master.close()
    H = best.H
    W = convex_hull_projection(X, H)
    info = {
        "method": "mip",
        "lower_bounds": lower_bounds,
        "upper_bounds": upper_bounds,
        "gap": rel_gap(best.value, LB),
        "cuts": cuts,
        "status": status,
        "support": best_Z.copy(),
        "big_m": M,
        "fw_gaps": fw_gaps,
        "start_indices": idx,
        "seconds": time.perf_counter() - began,
    }
    return InitResult(W=W, H=H, Wt=best.Wt, info=info)


def _check_indices(start: Any, k: int, m: int) -> np.ndarray:
    idx = np.asarray(start)
    if idx.shape != (k,) or not np.issubdtype(idx.dtype, np.integer):
        raise LabcoreError(f"start must be {k} integer row indices, got {start!r}")
    if (idx < 0).any() or (idx >= m).any():
        raise LabcoreError(f"start indices must lie in [0, {m}), got {idx.tolist()}")
    return idx.astype(np.int64)


# ---------------------------------------------------------------------------------------
# The entry point

_MIP_OPTIONS = (
    "big_m",
    "gap",
    "max_cuts",
    "time_limit",
    "inner_iters",
    "inner_tol",
    "mip_rel_gap",
    "start",
)


def initialize(
    X: Any,
    k: int,
    n_nonzero: int,
    *,
    method: str = "spa",
    seed: int = 0,
    **mip_options: Any,
) -> InitResult:
    """A feasible starting point (W, H, W̃) for the sparse archetypal NMF solvers.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Nonnegative data (m points, n features).
    k : int
        Number of archetypes, 1 ≤ k ≤ m.
    n_nonzero : int
        ℓ ≥ 1, the total number of nonzeros allowed in H.
    method : {"spa", "furthest", "random", "mip"}, default "spa"
        ``"spa"``/``"furthest"``: H is the chosen points hard-thresholded to ℓ nonzeros and
        W̃ selects them (W̃X = X[indices]). ``"random"``: H is the hard-thresholded random
        convex combinations W̃X, each row of W̃ Dirichlet(1) weights on min(m, 3) random
        points (one distinct anchor point per archetype). ``"mip"``:
        :func:`outer_approximation`.
    seed : int, default 0
        Seed for ``"random"`` and for tie-breaking in ``"furthest"``.
    **mip_options
        Keyword arguments of :func:`outer_approximation` (``big_m``, ``gap``,
        ``max_cuts``, ``time_limit``, ``inner_iters``, ``inner_tol``, ``mip_rel_gap``,
        ``start``). They are checked for every method but used only by ``"mip"``.

    Returns
    -------
    InitResult
        W = :func:`convex_hull_projection` (X, H) for every method.

    Raises
    ------
    LabcoreError
        Negative or non-finite X, k > m, ℓ < 1, an unknown method or option.
    """
    X = _check_nonnegative(X)
    m = X.shape[0]
    k = _check_k(k, m)
    ell = positive_int("n_nonzero", n_nonzero)
    method = choice("method", method, METHODS)
    unknown = sorted(set(mip_options) - set(_MIP_OPTIONS))
    if unknown:
        raise LabcoreError(
            f"unknown option(s) {', '.join(unknown)}; the MIP options are {', '.join(_MIP_OPTIONS)}"
        )
    if method == "mip":
        return outer_approximation(X, k, ell, **mip_options)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise LabcoreError(f"seed must be an integer, got {seed!r}")
    info: dict[str, Any] = {"method": method}
    if method in ("spa", "furthest"):
        idx = spa_archetypes(X, k) if method == "spa" else furthest_point_archetypes(X, k, seed)
        Wt = np.zeros((k, m))
        Wt[np.arange(k), idx] = 1.0
        info["indices"] = idx
    else:
        rng = np.random.default_rng(seed)
        anchors = rng.choice(m, size=k, replace=False)
        size = min(m, 3)
        Wt = np.zeros((k, m))
        for r, a in enumerate(anchors):
            others = np.delete(np.arange(m), a)
            points = np.concatenate([[a], rng.choice(others, size=size - 1, replace=False)])
            Wt[r, points] = rng.dirichlet(np.ones(size))
    H = hard_threshold_nonnegative(Wt @ X, ell)
    W = convex_hull_projection(X, H)
    return InitResult(W=W, H=H, Wt=Wt, info=info)
