"""ALPS as a ``layerwise`` method plugin (``layerwise run --method alps``)."""

from __future__ import annotations

from layerwise.methods.base import LayerResult, LayerStats, Method, register

from alps.config import ALPSConfig
from alps.core import Preconditioned, alps_prune


@register
class ALPS(Method):
    name = "alps"
    config_class = ALPSConfig
    statistics = "full"
    grouping = "block"  # as in the authors' driver: every linear of a block from one capture
    kind = "sparsity"

    def compress_layer(self, name: str, weight, stats: LayerStats) -> LayerResult:
        W, info = alps_prune(weight, stats.H, self.config, name=name)
        return LayerResult(W, None, info)

    def compress_group(self, layers):
        # q/k/v (and gate/up) share one statistic object: scale and eigendecompose it once
        prepared: dict[int, Preconditioned | None] = {}
        out = {}
        for name, (weight, stats) in layers.items():
            key = id(stats.H)
            if key not in prepared:
                prepared[key] = Preconditioned.from_statistic(stats.H, self.config.ridge)
            W, info = alps_prune(weight, stats.H, self.config, name=name, prepared=prepared[key])
            out[name] = LayerResult(W, None, info)
        return out
