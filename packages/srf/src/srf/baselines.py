"""Baselines for transduction with matrix completion.

The setting: n items, each with d real features (some missing) and t binary labels (±1, most
missing). Stacking them gives Z = [X | Y], an n × (d + t) matrix assumed to be (nearly) low
rank; completing Z predicts the missing labels (the sign of the completed label columns) and
imputes the missing features at the same time.

* :func:`mc1`: MC-1 of Goldberg, Zhu, Recht, Xu and Nowak, "Transduction with matrix
  completion: three birds with one stone" (NIPS 2010): nuclear norm + squared loss on the
  observed features + logistic loss on the observed labels, solved by fixed-point
  continuation (Ma, Goldfarb and Chen, "Fixed point and Bregman iterative methods for matrix
  rank minimization", Math. Program. 2011) with FISTA acceleration (Beck and Teboulle 2009)
  and a restart that keeps the objective monotone.
* :func:`svt_complete`: singular value thresholding of Cai, Candès and Shen, "A singular value
  thresholding algorithm for matrix completion" (SIAM J. Optim. 2010).
* :func:`soft_impute_complete`: Soft-Impute (Mazumder, Hastie and Tibshirani, JMLR 2010) with
  λ chosen on held-out observed entries.
* :func:`hard_svd_complete`: iterative hard SVD (Hard-Impute) with the rank chosen on held-out
  observed entries.
* :func:`two_step`: impute the features first (Soft-Impute or column means), then fit a
  logistic regression (or ridge regression) on the labeled rows.

The completion routines reuse :mod:`labcore.lowrank` (:func:`~labcore.lowrank.soft_impute`,
:func:`~labcore.lowrank.hard_impute`, :func:`~labcore.lowrank.truncated_svd`,
:func:`~labcore.lowrank.holdout_split`, :func:`~labcore.lowrank.lambda_max`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from labcore.checks import boolean_mask, choice, finite_float, observed_matrix, positive_int
from labcore.errors import LabcoreError
from labcore.lowrank import (
    hard_impute,
    holdout_split,
    lambda_max,
    select_on_holdout,
    soft_impute,
    svt,
)

__all__ = [
    "CompletionResult",
    "MC1Result",
    "TwoStepResult",
    "hard_svd_complete",
    "mc1",
    "soft_impute_complete",
    "svt_complete",
    "two_step",
]

# Shrunk singular values below 8 machine epsilons of σ_1 are round-off, not rank.
_SVT_CUTOFF = 8 * np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MC1Result:
    """Outcome of :func:`mc1`.

    Attributes
    ----------
    Z_x : ndarray, shape (n, d)
        Completed feature block (the imputed features).
    Z_y : ndarray, shape (n, t) (or (n,) when ``Y`` was 1-D)
        Completed label block: real label scores; ``sign(Z_y)`` are the predicted labels.
    n_iter : int
        Total number of proximal-gradient iterations over all continuation levels (a restarted
        FISTA step counts once).
    converged : bool
        True when the last level (at the target μ) met the stopping rule within ``max_iter``.
    objective : float
        The MC-1 objective at the target μ, evaluated at the returned Z.
    time_s : float
        Wall-clock time of the call in seconds.
    mu : float
        The target μ that was used.
    z_bias : ndarray, shape (n,) or None
        The bias column of Z (close to 1), None when ``bias=False``.
    rank : int
        Rank of the returned Z (number of singular values kept by the last thresholding).
    objectives : ndarray, shape (n_iter,)
        The objective, at the μ of that iteration, after every iteration.
    mus : ndarray, shape (n_iter,)
        μ of every iteration (the continuation schedule).
    """

    Z_x: np.ndarray
    Z_y: np.ndarray
    n_iter: int
    converged: bool
    objective: float
    time_s: float
    mu: float = float("nan")
    z_bias: np.ndarray | None = None
    rank: int = 0
    objectives: np.ndarray = field(default_factory=lambda: np.empty(0))
    mus: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def labels(self) -> np.ndarray:
        """Predicted labels ``sign(Z_y)`` in {−1, +1} (a score of exactly 0 gives +1)."""
        return np.where(self.Z_y >= 0.0, 1, -1)


@dataclass(frozen=True)
class CompletionResult:
    """Outcome of :func:`svt_complete`, :func:`soft_impute_complete`, :func:`hard_svd_complete`.

    Attributes
    ----------
    Z : ndarray, shape (m, n)
        The completed matrix.
    n_iter : int
        Iterations of the final fit (for the selection routines: of the refit on all entries).
    converged : bool
        Whether the final fit met its stopping rule.
    time_s : float
        Wall-clock time of the whole call (selection included) in seconds.
    rank : int
        Rank of ``Z``.
    params : dict
        The hyperparameters used (``tau``, ``delta``, ``k0`` for SVT; ``lam`` for Soft-Impute;
        ``rank`` for the hard SVD) and, where a value was selected, the candidates and their
        held-out relative errors (``candidates``, ``validation_errors``).
    """

    Z: np.ndarray
    n_iter: int
    converged: bool
    time_s: float
    rank: int = 0
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TwoStepResult:
    """Outcome of :func:`two_step`.

    Attributes
    ----------
    X_imputed : ndarray, shape (n, d)
        The feature matrix with its missing entries imputed (observed entries unchanged).
    scores : ndarray, shape (n,) or (n, n_classes)
        ``decision_function`` of the classifier on all rows (shape (n,) for two classes, the
        score of ``classes[1]``); for ``classifier="ridge"`` the continuous predictions.
    predictions : ndarray, shape (n,)
        Predicted class of every row (for ``"ridge"``: the continuous predictions, floats).
    time_s : float
        Wall-clock time of the call in seconds.
    classes : ndarray or None
        The classes, in the order of the score columns (None for ``"ridge"``).
    """

    X_imputed: np.ndarray
    scores: np.ndarray
    predictions: np.ndarray
    time_s: float
    classes: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _mask(name: str, value: Any, shape: tuple[int, ...], of: str) -> np.ndarray:
    return boolean_mask(value, shape, name=name, of=of)


def _observed(name: str, values: Any, mask: Any, mask_name: str):
    """``(P_Ω(values), mask)``: checked shapes, no NaN at observed entries, not all missing."""
    return observed_matrix(values, mask, name=name, mask_name=mask_name)


def _optional_rank(rank: Any) -> int | None:
    return None if rank is None else positive_int("rank", rank)


# --------------------------------------------------------------------------------------------
# MC-1
# --------------------------------------------------------------------------------------------


def mc1(
    X: Any,
    X_mask: Any,
    Y: Any,
    Y_mask: Any,
    *,
    mu: float | None = None,
    lam: float = 1.0,
    bias: bool = True,
    mu_final_ratio: float = 0.05,
    eta: float = 0.25,
    max_iter: int = 2000,
    tol: float = 1e-6,
    rank: int | None = None,
    accelerate: bool = True,
    random_state: Any = 0,
    callback: Callable[[int, float, float, np.ndarray], Any] | None = None,
) -> MC1Result:
    """MC-1 transductive matrix completion (Goldberg et al., NIPS 2010).

    Minimizes over Z = [Z_x | Z_1 | Z_y] (n × (d + 1 + t); the all-ones bias column Z_1 only
    when ``bias=True``)::

        F_μ(Z) = μ‖Z‖_* + (λ/|Ω_X|) Σ_{Ω_X} ½(x_ij − z_ij)²
                        + (1/|Ω_Y|) Σ_{Ω_Y} log(1 + exp(−y_ij z_ij))

    where Ω_X holds the observed features and, with ``bias=True``, every entry of the bias
    column (observed as 1, so the squared loss keeps it near 1; |Ω_X| counts them too), and
    Ω_Y the observed labels.

    Solver: fixed-point continuation (FPC, Ma, Goldfarb and Chen), as Goldberg et al. do. The
    smooth part g has a diagonal Hessian bounded by L = max(λ/|Ω_X|, 0.25/|Ω_Y|); each step is

        Z ← D_{τμ}(W − τ∇g(W)),   τ = 1/L,

    with D the singular value soft-thresholding, W = Z (plain proximal gradient) or the FISTA
    extrapolation (``accelerate=True``). An accelerated step that would increase F_μ is
    discarded and replaced by a plain step from the current Z (momentum restart), so F_μ never
    increases within a level (a plain step with τ = 1/L cannot increase it, by the descent
    lemma; with a ``rank`` cap a failing plain step ends the level instead). μ follows the
    continuation μ_k = max(η·μ_{k−1}, μ) from μ_1 = η·μ_max, where
    μ_max = ‖∇g(0)‖₂ is the smallest μ for which Z = 0 is optimal; each level is warm-started
    from the previous one and stops when ‖Z_new − Z‖_F / max(‖Z‖_F, 1) falls below ``tol``
    (intermediate levels: below max(tol, 1e-4)).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Features; entries outside ``X_mask`` are ignored (may be NaN).
    X_mask : array_like of bool, shape (n, d)
        True where a feature is observed.
    Y : array_like, shape (n, t) or (n,)
        Labels in {−1, +1} at the observed entries; others are ignored (may be NaN).
    Y_mask : array_like of bool, shape of ``Y``
        True where a label is observed; every label column needs at least one.
    mu : float, optional
        Target nuclear-norm weight μ > 0. Default ``mu_final_ratio·μ_max``.
    lam : float, default 1.0
        Weight λ > 0 of the feature loss relative to the label loss.
    bias : bool, default True
        Append the all-ones bias column (MC-1's way of learning a bias per label).
    mu_final_ratio : float, default 0.05
        Default target μ relative to μ_max, in (0, 1). On planted problems (rank-3 features
        with noise, labels linear in the features, 50% features and 30% labels observed)
        the hidden-label accuracy with λ = 1 is flat for ratios 0.1 to 0.03 (about 0.90)
        and drops for larger ratios (underfit, 0.87 at 0.3) and smaller ones (the fit
        becomes full rank and overfits the noise: 0.885 at 0.01, 0.85 at 1e-3); 0.05 is in
        the middle of that plateau. The paper tunes μ and λ by cross-validation; do so
        for real data.
    eta : float, default 0.25
        Continuation factor in (0, 1) (FPC's η_μ).
    max_iter : int, default 2000
        Budget of iterations over all levels.
    tol : float, default 1e-6
        Stopping tolerance on the relative change of Z (see above).
    rank : int, optional
        Cap on the singular triplets computed per thresholding (None: full SVD).
    accelerate : bool, default True
        FISTA extrapolation with monotone restart; False runs plain proximal gradient.
    random_state : int or None, default 0
        Seed of the randomized SVD (used only with a small ``rank`` on a large matrix).
    callback : callable, optional
        ``callback(iteration, mu, objective, Z)`` after every iteration (1-based over all
        levels); ``Z`` is the full stacked matrix [Z_x | Z_1 | Z_y] (do not modify it).

    Returns
    -------
    MC1Result

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 2)) @ rng.standard_normal((2, 6))
    >>> Y = np.sign(X[:, :1])
    >>> res = mc1(X, rng.random(X.shape) < 0.7, Y, rng.random(Y.shape) < 0.5)
    >>> res.Z_x.shape, res.Z_y.shape
    ((40, 6), (40, 1))
    """
    t0 = time.perf_counter()
    Xo, Xm = _observed("X", X, X_mask, "X_mask")
    n, d = Xo.shape
    try:
        Yarr = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"Y must be numeric: {exc}") from None
    one_d = Yarr.ndim == 1
    if one_d:
        Yarr = Yarr[:, None]
        Y_mask = np.asarray(Y_mask)[:, None] if np.ndim(Y_mask) == 1 else Y_mask
    if Yarr.ndim != 2 or Yarr.shape[0] != n or Yarr.shape[1] == 0:
        raise LabcoreError(
            f"Y must have shape (n, t) or (n,) with n = {n} rows (the rows of X), "
            f"got shape {np.shape(Y)}"
        )
    Ym = _mask("Y_mask", Y_mask, Yarr.shape, "Y")
    empty = np.flatnonzero(~Ym.any(axis=0))
    if empty.size:
        raise LabcoreError(f"label column {int(empty[0])} has no observed labels")
    yobs = Yarr[Ym]
    if not np.isin(yobs, (-1.0, 1.0)).all():
        bad = np.unique(yobs[~np.isin(yobs, (-1.0, 1.0))])[:5]
        raise LabcoreError(f"observed labels must be -1 or +1, found {bad.tolist()}")
    Yo = np.where(Ym, Yarr, 0.0)
    lam = finite_float("lam", lam, minimum=0.0, strict=True)
    if mu is not None:
        mu = finite_float("mu", mu, minimum=0.0, strict=True)
    mu_final_ratio = finite_float("mu_final_ratio", mu_final_ratio, minimum=0.0, strict=True)
    if mu_final_ratio >= 1.0:
        raise LabcoreError(f"mu_final_ratio must be in (0, 1), got {mu_final_ratio}")
    eta = finite_float("eta", eta, minimum=0.0, strict=True)
    if eta >= 1.0:
        raise LabcoreError(f"eta must be in (0, 1), got {eta}")
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    rank = _optional_rank(rank)
    if callback is not None and not callable(callback):
        raise LabcoreError("callback must be callable or None")

    # Stacked data V and per-entry loss weights: cx on Ω_X (squared), cy on Ω_Y (logistic).
    nb = 1 if bias else 0
    t = Yo.shape[1]
    V = np.hstack([Xo, np.ones((n, nb)), Yo])
    fmask = np.hstack([Xm, np.ones((n, nb), dtype=bool), np.zeros((n, t), dtype=bool)])
    lmask = np.hstack([np.zeros((n, d + nb), dtype=bool), Ym])
    n_x, n_y = int(fmask.sum()), int(lmask.sum())
    cx = fmask * (lam / n_x)
    cy = lmask * (1.0 / n_y)
    lip = max(lam / n_x, 0.25 / n_y)
    step = 1.0 / lip

    def smooth(Z: np.ndarray) -> float:
        return 0.5 * float(np.sum(cx * (Z - V) ** 2)) + float(
            np.sum(cy * np.logaddexp(0.0, -V * Z))
        )

    def grad(Z: np.ndarray) -> np.ndarray:
        return cx * (Z - V) - cy * V * expit(-V * Z)

    mu_max = float(np.linalg.norm(grad(np.zeros_like(V)), 2))
    target = mu_final_ratio * mu_max if mu is None else mu
    mus_sched = []
    level_mu = eta * mu_max
    while level_mu > target:
        mus_sched.append(level_mu)
        level_mu *= eta
    mus_sched.append(target)

    Z = np.zeros_like(V)
    nuc = 0.0
    rank_z = 0
    objectives: list[float] = []
    mu_hist: list[float] = []
    it = 0
    converged = False
    for li, level_mu in enumerate(mus_sched):
        last = li == len(mus_sched) - 1
        level_tol = tol if last else max(tol, 1e-4)
        fz = smooth(Z) + level_mu * nuc
        W, tk = Z, 1.0
        level_done = False
        while it < max_iter:
            it += 1
            Z_new, s_new = svt(
                W - step * grad(W),
                step * level_mu,
                rank=rank,
                random_state=random_state,
                cutoff=_SVT_CUTOFF,
            )
            f_new = smooth(Z_new) + level_mu * float(s_new.sum())
            if f_new > fz + 1e-12 * abs(fz) and W is not Z:
                # Momentum made things worse: restart with a plain step from Z.
                tk = 1.0
                Z_new, s_new = svt(
                    Z - step * grad(Z),
                    step * level_mu,
                    rank=rank,
                    random_state=random_state,
                    cutoff=_SVT_CUTOFF,
                )
                f_new = smooth(Z_new) + level_mu * float(s_new.sum())
            if f_new > fz + 1e-12 * abs(fz):
                # Only possible with a rank cap (inexact thresholding): keep Z, end the level.
                objectives.append(fz)
                mu_hist.append(level_mu)
                if callback is not None:
                    callback(it, level_mu, fz, Z)
                break
            change = float(np.linalg.norm(Z_new - Z)) / max(float(np.linalg.norm(Z)), 1.0)
            if accelerate:
                t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * tk * tk))
                W = Z_new + ((tk - 1.0) / t_next) * (Z_new - Z)
                tk = t_next
            else:
                W = Z_new
            Z, fz, nuc, rank_z = Z_new, f_new, float(s_new.sum()), int(s_new.size)
            objectives.append(fz)
            mu_hist.append(level_mu)
            if callback is not None:
                callback(it, level_mu, fz, Z)
            if change < level_tol:
                level_done = True
                break
        if last:
            converged = level_done
        if it >= max_iter and not level_done:
            break

    objective = smooth(Z) + target * nuc
    Z_y = Z[:, d + nb :].copy()
    return MC1Result(
        Z_x=Z[:, :d].copy(),
        Z_y=Z_y[:, 0] if one_d else Z_y,
        n_iter=it,
        converged=converged,
        objective=objective,
        time_s=time.perf_counter() - t0,
        mu=target,
        z_bias=Z[:, d].copy() if bias else None,
        rank=rank_z,
        objectives=np.asarray(objectives),
        mus=np.asarray(mu_hist),
    )


# --------------------------------------------------------------------------------------------
# Matrix completion baselines
# --------------------------------------------------------------------------------------------


def svt_complete(
    M: Any,
    mask: Any,
    *,
    tau: float | None = None,
    delta: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-4,
    rank: int | None = None,
) -> CompletionResult:
    """Singular value thresholding (Cai, Candès and Shen, 2010).

    Iterates, from Y⁰ = k₀δP_Ω(M)::

        X ← D_τ(Y)                  (soft-threshold the singular values by τ)
        Y ← Y + δ P_Ω(M − X)

    and stops once ‖P_Ω(X − M)‖_F / ‖P_Ω(M)‖_F < ``tol``. For large τ the limit is the
    minimum-nuclear-norm matrix that agrees with M on Ω.

    Parameters
    ----------
    M : array_like, shape (m, n)
        The data; entries outside ``mask`` are ignored (may be NaN).
    mask : array_like of bool, shape (m, n)
        True where an entry is observed.
    tau : float, optional
        Threshold τ > 0; default 5·sqrt(m·n) (the paper's τ = 5n for n × n matrices).
    delta : float, optional
        Step δ in (0, 2); default min(1.2·m·n/|Ω|, 1.9) (the paper's 1.2/p, capped below 2,
        the bound of its convergence proof).
    max_iter : int, default 500
        Maximum number of iterations.
    tol : float, default 1e-4
        Tolerance on the relative residual on Ω (the paper's 1e-4).
    rank : int, optional
        Cap on the singular triplets per step (None: full SVD).

    Returns
    -------
    CompletionResult
        ``params`` holds ``tau``, ``delta``, ``k0`` and the final ``residual``.
    """
    t0 = time.perf_counter()
    Mo, m = _observed("M", M, mask, "mask")
    shape = Mo.shape
    n_obs = int(m.sum())
    tau = 5.0 * math.sqrt(shape[0] * shape[1]) if tau is None else tau
    tau = finite_float("tau", tau, minimum=0.0, strict=True)
    if delta is None:
        delta = min(1.2 * shape[0] * shape[1] / n_obs, 1.9)
    delta = finite_float("delta", delta, minimum=0.0, strict=True)
    if delta >= 2.0:
        raise LabcoreError(f"delta must be in (0, 2), got {delta}")
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    rank = _optional_rank(rank)

    norm_obs = float(np.linalg.norm(Mo))
    if norm_obs == 0.0:  # the zero matrix fits every observed entry exactly
        params = {"tau": tau, "delta": delta, "k0": 0, "residual": 0.0}
        return CompletionResult(np.zeros(shape), 0, True, time.perf_counter() - t0, 0, params)
    k0 = math.ceil(tau / (delta * float(np.linalg.norm(Mo, 2))))
    Yk = (k0 * delta) * Mo
    Z = np.zeros(shape)
    s = np.zeros(0)
    residual = 1.0
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        Z, s = svt(Yk, tau, rank=rank, random_state=0, cutoff=_SVT_CUTOFF)
        R = np.where(m, Mo - Z, 0.0)
        residual = float(np.linalg.norm(R)) / norm_obs
        if residual < tol:
            converged = True
            break
        Yk += delta * R
    params = {"tau": tau, "delta": delta, "k0": k0, "residual": residual}
    return CompletionResult(Z, it, converged, time.perf_counter() - t0, int(s.size), params)


def _heldout_error(Z: np.ndarray, Mo: np.ndarray, test: np.ndarray) -> float:
    denom = float(np.linalg.norm(Mo[test]))
    return float(np.linalg.norm((Z - Mo)[test])) / max(denom, 1e-300)


def _split(mask: np.ndarray, fraction: Any, random_state: Any):
    fraction = finite_float("validation_fraction", fraction)
    if not 0.0 < fraction < 1.0:
        raise LabcoreError(f"validation_fraction must be in (0, 1), got {fraction}")
    train, test = holdout_split(mask, fraction=fraction, random_state=random_state, per_row=False)
    if not train.any() or not test.any():
        raise LabcoreError(
            f"too few observed entries ({int(mask.sum())}) to hold out a validation set"
        )
    return train, test


def _tuned_completion(
    solve: Callable[[np.ndarray, Any, np.ndarray | None], Any],
    Mo: np.ndarray,
    m: np.ndarray,
    *,
    name: str,
    cast: type,
    value: Any,
    candidates: Callable[[np.ndarray], Any],
    warm_start: bool,
    validation_fraction: Any,
    random_state: Any,
    t0: float,
) -> CompletionResult:
    """Fit ``solve(mask, value, init)`` on all observed entries at ``value``; with
    ``value=None`` choose it first among ``candidates(train)`` on held-out entries
    (:func:`labcore.lowrank.select_on_holdout`) and warm-start the final fit from the
    winner's training solution."""
    params: dict[str, Any] = {}
    init = None
    if value is None:
        train, test = _split(m, validation_fraction, random_state)
        path = select_on_holdout(
            candidates(train),
            lambda candidate, previous: solve(train, candidate, previous).Z,
            lambda Z: _heldout_error(Z, Mo, test),
            warm_start=warm_start,
        )
        value, init = cast(path.best), path.best_fit
        params.update(candidates=np.asarray(path.candidates), validation_errors=path.errors)
    res = solve(m, value, init)
    params[name] = value
    return CompletionResult(
        res.Z, res.n_iter, res.converged, time.perf_counter() - t0, res.rank, params
    )


def soft_impute_complete(
    M: Any,
    mask: Any,
    *,
    lam: float | None = None,
    rank: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
    validation_fraction: float = 0.1,
    random_state: Any = 0,
) -> CompletionResult:
    """Soft-Impute completion with λ chosen on held-out observed entries.

    With ``lam=None`` a share ``validation_fraction`` of the observed entries is held out
    (:func:`labcore.lowrank.holdout_split`, ``per_row=False``) and Soft-Impute
    (:func:`labcore.lowrank.soft_impute`) is run on the rest along a warm-started geometric
    path of 10 values from 0.5·λ_max to 0.005·λ_max (λ_max of the training entries,
    :func:`labcore.lowrank.lambda_max`). The λ with the smallest held-out relative error is
    refitted on all observed entries, warm-started from its training solution.

    Parameters
    ----------
    M : array_like, shape (m, n)
        The data; entries outside ``mask`` are ignored (may be NaN).
    mask : array_like of bool, shape (m, n)
        True where an entry is observed.
    lam : float, optional
        Fixed λ ≥ 0 (no selection).
    rank : int, optional
        Rank cap per step of Soft-Impute (None: full SVD).
    max_iter, tol
        Passed to :func:`labcore.lowrank.soft_impute` for every fit (``tol`` bounds the
        squared relative change ‖Z_new − Z‖_F² / ‖Z‖_F²). The default 1e-7 is tighter than
        labcore's 1e-5, which stops the path fits early: on an exact rank-2 60 × 40 matrix
        at 50% observed it leaves a relative error of 2–6% on the missing entries, against
        about 1% with 1e-7. From a cold start (a fixed small ``lam``) more than 300
        iterations may be needed.
    validation_fraction : float, default 0.1
        Share of the observed entries held out for the selection, in (0, 1).
    random_state : int or None, default 0
        Seed of the hold-out split and of the randomized SVD.

    Returns
    -------
    CompletionResult
        ``params`` holds ``lam`` and, when it was selected, ``candidates`` and
        ``validation_errors``.
    """
    t0 = time.perf_counter()
    Mo, m = _observed("M", M, mask, "mask")
    rank = _optional_rank(rank)
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    return _tuned_completion(
        lambda on, value, init: soft_impute(
            Mo,
            on,
            lam=float(value),
            rank=rank,
            max_iter=max_iter,
            tol=tol,
            init=init,
            random_state=random_state,
        ),
        Mo,
        m,
        name="lam",
        cast=float,
        value=None if lam is None else finite_float("lam", lam, minimum=0.0),
        candidates=lambda train: lambda_max(Mo, train) * np.geomspace(0.5, 0.005, 10),
        warm_start=True,
        validation_fraction=validation_fraction,
        random_state=random_state,
        t0=t0,
    )


def hard_svd_complete(
    M: Any,
    mask: Any,
    *,
    rank: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
    validation_fraction: float = 0.1,
    random_state: Any = 0,
) -> CompletionResult:
    """Iterative hard-SVD completion (Hard-Impute) with the rank chosen on held-out entries.

    With ``rank=None`` a share ``validation_fraction`` of the observed entries is held out
    (:func:`labcore.lowrank.holdout_split`, ``per_row=False``) and
    :func:`labcore.lowrank.hard_impute` is run on the rest for every rank
    1, ..., min(10, m, n). The rank with
    the smallest held-out relative error is refitted on all observed entries, warm-started
    from its training solution. Each rank is fitted from a cold start: warm-starting rank
    r + 1 from the rank-r solution hides overfitting (on exactly low-rank data the extra
    directions then never grow), so the held-out error would not rise past the true rank.

    Parameters
    ----------
    M : array_like, shape (m, n)
        The data; entries outside ``mask`` are ignored (may be NaN).
    mask : array_like of bool, shape (m, n)
        True where an entry is observed.
    rank : int, optional
        Fixed rank ≥ 1 (no selection).
    max_iter, tol
        Passed to :func:`labcore.lowrank.hard_impute` for every fit (``tol`` bounds the
        squared relative change ‖Z_new − Z‖_F² / ‖Z‖_F²). Hard-Impute converges linearly, so
        the error left is roughly proportional to sqrt(tol): on an exact rank-2 60 × 40
        matrix at 50% observed, about 1e-2 with labcore's 1e-5, 1e-3 with the default 1e-7,
        1e-4 with 1e-9.
    validation_fraction : float, default 0.1
        Share of the observed entries held out for the selection, in (0, 1).
    random_state : int or None, default 0
        Seed of the hold-out split and of the randomized SVD.

    Returns
    -------
    CompletionResult
        ``params`` holds ``rank`` and, when it was selected, ``candidates`` and
        ``validation_errors``.
    """
    t0 = time.perf_counter()
    Mo, m = _observed("M", M, mask, "mask")
    max_iter = positive_int("max_iter", max_iter)
    tol = finite_float("tol", tol, minimum=0.0)
    return _tuned_completion(
        lambda on, value, init: hard_impute(
            Mo,
            on,
            rank=int(value),
            max_iter=max_iter,
            tol=tol,
            init=init,
            random_state=random_state,
        ),
        Mo,
        m,
        name="rank",
        cast=int,
        value=None if rank is None else positive_int("rank", rank),
        candidates=lambda train: np.arange(1, min(10, *Mo.shape) + 1),
        warm_start=False,
        validation_fraction=validation_fraction,
        random_state=random_state,
        t0=t0,
    )


# --------------------------------------------------------------------------------------------
# Two-step baseline
# --------------------------------------------------------------------------------------------


def two_step(
    X: Any,
    X_mask: Any,
    y: Any,
    labeled: Any,
    *,
    imputer: str = "soft-impute",
    classifier: str = "logistic",
    random_state: Any = 0,
) -> TwoStepResult:
    """Impute the features, then fit a supervised model on the labeled rows.

    Step 1 fills the missing features: ``"soft-impute"`` uses :func:`soft_impute_complete`
    on the columns standardized by their observed means and deviations (λ selected on
    held-out entries) and keeps the observed entries as they are;
    ``"mean"`` fills each column with the mean of its observed entries (a column with none
    gets the mean of all observed entries). Step 2 fits scikit-learn's
    ``StandardScaler`` then ``LogisticRegression(max_iter=2000)`` (``"logistic"``, any number
    of classes) or ``RidgeCV()`` (``"ridge"``, a real-valued target) on the labeled rows and
    predicts every row.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Features; entries outside ``X_mask`` are ignored (may be NaN).
    X_mask : array_like of bool, shape (n, d)
        True where a feature is observed.
    y : array_like, shape (n,)
        Class labels (integers or strings) or, for ``"ridge"``, real targets; only the
        labeled rows are read.
    labeled : array_like of bool, shape (n,)
        True where the label of the row is known.
    imputer : {"soft-impute", "mean"}, default "soft-impute"
    classifier : {"logistic", "ridge"}, default "logistic"
    random_state : int or None, default 0
        Seed of the Soft-Impute hold-out split and of the classifier.

    Returns
    -------
    TwoStepResult
    """
    t0 = time.perf_counter()
    Xo, Xm = _observed("X", X, X_mask, "X_mask")
    n = Xo.shape[0]
    imputer = choice("imputer", imputer, ("soft-impute", "mean"))
    classifier = choice("classifier", classifier, ("logistic", "ridge"))
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise LabcoreError(f"y must have shape ({n},) (one entry per row of X), got {y.shape}")
    lab = _mask("labeled", labeled, (n,), "y")
    if not lab.any():
        raise LabcoreError("labeled selects no row: no observed labels")
    y_lab = y[lab]

    if imputer == "mean":
        counts = Xm.sum(axis=0)
        overall = float(Xo[Xm].mean())
        means = np.where(counts > 0, Xo.sum(axis=0) / np.maximum(counts, 1), overall)
        X_imp = np.where(Xm, Xo, means)
    else:
        # Columns on their own scales (e.g. breast cancer: 1e-3 to 1e3) would let the largest
        # dominate the nuclear norm, so impute the standardized matrix, as SRF and MC-1 do.
        from srf.transduction import standardize

        mean, std = standardize(Xo, Xm)
        Z = soft_impute_complete(
            (np.where(Xm, Xo, 0.0) - mean) / std, Xm, random_state=random_state
        ).Z
        X_imp = np.where(Xm, Xo, Z * std + mean)

    if classifier == "ridge":
        from sklearn.linear_model import RidgeCV

        try:
            target = y_lab.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise LabcoreError(f"y must be numeric for classifier='ridge': {exc}") from None
        if not np.isfinite(target).all():
            raise LabcoreError("y has NaN or infinite values at labeled rows")
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), RidgeCV()).fit(X_imp[lab], target)
        pred = np.asarray(model.predict(X_imp), dtype=np.float64)
        return TwoStepResult(X_imp, pred, pred, time.perf_counter() - t0, None)

    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y_lab)
    if classes.size < 2:
        raise LabcoreError(
            f"need at least 2 classes among the labeled rows, found {classes.size} "
            f"({classes.tolist()})"
        )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=random_state)
    )
    model.fit(X_imp[lab], y_lab)
    scores = model.decision_function(X_imp)
    return TwoStepResult(
        X_imp, scores, model.predict(X_imp), time.perf_counter() - t0, model[-1].classes_
    )
