"""SparseGPT (Frantar and Alistarh, ICML 2023).

The GPTQ column sweep with a mask instead of a grid: in each block of ``block_size`` columns
the weights with the smallest OBS saliency ``w² / [H^{-1}]_ii²`` are pruned (unstructured: the
same share in every block, all rows together; N:M: within each group of M columns of a row),
and every pruned weight's error is compensated on the remaining columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labcore import LabcoreError
from layerwise.linalg import damped_cholesky_inverse, handle_dead_columns
from layerwise.methods.base import LayerResult, LayerStats, Method, register
from layerwise.sparsity import NM, nm_mask, normalize_sparsity_fields, smallest_mask


@dataclass(frozen=True)
class SparseGPTConfig:
    sparsity: float = 0.5
    nm: NM | str | None = None
    block_size: int = 128
    percdamp: float = 0.01

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)
        if self.nm is not None and self.block_size % self.nm.m:
            raise LabcoreError(f"block_size {self.block_size} must be a multiple of M={self.nm.m}")
        if self.block_size < 1 or self.percdamp < 0:
            raise LabcoreError("block_size must be positive and percdamp non-negative")


def sparsegpt_prune(
    W: torch.Tensor,
    H: torch.Tensor,
    *,
    sparsity: float,
    nm: NM | None = None,
    block_size: int = 128,
    percdamp: float = 0.01,
    name: str = "",
) -> tuple[torch.Tensor, dict]:
    """Prune ``W`` [out, in] against ``H``; returns the pruned-and-updated weight and info."""
    W = W.float().clone()
    H = H.float().clone()
    rows, cols = W.shape
    if nm is not None and cols % nm.m:
        raise LabcoreError(
            f"{name}: N:M {nm} needs the input size ({cols}) to be a multiple of {nm.m}"
        )
    dead = handle_dead_columns(H, W)
    damped = damped_cholesky_inverse(H, percdamp=percdamp, name=name)
    Hinv = damped.hinv_upper
    total_pruned = int(rows * cols * sparsity)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.empty_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = torch.diag(Hinv1)
        if nm is None:
            # Spread the exact total over blocks: block b prunes floor(i2·r·s) - floor(i1·r·s).
            k = int(i2 * rows * sparsity) - int(i1 * rows * sparsity)
            mask1 = smallest_mask(W1**2 / d.unsqueeze(0) ** 2, k)
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm is not None and i % nm.m == 0:
                score = W1[:, i : i + nm.m] ** 2 / d[i : i + nm.m].unsqueeze(0) ** 2
                mask1[:, i : i + nm.m] = nm_mask(score, nm)
            w = W1[:, i]
            q = w.masked_fill(mask1[:, i], 0.0)
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    info = {
        "damp_fraction": damped.damp_fraction,
        "damping_increases": damped.increases,
        "dead_columns": int(dead.sum()),
        "target_pruned": total_pruned if nm is None else None,
    }
    return W, info


@register
class SparseGPT(Method):
    name = "sparsegpt"
    config_class = SparseGPTConfig
    statistics = "full"
    grouping = "block"  # as in the reference code: the whole block from one pass

    def compress_layer(self, name, weight, stats: LayerStats) -> LayerResult:
        c = self.config
        W, info = sparsegpt_prune(
            weight,
            stats.H,
            sparsity=c.sparsity,
            nm=c.nm,
            block_size=c.block_size,
            percdamp=c.percdamp,
            name=name,
        )
        return LayerResult(W, None, info)
