"""ALPS for one layer: ADMM with a support-driven ρ schedule, then a CG refit on the support.

Problem (W₀ [out, in] the dense weights, H = XᵀX [in, in])::

    min_W  tr((W₀ - W) H (W₀ - W)ᵀ)   subject to  ||W||₀ ≤ k   (or an N:M pattern)

1. Preprocess: H ← H + ridge · mean(diag H) · I, then scale to unit diagonal with
   d = sqrt(diag H): H̃ = D⁻¹HD⁻¹, W̃ = W D. The scaling is the preconditioner and makes ρ
   scale-free. One eigendecomposition H̃ = QΛQᵀ (float64) serves every ρ:
   (H̃ + ρI)⁻¹ = Q diag(1 / (Λ + ρ)) Qᵀ.
2. ADMM on  min ½tr((W̃₀ - B)H̃(W̃₀ - B)ᵀ) + 1[D sparse]  s.t.  B = D:
   B ← (W̃₀H̃ - V + ρD)(H̃ + ρI)⁻¹,  D ← P(B + V/ρ),  V ← V + ρ(B - D),
   and every ``update_iter`` iterations ρ grows with the number of support changes
   (×1.3 / ×1.2 / ×1.1), or shrinks ÷5 (with a restart) while the support still moves before
   ρ has ever grown; stop when the support is stable.
3. Refit: conjugate gradient on the final support (CG on the scaled system, i.e.
   Jacobi-preconditioned CG on the original: the "PCG" of the paper), warm-started from the
   projected B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from layerwise.linalg import masked_conjugate_gradient
from layerwise.sparsity import NM, nm_mask, row_mask, smallest_mask

from alps.config import ALPSConfig
from labcore import LabcoreError


def project(
    M: torch.Tensor, *, keep: int, nm: NM | None, per_row: bool, sparsity: float = 0.0
) -> torch.Tensor:
    """P: the closest matrix with the sparsity pattern (largest |entries| kept)."""
    score = M.abs()
    if nm is not None:
        pruned = nm_mask(score, nm)
    elif per_row:
        pruned = row_mask(score, sparsity)
    else:
        pruned = smallest_mask(score, M.numel() - keep)
    return M.masked_fill(pruned, 0.0)


def kept_count(shape: tuple[int, int], config: ALPSConfig) -> int:
    rows, cols = shape
    if config.nm is not None:
        return rows * (cols // config.nm.m) * config.nm.n
    if config.per_row:
        return rows * (cols - int(cols * config.sparsity))
    return round((1.0 - config.sparsity) * rows * cols)


@dataclass
class RidgeSolver:
    """Applies M ↦ M (H̃ + ρI)⁻¹ from one eigendecomposition of H̃ (symmetric PSD)."""

    evals: torch.Tensor  # [in], float32 on the compute device
    evecs: torch.Tensor  # [in, in]

    @classmethod
    def from_matrix(cls, H: torch.Tensor) -> RidgeSolver:
        evals, evecs = torch.linalg.eigh(H.double())
        return cls(evals.clamp_min(0).to(H.dtype), evecs.to(H.dtype))

    def solve(self, M: torch.Tensor, rho: float) -> torch.Tensor:
        return ((M @ self.evecs) / (self.evals + rho)) @ self.evecs.T


@dataclass
class Preconditioned:
    """The scaled problem of one statistic: d = sqrt(diag(H + ridge)), H̃ = D⁻¹(H + ridge)D⁻¹,
    and the eigendecomposition of H̃. Layers with the same inputs (q/k/v, gate/up) share it."""

    d: torch.Tensor
    Hs: torch.Tensor
    solver: RidgeSolver

    @classmethod
    def from_statistic(cls, H: torch.Tensor, ridge: float) -> Preconditioned | None:
        H = H.float()
        mean_diag = float(torch.diagonal(H).mean())
        if mean_diag <= 0:
            return None
        Hr = H + ridge * mean_diag * torch.eye(H.shape[0], device=H.device)
        d = torch.sqrt(torch.diagonal(Hr)) + 1e-8
        Hs = Hr / d[:, None] / d[None, :]
        return cls(d, Hs, RidgeSolver.from_matrix(Hs))


def layer_objective(W0: torch.Tensor, W: torch.Tensor, H: torch.Tensor) -> float:
    """tr((W₀ - W) H (W₀ - W)ᵀ) in float64."""
    D = (W0 - W).double()
    return float(((D @ H.double()) * D).sum())


def alps_prune(
    W: torch.Tensor,
    H: torch.Tensor,
    config: ALPSConfig,
    *,
    name: str = "",
    prepared: Preconditioned | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Prune ``W`` [out, in] against H = XᵀX [in, in]; returns the pruned weight and info.

    Examples
    --------
    >>> import torch
    >>> from alps import ALPSConfig, alps_prune
    >>> X = torch.randn(256, 32); W = torch.randn(8, 32)
    >>> Wp, info = alps_prune(W, X.T @ X, ALPSConfig(sparsity=0.7))
    >>> int((Wp != 0).sum()), info["iterations"] > 0
    (77, True)
    """
    label = name or "layer"
    if W.ndim != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise LabcoreError(
            f"{label}: H must be [in, in] = {(W.shape[1],) * 2}, got {tuple(H.shape)}"
        )
    if not torch.isfinite(W).all() or not torch.isfinite(H).all():
        raise LabcoreError(f"{label}: weights or statistics contain NaN or inf")
    if config.nm is not None and W.shape[1] % config.nm.m:
        raise LabcoreError(
            f"{label}: N:M {config.nm} needs the input size ({W.shape[1]}) to be a multiple of {config.nm.m}"
        )
    W0 = W.float()
    H = H.float().to(W0.device)
    rows, cols = W0.shape
    keep = kept_count((rows, cols), config)
    proj = lambda M: project(  # noqa: E731
        M, keep=keep, nm=config.nm, per_row=config.per_row, sparsity=config.sparsity
    )

    pre = prepared or Preconditioned.from_statistic(H, config.ridge)
    if pre is None:  # no signal at all: every support is optimal; keep the largest weights
        return proj(W0), {"iterations": 0, "rho_final": None, "restarts": 0}
    d, Hs, solver = pre.d, pre.Hs, pre.solver
    Ws = W0 * d  # scaled coordinates: W̃ = W D
    target = Ws @ Hs  # W̃₀ H̃

    rho = config.rho
    rho_grown = False
    B = Ws.clone()
    D = proj(B)
    V = torch.zeros_like(B)
    support = D != 0
    restarts = 0
    trace: list[tuple[int, float, int]] = []  # (iteration, ρ, support changes)
    it = 0
    for it in range(1, config.max_iter + 1):
        B = solver.solve(target - V + rho * D, rho)
        D = proj(B + V / rho)
        V = V + rho * (B - D)
        if it % config.update_iter:
            continue
        new_support = D != 0
        changes = int((new_support ^ support).sum())
        support = new_support
        trace.append((it, rho, changes))
        share = changes / max(keep, 1)
        if share > 0.1:
            rho, rho_grown = rho * 1.3, True
        elif share > 0.005:
            rho, rho_grown = rho * 1.2, True
        elif changes > 0:
            if rho_grown:
                rho *= 1.1
            else:  # the support still moves before ρ ever grew: start over with a smaller ρ
                rho /= 5
                B = Ws.clone()
                D = proj(B)
                V = torch.zeros_like(B)
                support = D != 0
                restarts += 1
                continue  # never stop on the restarted (dense) iterate
        elif rho_grown:
            break
        else:
            rho /= 5
        rho = min(rho, config.rho_max)
        if it > config.switch_iter and share < config.stop_fraction:  # authors: 0-based >=
            break

    B = proj(B)
    mask = B != 0
    admm_objective = layer_objective(Ws, B, Hs)
    if config.cg_iters > 0:
        B = masked_conjugate_gradient(
            Hs, target, mask, x0=B, iters=config.cg_iters, tol=config.cg_tol
        )
    W_new = B / d
    W_new = W_new * mask  # exact zeros off the support
    info = {
        "iterations": it,
        "rho_final": rho,
        "restarts": restarts,
        # (iteration, ρ, support changes) at every check: explains run-time variance
        "rho_trace": [[i, float(r), c] for i, r, c in trace],
        "admm_objective": admm_objective,
        "refit_objective": layer_objective(Ws, B * mask, Hs),
        "kept": int(mask.sum()),
    }
    return W_new, info
