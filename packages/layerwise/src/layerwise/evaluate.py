"""Evaluation: perplexity on a corpus's test split, and the per-layer error report."""

from __future__ import annotations

from typing import Any

from labcore import LabcoreError
from labcore.data import Corpus, evaluation_windows, load_corpus
from labcore.metrics import Perplexity, perplexity
from labcore.models import context_length


def evaluate_perplexity(
    model: Any,
    tokenizer: Any,
    corpus: str | Corpus = "bbc",
    *,
    seqlen: int = 512,
    windows: int | None = 64,
    seed: int = 0,
    batch_size: int = 4,
    progress: bool = False,
) -> Perplexity:
    """Perplexity on the test split (or a whole local file) in non-overlapping windows."""
    ctx = context_length(model)
    if ctx is not None and seqlen > ctx:
        raise LabcoreError(f"seqlen {seqlen} is longer than the model's context length {ctx}")
    c = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    w = evaluation_windows(tokenizer, c.test, seqlen=seqlen, max_windows=windows, seed=seed)
    return perplexity(model, w, batch_size=batch_size, progress=progress)


def layer_table(report: dict[str, Any], *, limit: int | None = None) -> str:
    """A Markdown table of per-layer relative errors and sparsities from a report dict."""
    lines = ["| layer | shape | rel. error | sparsity | damping |", "|---|---|---|---|---|"]
    layers = report.get("layers", [])
    for layer in layers[:limit] if limit else layers:
        err = layer.get("rel_error")
        damp = layer.get("info", {}).get("damp_fraction")
        lines.append(
            f"| {layer['name']} | {layer['shape'][0]}x{layer['shape'][1]} | "
            f"{'–' if err is None else f'{err:.4g}'} | {layer['sparsity']:.3f} | "
            f"{'–' if damp is None else f'{damp:.3g}'} |"
        )
    return "\n".join(lines)
