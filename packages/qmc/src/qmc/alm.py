"""QMC-BIF: trace-norm maximum likelihood by bilinear factorization and the augmented
Lagrangian method.

The convex problem (Esmaeili, Behdin et al. 2018; our reconstruction, see the README) is

    min_Z  F(Z) = f_Ω(Z) + λ‖Z‖_*,      f_Ω(Z) = −Σ_{(i,j)∈Ω} log P(Y_ij | Z_ij).

With ‖Z‖_* = min_{Z=UVᵀ} ½(‖U‖² + ‖V‖²) it becomes min f_Ω(X) + λ/2(‖U‖² + ‖V‖²)
s.t. X = UVᵀ, whose augmented Lagrangian

    𝓛_μ = f_Ω(X) + λ/2(‖U‖² + ‖V‖²) + ⟨Λ, X − UVᵀ⟩ + μ/2‖X − UVᵀ‖²

is minimized block by block:

1. X-step, entrywise. On Ω a 1-D strictly convex problem
   min_x f(x) + μ/2 (x − (UVᵀ)_ij + Λ_ij/μ)², solved by safeguarded Newton (vectorized over Ω).
   Off Ω, X = UVᵀ − Λ/μ in closed form.
2. U-step U = (μX + Λ)V (μVᵀV + λI)⁻¹ and V-step V = (μX + Λ)ᵀU (μUᵀU + λI)⁻¹: ridge
   least squares.
3. Λ ← Λ + μ(X − UVᵀ); μ is adapted by residual balancing (the paper's schedule is not
   known to us; see the README).

Scale. Off Ω, μX + Λ = μUVᵀ exactly after the X-step, so the U- and V-steps need only
μ·(low rank) + (sparse on Ω): nothing m×n is ever formed, and a step costs O(|Ω|r + (m+n)r²).
The off-Ω multiplier equals μ_{k−1}(U_{k−1}V_{k−1}ᵀ − U_kV_kᵀ), so it vanishes with the dual
residual; the primal residual ‖X_Ω − (UVᵀ)_Ω‖ covers Ω.

Global optimality. A stationary point with rank(UVᵀ) < r is a global minimizer of F
(Burer–Monteiro). :func:`optimality_certificate` checks it directly: with G = ∇f_Ω(UVᵀ),
optimality is ‖G‖₂ ≤ λ and ⟨G, Z⟩ = −λ‖Z‖_*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError
from qmc.likelihood import OrdinalLikelihood


@dataclass(frozen=True)
class ObservedLevels:
    """The observed entries in coordinate form: rows, cols, integer levels, matrix shape."""

    rows: np.ndarray
    cols: np.ndarray
    levels: np.ndarray
    shape: tuple[int, int]

    @property
    def n_observed(self) -> int:
        return int(self.rows.size)

    def sparse(self, values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values, (self.rows, self.cols)), shape=self.shape)

    def sparse_pair(self) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]:
        """CSR patterns of the matrix and its transpose with the permutations that put values
        given in (rows, cols) order into them: refilling ``.data`` is then a gather, not a
        COO→CSR conversion, in every iteration."""
        order = np.lexsort((self.cols, self.rows))
        A = sp.csr_matrix(
            (np.zeros(self.n_observed), (self.rows[order], self.cols[order])), shape=self.shape
        )
        order_t = np.lexsort((self.rows, self.cols))
        m, n = self.shape
        At = sp.csr_matrix(
            (np.zeros(self.n_observed), (self.cols[order_t], self.rows[order_t])), shape=(n, m)
        )
        return A, order, At, order_t

    def subset(self, keep: np.ndarray) -> ObservedLevels:
        return ObservedLevels(self.rows[keep], self.cols[keep], self.levels[keep], self.shape)

    @classmethod
    def from_matrix(cls, Y, mask) -> ObservedLevels:
        """From a level matrix Y (integers 1..L where ``mask`` is true; anything, NaN included,
        elsewhere) and a boolean mask of the same shape."""
        Y = np.asarray(Y)
        if Y.ndim != 2:
            raise LabcoreError(f"Y must be a 2-D matrix of levels, got shape {Y.shape}")
        mask = np.asarray(mask)
        if mask.shape != Y.shape:
            raise LabcoreError(f"mask has shape {mask.shape}, Y has shape {Y.shape}")
        if mask.dtype != bool:
            if not np.isin(mask, (0, 1)).all():
                raise LabcoreError("mask must be boolean (true where Y is observed)")
            mask = mask.astype(bool)
        if not mask.any():
            raise LabcoreError("mask is empty: no observed entries to fit")
        rows, cols = np.nonzero(mask)
        values = Y[rows, cols]
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise LabcoreError("Y must hold numeric levels at observed entries") from None
        if not np.isfinite(values).all():
            raise LabcoreError("Y contains NaN or infinite values at observed entries")
        if np.any(values != np.round(values)):
            raise LabcoreError("Y must hold integer levels 1..L at observed entries")
        if values.min() < 1:
            raise LabcoreError(f"levels must be >= 1, found {values.min():g}")
        return cls(rows, cols, values.astype(np.int64), (int(Y.shape[0]), int(Y.shape[1])))


@dataclass(frozen=True)
class ALMConfig:
    """Settings of the augmented Lagrangian solver.

    mu0 : initial penalty, relative to the likelihood curvature bound (μ₀ = mu0·sup f'').
    kappa, balance : residual balancing (Boyd et al. 2011, §3.4.1): μ ← κμ when the primal
        residual exceeds ``balance`` times the dual residual μ‖ΔUVᵀ‖, μ ← μ/κ in the opposite
        case; ``kappa=1`` keeps μ fixed.
    mu_min, mu_max : bounds on μ, relative to sup f''.
    newton_max_iter : Newton steps per X-step. The X-step may be inexact early on: it is
        warm-started from the previous X, so the stragglers finish in later iterations, and the
        residuals (hence the stopping test) see the inexactness.
    tol : stop when the relative primal residual ‖X_Ω − (UVᵀ)_Ω‖/max(‖X_Ω‖, 1) and the
        relative dual residual ‖UVᵀ − U₋V₋ᵀ‖/max(‖UVᵀ‖, 1) both fall below it.
    """

    mu0: float = 0.1
    kappa: float = 2.0
    balance: float = 10.0
    mu_min: float = 1e-4
    mu_max: float = 1e4
    max_iter: int = 1000
    tol: float = 1e-5
    newton_max_iter: int = 10
    newton_tol: float = 1e-10

    def __post_init__(self) -> None:
        finite_float("mu0", self.mu0, minimum=0.0, strict=True)
        finite_float("kappa", self.kappa, minimum=1.0)
        finite_float("balance", self.balance, minimum=1.0)
        finite_float("mu_min", self.mu_min, minimum=0.0, strict=True)
        if not self.mu_min <= self.mu0 <= self.mu_max:
            raise LabcoreError(
                f"need mu_min <= mu0 <= mu_max, got {self.mu_min}, {self.mu0}, {self.mu_max}"
            )
        positive_int("max_iter", self.max_iter)
        finite_float("tol", self.tol, minimum=0.0, strict=True)
        positive_int("newton_max_iter", self.newton_max_iter)
        finite_float("newton_tol", self.newton_tol, minimum=0.0, strict=True)


@dataclass
class ALMState:
    """Iterate of the solver; passed back in for warm starts along a λ path."""

    U: np.ndarray
    V: np.ndarray
    X_obs: np.ndarray
    multiplier: np.ndarray  # Λ on Ω

    @classmethod
    def from_factors(cls, U: np.ndarray, V: np.ndarray, data: ObservedLevels) -> ALMState:
        """A start at X = UVᵀ with zero multipliers (e.g. factors fitted on other entries)."""
        x_obs = entries(U, V, data.rows, data.cols)
        return cls(U=U.copy(), V=V.copy(), X_obs=x_obs, multiplier=np.zeros_like(x_obs))


@dataclass(frozen=True)
class ALMResult:
    state: ALMState
    lam: float
    n_iter: int
    converged: bool
    primal_residual: float
    dual_residual: float
    objective: float  # F(UVᵀ) = f_Ω(UVᵀ) + λ‖UVᵀ‖_*
    objective_history: np.ndarray
    time_history: np.ndarray  # seconds since the start, per iteration
    time_s: float


def entries(U: np.ndarray, V: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(UVᵀ)_ij at the given coordinates, without forming UVᵀ."""
    return np.einsum("ij,ij->i", U[rows], V[cols])


def nuclear_norm_of_product(U: np.ndarray, V: np.ndarray) -> float:
    """‖UVᵀ‖_* through the r×r core R_U R_Vᵀ of the thin QR factors."""
    r_u = np.linalg.qr(U, mode="r")
    r_v = np.linalg.qr(V, mode="r")
    return float(np.linalg.svd(r_u @ r_v.T, compute_uv=False).sum())


def product_norm(U: np.ndarray, V: np.ndarray) -> float:
    """‖UVᵀ‖_F = ‖(UᵀU)^{½}(VᵀV)^{½}‖ computed as sqrt(tr(UᵀU VᵀV))."""
    return float(np.sqrt(max(np.sum((U.T @ U) * (V.T @ V)), 0.0)))


def difference_norm(U1, V1, U0, V0) -> float:
    """‖U1V1ᵀ − U0V0ᵀ‖_F through the stacked factors [U1, −U0][V1, V0]ᵀ."""
    return product_norm(np.hstack([U1, -U0]), np.hstack([V1, V0]))


def objective(
    U: np.ndarray, V: np.ndarray, data: ObservedLevels, model: OrdinalLikelihood, lam: float
) -> float:
    z = entries(U, V, data.rows, data.cols)
    return model.nll(z, data.levels) + lam * nuclear_norm_of_product(U, V)


def prox_entries(
    model: OrdinalLikelihood,
    levels: np.ndarray,
    centre: np.ndarray,
    mu: float,
    start: np.ndarray,
    *,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> np.ndarray:
    """argmin_x f(x) + μ/2 (x − c)² for every entry, vectorized.

    f is convex, so the root of φ'(x) = f'(x) + μ(x − c) lies between c and c − f'(c)/μ.
    Newton steps are kept inside this shrinking bracket and replaced by bisection when they
    leave it or do not halve the step (the safeguard of ``rtsafe``, Press et al.): plain Newton
    can cycle where f'' changes fast across a bin edge."""
    _, g_c, _ = model.nll_derivatives(centre, levels, value=False)
    other = centre - g_c / mu
    lo = np.minimum(centre, other)
    hi = np.maximum(centre, other)
    x = np.clip(start, lo, hi)
    dx_old = hi - lo
    active = np.arange(x.size)
    for _ in range(max_iter):
        xa, la, ha, ca = x[active], lo[active], hi[active], centre[active]
        _, g, h = model.nll_derivatives(xa, levels[active], value=False)
        grad = g + mu * (xa - ca)
        curv = h + mu
        pos = grad > 0
        ha = np.where(pos, xa, ha)
        la = np.where(pos, la, xa)
        newton = xa - grad / curv
        done = np.abs(newton - xa) <= tol * (1.0 + np.abs(xa))
        slow = np.abs(2.0 * grad) > np.abs(dx_old[active] * curv)
        bisect = ~done & ((newton < la) | (newton > ha) | slow)
        new = np.where(bisect, 0.5 * (la + ha), newton)
        dx_old[active] = new - xa
        x[active], lo[active], hi[active] = new, la, ha
        active = active[~done]
        if active.size == 0:
            break
    return x


def _top_svd(A: sp.csr_matrix, rank: int, random_state) -> tuple:
    """Top-``rank`` SVD of a sparse matrix (ARPACK), descending; dense when ``rank`` is close
    to min(m, n), where ARPACK cannot go."""
    from scipy.sparse.linalg import svds

    if rank >= min(A.shape) - 1:
        U, s, Vt = np.linalg.svd(A.toarray(), full_matrices=False)
        return U[:, :rank], s[:rank], Vt[:rank]
    v0 = np.random.default_rng(random_state).standard_normal(min(A.shape))
    U, s, Vt = svds(A, k=rank, v0=v0)
    order = np.argsort(-s)
    return U[:, order], s[order], Vt[order]


def initial_state(
    data: ObservedLevels, model: OrdinalLikelihood, rank: int, random_state=None
) -> ALMState:
    """Factors from the top-r SVD of the observed level values scaled by 1/p (the standard
    spectral start, computed on the sparse matrix), split evenly: U = U_r S^{½}, V = V_r S^{½}."""
    m, n = data.shape
    values = model.level_values()[data.levels - 1]
    p = data.n_observed / (m * n)
    rank = min(rank, m, n)
    U, s, Vt = _top_svd(data.sparse(values / p), rank, random_state)
    root = np.sqrt(s)
    U = U * root
    V = Vt.T * root
    # Columns beyond the useful rank start small but nonzero: an exactly zero column is a
    # fixed point of the U/V steps and could never be used.
    rng = np.random.default_rng(random_state)
    floor = 1e-3 * (root[0] if root.size else 1.0)
    weak = root < floor
    if weak.any():
        U[:, weak] = floor * rng.standard_normal((m, int(weak.sum()))) / np.sqrt(m)
        V[:, weak] = floor * rng.standard_normal((n, int(weak.sum()))) / np.sqrt(n)
    x_obs = entries(U, V, data.rows, data.cols)
    return ALMState(U=U, V=V, X_obs=x_obs, multiplier=np.zeros(data.n_observed))


def solve_alm(
    data: ObservedLevels,
    model: OrdinalLikelihood,
    lam: float,
    *,
    rank: int,
    state: ALMState | None = None,
    config: ALMConfig | None = None,
    random_state=None,
) -> ALMResult:
    """Run the ALM at one λ, from ``state`` (a warm start) or the spectral start."""
    config = config or ALMConfig()
    lam = finite_float("lam", lam, minimum=0.0, strict=True)
    rank = positive_int("rank", rank)
    t0 = time.perf_counter()
    if state is None:
        state = initial_state(data, model, rank, random_state)
    U, V = state.U.copy(), state.V.copy()
    x_obs = state.X_obs.copy()
    mult = state.multiplier.copy()
    rows, cols, levels = data.rows, data.cols, data.levels
    k = U.shape[1]
    eye = np.eye(k)
    curvature = model.curvature_bound
    mu = config.mu0 * curvature
    mu_min, mu_max = config.mu_min * curvature, config.mu_max * curvature
    S, order, St, order_t = data.sparse_pair()
    history = []
    times = []
    converged = False
    primal = dual = np.inf
    it = 0
    z_obs = entries(U, V, rows, cols)
    for it in range(1, config.max_iter + 1):  # noqa: B007 - `it` is reported
        # X-step on Ω (off Ω it is closed form and folded into the U/V steps below).
        x_obs = prox_entries(
            model,
            levels,
            z_obs - mult / mu,
            mu,
            x_obs,
            max_iter=config.newton_max_iter,
            tol=config.newton_tol,
        )
        # μX + Λ = μ U Vᵀ + S with S sparse on Ω.
        s_values = mu * (x_obs - z_obs) + mult
        S.data[:] = s_values[order]
        St.data[:] = s_values[order_t]
        G_v = V.T @ V
        U_new = np.linalg.solve(mu * G_v + lam * eye, (mu * (U @ G_v) + S @ V).T).T
        rhs_v = mu * (V @ (U.T @ U_new)) + St @ U_new
        V_new = np.linalg.solve(mu * (U_new.T @ U_new) + lam * eye, rhs_v.T).T
        z_new = entries(U_new, V_new, rows, cols)
        mult = mult + mu * (x_obs - z_new)
        primal_abs = float(np.linalg.norm(x_obs - z_new))
        change = difference_norm(U_new, V_new, U, V)
        primal = primal_abs / max(float(np.linalg.norm(x_obs)), 1.0)
        dual = change / max(product_norm(U_new, V_new), 1.0)
        U, V, z_obs = U_new, V_new, z_new
        history.append(model.nll(z_new, levels) + lam * nuclear_norm_of_product(U, V))
        times.append(time.perf_counter() - t0)
        if primal < config.tol and dual < config.tol:
            converged = True
            break
        if primal_abs > config.balance * mu * change:
            mu = min(config.kappa * mu, mu_max)
        elif mu * change > config.balance * primal_abs:
            mu = max(mu / config.kappa, mu_min)
    result_state = ALMState(U=U, V=V, X_obs=x_obs, multiplier=mult)
    return ALMResult(
        state=result_state,
        lam=lam,
        n_iter=it,
        converged=converged,
        primal_residual=primal,
        dual_residual=dual,
        objective=history[-1],
        objective_history=np.asarray(history),
        time_history=np.asarray(times),
        time_s=time.perf_counter() - t0,
    )


def spectral_norm(A: sp.spmatrix) -> float:
    from scipy.sparse.linalg import svds

    if min(A.shape) <= 2:
        return float(np.linalg.norm(A.toarray(), 2))
    try:
        return float(svds(A, k=1, return_singular_vectors=False, random_state=0)[0])
    except Exception:  # ARPACK did not converge: the dense norm is exact
        return float(np.linalg.norm(A.toarray(), 2))


def optimality_certificate(
    U: np.ndarray, V: np.ndarray, data: ObservedLevels, model: OrdinalLikelihood, lam: float
) -> dict[str, float]:
    """How far UVᵀ is from the global optimality conditions of F.

    ``spectral_ratio`` = ‖G‖₂/λ (≤ 1 at the optimum) and ``alignment`` =
    (⟨G, Z⟩ + λ‖Z‖_*)/max(λ‖Z‖_*, tiny) (0 at the optimum), with G = ∇f_Ω(Z), Z = UVᵀ."""
    z = entries(U, V, data.rows, data.cols)
    _, g, _ = model.nll_derivatives(z, data.levels, value=False)
    inner = float(g @ z)
    nuc = lam * nuclear_norm_of_product(U, V)
    return {
        "spectral_ratio": spectral_norm(data.sparse(g)) / lam,
        "alignment": (inner + nuc) / max(nuc, 1e-300),
    }


def lambda_max(data: ObservedLevels, model: OrdinalLikelihood) -> float:
    """‖∇f_Ω(0)‖₂: for λ ≥ this, Z = 0 is optimal."""
    _, g, _ = model.nll_derivatives(np.zeros(data.n_observed), data.levels)
    return spectral_norm(data.sparse(g))
