"""HASSLE-free for one layer: W ≈ S + L under the layer-wise reconstruction objective.

Problem (W [out, in] the dense weights, H = XᵀX [in, in] damped as in the authors' scripts)::

    min_{S, L}  f(S, L) = tr((W - S - L) H (W - S - L)ᵀ)
    subject to  S sparse (N:M or a share of the layer),  rank(L) ≤ r

Alternating minimisation, ``rounds`` times:

1. **S-step**: a sparse solver (SparseGPT or ALPS) on the residual target W - L, then a
   Jacobi-preconditioned CG refit of the kept weights to that target. The new S is kept only
   when it lowers f (otherwise the alternation has converged for this solver), so f never
   increases.
2. **L-step** (closed form): with H = C Cᵀ, f = ||(W - S - L) C||², so the best rank-r L is
   the truncated SVD of the whitened residual Y = (W - S) C, un-whitened: L = [Y]_r C⁻¹
   (reduced-rank regression). C comes from one eigendecomposition of the Jacobi-scaled H per
   statistic, H = D Q Λ Qᵀ D, C = D Q Λ^½, shared with the ALPS S-step. The ``adam`` option
   instead takes the original code's Adam steps on the factors.

The objective is tracked in whitened coordinates at the cost of one matmul per round: with
Y = (W - S) C and Z = L C, f = ||Y - Z||².
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from alps.config import ALPSConfig
from alps.core import Preconditioned, RidgeSolver, alps_prune
from layerwise.linalg import (
    DampedInverse,
    damped_cholesky_inverse,
    masked_conjugate_gradient,
    randomized_svd,
)
from layerwise.methods.sparsegpt import sparsegpt_prune
from layerwise.sparsity import nm_mask, row_mask

from hasslefree.config import HassleFreeConfig, OATSConfig
from labcore import LabcoreError


def layer_rank(shape: tuple[int, int], config: HassleFreeConfig | OATSConfig) -> int:
    """Rank of L for a layer of ``shape`` [out, in]: ``config.rank``, or from the budget.

    With ``compression`` c and S keeping k = 1 - sparsity of the weights, L gets the rest of
    the kept share: r = floor((1 - c - k) · out · in / (out + in)) (the authors' formula).
    """
    out_f, in_f = shape
    if config.rank is not None:
        return config.rank
    room = (1.0 - config.compression) - (1.0 - config.sparsity)
    return math.floor(room * out_f * in_f / (out_f + in_f) + 1e-9)


def check_layer(W: torch.Tensor, H: torch.Tensor | None, config: Any, rank: int, name: str):
    """Clear errors for shapes, values, rank and N:M that the layer cannot take."""
    label = name or "layer"
    if W.ndim != 2:
        raise LabcoreError(f"{label}: the weight must be a matrix [out, in], got {tuple(W.shape)}")
    out_f, in_f = W.shape
    if H is not None and H.shape != (in_f, in_f):
        raise LabcoreError(f"{label}: H must be [in, in] = {(in_f, in_f)}, got {tuple(H.shape)}")
    if not torch.isfinite(W).all() or (H is not None and not torch.isfinite(H).all()):
        raise LabcoreError(f"{label}: weights or statistics contain NaN or inf")
    if config.nm is not None and in_f % config.nm.m:
        raise LabcoreError(
            f"{label}: N:M {config.nm} needs the input size ({in_f}) to be a multiple of "
            f"{config.nm.m}"
        )
    if rank < 1:
        raise LabcoreError(
            f"{label}: compression {config.compression} leaves rank {rank} for a "
            f"{out_f}x{in_f} layer; lower the compression"
        )
    if rank > min(out_f, in_f):
        raise LabcoreError(
            f"{label}: rank {rank} exceeds min(out, in) = {min(out_f, in_f)} of this "
            f"{out_f}x{in_f} layer"
        )


def damped_statistic(H: torch.Tensor, damp: float, diag_damp: float) -> torch.Tensor:
    """H + diag_damp·Diag(H) + damp·mean(diag H)·I (dead inputs get H_jj = 1 first)."""
    H = H.float().clone()
    diag = torch.diagonal(H)
    diag[diag == 0] = 1.0
    mean = float(diag.mean())
    diag.mul_(1.0 + diag_damp).add_(damp * mean)
    return H


@dataclass
class Whitening:
    """H = C Cᵀ from the Jacobi-scaled eigendecomposition; ``prepared`` is ALPS's (same one).

    ``c`` = D Q Λ^½ [in, in] and ``c_inv`` = Λ^-½ Qᵀ D⁻¹ (zero on directions with Λ = 0: a
    pseudo-inverse, for an undamped rank-deficient H).
    """

    c: torch.Tensor
    c_inv: torch.Tensor
    prepared: Preconditioned
    damped: torch.Tensor
    _inverse: DampedInverse | None = None

    def inverse(self, name: str = "") -> DampedInverse:
        """The Cholesky factor of the damped H⁻¹ for the SparseGPT S-step (computed once)."""
        if self._inverse is None:
            self._inverse = damped_cholesky_inverse(self.damped, percdamp=0.0, name=name)
        return self._inverse

    @classmethod
    def from_statistic(cls, Hd: torch.Tensor) -> Whitening:
        """``Hd`` damped (:func:`prepare`), or a raw XᵀX: inputs that never fire (H_jj = 0)
        then get scale 1 and a zero eigenvalue, which the pseudo-inverse ignores."""
        Hd = Hd.float()
        d = torch.sqrt(torch.diagonal(Hd))
        d = torch.where(d > 0, d, torch.ones_like(d))
        Hs = Hd / d[:, None] / d[None, :]
        evals, evecs = torch.linalg.eigh(Hs.double())
        evals = evals.clamp_min(0)
        root = evals.sqrt()
        inv_root = torch.where(evals > evals.max() * 1e-12, 1.0 / root.clamp_min(1e-300), 0.0)
        dd = d.double()
        c = (dd[:, None] * evecs) * root[None, :]
        c_inv = (evecs * inv_root[None, :]).T / dd[None, :]
        prepared = Preconditioned(d, Hs, RidgeSolver(evals.float(), evecs.float()))
        return cls(c.float(), c_inv.float(), prepared, Hd)


def objective(W: torch.Tensor, approx: torch.Tensor, H: torch.Tensor) -> float:
    """tr((W - approx) H (W - approx)ᵀ) in float64."""
    E = (W - approx).double()
    return float(((E @ H.double()) * E).sum())


def truncated_svd(
    Y: torch.Tensor, rank: int, *, kind: str, iters: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank-``rank`` SVD ``Y ≈ U diag(s) Vᵀ`` (exact LAPACK or randomized subspace iteration)."""
    if kind == "exact" or rank + 10 >= min(Y.shape) // 2:
        U, s, Vh = torch.linalg.svd(Y, full_matrices=False)
        return U[:, :rank], s[:rank], Vh[:rank].T
    return randomized_svd(Y, rank, n_iter=iters, seed=seed)


def warm_subspace_svd(
    A: torch.Tensor,
    rank: int,
    basis: torch.Tensor | None,
    *,
    iters: int,
    oversample: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank-``rank`` SVD of ``A`` by subspace iteration continued from ``basis`` [in, q].

    For a sequence of slowly changing matrices (OATS's iterates): each call takes ``iters``
    power steps from the previous call's right subspace (a seeded Gaussian one the first
    time), then one more while projecting, and returns U, s, V and the new basis to pass on
    (so ``iters=0`` on later calls still advances the subspace by one step per call).
    """
    q = min(rank + oversample, min(A.shape))
    if basis is None:
        gen = torch.Generator().manual_seed(seed)
        basis = torch.randn(A.shape[1], q, generator=gen).to(A.device, A.dtype)
    for _ in range(iters):
        P = torch.linalg.qr(A @ basis).Q
        basis = torch.linalg.qr(A.T @ P).Q
    P = torch.linalg.qr(A @ basis).Q
    Ub, s, Vh = torch.linalg.svd(P.T @ A, full_matrices=False)
    return (P @ Ub)[:, :rank], s[:rank], Vh[:rank].T, Vh.T


def closed_form_lowrank(
    M: torch.Tensor,
    white: Whitening,
    rank: int,
    *,
    kind: str = "exact",
    iters: int = 4,
    seed: int = 0,
    whitened: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rank-``rank`` L = U V minimising tr((M - L) H (M - L)ᵀ), H = C Cᵀ.

    Returns U [out, r], V [r, in] (balanced: both carry the square roots of the singular
    values) and the whitened product Z = L C [out, in] (the objective is ||(M C) - Z||²).
    ``whitened``: M C when the caller has it already.

    Examples
    --------
    >>> import torch
    >>> from hasslefree.core import Whitening, closed_form_lowrank
    >>> X = torch.randn(64, 8); M = torch.randn(5, 8)
    >>> U, V, _ = closed_form_lowrank(M, Whitening.from_statistic(X.T @ X), 8)
    >>> bool(torch.allclose(U @ V, M, atol=1e-4))  # full rank: L = M exactly
    True
    """
    Y = M.float() @ white.c if whitened is None else whitened
    Uy, s, Vy = truncated_svd(Y, rank, kind=kind, iters=iters, seed=seed)
    root = s.sqrt()
    U = Uy * root[None, :]
    Vw = root[:, None] * Vy.T  # whitened row space: Z = U Vw
    U_out, V_out = balance(U, Vw @ white.c_inv)
    return U_out, V_out, U @ Vw


def balance(U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale each rank-one component so that its column of U and row of V have equal norms
    (the product is unchanged): factors balanced in weight space keep fp16 storage and LoRA
    exports away from tiny or huge entries whatever the calibration size."""
    scale = torch.sqrt(V.norm(dim=1) / U.norm(dim=0).clamp_min(1e-30)).clamp_min(1e-30)
    scale = torch.where(torch.isfinite(scale) & (U.norm(dim=0) > 0), scale, torch.ones_like(scale))
    return U * scale[None, :], V / scale[:, None]


def adam_lowrank(
    R: torch.Tensor,
    white: Whitening,
    U: torch.Tensor,
    V: torch.Tensor,
    *,
    steps: int,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original code's L-step: Adam on ½tr((R̃ - U Ṽ) H̃ (R̃ - U Ṽ)ᵀ) in Jacobi-scaled
    coordinates (R̃ = R D, Ṽ = V D, H̃ = D⁻¹HD⁻¹), warm-started from (U, V); a NaN or inf
    loss restarts from (U, V) with a tenth of the learning rate.

    D is normalised to mean(D²) = 1: the original's H = (2/n)Σxxᵀ makes its parameter scale,
    and so the effect of a learning rate, depend on the calibration size; here it does not.
    """
    d = white.prepared.d
    d = d / d.pow(2).mean().sqrt()
    Hs = white.prepared.Hs
    target = R.float() * d[None, :]
    start_u, start_v = U.float().clone(), V.float() * d[None, :]
    with torch.enable_grad():
        u = start_u.clone().requires_grad_(True)
        v = start_v.clone().requires_grad_(True)
        opt = torch.optim.Adam([u, v], lr=lr)
        step = 0
        while step < steps:
            opt.zero_grad()
            E = target - u @ v
            loss = 0.5 * ((E @ Hs) * E).sum()
            if not torch.isfinite(loss):
                lr /= 10
                u = start_u.clone().requires_grad_(True)
                v = start_v.clone().requires_grad_(True)
                opt = torch.optim.Adam([u, v], lr=lr)
                step += 1
                continue
            loss.backward()
            opt.step()
            step += 1
    return u.detach(), v.detach() / d[None, :]


def _refit(S: torch.Tensor, target_h: torch.Tensor, white: Whitening, iters: int) -> torch.Tensor:
    """S's kept weights refitted to the target T (fixed support): Jacobi-preconditioned CG,
    warm-started from S, so the objective only goes down. ``target_h`` is (T D) H̃ in the
    scaled coordinates (the right-hand side of the normal equations)."""
    pre = white.prepared
    mask = S != 0
    refit = masked_conjugate_gradient(
        pre.Hs, target_h, mask, x0=S * pre.d[None, :], iters=iters, tol=1e-4
    )
    return (refit / pre.d[None, :]) * mask


def _sparse_step(
    T: torch.Tensor,
    target_h: torch.Tensor,
    white: Whitening,
    config: HassleFreeConfig,
    round_index: int,
    name: str,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """S for the target T (fixed L): the chosen solver (SparseGPT's answer refitted on its
    support when ``refit``; ALPS refits itself)."""
    if config.sparse_solver == "alps":
        rho = config.alps_rho * (5 * round_index + 1)
        alps_config = ALPSConfig(
            sparsity=0.0 if config.nm is not None else config.sparsity,
            nm=config.nm,
            rho=rho,
            rho_max=max(1e6, rho),
            max_iter=config.alps_max_iter,
            ridge=0.0,  # white.damped is damped already
        )
        S, info = alps_prune(T, white.damped, alps_config, name=name, prepared=white.prepared)
        return S, {"admm_iterations": info["iterations"]}
    S, _ = sparsegpt_prune(
        T,
        white.damped,
        sparsity=config.sparsity,
        nm=config.nm,
        name=name,
        inverse=white.inverse(name),
    )
    if config.refit:
        S = _refit(S, target_h, white, config.refit_iters)
    return S, {}


def hassle_free(
    W: torch.Tensor,
    H: torch.Tensor,
    config: HassleFreeConfig,
    *,
    name: str = "",
    white: Whitening | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Decompose ``W`` [out, in] as S + U V against H = XᵀX [in, in].

    Returns S [out, in] (exactly the configured sparsity pattern), U [out, r], V [r, in] and
    info: the objective after every round relative to the dense ||W C||²
    (``objective_trace``, non-increasing), the rounds run, the rounds whose solver support was
    taken (``solver_rounds``), S's share of zeros, the rank and the parameter count. ``white`` shares one whitening between layers
    reading the same inputs (q/k/v): build it with :func:`prepare`.

    Examples
    --------
    >>> import torch
    >>> from hasslefree import HassleFreeConfig, hassle_free
    >>> X = torch.randn(256, 32); W = torch.randn(16, 32)
    >>> S, U, V, info = hassle_free(W, X.T @ X, HassleFreeConfig(nm="2:4", rank=4))
    >>> int((S != 0).sum()), tuple(U.shape), tuple(V.shape)
    (256, (16, 4), (4, 32))
    >>> info["objective_trace"][-1] <= info["objective_trace"][0]
    True
    """
    rank = layer_rank(tuple(W.shape), config)
    check_layer(W, H, config, rank, name)
    W = W.float().clone()
    # inputs that never fire: their weights cost nothing, so neither S nor L spends on them
    # (as SparseGPT and the authors' code)
    W[:, torch.diagonal(H).to(W.device) == 0] = 0.0
    white = white or prepare(H.to(W.device), config)
    Yw = W @ white.c  # whitened dense weights: f(S, L) = ||Yw - S C - Z||²
    d, Hs = white.prepared.d, white.prepared.Hs
    # the normal equations' right-hand side of an S-step, (W - U V) D H̃, costs one product
    # of the rank-r factors per round given (W D) H̃ once
    WdHs = (W * d[None, :]) @ Hs
    base = float(Yw.double().pow(2).sum())
    scale = base if base > 0 else 1.0
    out_f, in_f = W.shape

    S = torch.zeros_like(W)
    U = torch.zeros(out_f, rank, device=W.device)
    V = torch.zeros(rank, in_f, device=W.device)
    Z = torch.zeros_like(W)  # L C
    Y = Yw.clone()  # (W - S) C
    current = base
    trace: list[float] = []
    losses = 0  # rounds in a row the solver's support lost to the current one
    accepted: list[int] = []  # rounds whose solver support was taken
    extra: dict[str, Any] = {}
    rounds_run = 0
    if config.lowrank_step == "adam":  # the LoRA initialisation of the original code (B = 0)
        gen = torch.Generator().manual_seed(config.seed)
        bound = 1.0 / math.sqrt(in_f)
        V = ((torch.rand(rank, in_f, generator=gen) * 2 - 1) * bound).to(W.device)
    for t in range(config.rounds):
        rounds_run = t + 1
        T = W - U @ V
        target_h = WdHs - U @ ((V * d[None, :]) @ Hs)
        if losses < config.solver_patience:
            S_new, step_info = _sparse_step(T, target_h, white, config, t, name)
            for key, value in step_info.items():
                extra.setdefault(key, []).append(value)
            Y_new = (W - S_new) @ white.c
            f_s = float((Y_new - Z).double().pow(2).sum())
        else:
            f_s = math.inf  # the solver lost solver_patience rounds in a row: support fixed
        if t == 0 or f_s <= current:
            S, Y, current = S_new, Y_new, f_s
            accepted.append(t)
            losses = 0
        else:
            # An exact S-step would beat the current support refitted to the new target too:
            # take that refit when the solver's support is worse (never worse than before).
            losses += 1
            if config.refit:
                S_kept = _refit(S, target_h, white, config.refit_iters)
                Y_kept = (W - S_kept) @ white.c
                f_kept = float((Y_kept - Z).double().pow(2).sum())
                if f_kept <= current:
                    S, Y, current = S_kept, Y_kept, f_kept
        if config.lowrank_step == "closed-form":
            U_new, V_new, Z_new = closed_form_lowrank(
                W - S,
                white,
                rank,
                kind=config.svd,
                iters=config.svd_iters,
                seed=config.seed + t,
                whitened=Y,
            )
        else:
            U_new, V_new = adam_lowrank(
                W - S, white, U, V, steps=config.adam_steps, lr=config.adam_lr / (t + 10)
            )
            Z_new = U_new @ (V_new @ white.c)
        f_l = float((Y - Z_new).double().pow(2).sum())
        if f_l <= current:
            U, V, Z, current = U_new, V_new, Z_new, f_l
        previous = trace[-1] * scale if trace else math.inf
        trace.append(current / scale)
        if t > 0 and previous - current <= config.tol * previous:
            break
    kept = int((S != 0).sum())
    info: dict[str, Any] = {
        "objective_trace": [round(x, 7) for x in trace],
        "rounds": rounds_run,
        "solver_rounds": accepted,
        "s_sparsity": round(1.0 - kept / S.numel(), 6),
        "rank": rank,
        "params": kept + rank * (out_f + in_f),
        "dense_params": out_f * in_f,
    }
    for key, values in extra.items():
        info[f"mean_{key}"] = round(sum(values) / len(values), 2)
    return S, U, V, info


def prepare(H: torch.Tensor, config: HassleFreeConfig) -> Whitening:
    """The whitening of a (raw) statistic under ``config``'s damping, to share across layers."""
    return Whitening.from_statistic(damped_statistic(H, config.damp, config.diag_damp))


def oats(
    W: torch.Tensor, diag: torch.Tensor, config: OATSConfig, *, name: str = ""
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """OATS: S + U V from the diagonal statistic ``diag`` = diag(XᵀX) [in].

    Alternates L̃ = [DW - S̃]_r (truncated SVD) and S̃ = P(DW - L̃) (hard threshold: N:M, or the
    same count per row), ``config.iterations`` times, from S̃ = 0; returns S = S̃ D⁻¹ and the
    factors of L = L̃ D⁻¹. The randomized SVD continues one subspace iteration per
    alternation from the previous one (:func:`warm_subspace_svd`), as the iterates change
    little between alternations.

    Examples
    --------
    >>> import torch
    >>> from hasslefree import OATSConfig, oats
    >>> S, U, V, info = oats(torch.randn(8, 16), torch.ones(16), OATSConfig(rank=2, iterations=5))
    >>> int((S != 0).sum()), tuple(U.shape)
    (64, (8, 2))
    """
    rank = layer_rank(tuple(W.shape), config)
    check_layer(W, None, config, rank, name)
    if diag.shape != (W.shape[1],) or not torch.isfinite(diag).all():
        raise LabcoreError(f"{name or 'layer'}: the diagonal statistic must be finite [in]")
    W = W.float()
    d = diag.float().to(W.device).clamp_min(0).sqrt()
    alive = d > 0
    fill = float(d[alive].mean()) if bool(alive.any()) else 1.0
    d = torch.where(alive, d, torch.full_like(d, fill))  # dead inputs: any scale will do
    Wd = W * d[None, :]

    def threshold(M: torch.Tensor) -> torch.Tensor:
        score = M.abs()
        pruned = (
            nm_mask(score, config.nm) if config.nm is not None else row_mask(score, config.sparsity)
        )
        return M.masked_fill(pruned, 0.0)

    S = torch.zeros_like(Wd)
    basis = None
    for _t in range(config.iterations):
        if config.svd == "exact":
            Uy, s, Vy = truncated_svd(Wd - S, rank, kind="exact", iters=0, seed=0)
        else:
            Uy, s, Vy, basis = warm_subspace_svd(
                Wd - S, rank, basis, iters=config.svd_iters if basis is None else 0,
                seed=config.seed,
            )  # fmt: skip
        L = (Uy * s[None, :]) @ Vy.T
        S = threshold(Wd - L)
    root = s.sqrt()
    U, V = balance(Uy * root[None, :], (root[:, None] * Vy.T) / d[None, :])
    S = S / d[None, :]
    kept = int((S != 0).sum())
    out_f, in_f = W.shape
    info = {
        "iterations": config.iterations,
        "s_sparsity": round(1.0 - kept / S.numel(), 6),
        "rank": rank,
        "params": kept + rank * (out_f + in_f),
        "dense_params": out_f * in_f,
    }
    return S, U, V, info


__all__ = [
    "Whitening",
    "adam_lowrank",
    "balance",
    "closed_form_lowrank",
    "damped_statistic",
    "hassle_free",
    "layer_rank",
    "oats",
    "objective",
    "prepare",
    "warm_subspace_svd",
]
