"""layerwise: the shared sequential layer-wise compression engine for causal LMs.

>>> from layerwise import Calibration, GPTQConfig, SparseGPTConfig, compress, save, load
"""

from layerwise.architectures import ARCHITECTURES, Architecture, register_architecture
from layerwise.calibration import Calibration
from layerwise.engine import CompressionReport, LayerReport, LayerwiseEngine, compress
from layerwise.export import load, save
from layerwise.methods import (
    GPTQConfig,
    IdentityConfig,
    LayerResult,
    LayerStats,
    MagnitudeConfig,
    Method,
    RTNConfig,
    SparseGPTConfig,
    WandaConfig,
    available_methods,
    get_method_class,
    register,
)
from layerwise.quant import QuantizedWeight, QuantSpec
from layerwise.sparsity import NM, parse_nm

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "NM",
    "Architecture",
    "Calibration",
    "CompressionReport",
    "GPTQConfig",
    "IdentityConfig",
    "LayerReport",
    "LayerResult",
    "LayerStats",
    "LayerwiseEngine",
    "MagnitudeConfig",
    "Method",
    "QuantSpec",
    "QuantizedWeight",
    "RTNConfig",
    "SparseGPTConfig",
    "WandaConfig",
    "__version__",
    "available_methods",
    "compress",
    "get_method_class",
    "load",
    "parse_nm",
    "register",
    "register_architecture",
    "save",
]
