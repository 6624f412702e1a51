"""OSSCAR: one-shot structured pruning of attention heads and MLP neurons by combinatorial
optimisation (Meng, Ibrahim, Behdin et al., ICML 2024), on the layerwise engine.

>>> from osscar import OSSCARConfig
>>> OSSCARConfig(mlp_sparsity=0.3, head_sparsity=0.33).head_unit
'kv-group'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from osscar.config import OSSCARConfig
from osscar.core import (
    backward_elimination,
    insertion_gains,
    local_search,
    magnitude_support,
    objective,
    obs_costs,
    prune_layer,
    refit,
)

try:
    __version__ = version("osscar")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "OSSCARConfig",
    "__version__",
    "backward_elimination",
    "insertion_gains",
    "local_search",
    "magnitude_support",
    "objective",
    "obs_costs",
    "prune",
    "prune_layer",
    "refit",
]


def prune(model, config: OSSCARConfig, calibration, **engine_options):
    """Prune ``model`` in place with OSSCAR; returns the layerwise ``CompressionReport``.

    ``engine_options`` go to :func:`layerwise.compress` (``device``, ``batch_size``,
    ``structured="shrink"`` or ``"mask"``, ...).
    """
    from layerwise import compress

    report, _ = compress(model, config, calibration, **engine_options)
    return report
