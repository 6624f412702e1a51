"""ALPS: one-shot LLM pruning by ADMM and a CG refit (Meng, Behdin et al., NeurIPS 2024).

Each linear layer is pruned by solving min ||X(W₀ - W)||² under a sparsity constraint
(layer-global top-k or N:M) with ADMM and a support-driven penalty schedule, then refitting
the kept weights by conjugate gradient. Runs on the ``layerwise`` engine, so calibration,
model support, export and evaluation are shared with the SparseGPT, Wanda and magnitude
baselines.
"""

from __future__ import annotations

from typing import Any

from alps.config import ALPSConfig
from alps.core import RidgeSolver, alps_prune, layer_objective, project
from alps.method import ALPS

__version__ = "0.1.0"


def prune(model: Any, calibration: Any, config: ALPSConfig | None = None, **engine_options: Any):
    """Prune ``model`` in place, layer by layer; returns the layerwise CompressionReport.

    ``engine_options`` go to :class:`layerwise.LayerwiseEngine` (``device``, ``batch_size``,
    ``offload``, ``propagate``, ``progress``). Save with :func:`layerwise.save`.

    Examples
    --------
    >>> import torch
    >>> from labcore.models import tiny_causal_lm
    >>> from layerwise import Calibration
    >>> from alps import ALPSConfig, prune
    >>> model, tok = tiny_causal_lm("llama")
    >>> cal = Calibration(torch.randint(3, len(tok), (4, 32)), None)
    >>> report = prune(model, cal, ALPSConfig(sparsity=0.7), device="cpu", progress=False)
    >>> round(report.sparsity, 2)
    0.7
    """
    from layerwise.engine import compress

    report, _ = compress(model, config or ALPSConfig(), calibration, **engine_options)
    return report


__all__ = [
    "ALPS",
    "ALPSConfig",
    "RidgeSolver",
    "__version__",
    "alps_prune",
    "layer_objective",
    "project",
    "prune",
]
