"""HASSLE-free and OATS as ``layerwise`` method plugins (``layerwise run --method hasslefree``).

Each layer's result is S (the weight) plus the extras ``lowrank_u`` / ``lowrank_v``: the
engine turns the layer into a :class:`~layerwise.structure.FactoredLinear` computing
``(S + U V) x``, reports the error of S + U V, and :func:`layerwise.save` writes S, U and V
(``extras.safetensors``) beside the dense sum S + U V (``model.safetensors``). The engine's
``sparsity`` column is S's share of zeros; each layer's info adds ``rank`` and ``params``
(S's nonzeros plus r·(out + in)).
"""

from __future__ import annotations

import time

import torch
from layerwise.methods.base import LayerResult, LayerStats, Method, register
from layerwise.structure import LOWRANK_U, LOWRANK_V

from hasslefree.config import HassleFreeConfig, OATSConfig
from hasslefree.core import Whitening, hassle_free, oats, prepare


def _result(S: torch.Tensor, U: torch.Tensor, V: torch.Tensor, info: dict) -> LayerResult:
    return LayerResult(S, None, info, extras={LOWRANK_U: U, LOWRANK_V: V})


@register
class HassleFree(Method):
    name = "hasslefree"
    config_class = HassleFreeConfig
    statistics = "full"
    grouping = "block"  # as SparseGPT and ALPS: every linear layer of a block from one capture
    kind = "sparse+lowrank"

    def compress_layer(self, name: str, weight, stats: LayerStats) -> LayerResult:
        S, U, V, info = hassle_free(weight, stats.H, self.config, name=name)
        return _result(S, U, V, info)

    def compress_group(self, layers):
        # q/k/v (and gate/up) share one statistic object: damp and eigendecompose it once
        whitened: dict[int, Whitening] = {}
        out = {}
        for name, (weight, stats) in layers.items():
            start = time.perf_counter()
            key = id(stats.H)
            if key not in whitened:
                whitened[key] = prepare(stats.H, self.config)
            S, U, V, info = hassle_free(
                weight, stats.H, self.config, name=name, white=whitened[key]
            )
            info["solve_s"] = round(time.perf_counter() - start, 5)
            out[name] = _result(S, U, V, info)
        return out


@register
class OATS(Method):
    name = "oats"
    config_class = OATSConfig
    # OATS reads only diag(XᵀX) (Wanda's statistic); the full XᵀX is accumulated so that the
    # engine reports the same layer error as for every other row of a comparison
    statistics = "full"
    grouping = "block"
    kind = "sparse+lowrank"

    def compress_layer(self, name: str, weight, stats: LayerStats) -> LayerResult:
        S, U, V, info = oats(weight, stats.diag, self.config, name=name)
        return _result(S, U, V, info)
