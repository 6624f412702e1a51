"""Proximal block coordinate descent for sparse NMF with archetypal regularization.

Notation (Behdin & Mazumder, "Sparse NMF with archetypal regularization"): X is m × n and
nonnegative (m points, n features). The unknowns are

* H (k × n): the archetypes, H ≥ 0 with at most ℓ nonzeros in total over the matrix;
* W (m × k): rows on the probability simplex (each point is a convex mix of archetypes);
* W̃ (``Wt``, k × m): rows on the simplex (each archetype is close to a convex mix of points).

The objective is

    Ψ(W, H, W̃) = ‖X − W H‖²_F + λ ‖H − W̃ X‖²_F.

Missing values (an extension, not in the paper): a boolean mask M (m × n, True = observed).
The missing entries become a fourth block Z ≥ 0 and X is replaced by the completed matrix
X̂ = M ⊙ X + (1 − M) ⊙ Z in both terms. In this module ``Z`` is always stored as the completed
matrix X̂ itself (observed entries copied from X, missing entries the current estimates), so
only its missing entries carry information. Without a mask there is no Z block.

Each block is updated by one projected (proximal) gradient step with step 1/L, L an upper
bound on the block's Lipschitz constant; such a step never increases Ψ, also for the H block
where the "projection" is onto the nonconvex set {H ≥ 0, ‖H‖₀ ≤ ℓ} (the new point minimizes
‖V − (H − ∇/L)‖ over the feasible set and H itself is feasible, so the descent lemma gives
Ψ(new) ≤ Ψ(old)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from archetypal_nmf.projections import hard_threshold_nonnegative, project_rows_to_simplex
from labcore.checks import finite_array, finite_float, positive_int
from labcore.errors import LabcoreError
from labcore.lowrank import spectral_norm_squared

__all__ = ["BCDResult", "BCDState", "continuation", "lambda_path", "prox_bcd"]

# Power iteration estimates σ_max² from below; a 1% margin makes 1/L a safe step in
# practice, and the monotone check below catches the rare remaining underestimate.
_MARGIN = 1.01
# At most this many doublings of L per block before the block is left unchanged.
_MAX_BACKTRACK = 12
# Floor for the scale of the stopping rule (Ψ₀ = 0 means the start is already optimal).
_TINY = 1e-300


@dataclass
class BCDState:
    """A point (W, H, W̃, Z) of the problem; ``Z`` is the completed matrix X̂ (None without a
    mask)."""

    W: np.ndarray
    H: np.ndarray
    Wt: np.ndarray
    Z: np.ndarray | None = None


@dataclass
class BCDResult:
    """The result of a solver.

    Attributes
    ----------
    W, H, Wt : numpy.ndarray
        The final blocks (shapes m × k, k × n, k × m).
    Z : numpy.ndarray or None
        The completed data matrix X̂ (observed entries equal X, missing entries the
        estimates); None without a mask.
    objective : list of float
        Ψ at the start and after every iteration. For :func:`continuation` it is the
        concatenation over the λ path, each value computed at its stage's λ (so it is
        monotone within a stage, not across stages).
    n_iter : int
        Iterations performed (for :func:`continuation`, summed over the path; for
        :func:`~archetypal_nmf.local_search.local_search`, accepted swaps).
    converged : bool
        Whether the stopping rule fired before the iteration limit (for continuation: in
        the last stage; for local search: no improving swap was left).
    path : list of (float, float)
        For :func:`continuation`: (λ, final Ψ at that λ) per stage; empty otherwise.
    """

    W: np.ndarray
    H: np.ndarray
    Wt: np.ndarray
    Z: np.ndarray | None
    objective: list[float]
    n_iter: int
    converged: bool
    path: list[tuple[float, float]] = field(default_factory=list)

    @property
    def state(self) -> BCDState:
        """The final point, e.g. to warm-start another solver."""
        return BCDState(self.W, self.H, self.Wt, self.Z)


@dataclass
class _Data:
    """Validated data: X with missing entries zeroed (so it is finite) and the mask."""

    X: np.ndarray
    mask: np.ndarray | None

    @property
    def missing(self) -> np.ndarray | None:
        return None if self.mask is None else ~self.mask


# --------------------------------------------------------------------------- validation


def _check_data(X: Any, mask: Any) -> _Data:
    """Check X (nonnegative and finite where observed) and the mask (boolean, X's shape)."""
    try:
        X = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"X must be numeric: {exc}") from None
    if X.ndim != 2 or X.size == 0:
        raise LabcoreError(f"X must be a nonempty 2-dimensional array, got shape {X.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise LabcoreError(
                f"mask must be a boolean array (True = observed), got dtype {mask.dtype}"
            )
        if mask.shape != X.shape:
            raise LabcoreError(f"mask has shape {mask.shape} but X has shape {X.shape}")
        if not mask.any():
            raise LabcoreError("mask has no observed entries")
        mask = mask.copy()
    observed = X if mask is None else X[mask]
    if np.isnan(observed).any():
        hint = " (pass a boolean mask with False at missing entries)" if mask is None else ""
        raise LabcoreError(f"X has NaN at observed entries{hint}")
    if np.isinf(observed).any():
        raise LabcoreError("X has infinite values at observed entries")
    if (observed < 0).any():
        raise LabcoreError("X has negative entries at observed positions; NMF needs X >= 0")
    if mask is not None:
        # Zero the missing entries so X is finite; they are never read as data.
        X[~mask] = 0.0
    return _Data(X, mask)


def _check_factors(data: _Data, W: Any, H: Any, Wt: Any) -> tuple[np.ndarray, ...]:
    """Check the shapes W (m × k), H (k × n), W̃ (k × m) against X (m × n)."""
    m, n = data.X.shape
    H = finite_array("H", H, ndim=2)
    W = finite_array("W", W, ndim=2)
    Wt = finite_array("Wt", Wt, ndim=2)
    k = H.shape[0]
    if H.shape[1] != n:
        raise LabcoreError(f"H must have n = {n} columns (X's features), got shape {H.shape}")
    if W.shape != (m, k):
        raise LabcoreError(
            f"W must have shape (m, k) = ({m}, {k}) (X has {m} rows, H has {k}), got {W.shape}"
        )
    if Wt.shape != (k, m):
        raise LabcoreError(f"Wt must have shape (k, m) = ({k}, {m}), got {Wt.shape}")
    return W.copy(), H.copy(), Wt.copy()


def _check_completion(data: _Data, Z: Any, *, required: bool) -> np.ndarray | None:
    """The completed matrix X̂ from a user Z (only its missing entries are read)."""
    if data.mask is None:
        if Z is not None:
            raise LabcoreError("Z (missing-entry estimates) is only used together with a mask")
        return None
    missing = ~data.mask
    if Z is None:
        if required:
            raise LabcoreError("Z (the missing-entry estimates) is required with a mask")
        return _initial_completion(data)
    try:
        Z = np.array(Z, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"Z must be numeric: {exc}") from None
    if Z.shape != data.X.shape:
        raise LabcoreError(f"Z has shape {Z.shape} but X has shape {data.X.shape}")
    if not np.isfinite(Z[missing]).all():
        raise LabcoreError("Z has NaN or infinite values at missing entries")
    return np.where(data.mask, data.X, Z)


def _initial_completion(data: _Data) -> np.ndarray:
    """Fill missing entries with the column means of the observed entries (the global
    observed mean for a column with none observed)."""
    mask = data.mask
    counts = mask.sum(axis=0)
    sums = np.where(mask, data.X, 0.0).sum(axis=0)
    global_mean = sums.sum() / counts.sum()
    col_means = np.divide(sums, counts, out=np.full(sums.shape, global_mean), where=counts > 0)
    return np.where(mask, data.X, col_means[None, :])


def _prepare(
    X: Any,
    W: Any,
    H: Any,
    Wt: Any,
    *,
    lam: Any,
    n_nonzero: Any,
    mask: Any,
    Z: Any,
) -> tuple[_Data, BCDState, float, int]:
    """Validate everything and move the start onto the feasible set.

    Projecting the start (W, W̃ onto the simplex rows, H onto {≥ 0, ≤ ℓ nonzeros}, Z ≥ 0)
    is what makes Ψ monotone from the first recorded value on.
    """
    data = _check_data(X, mask)
    W, H, Wt = _check_factors(data, W, H, Wt)
    lam = finite_float("lam", lam, minimum=0.0)
    n_nonzero = positive_int("n_nonzero", n_nonzero)
    Zc = _check_completion(data, Z, required=False)
    if Zc is not None:
        Zc = np.maximum(Zc, 0.0)
    state = BCDState(
        W=project_rows_to_simplex(W),
        H=hard_threshold_nonnegative(H, n_nonzero),
        Wt=project_rows_to_simplex(Wt),
        Z=Zc,
    )
    return data, state, lam, n_nonzero


# --------------------------------------------------------------------------- core


def _psi(R: np.ndarray, D: np.ndarray, lam: float) -> float:
    """Ψ from the residuals R = X̂ − WH and D = H − W̃X̂."""
    return float(np.vdot(R, R) + lam * np.vdot(D, D))


def _backtrack(
    trial: Callable[[float], tuple[Any, float]], L: float, psi_old: float, monotone: bool
) -> tuple[Any, float] | None:
    """Try the step 1/L; with ``monotone``, double L while Ψ would increase (the σ estimate
    can be slightly low). None means: keep the block as it is (Ψ cannot increase)."""
    for _ in range(_MAX_BACKTRACK):
        new, value = trial(L)
        if not monotone or value <= psi_old:
            return new, value
        L *= 2.0
    return None


def _step_h(L, *, H, G, W, Xh, WtX, lam, ell):
    """H ← hard_threshold(H − G/L, ℓ), with the refreshed products and Ψ."""
    Hn = hard_threshold_nonnegative(H - G / L, ell)
    WHn = W @ Hn
    Rn, Dn = Xh - WHn, Hn - WtX
    return (Hn, WHn, Rn, Dn), _psi(Rn, Dn, lam)


def _step_w(L, *, W, G, H, Xh, D, lam):
    """W ← simplex rows of (W − G/L)."""
    Wn = project_rows_to_simplex(W - G / L)
    WHn = Wn @ H
    Rn = Xh - WHn
    return (Wn, WHn, Rn), _psi(Rn, D, lam)


def _step_wt(L, *, Wt, G, H, Xh, R, lam):
    """W̃ ← simplex rows of (W̃ − G/L)."""
    Wtn = project_rows_to_simplex(Wt - G / L)
    WtXn = Wtn @ Xh
    Dn = H - WtXn
    return (Wtn, WtXn, Dn), _psi(R, Dn, lam)


def _step_z(L, *, Z, G, missing, WH, Wt, H, lam):
    """Missing entries of X̂ ← max(0, Z − G/L); observed entries are untouched."""
    Zn = Z.copy()
    Zn[missing] = np.maximum(Z[missing] - G[missing] / L, 0.0)
    Rn = Zn - WH
    WtXn = Wt @ Zn
    Dn = H - WtXn
    return (Zn, Rn, WtXn, Dn), _psi(Rn, Dn, lam)


def _run(
    data: _Data,
    state: BCDState,
    lam: float,
    n_nonzero: int,
    max_iter: int,
    tol: float,
    monotone: bool,
) -> BCDResult:
    """prox_bcd on validated, feasible input."""
    W, H, Wt = state.W.copy(), state.H.copy(), state.Wt.copy()
    Z = None if state.Z is None else state.Z.copy()
    missing = data.missing
    Xh = data.X if Z is None else Z

    # Products kept up to date after every block: WH, W̃X̂ and the two residuals.
    WH = W @ H
    WtX = Wt @ Xh
    R = Xh - WH
    D = H - WtX
    psi = _psi(R, D, lam)
    history = [psi]
    scale = max(psi, _TINY)
    # Warm-start vectors for the power iterations: the blocks change little per iteration.
    vecs: dict[str, np.ndarray | None] = {"W": None, "H": None, "X": None, "Wt": None}
    sigma_x: float | None = None  # σ_max(X̂)², valid until Z changes
    converged = False
    n_iter = 0

    for _ in range(max_iter):
        psi_prev = psi

        # (a) H: ∇ = −2Wᵀ R + 2λ D, L = 2σ_max(W)² + 2λ; hard-threshold to ℓ nonzeros.
        s, vecs["W"] = spectral_norm_squared(W, v0=vecs["W"])
        L = 2.0 * _MARGIN * s + 2.0 * lam
        if L > 0.0:
            G = -2.0 * (W.T @ R) + 2.0 * lam * D
            trial = partial(_step_h, H=H, G=G, W=W, Xh=Xh, WtX=WtX, lam=lam, ell=n_nonzero)
            out = _backtrack(trial, L, psi, monotone)
            if out is not None:
                (H, WH, R, D), psi = out

        # (b) W: ∇ = −2 R Hᵀ, L = 2σ_max(H)²; a zero H gives a zero gradient (skip).
        s, vecs["H"] = spectral_norm_squared(H, v0=vecs["H"])
        L = 2.0 * _MARGIN * s
        if L > 0.0:
            G = -2.0 * (R @ H.T)
            trial = partial(_step_w, W=W, G=G, H=H, Xh=Xh, D=D, lam=lam)
            out = _backtrack(trial, L, psi, monotone)
            if out is not None:
                (W, WH, R), psi = out

        # (c) W̃: ∇ = −2λ D X̂ᵀ, L = 2λσ_max(X̂)²; W̃ does not enter Ψ when λ = 0.
        if lam > 0.0:
            if sigma_x is None:
                sigma_x, vecs["X"] = spectral_norm_squared(Xh, v0=vecs["X"])
            L = 2.0 * lam * _MARGIN * sigma_x
            if L > 0.0:
                G = -2.0 * lam * (D @ Xh.T)
                trial = partial(_step_wt, Wt=Wt, G=G, H=H, Xh=Xh, R=R, lam=lam)
                out = _backtrack(trial, L, psi, monotone)
                if out is not None:
                    (Wt, WtX, D), psi = out

        # (d) Z (missing entries only): ∇ = 2R − 2λ W̃ᵀ D, L = 2 + 2λσ_max(W̃)²; Z ≥ 0.
        if Z is not None and missing.any():
            s = 0.0
            if lam > 0.0:
                s, vecs["Wt"] = spectral_norm_squared(Wt, v0=vecs["Wt"])
            L = 2.0 + 2.0 * lam * _MARGIN * s
            G = 2.0 * R
            if lam > 0.0:
                G -= 2.0 * lam * (Wt.T @ D)
            trial = partial(_step_z, Z=Z, G=G, missing=missing, WH=WH, Wt=Wt, H=H, lam=lam)
            out = _backtrack(trial, L, psi, monotone)
            if out is not None:
                (Z, R, WtX, D), psi = out
                Xh = Z
                sigma_x = None

        history.append(psi)
        n_iter += 1
        # The official code stops when the decrease is below tol · Ψ₀.
        if psi_prev - psi < tol * scale:
            converged = True
            break

    return BCDResult(W=W, H=H, Wt=Wt, Z=Z, objective=history, n_iter=n_iter, converged=converged)


# --------------------------------------------------------------------------- public API


def prox_bcd(
    X: Any,
    W: Any,
    H: Any,
    Wt: Any,
    *,
    lam: float,
    n_nonzero: int,
    mask: Any = None,
    Z: Any = None,
    max_iter: int = 150,
    tol: float = 1e-4,
    monotone: bool = True,
) -> BCDResult:
    """Minimize Ψ by proximal block coordinate descent from (W, H, W̃[, Z]).

    One iteration updates, in order, H (gradient step then hard thresholding to ℓ
    nonzeros), W and W̃ (gradient step then projection of each row onto the simplex) and,
    with a mask, the missing entries Z (gradient step then clipping at 0). Every step is
    1/L with L a (safeguarded) Lipschitz bound of the block, so Ψ does not increase.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Nonnegative data. Entries where ``mask`` is False may be anything (NaN included).
    W : array_like, shape (m, k)
        Start for W; rows are projected onto the simplex first.
    H : array_like, shape (k, n)
        Start for the archetypes; projected onto {H ≥ 0, ≤ ℓ nonzeros} first.
    Wt : array_like, shape (k, m)
        Start for W̃; rows are projected onto the simplex first.
    lam : float
        λ ≥ 0, the weight of the archetypal term.
    n_nonzero : int
        ℓ ≥ 1, the total number of nonzeros allowed in H.
    mask : array_like of bool, shape (m, n), optional
        True where X is observed. Without it every entry is observed.
    Z : array_like, shape (m, n), optional
        Start for the missing entries (only those entries are read). Default: the column
        means of the observed entries.
    max_iter : int
        Iteration limit (≥ 0).
    tol : float
        Stop when the decrease of Ψ over one iteration is below ``tol · Ψ₀``.
    monotone : bool
        If True, a block step that would increase Ψ (a low σ estimate) is retried with L
        doubled, and the block is left unchanged if that keeps failing.

    Returns
    -------
    BCDResult
        The final blocks, Ψ per iteration (with the start), the iteration count and
        whether the stopping rule fired.

    Raises
    ------
    labcore.errors.LabcoreError
        On inconsistent shapes, a non-boolean mask, NaN or negative values at observed
        entries of X, λ < 0 or ℓ < 1.
    """
    data, state, lam, n_nonzero = _prepare(
        X, W, H, Wt, lam=lam, n_nonzero=n_nonzero, mask=mask, Z=Z
    )
    max_iter = positive_int("max_iter", max_iter, minimum=0)
    tol = finite_float("tol", tol, minimum=0.0)
    return _run(data, state, lam, n_nonzero, max_iter, tol, bool(monotone))


def lambda_path(lam: float, lam_max: float, n_lams: int) -> list[float]:
    """The λ values of :func:`continuation`: log-spaced from ``lam_max`` down to ``lam``.

    A single stage when ``lam >= lam_max`` or ``n_lams == 1``; for ``lam == 0``, a log path
    down to ``lam_max · 1e-3`` followed by a final λ = 0 stage (``n_lams`` values in all).

    >>> lambda_path(1.0, 100.0, 3)
    [100.0, 10.0, 1.0]
    >>> lambda_path(0.0, 10.0, 3)
    [10.0, 0.01, 0.0]
    """
    lam = finite_float("lam", lam, minimum=0.0)
    lam_max = finite_float("lam_max", lam_max, minimum=0.0, strict=True)
    n_lams = positive_int("n_lams", n_lams)
    if n_lams == 1 or lam >= lam_max:
        return [lam]
    if lam == 0.0:
        head = np.geomspace(lam_max, lam_max * 1e-3, n_lams - 1)
        return [float(v) for v in head] + [0.0]
    values = [float(v) for v in np.geomspace(lam_max, lam, n_lams)]
    values[-1] = lam  # exactly the requested λ, not its floating-point reconstruction
    return values


def continuation(
    X: Any,
    W: Any,
    H: Any,
    Wt: Any,
    *,
    lam: float,
    n_nonzero: int,
    lam_max: float = 30.0,
    n_lams: int = 8,
    mask: Any = None,
    Z: Any = None,
    max_iter: int = 150,
    tol: float = 1e-4,
) -> BCDResult:
    """:func:`prox_bcd` along a decreasing λ path ending at ``lam``, warm-starting each stage
    from the previous one (a large λ first pulls the archetypes towards the data hull).

    Parameters are those of :func:`prox_bcd`, plus ``lam_max`` (the first λ) and ``n_lams``
    (the number of stages; see :func:`lambda_path`). ``max_iter`` and ``tol`` apply per stage.

    Returns
    -------
    BCDResult
        The last stage's blocks; ``objective`` concatenates the stages' histories (each at
        its own λ), ``n_iter`` sums them, ``converged`` is the last stage's, and ``path``
        lists (λ, final Ψ) per stage.
    """
    data, state, lam, n_nonzero = _prepare(
        X, W, H, Wt, lam=lam, n_nonzero=n_nonzero, mask=mask, Z=Z
    )
    lams = lambda_path(lam, lam_max, n_lams)
    max_iter = positive_int("max_iter", max_iter, minimum=0)
    tol = finite_float("tol", tol, minimum=0.0)
    history: list[float] = []
    path: list[tuple[float, float]] = []
    n_iter = 0
    result = None
    for stage_lam in lams:
        result = _run(data, state, stage_lam, n_nonzero, max_iter, tol, True)
        state = result.state
        history.extend(result.objective)
        path.append((stage_lam, result.objective[-1]))
        n_iter += result.n_iter
    assert result is not None
    return BCDResult(
        W=result.W,
        H=result.H,
        Wt=result.Wt,
        Z=result.Z,
        objective=history,
        n_iter=n_iter,
        converged=result.converged,
        path=path,
    )
