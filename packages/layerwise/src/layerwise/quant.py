"""The common uniform quantizer: 2-8 bits, symmetric or asymmetric, per channel or per group.

A weight row ``w`` (one output channel) with scale ``s`` and integer zero point ``z`` is stored
as codes ``q = clamp(round(w / s) + z, 0, 2^bits - 1)`` and read back as ``s * (q - z)``. The
grid always contains 0 (the range is widened to include it), as in GPTQ's reference quantizer.
Symmetric grids fix ``z = 2^(bits-1)``.

With ``group_size`` g, every g consecutive input columns of a row have their own scale and
zero; with activation order, GPTQ visits columns in a permuted order and ``g_idx[j]`` maps
input column ``j`` to its group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labcore import LabcoreError


@dataclass(frozen=True)
class QuantSpec:
    """How weights are quantized.

    Parameters
    ----------
    bits
        2 to 8.
    sym
        Symmetric grid (zero point fixed at the middle) instead of asymmetric min/max.
    group_size
        Input columns per scale/zero group; ``None`` for one group per output channel.
    """

    bits: int = 4
    sym: bool = False
    group_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise LabcoreError(f"bits must be an integer from 2 to 8, got {self.bits!r}")
        if self.group_size is not None and (
            not isinstance(self.group_size, int) or self.group_size < 1
        ):
            raise LabcoreError(
                f"group_size must be a positive integer or None, got {self.group_size!r}"
            )

    @property
    def maxq(self) -> int:
        return 2**self.bits - 1


def grid_params(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point per row of ``w`` ([rows, cols]) -> two [rows] tensors."""
    w = w.float()
    zero_ = torch.zeros(w.shape[0], device=w.device)
    xmin = torch.minimum(w.min(dim=1).values, zero_)
    xmax = torch.maximum(w.max(dim=1).values, zero_)
    if spec.sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    flat = (xmin == 0) & (xmax == 0)
    xmin = torch.where(flat, -torch.ones_like(xmin), xmin)
    xmax = torch.where(flat, torch.ones_like(xmax), xmax)
    scale = (xmax - xmin) / spec.maxq
    zero = torch.full_like(scale, (spec.maxq + 1) // 2) if spec.sym else torch.round(-xmin / scale)
    return scale, zero


def quantize_codes(
    w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int
) -> torch.Tensor:
    """Integer codes of ``w`` (any shape broadcastable with scale/zero)."""
    return torch.clamp(torch.round(w / scale) + zero, 0, maxq)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return scale * (codes - zero)


def quantize_dequantize(
    w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int
) -> torch.Tensor:
    return dequantize(quantize_codes(w, scale, zero, maxq), scale, zero)


@dataclass
class QuantizedWeight:
    """Integer codes with their grid, enough to rebuild the weight exactly.

    codes   uint8 [out, in]
    scales  float32 [out, n_groups]
    zeros   float32 [out, n_groups] (integral values)
    g_idx   int32 [in]: group of every input column
    outliers float32 [out, in] or None: a sparse full-precision part added to the grid values
            (outlier-aware methods such as QuantEase keep a few weights off the grid)
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    sym: bool
    group_size: int | None
    outliers: torch.Tensor | None = None

    @classmethod
    def from_grid(cls, codes, scales, zeros, g_idx, spec: QuantSpec) -> QuantizedWeight:
        """Codes (any integer dtype) and their grid, stored as uint8 codes and int32 g_idx."""
        return cls(
            codes.to(torch.uint8),
            scales,
            zeros,
            g_idx.to(torch.int32),
            spec.bits,
            spec.sym,
            spec.group_size,
        )

    def dequantize(self) -> torch.Tensor:
        g = self.g_idx.long()
        w = self.scales[:, g] * (self.codes.float() - self.zeros[:, g])
        return w if self.outliers is None else w + self.outliers.to(w.device, w.dtype)

    @property
    def outlier_count(self) -> int:
        return 0 if self.outliers is None else int(torch.count_nonzero(self.outliers))


def rtn_quantize(w: torch.Tensor, spec: QuantSpec) -> QuantizedWeight:
    """Round-to-nearest quantization of a weight matrix [out, in]."""
    rows, cols = w.shape
    w = w.float()
    gs = spec.group_size or cols
    n_groups = -(-cols // gs)
    g_idx = torch.arange(cols, device=w.device) // gs
    scales = torch.empty(rows, n_groups, device=w.device)
    zeros = torch.empty(rows, n_groups, device=w.device)
    for g in range(n_groups):
        scales[:, g], zeros[:, g] = grid_params(w[:, g * gs : (g + 1) * gs], spec)
    codes = quantize_codes(w, scales[:, g_idx], zeros[:, g_idx], spec.maxq)
    return QuantizedWeight.from_grid(codes, scales, zeros, g_idx, spec)


# ---------------------------------------------------------------------------------------------
# Packed storage: codes are bit-packed row by row, `bits` bits per code, little-endian within
# each byte (numpy packbits with bitorder="little"). A row of `cols` codes takes
# ceil(cols * bits / 8) bytes.


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    import numpy as np

    c = codes.to(torch.uint8).cpu().numpy()
    planes = np.unpackbits(c[..., None], axis=-1, bitorder="little")[..., :bits]
    return torch.from_numpy(np.packbits(planes.reshape(c.shape[0], -1), axis=-1, bitorder="little"))


def unpack_codes(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    import numpy as np

    p = packed.cpu().numpy()
    planes = np.unpackbits(p, axis=-1, bitorder="little")[:, : cols * bits].reshape(
        p.shape[0], cols, bits
    )
    full = np.zeros((p.shape[0], cols, 8), dtype=np.uint8)
    full[..., :bits] = planes
    return torch.from_numpy(np.packbits(full, axis=-1, bitorder="little")[..., 0])
