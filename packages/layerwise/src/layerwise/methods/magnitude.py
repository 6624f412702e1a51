from __future__ import annotations

from dataclasses import dataclass

from labcore import LabcoreError
from layerwise.methods.base import LayerResult, Method, register
from layerwise.sparsity import NM, nm_mask, normalize_sparsity_fields, row_mask, smallest_mask


@dataclass(frozen=True)
class MagnitudeConfig:
    """Prune the smallest |W|, with one threshold per layer (``layer``) or per output row (``row``),
    or N:M (``nm="2:4"`` keeps 2 of every 4)."""

    sparsity: float = 0.5
    granularity: str = "layer"
    nm: NM | str | None = None

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)
        if self.granularity not in ("layer", "row"):
            raise LabcoreError(f"granularity must be 'layer' or 'row', got {self.granularity!r}")


@register
class Magnitude(Method):
    name = "magnitude"
    config_class = MagnitudeConfig
    statistics = "none"

    def compress_layer(self, name, weight, stats) -> LayerResult:
        c = self.config
        score = weight.abs()
        if c.nm is not None:
            mask = nm_mask(score, c.nm)
        elif c.granularity == "row":
            mask = row_mask(score, c.sparsity)
        else:
            mask = smallest_mask(score, int(score.numel() * c.sparsity))
        return LayerResult(weight.masked_fill(mask, 0.0))
