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
from layerwise.linalg import DampedInverse, damped_cholesky_inverse, handle_dead_columns
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
    inverse: DampedInverse | None = None,
) -> tuple[torch.Tensor, dict]:
    """Prune ``W`` [out, in] against ``H``; returns the pruned-and-updated weight and info.

    ``inverse``: the :func:`~layerwise.linalg.damped_cholesky_inverse` of ``H`` computed by the
    caller (methods that prune many targets against one statistic factor it once; ``H``'s
    dead columns must then be handled already). Columns are swept in chunks (one N:M group,
    or 16 columns): inside a chunk each pruned column's error updates only the chunk's later
    columns, and the chunk's errors reach the rest of the block in one matmul: the arithmetic
    of the column-by-column sweep with far smaller updates per Python step.
    """
    W = W.float().clone()
    rows, cols = W.shape
    if nm is not None and cols % nm.m:
        raise LabcoreError(
            f"{name}: N:M {nm} needs the input size ({cols}) to be a multiple of {nm.m}"
        )
    if inverse is None:
        H = H.float().clone()
        dead = handle_dead_columns(H, W)
        inverse = damped_cholesky_inverse(H, percdamp=percdamp, name=name)
    else:
        dead = torch.diagonal(H) == 0
        W[:, dead] = 0.0
    Hinv = inverse.hinv_upper.to(W.device)
    total_pruned = int(rows * cols * sparsity)
    chunk = nm.m if nm is not None else 16
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        width = i2 - i1
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
        for j1 in range(0, width, chunk):
            j2 = min(j1 + chunk, width)
            if nm is not None:  # block_size is a multiple of M: a chunk is one N:M group
                score = W1[:, j1:j2] ** 2 / d[j1:j2].unsqueeze(0) ** 2
                mask1[:, j1:j2] = nm_mask(score, nm)
            for i in range(j1, j2):
                w = W1[:, i]
                q = w.masked_fill(mask1[:, i], 0.0)
                err = (w - q) / Hinv1[i, i]
                if i + 1 < j2:
                    W1[:, i + 1 : j2] -= err.unsqueeze(1) * Hinv1[i, i + 1 : j2].unsqueeze(0)
                W1[:, i] = q
                Err1[:, i] = err
            if j2 < width:
                W1[:, j2:] -= Err1[:, j1:j2] @ Hinv1[j1:j2, j2:]
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    info = {
        "damp_fraction": inverse.damp_fraction,
        "damping_increases": inverse.increases,
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
