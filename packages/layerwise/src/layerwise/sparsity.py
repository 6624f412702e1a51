"""Sparsity patterns.

``N:M`` means N weights **kept** in every M consecutive input weights of each output row
(2:4 keeps half). SparseGPT's code counts pruned weights instead; we convert at the boundary.
Granularities: ``layer`` (one threshold over the whole matrix), ``row`` (the same count in
every output row), ``block`` (SparseGPT: the same count in every 128-column block, all rows
together) and ``N:M``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from labcore import LabcoreError


@dataclass(frozen=True)
class NM:
    """N kept in every M consecutive weights of a row."""

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and isinstance(self.m, int) and 0 < self.n < self.m):
            raise LabcoreError(f"N:M needs 0 < N < M, got {self.n}:{self.m}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


def parse_nm(text: str | NM | None) -> NM | None:
    """Parse ``"2:4"`` (N kept : M) into :class:`NM`."""
    if text is None or isinstance(text, NM):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not match:
        raise LabcoreError(f"N:M pattern must look like 2:4 (N kept of every M), got {text!r}")
    return NM(int(match.group(1)), int(match.group(2)))


def check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) < 1.0:
        raise LabcoreError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return float(sparsity)


def smallest_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` smallest entries of ``score`` (any shape), exactly k of them.

    A selection (``kthvalue``) instead of a sort: ALPS projects onto this set every ADMM
    iteration, with k a large share of the layer, where ``topk`` was the bottleneck.
    Ties at the threshold are broken by position.
    """
    flat = score.flatten()
    n = flat.numel()
    if k <= 0:
        return torch.zeros_like(score, dtype=torch.bool)
    if k >= n:
        return torch.ones_like(score, dtype=torch.bool)
    threshold = torch.kthvalue(flat.float(), k).values
    mask = flat.float() < threshold
    missing = k - int(mask.sum())
    if missing > 0:
        ties = torch.nonzero(flat.float() == threshold).squeeze(1)[:missing]
        mask[ties] = True
    return mask.view_as(score)


def row_mask(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Prune ``floor(cols * sparsity)`` smallest scores in every row."""
    k = int(score.shape[1] * sparsity)
    mask = torch.zeros_like(score, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices, True)
    return mask


def nm_mask(score: torch.Tensor, nm: NM) -> torch.Tensor:
    """Prune the M - N smallest scores in every group of M consecutive columns of each row.

    Large inputs (ALPS and OATS project whole layers every iteration) rank each entry
    within its group by M·(M - 1) elementwise comparisons, about four times faster than
    ``topk`` over a last dimension of size M; ties go to the earlier column (pruned first).
    """
    rows, cols = score.shape
    if cols % nm.m:
        raise LabcoreError(f"N:M {nm} needs the input size ({cols}) to be a multiple of {nm.m}")
    groups = score.reshape(rows, cols // nm.m, nm.m)
    if score.numel() < 65536 or nm.m > 16:
        mask = torch.zeros_like(groups, dtype=torch.bool)
        mask.scatter_(2, torch.topk(groups, nm.m - nm.n, dim=2, largest=False).indices, True)
        return mask.reshape(rows, cols)
    columns = [groups[..., i] for i in range(nm.m)]
    mask = torch.empty_like(groups, dtype=torch.bool)
    for i, current in enumerate(columns):
        rank = torch.zeros_like(current, dtype=torch.uint8)  # entries ranked below this one
        for j, other in enumerate(columns):
            if j != i:
                rank += (other <= current) if j < i else (other < current)
        mask[..., i] = rank < nm.m - nm.n
    return mask.reshape(rows, cols)


def nm_holds(weight: torch.Tensor, nm: NM) -> bool:
    """True when every group of M consecutive weights of each row has at most N nonzeros."""
    rows, cols = weight.shape
    nonzero = (weight.reshape(rows, cols // nm.m, nm.m) != 0).sum(-1)
    return bool((nonzero <= nm.n).all())


def normalize_sparsity_fields(config: object) -> None:
    """Shared ``__post_init__`` step of pruning configs (frozen dataclasses with ``sparsity``
    and ``nm``): parse ``nm``, let it set ``sparsity``, and check the sparsity."""
    nm = parse_nm(config.nm)
    object.__setattr__(config, "nm", nm)
    if nm is not None:
        object.__setattr__(config, "sparsity", nm.sparsity)
    check_sparsity(config.sparsity)
