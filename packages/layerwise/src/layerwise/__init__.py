"""layerwise: the shared sequential layer-wise compression engine for causal LMs.

>>> from layerwise import Calibration, GPTQConfig, SparseGPTConfig, compress, save, load
"""

from layerwise.architectures import ARCHITECTURES, Architecture, register_architecture
from layerwise.calibration import (
    Calibration,
    calibration_from_source,
    calibration_sources,
    register_calibration_source,
)
from layerwise.engine import CompressionReport, LayerReport, LayerwiseEngine, compress
from layerwise.export import load, read_extras, save
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
from layerwise.structure import FactoredLinear, ModelContext, Site, head_group_columns

__version__ = "0.2.0"

__all__ = [
    "ARCHITECTURES",
    "NM",
    "Architecture",
    "Calibration",
    "CompressionReport",
    "FactoredLinear",
    "GPTQConfig",
    "IdentityConfig",
    "LayerReport",
    "LayerResult",
    "LayerStats",
    "LayerwiseEngine",
    "MagnitudeConfig",
    "Method",
    "ModelContext",
    "QuantSpec",
    "QuantizedWeight",
    "RTNConfig",
    "Site",
    "SparseGPTConfig",
    "WandaConfig",
    "__version__",
    "available_methods",
    "calibration_from_source",
    "calibration_sources",
    "compress",
    "get_method_class",
    "head_group_columns",
    "load",
    "parse_nm",
    "read_extras",
    "register",
    "register_architecture",
    "register_calibration_source",
    "save",
]
