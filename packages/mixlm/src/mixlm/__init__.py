"""MixLM: LLM ranking with text-embedding mix-interaction (Li, He, Jing et al., 2025).

An item encoder turns each catalogue item into k vectors in the ranker's hidden size, kept
in a nearline cache; the ranker (a causal LM) reads the query text plus those k vectors
instead of the item's text. The training recipe is our reconstruction (see the README).
The public names load torch and transformers on first use, so ``mixlm --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MixRanker": "mixlm.ranker",
    "PromptTemplate": "mixlm.ranker",
    "ItemEncoder": "mixlm.encoder",
    "ItemCache": "mixlm.cache",
    "StaleCacheError": "mixlm.cache",
    "TrainConfig": "mixlm.train",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mixlm' has no attribute {name!r}")
