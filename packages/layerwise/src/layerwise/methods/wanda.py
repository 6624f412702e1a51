from __future__ import annotations

from dataclasses import dataclass

from layerwise.methods.base import LayerResult, LayerStats, Method, register
from layerwise.sparsity import NM, nm_mask, normalize_sparsity_fields, row_mask


@dataclass(frozen=True)
class WandaConfig:
    """Wanda (Sun et al., 2024): prune by |W_ij| · ||X_j||_2 within each output row; no update."""

    sparsity: float = 0.5
    nm: NM | str | None = None

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)


@register
class Wanda(Method):
    name = "wanda"
    config_class = WandaConfig
    statistics = "diag"
    grouping = "block"  # as in the reference code: all layers of a block from one pass

    def compress_layer(self, name, weight, stats: LayerStats) -> LayerResult:
        score = weight.abs() * stats.diag.clamp_min(0).sqrt().unsqueeze(0)
        mask = (
            nm_mask(score, self.config.nm)
            if self.config.nm
            else row_mask(score, self.config.sparsity)
        )
        return LayerResult(weight.masked_fill(mask, 0.0))
