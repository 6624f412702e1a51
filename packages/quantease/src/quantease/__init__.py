"""QuantEase: post-training quantization of LLMs by coordinate descent (Behdin et al., 2023).

>>> from quantease import QuantEaseConfig, quantize
>>> # report, codes = quantize(model, calibration, QuantEaseConfig(bits=3))

Each linear layer is quantized by cyclic coordinate descent on ||WX - ŴX||², one input
column at a time, with closed-form updates (no inverse, no Cholesky); the outlier-aware
variant keeps a sparse full-precision part H (W ≈ Ŵ + H). The method runs on the
``layerwise`` engine, so calibration, model support, export and evaluation are shared with the
GPTQ and RTN baselines.
"""

from __future__ import annotations

from typing import Any

from quantease.config import QuantEaseConfig
from quantease.core import coordinate_descent, fit_grid, layer_objective, quantease_quantize
from quantease.method import QuantEase

__version__ = "0.1.0"


def quantize(
    model: Any, calibration: Any, config: QuantEaseConfig | None = None, **engine_options: Any
):
    """Quantize ``model`` in place, layer by layer; returns (report, quantized codes per layer).

    ``engine_options`` go to :class:`layerwise.LayerwiseEngine` (``device``, ``batch_size``,
    ``offload``, ``propagate``, ``progress``). Save with :func:`layerwise.save`.

    Examples
    --------
    >>> import torch
    >>> from labcore.models import tiny_causal_lm
    >>> from layerwise import Calibration
    >>> from quantease import QuantEaseConfig, quantize
    >>> model, tok = tiny_causal_lm("llama")
    >>> cal = Calibration(torch.randint(3, len(tok), (4, 32)), None)
    >>> report, codes = quantize(model, cal, QuantEaseConfig(bits=3, sweeps=5), device="cpu", progress=False)
    >>> report.method, len(codes) == len(report.layers)
    ('quantease', True)
    """
    from layerwise.engine import compress

    return compress(model, config or QuantEaseConfig(), calibration, **engine_options)


__all__ = [
    "QuantEase",
    "QuantEaseConfig",
    "__version__",
    "coordinate_descent",
    "fit_grid",
    "layer_objective",
    "quantease_quantize",
    "quantize",
]
