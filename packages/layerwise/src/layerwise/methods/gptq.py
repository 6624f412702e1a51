"""GPTQ (Frantar, Ashkboos, Hoefler and Alistarh, ICLR 2023).

Columns are quantized one at a time in blocks of ``block_size``; the rounding error of each
column is spread over the not-yet-quantized columns with the inverse Hessian (the optimal
brain surgeon update), using the upper Cholesky factor of ``(H + λI)^{-1}``, with lazy batch
updates between blocks. ``act_order`` visits columns by decreasing ``diag(H)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labcore import LabcoreError
from layerwise.linalg import damped_cholesky_inverse, handle_dead_columns
from layerwise.methods.base import LayerResult, LayerStats, Method, register
from layerwise.quant import QuantizedWeight, QuantSpec, dequantize, grid_params, quantize_codes


@dataclass(frozen=True)
class GPTQConfig:
    bits: int = 4
    sym: bool = False
    group_size: int | None = None
    act_order: bool = False
    block_size: int = 128
    percdamp: float = 0.01

    def __post_init__(self) -> None:
        QuantSpec(self.bits, self.sym, self.group_size)
        if self.block_size < 1:
            raise LabcoreError(f"block_size must be positive, got {self.block_size}")
        if self.percdamp < 0:
            raise LabcoreError(f"percdamp must be non-negative, got {self.percdamp}")


def gptq_quantize(
    W: torch.Tensor,
    H: torch.Tensor,
    spec: QuantSpec,
    *,
    act_order: bool = False,
    block_size: int = 128,
    percdamp: float = 0.01,
    name: str = "",
) -> tuple[QuantizedWeight, dict]:
    """Quantize ``W`` [out, in] against the Hessian ``H`` [in, in]; returns codes and info."""
    W = W.float().clone()
    H = H.float().clone()
    rows, cols = W.shape
    dead = handle_dead_columns(H, W)
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    damped = damped_cholesky_inverse(H, percdamp=percdamp, name=name)
    Hinv = damped.hinv_upper
    gs = spec.group_size
    n_groups = 1 if gs is None else -(-cols // gs)
    scales = torch.empty(rows, n_groups, device=W.device)
    zeros = torch.empty(rows, n_groups, device=W.device)
    if gs is None:
        scales[:, 0], zeros[:, 0] = grid_params(W, spec)
    codes = torch.empty(rows, cols, device=W.device)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.empty_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if gs is not None and col % gs == 0:
                # Group parameters from the group's current, error-updated weights (the
                # reference code reads the block's columns before their in-block updates).
                g = col // gs
                block = torch.cat([W1[:, i:], W[:, i2:]], dim=1)[:, :gs]
                scales[:, g], zeros[:, g] = grid_params(block, spec)
            g = 0 if gs is None else col // gs
            w = W1[:, i]
            q = quantize_codes(w, scales[:, g], zeros[:, g], spec.maxq)
            codes[:, col] = q
            err = (w - dequantize(q, scales[:, g], zeros[:, g])) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    g_idx = torch.arange(cols, device=W.device) // (gs or cols)
    if perm is not None:
        invperm = torch.argsort(perm)
        codes = codes[:, invperm]
        g_idx = g_idx[
            invperm
        ]  # group of original column j = position of j in the visit order // gs
    qw = QuantizedWeight.from_grid(codes, scales, zeros, g_idx, spec)
    info = {
        "damp_fraction": damped.damp_fraction,
        "damping_increases": damped.increases,
        "dead_columns": int(dead.sum()),
    }
    return qw, info


@register
class GPTQ(Method):
    name = "gptq"
    config_class = GPTQConfig
    statistics = "full"
    grouping = "sequential"
    kind = "quantization"

    def compress_layer(self, name, weight, stats: LayerStats) -> LayerResult:
        c = self.config
        qw, info = gptq_quantize(
            weight,
            stats.H,
            QuantSpec(c.bits, c.sym, c.group_size),
            act_order=c.act_order,
            block_size=c.block_size,
            percdamp=c.percdamp,
            name=name,
        )
        return LayerResult(qw.dequantize(), qw, info)
