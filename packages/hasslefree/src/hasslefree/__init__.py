"""HASSLE-free: sparse plus low-rank decomposition of LLM weights (Makni, Behdin et al., 2025).

Each linear layer becomes W ≈ S + L, S sparse (N:M such as 2:4, or unstructured) and L of low
rank, by alternating minimisation of the exact layer-wise reconstruction error
||X(W - S - L)||²: a sparse solver (SparseGPT or ALPS) on W - L, then the closed-form best
rank-r L for W - S (reduced-rank regression through the eigenbasis of XᵀX). OATS, the
diagonal relaxation, is the baseline beside it. Runs on the ``layerwise`` engine, so
calibration, model support, saving (S, U, V reload exactly) and evaluation are shared with the
SparseGPT and ALPS baselines; :func:`save_peft` writes S as a plain checkpoint and L as a PEFT
LoRA adapter.
"""

from __future__ import annotations

from typing import Any

from hasslefree.config import HassleFreeConfig, OATSConfig
from hasslefree.core import (
    Whitening,
    closed_form_lowrank,
    hassle_free,
    layer_rank,
    oats,
    objective,
)
from hasslefree.export import load_peft, save_peft
from hasslefree.method import OATS, HassleFree

__version__ = "0.1.0"


def compress(
    model: Any,
    calibration: Any,
    config: HassleFreeConfig | OATSConfig | None = None,
    **engine_options: Any,
):
    """Decompose every linear layer of ``model`` in place; returns the layerwise report.

    ``engine_options`` go to :class:`layerwise.LayerwiseEngine` (``device``, ``batch_size``,
    ``offload``, ``propagate``, ``progress``). The layers become
    :class:`~layerwise.structure.FactoredLinear` (S + U V). Save with :func:`layerwise.save`
    (reload with :func:`layerwise.load`) or :func:`save_peft`.

    Examples
    --------
    >>> import torch
    >>> from labcore.models import tiny_causal_lm
    >>> from layerwise import Calibration
    >>> from hasslefree import HassleFreeConfig, compress
    >>> model, tok = tiny_causal_lm("llama")
    >>> cal = Calibration(torch.randint(3, len(tok), (4, 32)), None)
    >>> report = compress(model, cal, HassleFreeConfig(rank=4), device="cpu", progress=False)
    >>> round(report.sparsity, 2), {layer.info["rank"] for layer in report.layers}
    (0.5, {4})
    """
    from layerwise.engine import compress as run_engine

    report, _ = run_engine(model, config or HassleFreeConfig(), calibration, **engine_options)
    return report


__all__ = [
    "OATS",
    "HassleFree",
    "HassleFreeConfig",
    "OATSConfig",
    "Whitening",
    "__version__",
    "closed_form_lowrank",
    "compress",
    "hassle_free",
    "layer_rank",
    "load_peft",
    "oats",
    "objective",
    "save_peft",
]
