"""Shared linear algebra for layer-wise methods.

The layer problem is ``min ||W X - Ŵ X||_F^2 = tr((W - Ŵ) H (W - Ŵ)^T)`` with ``H = X X^T``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from labcore import LabcoreError

log = logging.getLogger(__name__)


def handle_dead_columns(H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Input columns that never fire (``H_ii = 0``): set ``H_ii = 1`` and zero those weights.

    Modifies ``H`` and ``W`` in place; returns the boolean mask of dead columns.
    """
    dead = torch.diag(H) == 0
    if dead.any():
        idx = dead.nonzero().squeeze(1)
        H[idx, idx] = 1.0
        W[:, dead] = 0.0
    return dead


@dataclass
class DampedInverse:
    """Result of :func:`damped_cholesky_inverse`."""

    hinv_upper: torch.Tensor  # upper Cholesky factor of (H + λI)^{-1}
    damp_fraction: float  # λ / mean(diag H) finally used
    increases: int  # how many times the damping had to grow


def _fractions(percdamp: float, max_increases: int) -> list[float]:
    base = max(percdamp, 1e-3)
    return [percdamp] + [base * 10.0**k for k in range(1, max_increases + 1)]


def damped_cholesky_inverse(
    H: torch.Tensor, *, percdamp: float = 0.01, max_increases: int = 5, name: str = ""
) -> DampedInverse:
    """Upper Cholesky factor of ``(H + λ I)^{-1}`` with ``λ = percdamp · mean(diag H)``.

    When a factorisation fails (``H`` not positive definite in floating point, the most common
    complaint against GPTQ tools), the damping grows tenfold and the attempt is repeated, up to
    ``max_increases`` times; each increase is logged with the layer ``name``.
    """
    if percdamp < 0:
        raise LabcoreError(f"percdamp must be non-negative, got {percdamp}")
    mean_diag = float(torch.diag(H).mean())
    eye = torch.eye(H.shape[0], device=H.device, dtype=H.dtype)
    for increases, frac in enumerate(_fractions(percdamp, max_increases)):
        Hd = H + (frac * mean_diag) * eye
        L, info = torch.linalg.cholesky_ex(Hd)
        if int(info) == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if int(info) == 0 and torch.isfinite(U).all():
                if increases:
                    log.warning(
                        "%s: Hessian not positive definite; damping raised to %.3g x mean "
                        "diagonal after %d increase(s)",
                        name or "layer",
                        frac,
                        increases,
                    )
                return DampedInverse(U, frac, increases)
    raise LabcoreError(
        f"{name or 'layer'}: Hessian could not be factorised even with damping "
        f"{_fractions(percdamp, max_increases)[-1]:.3g} x mean diagonal"
    )


def relative_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor) -> float:
    """``tr(ΔW H ΔW^T) / tr(W H W^T)`` = ``||WX - ŴX||^2 / ||WX||^2``."""
    W = W.float()
    dW = W - W_hat.float()
    num = float(((dW @ H) * dW).sum())
    den = float(((W @ H) * W).sum())
    return num / den if den > 0 else 0.0


class EigenCache:
    """Eigendecompositions of layer Hessians, computed once per name (in float64).

    ALPS-style methods reuse ``H = Q diag(λ) Q^T`` across many ADMM iterations and ρ values.
    """

    def __init__(self) -> None:
        self._store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, name: str, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._store:
            evals, evecs = torch.linalg.eigh(H.double())
            self._store[name] = (evals.clamp_min(0), evecs)
        return self._store[name]

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)


def masked_conjugate_gradient(
    H: torch.Tensor,
    B: torch.Tensor,
    mask: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    iters: int = 100,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Solve ``min_W tr(W H W^T) - 2 tr(W B^T)`` over ``W`` supported on ``mask``, row by row.

    Each row ``w`` (of ``[rows, cols]``) solves ``H_SS w_S = b_S`` on its own support ``S``;
    all rows run together in one batched conjugate-gradient loop (no Python loop over rows).
    ``B`` is usually ``W_dense H``. Entries off the support stay zero.
    """
    mask = mask.to(B.dtype)
    X = torch.zeros_like(B) if x0 is None else x0 * mask
    R = (B - X @ H) * mask
    P = R.clone()
    rs = (R * R).sum(1, keepdim=True)
    b_norm = (B * mask).norm(dim=1, keepdim=True).clamp_min(1e-30)
    for _ in range(iters):
        HP = (P @ H) * mask
        alpha = rs / (P * HP).sum(1, keepdim=True).clamp_min(1e-30)
        X = X + alpha * P
        R = R - alpha * HP
        rs_new = (R * R).sum(1, keepdim=True)
        if bool((rs_new.sqrt() <= tol * b_norm).all()):
            break
        P = R + (rs_new / rs.clamp_min(1e-30)) * P
        rs = rs_new
    return X * mask


def randomized_svd(
    A: torch.Tensor, rank: int, *, oversample: int = 10, n_iter: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank-``rank`` truncated SVD ``A ≈ U diag(S) V^T`` by randomized subspace iteration.

    Wraps :func:`torch.svd_lowrank` (Halko, Martinsson and Tropp) with a seeded generator and
    truncates its oversampled result.
    """
    if not 0 < rank <= min(A.shape):
        raise LabcoreError(f"rank must lie in [1, {min(A.shape)}], got {rank}")
    q = min(rank + oversample, min(A.shape))
    with torch.random.fork_rng(devices=[A.device] if A.is_cuda else []):
        torch.manual_seed(seed)
        U, S, V = torch.svd_lowrank(A, q=q, niter=n_iter)
    return U[:, :rank], S[:rank], V[:, :rank]
