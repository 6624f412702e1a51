"""Masked low-rank matrix tools shared by the matrix-completion packages.

A partially observed matrix is a dense 2-D float array ``Y`` together with a boolean
``mask`` of the same shape (``True`` = observed). Entries of ``Y`` outside the mask are
ignored and may be NaN. ``P_Ω(Y)`` below is ``Y`` with the unobserved entries set to 0.

* :func:`truncated_svd`: top-``rank`` SVD (full LAPACK SVD or scikit-learn's randomized SVD).
* :func:`soft_impute`: Soft-Impute (Mazumder, Hastie and Tibshirani, 2010) for the
  nuclear-norm regularised problem ``min ½‖P_Ω(Y − Z)‖_F² + lam‖Z‖_*``.
* :func:`hard_impute`: iterative hard SVD (Hard-Impute) at a fixed rank.
* :func:`lambda_max`: the smallest ``lam`` for which Soft-Impute returns the zero matrix.
* :func:`holdout_split`: split the observed entries into disjoint train/test masks.
* :func:`select_on_holdout`: fit a path of candidates (λ values, ranks) on the training
  entries and keep the one with the smallest held-out error.
* :func:`check_random_state`: scikit-learn's ``check_random_state``, also taking a numpy
  ``Generator`` and giving a private ``RandomState`` for None.
* :func:`relative_error`: ``‖estimate − truth‖_F / ‖truth‖_F``, optionally on a mask.
* :func:`spectral_norm_squared`: σ_max(A)² by warm-started power iteration (step sizes of
  gradient methods: archetypal-nmf's block updates, dpbss's hard thresholding).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> truth = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 20))
>>> mask = rng.random(truth.shape) < 0.6
>>> Y = np.where(mask, truth, np.nan)
>>> res = hard_impute(Y, mask, rank=2, tol=1e-14, max_iter=2000)
>>> res.rank
2
>>> relative_error(res.Z, truth, mask=~mask) < 1e-4
True
>>> soft_impute(Y, mask, lam=lambda_max(Y, mask)).rank
0
>>> train, test = holdout_split(mask, fraction=0.2, random_state=0)
>>> bool(np.array_equal(train | test, mask)) and not (train & test).any()
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labcore.checks import boolean_mask, finite_array, finite_float, observed_matrix, positive_int
from labcore.errors import LabcoreError

__all__ = [
    "HoldoutSelection",
    "SoftImputeResult",
    "check_random_state",
    "hard_impute",
    "holdout_split",
    "lambda_max",
    "relative_error",
    "select_on_holdout",
    "soft_impute",
    "svt",
    "truncated_svd",
]

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class SoftImputeResult:
    """Result of :func:`soft_impute` and :func:`hard_impute`.

    Attributes
    ----------
    Z
        The completed matrix (dense, same shape as ``Y``).
    rank
        Number of nonzero singular values kept in the last step (the rank of ``Z``).
    n_iter
        Number of iterations run.
    converged
        Whether the stopping rule was met within ``max_iter`` iterations.
    objective
        ``½‖P_Ω(Y − Z)‖_F² + lam·‖Z‖_*`` for :func:`soft_impute`, ``½‖P_Ω(Y − Z)‖_F²`` for
        :func:`hard_impute`, evaluated at the returned ``Z``.
    """

    Z: np.ndarray
    rank: int
    n_iter: int
    converged: bool
    objective: float


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_mask(mask: Any, shape: tuple[int, ...] | None = None, *, like: str = "Y"):
    """A boolean array selecting at least one entry (0/1 integers are converted)."""
    arr = boolean_mask(mask, np.shape(mask) if shape is None else shape, of=like)
    if not arr.any():
        raise LabcoreError("mask selects no entries")
    return arr


def _observed(Y: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check ``(Y, mask)``; return ``(P_Ω(Y), mask)`` as float64 and bool arrays."""
    return observed_matrix(Y, mask)


def _initial(init: Any, shape: tuple[int, int]) -> np.ndarray:
    if init is None:
        return np.zeros(shape)
    try:
        Z = np.array(init, dtype=np.float64)  # a copy: never modify the caller's array
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"init must be numeric: {exc}") from None
    if Z.shape != shape:
        raise LabcoreError(f"init must have the same shape as Y {shape}, got {Z.shape}")
    if not np.isfinite(Z).all():
        raise LabcoreError("init contains NaN or infinite values")
    return Z


def check_random_state(random_state: Any) -> np.random.RandomState:
    """A legacy ``RandomState`` (what scikit-learn's randomized SVD takes) from a seed.

    An int or a ``RandomState`` goes through scikit-learn's
    :func:`sklearn.utils.check_random_state`. Two cases differ from it on purpose: None gives
    a fresh ``RandomState`` seeded from OS entropy rather than numpy's global one (so a
    solver never draws from, or moves, the caller's global stream), and a numpy
    ``Generator`` is accepted and seeds a ``RandomState`` with one draw from it.

    Examples
    --------
    >>> check_random_state(0).randint(100) == np.random.RandomState(0).randint(100)
    True
    """
    from sklearn.utils import check_random_state as sklearn_check_random_state

    if random_state is None:
        return np.random.RandomState()
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**32)))
    if isinstance(random_state, bool):
        raise LabcoreError(f"random_state must be None, an int or a RNG, got {random_state!r}")
    try:
        return sklearn_check_random_state(random_state)
    except ValueError as exc:
        raise LabcoreError(
            "random_state must be None, an int in [0, 2**32), a numpy Generator or "
            f"RandomState, got {random_state!r} ({exc})"
        ) from None


# --------------------------------------------------------------------------------------------
# SVD
# --------------------------------------------------------------------------------------------


def _svd(A: np.ndarray, rank: int | None, random_state: Any):
    """Unchecked top-``rank`` SVD (``rank=None``: all of it)."""
    p = min(A.shape)
    if rank is None or rank >= p:
        return np.linalg.svd(A, full_matrices=False)
    if rank >= p / 3 or p <= 100:
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        return U[:, :rank], s[:rank], Vt[:rank]
    from sklearn.utils.extmath import randomized_svd

    return randomized_svd(A, rank, n_oversamples=10, n_iter=4, random_state=random_state)


def truncated_svd(A: Any, rank: int, *, random_state: Any = None):
    """Top-``rank`` singular value decomposition of a dense matrix.

    Uses the full LAPACK SVD (``np.linalg.svd(full_matrices=False)``) when
    ``rank >= min(A.shape) / 3`` or ``min(A.shape) <= 100``, and otherwise scikit-learn's
    randomized SVD (10 oversamples, 4 power iterations).

    Parameters
    ----------
    A
        A finite 2-D array of shape (m, n).
    rank
        Number of singular triplets, ``>= 1``; clipped to ``min(m, n)``.
    random_state
        Seed (None, int, numpy Generator or RandomState) of the randomized SVD.

    Returns
    -------
    U : ndarray, shape (m, k)
        Left singular vectors (orthonormal columns), ``k = min(rank, m, n)``.
    s : ndarray, shape (k,)
        Singular values, descending.
    Vt : ndarray, shape (k, n)
        Right singular vectors (orthonormal rows).

    Examples
    --------
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> U, s, Vt = truncated_svd(A, 2)
    >>> s.tolist()
    [3.0, 2.0]
    """
    A = finite_array("A", A, ndim=2)
    rank = min(positive_int("rank", rank), min(A.shape))
    return _svd(A, rank, check_random_state(random_state))


def svt(
    A: Any,
    threshold: float,
    *,
    rank: int | None = None,
    random_state: Any = None,
    cutoff: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Singular value soft-thresholding: the proximal operator of ``threshold · ‖·‖_*``.

    D_τ(A) = U max(Σ − τ, 0) Vᵀ, computed from the top ``rank`` singular triplets
    (:func:`truncated_svd`; ``rank=None``: the full SVD). Singular values whose shrunk value
    is at most ``cutoff · σ_1`` are dropped (``cutoff=0`` keeps exactly those above τ; a few
    machine epsilons keeps round-off out of the rank).

    Parameters
    ----------
    A
        A finite 2-D array.
    threshold
        τ ≥ 0.
    rank
        Number of singular triplets to compute; None for all. When the true number above τ
        exceeds it, the result is the rank-capped operator.
    random_state
        Seed of the randomized SVD (see :func:`truncated_svd`).
    cutoff
        Relative floor (to σ_1) under which a shrunk singular value counts as zero.

    Returns
    -------
    Z : ndarray
        D_τ(A), of A's shape.
    shrunk : ndarray
        The kept shrunk singular values, descending (their sum is ‖Z‖_*).

    Examples
    --------
    >>> Z, shrunk = svt(np.diag([3.0, 2.0, 0.5]), 1.0)
    >>> shrunk.tolist(), np.round(np.diag(Z), 12).tolist()
    ([2.0, 1.0], [2.0, 1.0, 0.0])
    """
    A = finite_array("A", A, ndim=2)
    threshold = finite_float("threshold", threshold, minimum=0.0)
    cutoff = finite_float("cutoff", cutoff, minimum=0.0)
    if rank is not None:
        rank = min(positive_int("rank", rank), min(A.shape))
    U, s, Vt = _svd(A, rank, None if rank is None else check_random_state(random_state))
    shrunk = s - threshold
    keep = shrunk > cutoff * (s[0] if s.size else 0.0)
    shrunk = shrunk[keep]
    return (U[:, keep] * shrunk) @ Vt[keep], shrunk


# --------------------------------------------------------------------------------------------
# Completion
# --------------------------------------------------------------------------------------------


def _iterate(
    Y0: np.ndarray,
    mask: np.ndarray,
    Z: np.ndarray,
    *,
    step: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    max_iter: int,
    tol: float,
    callback: Callable[[int, np.ndarray], Any] | None,
):
    """Shared loop: ``Z ← step(P_Ω(Y) + P_Ω⊥(Z))`` until the relative change is < ``tol``."""
    s = np.zeros(0)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        U, s, Vt = step(np.where(mask, Y0, Z))
        Z_new = (U * s) @ Vt
        change = float(np.sum((Z_new - Z) ** 2)) / max(float(np.sum(Z**2)), 1e-300)
        Z = Z_new
        if callback is not None:
            callback(it, Z)
        if change < tol:
            converged = True
            break
    return Z, s, it, converged


def _loop_args(max_iter: Any, tol: Any, callback: Any) -> tuple[int, float]:
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    if callback is not None and not callable(callback):
        raise LabcoreError(f"callback must be callable or None, got {callback!r}")
    return max_iter, tol


def soft_impute(
    Y: Any,
    mask: Any,
    *,
    lam: float,
    rank: int | None = None,
    max_iter: int = 200,
    tol: float = 1e-5,
    init: Any = None,
    random_state: Any = None,
    callback: Callable[[int, np.ndarray], Any] | None = None,
) -> SoftImputeResult:
    """Soft-Impute for nuclear-norm regularised matrix completion.

    Minimises ``½‖P_Ω(Y − Z)‖_F² + lam‖Z‖_*`` by the iteration of Mazumder, Hastie and
    Tibshirani (2010)::

        Z ← S_lam(P_Ω(Y) + P_Ω⊥(Z))

    where ``S_lam`` soft-thresholds the singular values (``s ↦ max(s − lam, 0)``; values that
    shrink to zero, or to within rounding of it, are dropped). With ``rank=None`` every step
    uses the full SVD and the objective never increases. With a rank cap each step only
    computes the top ``rank`` singular triplets (:func:`truncated_svd`), so at most ``rank``
    singular values are kept: this is the usual rank-capped (hence faster, but no longer
    exactly monotone) variant, exact whenever the thresholded solution has rank < ``rank``.

    Iteration stops when ``‖Z_new − Z‖_F² / max(‖Z‖_F², 1e-300) < tol``.

    Parameters
    ----------
    Y
        2-D float array; entries outside ``mask`` are ignored (may be NaN).
    mask
        Boolean array of the shape of ``Y`` (0/1 integers accepted): the observed entries.
    lam
        Regularisation weight, ``>= 0``. ``lam >= lambda_max(Y, mask)`` gives ``Z = 0``.
    rank
        Cap on the number of singular values per step (None: no cap, full SVD).
    max_iter
        Maximum number of iterations.
    tol
        Tolerance of the stopping rule above.
    init
        Starting ``Z`` (default zeros), e.g. the solution at a larger ``lam`` when walking
        down a regularisation path (warm start).
    random_state
        Seed of the randomized SVD (used only with a small ``rank`` on a large matrix).
    callback
        Called as ``callback(iteration, Z)`` after every iteration (1-based), with the new
        ``Z`` (do not modify it).

    Returns
    -------
    SoftImputeResult
        ``Z``, its ``rank``, ``n_iter``, ``converged`` and the final ``objective``.

    Examples
    --------
    >>> Y = np.array([[2.0, 0.0], [0.0, 1.0]])
    >>> res = soft_impute(Y, np.ones((2, 2), dtype=bool), lam=0.5)
    >>> np.round(res.Z, 12).tolist(), res.rank, res.objective
    ([[1.5, 0.0], [0.0, 0.5]], 2, 1.25)
    """
    Y0, mask = _observed(Y, mask)
    lam = finite_float("lam", lam, minimum=0.0)
    if rank is not None:
        rank = positive_int("rank", rank)
    max_iter, tol = _loop_args(max_iter, tol, callback)
    Z = _initial(init, Y0.shape)
    rs = None if rank is None else check_random_state(random_state)

    def step(X):
        U, s, Vt = _svd(X, rank, rs)
        shrunk = s - lam
        keep = shrunk > 8 * _EPS * (s[0] if s.size else 0.0)
        return U[:, keep], shrunk[keep], Vt[keep]

    Z, s, n_iter, converged = _iterate(
        Y0, mask, Z, step=step, max_iter=max_iter, tol=tol, callback=callback
    )
    fit = 0.5 * float(np.sum((Y0 - Z)[mask] ** 2))
    return SoftImputeResult(
        Z=Z,
        rank=int(s.size),
        n_iter=n_iter,
        converged=converged,
        objective=fit + lam * float(np.sum(s)),
    )


def hard_impute(
    Y: Any,
    mask: Any,
    *,
    rank: int,
    max_iter: int = 200,
    tol: float = 1e-5,
    init: Any = None,
    random_state: Any = None,
    callback: Callable[[int, np.ndarray], Any] | None = None,
) -> SoftImputeResult:
    """Hard-Impute (iterative SVD) for fixed-rank matrix completion.

    Iterates ``Z ← best rank-`rank` approximation of P_Ω(Y) + P_Ω⊥(Z)`` (truncated SVD,
    :func:`truncated_svd`), a majorise-minimise scheme for ``min ½‖P_Ω(Y − Z)‖_F²`` over
    matrices of rank ``<= rank``. Singular values that are zero to rounding are dropped.
    Stops when ``‖Z_new − Z‖_F² / max(‖Z‖_F², 1e-300) < tol``.

    Parameters
    ----------
    Y
        2-D float array; entries outside ``mask`` are ignored (may be NaN).
    mask
        Boolean array of the shape of ``Y`` (0/1 integers accepted): the observed entries.
    rank
        Target rank, ``>= 1`` (clipped to ``min(Y.shape)``).
    max_iter, tol, init, random_state, callback
        As in :func:`soft_impute`. A good ``init`` (e.g. a Soft-Impute solution) speeds up
        convergence considerably.

    Returns
    -------
    SoftImputeResult
        ``Z``, its ``rank`` (``<= rank``), ``n_iter``, ``converged`` and the ``objective``
        ``½‖P_Ω(Y − Z)‖_F²``.
    """
    Y0, mask = _observed(Y, mask)
    rank = min(positive_int("rank", rank), min(Y0.shape))
    max_iter, tol = _loop_args(max_iter, tol, callback)
    Z = _initial(init, Y0.shape)
    rs = check_random_state(random_state)

    def step(X):
        U, s, Vt = _svd(X, rank, rs)
        keep = s > max(X.shape) * _EPS * (s[0] if s.size else 0.0)
        return U[:, keep], s[keep], Vt[keep]

    Z, s, n_iter, converged = _iterate(
        Y0, mask, Z, step=step, max_iter=max_iter, tol=tol, callback=callback
    )
    return SoftImputeResult(
        Z=Z,
        rank=int(s.size),
        n_iter=n_iter,
        converged=converged,
        objective=0.5 * float(np.sum((Y0 - Z)[mask] ** 2)),
    )


def lambda_max(Y: Any, mask: Any) -> float:
    """Largest singular value of ``P_Ω(Y)`` (unobserved entries set to 0).

    This is the smallest ``lam`` for which :func:`soft_impute` (started from zero) returns
    the zero matrix, i.e. the start of a regularisation path.

    Examples
    --------
    >>> lambda_max([[3.0, np.nan], [0.0, 1.0]], [[True, False], [True, True]])
    3.0
    """
    Y0, _ = _observed(Y, mask)
    return float(np.linalg.svd(Y0, compute_uv=False)[0])


# --------------------------------------------------------------------------------------------
# Evaluation helpers
# --------------------------------------------------------------------------------------------


def holdout_split(
    mask: Any,
    *,
    fraction: float,
    random_state: Any = None,
    per_row: bool = True,
    min_keep: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Split the observed entries of ``mask`` into disjoint train and test masks.

    Parameters
    ----------
    mask
        2-D boolean array (0/1 integers accepted) of observed entries.
    fraction
        Share of the observed entries held out, in (0, 1).
    random_state
        Seed for :func:`numpy.random.default_rng` (None, int or Generator).
    per_row
        If True, hold out ``round(fraction * n_i)`` of the ``n_i`` observed entries of each
        row ``i`` independently, but never leave fewer than ``min_keep`` train entries in a
        row (rows with ``n_i <= min_keep`` keep all). If False, hold out a uniform random
        subset of ``round(fraction * |Ω|)`` entries (``min_keep`` is then ignored).
        ``round`` is numpy's (halves to even).
    min_keep
        Least number of observed train entries left in a row (``per_row=True`` only).

    Returns
    -------
    train_mask, test_mask : ndarray of bool
        Disjoint, with ``train_mask | test_mask == mask``.
    """
    mask = _as_mask(mask)
    if mask.ndim != 2:
        raise LabcoreError(f"mask must be 2-dimensional, got shape {mask.shape}")
    fraction = finite_float("fraction", fraction)
    if not 0.0 < fraction < 1.0:
        raise LabcoreError(f"fraction must be in (0, 1), got {fraction}")
    min_keep = positive_int("min_keep", min_keep, minimum=0)
    rng = np.random.default_rng(random_state)

    rows, cols = np.nonzero(mask)  # row-major: rows ascending
    n = rows.size
    held = np.zeros(n, dtype=bool)
    if per_row:
        counts = np.bincount(rows, minlength=mask.shape[0])
        n_test = np.minimum(np.round(fraction * counts), np.maximum(counts - min_keep, 0))
        order = np.lexsort((rng.random(n), rows))  # by row, random within each row
        starts = np.cumsum(counts) - counts
        rank_in_row = np.arange(n) - starts[rows[order]]
        held[order] = rank_in_row < n_test[rows[order]]
    else:
        held[rng.choice(n, size=int(np.round(fraction * n)), replace=False)] = True

    test = np.zeros_like(mask)
    test[rows[held], cols[held]] = True
    return mask & ~test, test


@dataclass(frozen=True)
class HoldoutSelection:
    """Result of :func:`select_on_holdout`.

    Attributes
    ----------
    candidates
        The candidates, in the order they were fitted.
    errors
        Held-out error of each candidate (float array, NaN where a fit gave a non-finite
        error).
    best_index
        Index of the winner: the first smallest finite error.
    best
        ``candidates[best_index]``.
    best_fit
        The winner's model, fitted on the training entries (a warm start for the refit on
        all entries).
    last_fit
        The model of the last candidate.
    """

    candidates: list
    errors: np.ndarray
    best_index: int
    best: Any
    best_fit: Any
    last_fit: Any


def select_on_holdout(
    candidates: Any,
    fit: Callable[[Any, Any], Any],
    error: Callable[[Any], float],
    *,
    warm_start: bool = False,
) -> HoldoutSelection:
    """Fit each candidate on training data; keep the one with the smallest held-out error.

    The tuning loop of the completion baselines: a λ path (usually decreasing from
    :func:`lambda_max`, warm-started) or a list of ranks (cold starts) is fitted on the
    training entries of a :func:`holdout_split`, each fit is scored on the held-out entries,
    and the caller refits the winner on all observed entries. Only the best and the last
    models are kept, so a long path of large matrices costs two models of memory.

    Parameters
    ----------
    candidates : iterable
        The settings to try, in order (λ values, ranks, or tuples of several).
    fit : callable ``fit(candidate, init) -> model``
        Fits one candidate on the training entries. ``init`` is the previous candidate's
        model when ``warm_start`` is true (None for the first), else always None.
    error : callable ``error(model) -> float``
        The held-out error of a fitted model (lower is better). A non-finite error never
        wins.
    warm_start : bool, default False
        Pass each model on as ``init`` of the next fit.

    Returns
    -------
    HoldoutSelection

    Raises
    ------
    LabcoreError
        If there are no candidates, or no candidate has a finite held-out error.

    Examples
    --------
    >>> sel = select_on_holdout([3, 1, 2], lambda c, init: c * 10, lambda m: abs(m - 12))
    >>> sel.best, sel.best_fit, sel.errors.tolist()
    (1, 10, [18.0, 2.0, 8.0])
    """
    candidates = list(candidates)
    if not candidates:
        raise LabcoreError("select_on_holdout needs at least one candidate")
    errors = np.full(len(candidates), np.nan)
    best_index, best_fit, model = -1, None, None
    for i, candidate in enumerate(candidates):
        model = fit(candidate, model if warm_start else None)
        value = float(error(model))
        if not np.isfinite(value):
            continue
        errors[i] = value
        if best_index < 0 or value < errors[best_index]:
            best_index, best_fit = i, model
    if best_index < 0:
        raise LabcoreError(
            f"no candidate had a finite held-out error (tried {len(candidates)}: "
            f"{candidates[:5]}{' ...' if len(candidates) > 5 else ''})"
        )
    return HoldoutSelection(candidates, errors, best_index, candidates[best_index], best_fit, model)


def relative_error(estimate: Any, truth: Any, *, mask: Any = None) -> float:
    """Relative Frobenius error ``‖estimate − truth‖_F / ‖truth‖_F`` over ``mask``.

    Parameters
    ----------
    estimate, truth
        Arrays of the same shape.
    mask
        Boolean array of that shape (0/1 integers accepted) selecting the entries compared;
        None compares all entries.

    Examples
    --------
    >>> relative_error([[3.0, 4.0]], [[0.0, 5.0]], mask=[[False, True]])
    0.2
    """
    try:
        estimate = np.asarray(estimate, dtype=np.float64)
        truth = np.asarray(truth, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"estimate and truth must be numeric: {exc}") from None
    if estimate.shape != truth.shape:
        raise LabcoreError(
            f"estimate and truth must have the same shape, got {estimate.shape} and {truth.shape}"
        )
    if mask is not None:
        mask = _as_mask(mask, truth.shape, like="truth")
        estimate, truth = estimate[mask], truth[mask]
    if truth.size == 0:
        raise LabcoreError("truth is empty")
    if not (np.isfinite(estimate).all() and np.isfinite(truth).all()):
        raise LabcoreError("estimate or truth contains NaN or infinite values on the entries")
    denom = float(np.linalg.norm(truth))
    if denom == 0.0:
        raise LabcoreError("truth has zero norm on the compared entries")
    return float(np.linalg.norm(estimate - truth)) / denom


def spectral_norm_squared(
    A: np.ndarray, *, v0: np.ndarray | None = None, iters: int = 30, rtol: float = 1e-6
) -> tuple[float, np.ndarray]:
    """σ_max(A)², by power iteration on AᵀA warm-started from ``v0``; returns it with the
    final vector (pass it back next time: the blocks change little between iterations).

    The estimate is from below; solvers that need a safe Lipschitz constant multiply it by
    a small margin.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[1]
    if v0 is None or v0.shape != (n,) or not np.any(v0):
        v = np.random.default_rng(0).standard_normal(n)
    else:
        v = np.asarray(v0, dtype=np.float64).copy()
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(iters):
        w = A.T @ (A @ v)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0, v
        v = w / norm
        if abs(norm - value) <= rtol * norm:
            value = norm
            break
        value = norm
    return value, v
