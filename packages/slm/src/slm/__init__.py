"""slm: the small-language-model ranking pipeline (Behdin et al., 2025).

A teacher ranker is fine-tuned, distilled into a student on its yes/no score, pruned and
physically shrunk with OSSCAR (then a short recovery distillation), quantized with QuantEase
and served through a real integer kernel, fed compressed item text, and served with the
query prefix computed once per request. Every stage writes a checkpoint and a row of
metrics, and a run resumes from any stage.

>>> from slm import PipelineConfig
>>> PipelineConfig(out="runs/x", stages=("teacher", "distill")).stages
('teacher', 'distill')

The public names load torch and transformers on first use, so ``slm --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from slm.config import STAGES, PipelineConfig, load_config

__version__ = "0.1.0"

# torchao (imported by transformers when installed) logs notices about torch versions.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

_EXPORTS = {
    "run_pipeline": "slm.pipeline",
    "load_stage": "slm.pipeline",
    "ContextCompressor": "slm.compress",
    "distillation_loss": "slm.distill",
    "use_int_kernels": "slm.kernels",
    "model_bytes": "slm.kernels",
}
__all__ = [*sorted(_EXPORTS), "PipelineConfig", "STAGES", "__version__", "load_config"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'slm' has no attribute {name!r}")
