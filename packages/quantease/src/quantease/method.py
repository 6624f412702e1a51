"""QuantEase as a ``layerwise`` method plugin (``layerwise run --method quantease``)."""

from __future__ import annotations

from layerwise.methods.base import LayerResult, LayerStats, Method, register

from quantease.config import QuantEaseConfig
from quantease.core import quantease_quantize


@register
class QuantEase(Method):
    name = "quantease"
    config_class = QuantEaseConfig
    statistics = "full"
    grouping = "sequential"
    kind = "quantization"

    def compress_layer(self, name: str, weight, stats: LayerStats) -> LayerResult:
        qw, info = quantease_quantize(weight, stats.H, self.config, name=name)
        return LayerResult(qw.dequantize(), qw, info)
