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


def measure_speed(
    model: Any,
    *,
    prompt_tokens: int = 256,
    new_tokens: int = 32,
    repeats: int = 5,
    vocab_low: int = 3,
) -> dict[str, float]:
    """CPU/GPU speed of a causal LM on random token ids (batch 1), as medians over ``repeats``.

    Returns ``params`` (parameter count), ``latency_ms`` (one forward pass over
    ``prompt_tokens`` tokens: prefill) and ``tokens_per_s`` (greedy generation of
    ``new_tokens`` tokens after a 16-token prompt, with the KV cache). One warm-up run each.
    Compare models measured in the same process: absolute numbers depend on the machine and
    its load.
    """
    import statistics
    import time

    import torch

    if prompt_tokens < 1 or new_tokens < 1 or repeats < 1:
        raise LabcoreError("prompt_tokens, new_tokens and repeats must be positive")
    device = next(model.parameters()).device
    vocab = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(vocab_low, vocab, (1, prompt_tokens), generator=g).to(device)
    short = ids[:, :16]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    prefill, decode = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(repeats + 1):
            sync()
            t0 = time.perf_counter()
            model(ids)
            sync()
            t1 = time.perf_counter()
            model.generate(
                short,
                attention_mask=torch.ones_like(short),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=model.config.eos_token_id or 0,
            )
            sync()
            t2 = time.perf_counter()
            if i > 0:  # the first run warms up caches and kernels
                prefill.append(t1 - t0)
                decode.append(t2 - t1)
    model.train(was_training)
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "latency_ms": 1000 * statistics.median(prefill),
        "tokens_per_s": new_tokens / statistics.median(decode),
    }
