"""labcore: the small shared core of the lab toolkit.

Submodules
----------
data      English text corpora (offline BBC News, local files), BBC topic labels and seeded
          token windows.
metrics   Perplexity, thin scikit-learn wrappers, support-recovery and ranking metrics.
models    Offline causal LMs and sentence encoders, and tiny random models for tests.
embed     Sentence embeddings with unit rows: a cached sentence encoder or a TF-IDF fallback.
device    Device resolution, seeding, a CUDA-synchronising timer and peak memory.
bench     The benchmark contract: BenchConfig, BenchSpec, BenchReport, the results.json schema
          with provenance, mean ± std tables over seeds, and comparing two runs.
progress  Progress bars and status lines on stderr, for library code (scoped by a context).
cli       The CLI conventions every package follows (only CLI modules import it).
commands  The ``labcore`` command itself (ppl, models, info, bench compare).
io        Atomic writes, the one CSV reader/writer of the CLIs and a JSON Lines reader.
checks    Argument checks that raise one clear LabcoreError.
lowrank   Masked low-rank tools: truncated SVD, SVT, Soft-/Hard-Impute, hold-out tuning.
highs     One lock and quiet output for HiGHS (highspy) in every package.
tasks     Reasoning problems with exact answers (GSM8K, MATH500, seeded arithmetic word
          problems), the Problem record and answer normalisation and scoring.

``import labcore`` is cheap: torch and transformers are imported only when a function that
needs them runs. ``labcore.load_causal_lm`` and ``labcore.load_sentence_encoder`` resolve
lazily to :mod:`labcore.models`.
"""

from __future__ import annotations

import importlib
from typing import Any

from labcore.errors import LabcoreError

__version__ = "0.1.0"

_SUBMODULES = {
    "bench",
    "checks",
    "cli",
    "commands",
    "data",
    "device",
    "embed",
    "highs",
    "io",
    "lowrank",
    "metrics",
    "models",
    "progress",
    "tasks",
}
_LAZY_FUNCTIONS = {
    "load_causal_lm": "labcore.models",
    "load_sentence_encoder": "labcore.models",
}
__all__ = ["LabcoreError", "__version__", *sorted(_SUBMODULES), *_LAZY_FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"labcore.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'labcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
