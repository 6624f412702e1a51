from __future__ import annotations

from dataclasses import dataclass

from layerwise.methods.base import LayerResult, LayerStats, Method, register
from layerwise.quant import QuantSpec, rtn_quantize


@dataclass(frozen=True)
class RTNConfig:
    """Round-to-nearest: every weight to its nearest grid point, no calibration data used."""

    bits: int = 4
    sym: bool = False
    group_size: int | None = None

    def __post_init__(self) -> None:
        QuantSpec(self.bits, self.sym, self.group_size)  # validates


@register
class RTN(Method):
    name = "rtn"
    config_class = RTNConfig
    statistics = "none"
    kind = "quantization"

    def compress_layer(self, name, weight, stats: LayerStats) -> LayerResult:
        q = rtn_quantize(
            weight, QuantSpec(self.config.bits, self.config.sym, self.config.group_size)
        )
        return LayerResult(q.dequantize(), q)
