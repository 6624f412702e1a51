from __future__ import annotations

from dataclasses import dataclass

from layerwise.methods.base import LayerResult, Method, register


@dataclass(frozen=True)
class IdentityConfig:
    """Leave every weight as it is (engine checks; the dense reference)."""


@register
class Identity(Method):
    name = "identity"
    config_class = IdentityConfig
    statistics = "none"
    kind = "identity"

    def compress_layer(self, name, weight, stats) -> LayerResult:
        return LayerResult(weight.clone())
