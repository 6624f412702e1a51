"""Built-in methods: the baselines every layer-wise package compares against."""

from layerwise.methods.base import (
    LayerResult,
    LayerStats,
    Method,
    available_methods,
    get_method_class,
    method_for_config,
    register,
)
from layerwise.methods.gptq import GPTQ, GPTQConfig, gptq_quantize
from layerwise.methods.identity import Identity, IdentityConfig
from layerwise.methods.magnitude import Magnitude, MagnitudeConfig
from layerwise.methods.rtn import RTN, RTNConfig
from layerwise.methods.sparsegpt import SparseGPT, SparseGPTConfig, sparsegpt_prune
from layerwise.methods.wanda import Wanda, WandaConfig

__all__ = [
    "GPTQ",
    "RTN",
    "GPTQConfig",
    "Identity",
    "IdentityConfig",
    "LayerResult",
    "LayerStats",
    "Magnitude",
    "MagnitudeConfig",
    "Method",
    "RTNConfig",
    "SparseGPT",
    "SparseGPTConfig",
    "Wanda",
    "WandaConfig",
    "available_methods",
    "get_method_class",
    "gptq_quantize",
    "method_for_config",
    "register",
    "sparsegpt_prune",
]
