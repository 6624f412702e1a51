"""Reasoning evaluation for compressed models: exact-answer accuracy and generated length.

RAC's claim has two halves: compressed reasoning models lose accuracy, and they think
longer. :func:`evaluate_reasoning` measures both on problems with checkable answers (greedy
decoding in the model's chat template): ``accuracy``, ``mean_tokens`` (generated tokens per
problem) and ``truncated`` (the share that hit ``max_new_tokens`` without finishing).
:func:`reasoning_evaluator` wraps it as an evaluator of the layerwise bench runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labcore import LabcoreError
from rac.traces import DEFAULT_INSTRUCTION, format_prompt, generate_completions


def evaluate_reasoning(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    instruction: str = DEFAULT_INSTRUCTION,
) -> dict[str, float]:
    """Greedy completions of every problem, scored against its reference answer.

    Examples
    --------
    >>> from labcore.models import tiny_causal_lm
    >>> from labcore.tasks import arithmetic_problems
    >>> from rac.evaluate import evaluate_reasoning
    >>> model, tok = tiny_causal_lm("llama")
    >>> out = evaluate_reasoning(model, tok, arithmetic_problems(4), max_new_tokens=6)
    >>> sorted(out), out["accuracy"]
    (['accuracy', 'mean_tokens', 'problems', 'truncated'], 0.0)
    """
    if not problems:
        raise LabcoreError("no problems to evaluate on")
    missing = [p.id for p in problems if p.answer is None]
    if missing:
        raise LabcoreError(f"problems without a reference answer cannot be scored: {missing[:3]}")
    correct = tokens = truncated = 0
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        texts = [format_prompt(tokenizer, p.prompt, instruction) for p in batch]
        outputs = generate_completions(model, tokenizer, texts, max_new_tokens=max_new_tokens)
        for problem, (_, completion, finished) in zip(batch, outputs, strict=True):
            correct += problem.score(tokenizer.decode(completion, skip_special_tokens=True))
            tokens += len(completion)
            truncated += not finished
    n = len(problems)
    return {
        "accuracy": round(correct / n, 4),
        "mean_tokens": round(tokens / n, 2),
        "truncated": round(truncated / n, 4),
        "problems": n,
    }


def reasoning_evaluator(
    name: str, problems: Sequence[Any], **options: Any
) -> Callable[..., dict[str, float]]:
    """An evaluator ``(model, tokenizer, *, seed) -> {name_accuracy, name_tokens, ...}`` for
    :func:`layerwise.bench.run_rows`."""

    def evaluate(model: Any, tokenizer: Any, *, seed: int) -> dict[str, float]:
        out = evaluate_reasoning(model, tokenizer, problems, **options)
        return {
            f"{name}_accuracy": out["accuracy"],
            f"{name}_tokens": out["mean_tokens"],
            f"{name}_truncated": out["truncated"],
        }

    evaluate.__name__ = f"{name}_reasoning"
    return evaluate


def trace_perplexity(
    model: Any, records: Sequence[dict[str, Any]], *, batch_size: int = 8, pad_id: int = 0
) -> float:
    """Perplexity of ``model`` on the completion tokens of held-out dense traces, given their
    prompts: how well a compressed model keeps the dense model's own reasoning (on-policy
    perplexity, lower is better; the dense model's own value is the reference).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from labcore.models import tiny_causal_lm
    >>> from labcore.tasks import arithmetic_problems
    >>> from rac.traces import TraceConfig, generate_traces, read_traces
    >>> from rac.evaluate import trace_perplexity
    >>> model, tok = tiny_causal_lm("llama")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = generate_traces(model, tok, arithmetic_problems(2), path, TraceConfig(max_new_tokens=5))
    >>> trace_perplexity(model, read_traces(path)[1]) > 1.0
    True
    """
    import math

    import torch

    if not records:
        raise LabcoreError("no traces to score")
    device = next(model.parameters()).device
    total_nll = 0.0
    total_tokens = 0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        sequences = [r["prompt_ids"] + r["completion_ids"] for r in batch]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        scored = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (record, sequence) in enumerate(zip(batch, sequences, strict=True)):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
            scored[row, len(record["prompt_ids"]) : len(sequence)] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        target = ids[:, 1:].to(device)
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        keep = scored[:, 1:].to(device)
        total_nll += float(nll[keep].sum())
        total_tokens += int(keep.sum())
    if total_tokens == 0:
        raise LabcoreError("the traces have no completion tokens to score")
    return math.exp(total_nll / total_tokens)


def trace_evaluator(records: Sequence[dict[str, Any]]) -> Callable[..., dict[str, float]]:
    """An evaluator ``(model, tokenizer, *, seed) -> {"trace_ppl": ...}`` for the bench."""

    def evaluate(model: Any, tokenizer: Any, *, seed: int) -> dict[str, float]:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return {"trace_ppl": round(trace_perplexity(model, records, pad_id=pad), 4)}

    evaluate.__name__ = "trace_perplexity"
    return evaluate
