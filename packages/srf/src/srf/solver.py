"""Matrix completion by minimizing a smoothed rank function (SRF).

With singular values σ_i of Z, the smoothed rank is

    R_δ(Z) = Σ_i (1 − exp(−σ_i² / (2δ²))),

which tends to rank(Z) as δ → 0 (Malek-Mohammadi, Babaie-Zadeh et al.; used for transductive
learning by Esmaeili, Behdin et al. 2018, "Transduction with matrix completion using smoothed
rank function"). R_δ is minimized over a convex feasible set C (typically: the observed entries
equal their values) by projected gradient steps while δ is decreased geometrically (graduated
non-convexity: for large δ, R_δ is smooth and nearly convex; each level warm-starts the next)::

    Z ← project(Z0);  δ ← δ0 (default: the largest singular value of Z)
    while δ > δ_min:
        repeat `inner` times:
            SVD Z = U diag(σ) Vᵀ
            σ ← σ · (1 − μ·exp(−σ²/(2δ²)))      # gradient step scaled by δ² (SL0 convention)
            Z ← project(U diag(σ) Vᵀ)
        δ ← c·δ
        stop early if ‖Z − Z_prev_level‖_F / ‖Z‖_F < tol   (change over one δ level)

The gradient of R_δ is Σ_i (σ_i/δ²) e^{−σ_i²/2δ²} u_i v_iᵀ, so the step μδ²·∇R_δ shrinks
singular values well below δ by the factor (1 − μ) and leaves those well above δ untouched.
The derivative of t ↦ 1 − e^{−t²/2δ²} is 1/δ²-Lipschitz, hence so is ∇R_δ; a projected step
of size μδ² ≤ δ² therefore never increases R_δ within a level (descent lemma).
The defaults (μ = 0.5, c = 0.9, ``inner`` = 8, δ_min = 1e-3·δ0) are a reconstruction: the
papers describe the scheme but the exact constants used there are not reproduced here.
μ = 1 zeros small singular values outright in one step (a hard, rank-revealing step that is
more prone to lock in a wrong rank early); μ = 0.5 shrinks them geometrically instead.

Efficient SVD path. The update can be written

    Z_new = (1 − μ)Z + μ Σ_i σ_i (1 − e^{−σ_i²/2δ²}) u_i v_iᵀ,

and a term with σ_i ≪ δ contributes about σ_i³/(2δ²). With only the top-k triplets the
neglected part has spectral norm ≤ μ·σ_{k+1}·(1 − e^{−σ_{k+1}²/2δ²}) ≤ μ·σ_{k+1}·r²/2 when
σ_{k+1} < r·δ (r = ``trunc_ratio``). ``svd="truncated"`` therefore computes a randomized
top-k SVD and doubles k until the smallest computed singular value is below r·δ (falling back
to the full SVD once k reaches min(m, n)/2); k is carried over between iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.extmath import randomized_svd

from labcore.checks import choice, finite_array, finite_float, observed_matrix, positive_int
from labcore.errors import LabcoreError
from labcore.lowrank import check_random_state

__all__ = ["SRFResult", "observed_projection", "smoothed_rank", "srf_complete", "srf_solve"]

_TINY = np.finfo(np.float64).tiny
_K_INIT = 10  # initial number of singular triplets on the truncated path
_AUTO_TRUNCATED_ABOVE = 200  # "auto" uses the truncated path when min(m, n) exceeds this


def _smoothed_terms(s: np.ndarray, delta: float) -> np.ndarray:
    """1 − exp(−σ²/(2δ²)) per singular value, accurate for small σ/δ."""
    return -np.expm1(-(s * s) / (2.0 * delta * delta))


def smoothed_rank(Z_or_singular_values: Any, delta: float) -> float:
    """Smoothed rank R_δ = Σ_i (1 − exp(−σ_i²/(2δ²))).

    Parameters
    ----------
    Z_or_singular_values : array_like
        A 2-D matrix (its singular values are computed) or a 1-D array of singular values.
    delta : float
        Smoothing width δ > 0. R_δ tends to the rank as δ → 0 and to 0 as δ → ∞.

    Returns
    -------
    float
        The smoothed rank, in [0, min(m, n)].

    Examples
    --------
    >>> round(smoothed_rank(np.diag([3.0, 2.0, 0.0]), 1e-3), 12)
    2.0
    >>> round(smoothed_rank(np.array([1.0]), 1.0), 6)  # 1 − e^{−1/2}
    0.393469
    """
    delta = finite_float("delta", delta, minimum=0.0, strict=True)
    arr = np.asarray(Z_or_singular_values, dtype=np.float64)
    if arr.ndim == 2:
        arr = finite_array("Z", arr, ndim=2)
        s = np.linalg.svd(arr, compute_uv=False)
    elif arr.ndim == 1:
        s = finite_array("singular values", arr, ndim=1)
    else:
        raise LabcoreError(
            f"smoothed_rank needs a 2-D matrix or a 1-D array of singular values, "
            f"got shape {arr.shape}"
        )
    return float(_smoothed_terms(s, delta).sum())


def _check_observed(values: Any, mask: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    return observed_matrix(values, mask, name=name)


def observed_projection(values: Any, mask: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Projection onto {Z : Z[mask] = values[mask]}.

    Parameters
    ----------
    values : array_like, shape (m, n)
        The data; entries outside ``mask`` are ignored (they may be NaN).
    mask : array_like of bool, shape (m, n)
        True where an entry is observed.

    Returns
    -------
    callable
        ``project(Z)``: a new array equal to ``Z`` with the observed entries replaced by their
        values (``Z`` itself is not modified).

    Examples
    --------
    >>> p = observed_projection(np.array([[1.0, np.nan]]), np.array([[True, False]]))
    >>> p(np.array([[5.0, 6.0]])).tolist()
    [[1.0, 6.0]]
    """
    Y, m = _check_observed(values, mask, "values")
    observed = Y[m]
    shape = Y.shape

    def project(Z: np.ndarray) -> np.ndarray:
        out = np.array(Z, dtype=np.float64, copy=True)
        if out.shape != shape:
            raise LabcoreError(f"project expects shape {shape}, got {out.shape}")
        out[m] = observed  # a mask assignment: works for any memory order
        return out

    return project


@dataclass(frozen=True)
class SRFResult:
    """Outcome of :func:`srf_solve`.

    Attributes
    ----------
    Z : ndarray, shape (m, n)
        The final (projected, hence feasible) iterate.
    n_levels : int
        Number of δ levels run.
    n_svd : int
        Total number of SVDs computed: one of ``project(Z0)``, then one per step (on the
        truncated path, attempts redone with a larger k count too).
    converged : bool
        True when the loop stopped because the relative change over one δ level fell below
        ``tol``; False when it ran to δ_min or ``max_levels`` first.
    deltas : ndarray, shape (n_levels,)
        δ of each level.
    effective_ranks : ndarray of int, shape (n_levels,)
        Number of singular values > δ of Z at the end of each level.
    smoothed_ranks : ndarray, shape (n_levels,)
        R_δ(Z) at the end of each level (on the truncated path the neglected tail is
        estimated from ‖Z‖_F, an upper bound since 1 − e^{−x} ≤ x).
    changes : ndarray, shape (n_levels,)
        ‖Z − Z_prev_level‖_F / ‖Z‖_F over each level.
    """

    Z: np.ndarray
    n_levels: int
    n_svd: int
    converged: bool
    deltas: np.ndarray
    effective_ranks: np.ndarray
    smoothed_ranks: np.ndarray
    changes: np.ndarray


class _SVD:
    """SVD with the adaptive top-k path; counts calls and carries k over."""

    def __init__(self, shape: tuple[int, int], method: str, trunc_ratio: float, rng):
        self.p = min(shape)
        self.method = method
        self.trunc_ratio = trunc_ratio
        self.rng = rng
        self.k_init = min(_K_INIT, self.p)
        self.k = self.k_init
        self.count = 0

    def full(self, Z: np.ndarray):
        self.count += 1
        U, s, Vt = np.linalg.svd(Z, full_matrices=False)
        return U, s, Vt, True

    def __call__(self, Z: np.ndarray, delta: float | None):
        """Triplets with every σ ≥ trunc_ratio·δ (all of them when the flag is True).

        ``delta=None`` (δ0 not yet known) uses the largest singular value as δ.
        """
        if self.method == "full":
            return self.full(Z)
        k = self.k
        while True:
            if 2 * k >= self.p:
                U, s, Vt, exact = self.full(Z)
                break
            self.count += 1
            U, s, Vt = randomized_svd(Z, k, random_state=self.rng)
            threshold = self.trunc_ratio * (s[0] if delta is None else delta)
            if s[-1] < threshold or s[0] == 0.0:
                exact = False
                break
            k = min(2 * k, self.p)
        threshold = self.trunc_ratio * (s[0] if delta is None else delta)
        needed = int(np.count_nonzero(s >= threshold))
        # Carry k over with some slack, shrinking it again once fewer triplets are needed.
        self.k = min(self.p, max(self.k_init, needed + needed // 4 + 5))
        return U, s, Vt, exact


def srf_solve(
    Z0: Any,
    *,
    project: Callable[[np.ndarray], np.ndarray],
    mu: float = 0.5,
    c: float = 0.9,
    inner: int = 8,
    delta0: float | None = None,
    delta_min_ratio: float = 1e-3,
    tol: float = 1e-7,
    max_levels: int = 500,
    svd: str = "auto",
    trunc_ratio: float = 0.1,
    random_state: Any = None,
    callback: Callable[[int, float, np.ndarray], Any] | None = None,
) -> SRFResult:
    """Minimize the smoothed rank over a convex set by graduated non-convexity.

    Parameters
    ----------
    Z0 : array_like, shape (m, n)
        Finite starting point (typically the observed entries with zeros elsewhere);
        ``project`` is applied to it first.
    project : callable
        Euclidean projection onto the feasible set C: maps an (m, n) array to a new (m, n)
        array.
    mu : float, default 0.5
        Step size in (0, 1] (the step on R_δ is μδ², the SL0 convention): singular values far
        below δ are multiplied by about 1 − μ per step. μ = 1 zeros them outright.
    c : float, default 0.9
        Factor in (0, 1) by which δ decreases between levels.
    inner : int, default 8
        Projected gradient steps per δ level.
    delta0 : float, optional
        Initial δ > 0; by default the largest singular value of ``project(Z0)``.
    delta_min_ratio : float, default 1e-3
        Stop once δ ≤ delta_min_ratio·δ0 (in [0, 1); 0 leaves only ``tol`` and
        ``max_levels``).
    tol : float, default 1e-7
        Stop (converged) once ‖Z − Z_prev_level‖_F / ‖Z‖_F < tol over one level.
    max_levels : int, default 500
        Most δ levels to run.
    svd : {"auto", "full", "truncated"}, default "auto"
        "full": ``np.linalg.svd``; "truncated": randomized top-k SVD with adaptive k (see the
        module docstring); "auto": truncated when min(m, n) > 200, else full.
    trunc_ratio : float, default 0.1
        The truncated path enlarges k until the smallest computed singular value is below
        trunc_ratio·δ; the neglected part of a step then has spectral norm at most
        μ·σ_{k+1}·trunc_ratio²/2.
    random_state : int, numpy RandomState or Generator, optional
        Seed of the randomized SVD (numpy's global random state is never used).
    callback : callable, optional
        ``callback(level, delta, Z)`` after each level (``level`` counts from 0).

    Returns
    -------
    SRFResult
    """
    Z0 = finite_array("Z0", Z0, ndim=2)
    if not callable(project):
        raise LabcoreError("project must be callable")
    mu = finite_float("mu", mu)
    if not 0.0 < mu <= 1.0:
        raise LabcoreError(f"mu must be in (0, 1], got {mu}")
    c = finite_float("c", c)
    if not 0.0 < c < 1.0:
        raise LabcoreError(f"c must be in (0, 1), got {c}")
    inner = positive_int("inner", inner)
    if delta0 is not None:
        delta0 = finite_float("delta0", delta0, minimum=0.0, strict=True)
    delta_min_ratio = finite_float("delta_min_ratio", delta_min_ratio, minimum=0.0)
    if delta_min_ratio >= 1.0:
        raise LabcoreError(f"delta_min_ratio must be in [0, 1), got {delta_min_ratio}")
    tol = finite_float("tol", tol, minimum=0.0)
    max_levels = positive_int("max_levels", max_levels)
    svd = choice("svd", svd, ("auto", "full", "truncated"))
    trunc_ratio = finite_float("trunc_ratio", trunc_ratio, minimum=0.0, strict=True)
    if trunc_ratio > 1.0:
        raise LabcoreError(f"trunc_ratio must be in (0, 1], got {trunc_ratio}")
    if callback is not None and not callable(callback):
        raise LabcoreError("callback must be callable")

    shape = Z0.shape

    def proj(A: np.ndarray) -> np.ndarray:
        try:
            out = np.asarray(project(A), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise LabcoreError(f"project must return a numeric array: {exc}") from None
        if out.shape != shape:
            raise LabcoreError(f"project must return an array of shape {shape}, got {out.shape}")
        if not np.isfinite(out).all():
            raise LabcoreError("project returned NaN or infinite values")
        return out

    if svd == "auto":
        svd = "truncated" if min(shape) > _AUTO_TRUNCATED_ABOVE else "full"
    decompose = _SVD(shape, svd, trunc_ratio, check_random_state(random_state))

    Z = proj(Z0)
    U, s, Vt, exact = decompose(Z, delta0)
    empty = np.empty(0)
    if s[0] == 0.0:  # Z = 0 is feasible: rank 0, nothing to do
        return SRFResult(Z, 0, decompose.count, True, empty, empty.astype(int), empty, empty)
    delta = float(s[0]) if delta0 is None else delta0
    delta_min = delta_min_ratio * delta

    deltas: list[float] = []
    eff_ranks: list[int] = []
    smooth_ranks: list[float] = []
    changes: list[float] = []
    converged = False
    for level in range(max_levels):
        Z_start = Z
        two_d2 = 2.0 * delta * delta
        for step in range(inner):
            # Z_new = (1 − μ)Z + μ Σ σ(1 − e^{−σ²/2δ²}) u vᵀ  (exact with all triplets).
            f = s * -np.expm1(-(s * s) / two_d2)
            Z = proj((1.0 - mu) * Z + mu * ((U * f) @ Vt))
            # The last SVD of a level serves the record below and the next level's first step.
            last = step == inner - 1
            U, s, Vt, exact = decompose(Z, c * delta if last else delta)
        norm = float(np.linalg.norm(Z))
        change = float(np.linalg.norm(Z - Z_start)) / max(norm, _TINY)
        r = float(_smoothed_terms(s, delta).sum())
        if not exact:  # tail Σ_{i>k} σ_i², from ‖Z‖_F; 1 − e^{−x} ≤ x
            tail = max(norm * norm - float(s @ s), 0.0)
            r += tail / two_d2
        deltas.append(delta)
        eff_ranks.append(int(np.count_nonzero(s > delta)))
        smooth_ranks.append(r)
        changes.append(change)
        if callback is not None:
            callback(level, delta, Z)
        if change < tol:
            converged = True
            break
        delta *= c
        if delta <= delta_min:
            break

    return SRFResult(
        Z=Z,
        n_levels=len(deltas),
        n_svd=decompose.count,
        converged=converged,
        deltas=np.asarray(deltas),
        effective_ranks=np.asarray(eff_ranks, dtype=int),
        smoothed_ranks=np.asarray(smooth_ranks),
        changes=np.asarray(changes),
    )


def srf_complete(Y: Any, mask: Any, **kwargs: Any) -> SRFResult:
    """Complete ``Y`` from its entries at ``mask`` by :func:`srf_solve`.

    Parameters
    ----------
    Y : array_like, shape (m, n)
        The data; entries outside ``mask`` are ignored (they may be NaN).
    mask : array_like of bool, shape (m, n)
        True where an entry is observed.
    **kwargs
        Passed on to :func:`srf_solve` (everything but ``project``).

    Returns
    -------
    SRFResult
        ``Z`` keeps the observed entries exactly. Rows (or columns) with no observed entry
        cannot be recovered from the low-rank assumption alone: the iteration never moves
        them away from their start, so they come out as zeros.
    """
    if "project" in kwargs:
        raise LabcoreError("srf_complete builds project itself; use srf_solve for your own")
    Y, m = _check_observed(Y, mask, "Y")
    Z0 = np.where(m, Y, 0.0)
    return srf_solve(Z0, project=observed_projection(Y, m), **kwargs)
