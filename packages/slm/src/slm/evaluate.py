"""Measuring a stage: relevance of its rankings and the cost of producing them.

One request = one query with its candidate list, scored with the query prefix computed once
and the items in batches after it (:meth:`mixlm.ranker.MixRanker.score`). Items are
compressed and tokenized beforehand (indexing time, not timed); the timed part is what a
serving request costs: the embedding lookup, the prefix and the item forwards.

Relevance: NDCG@10 on graded relevance (2: the query's own article, 1: same topic, 0:
other), MRR of the own article, and ROC AUC of same-topic-or-own against other, averaged
over queries.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from labcore.errors import LabcoreError


def _item_ids(ranker, items: dict[str, str], wanted, compressor) -> dict[str, list[int]]:
    out = {}
    for item_id in wanted:
        text = items[item_id]
        out[item_id] = ranker.ids(compressor(text) if compressor is not None else text)
    return out


def _requests(
    ranker, task, token_ids, batch_size: int, reuse_prefix: bool = True
) -> tuple[list[np.ndarray], list[float]]:
    import torch

    scores, latencies = [], []
    with torch.inference_mode():
        for query, cands in zip(task.queries, task.candidates, strict=True):
            t0 = time.perf_counter()
            vectors = [ranker.embed_ids(token_ids[c]) for c in cands]
            s, _ = ranker.score(query, vectors, batch_size=batch_size, reuse_prefix=reuse_prefix)
            latencies.append(time.perf_counter() - t0)
            scores.append(s.float().numpy())
    return scores, latencies


def relevance(task, scores: list[np.ndarray]) -> dict[str, float]:
    from labcore.metrics import mean_reciprocal_rank, ndcg_at_k, roc_auc

    ndcg, mrr, auc = [], [], []
    for rel, s in zip(task.relevance, scores, strict=True):
        rel = np.asarray(rel)
        ndcg.append(ndcg_at_k(rel, s, k=10))
        mrr.append(mean_reciprocal_rank((rel == 2).astype(int)[None], s[None]))
        positive = (rel > 0).astype(int)
        if 0 < positive.sum() < len(positive):
            auc.append(roc_auc(positive, s))
    return {
        "ndcg@10": float(np.mean(ndcg)),
        "mrr": float(np.mean(mrr)),
        "auc": float(np.mean(auc)) if auc else float("nan"),
    }


def evaluate(
    ranker,
    task,
    items: dict[str, str],
    compressor=None,
    *,
    batch_size: int = 16,
    reuse_prefix: bool = True,
):
    """Relevance and cost of ``ranker`` on ``task`` (see the module notes); without
    ``reuse_prefix`` every item recomputes the query prefix (the reference)."""
    from slm.kernels import model_bytes, parameter_count

    if not task.queries:
        raise LabcoreError("the evaluation task has no queries")
    wanted = sorted({c for cands in task.candidates for c in cands})
    token_ids = _item_ids(ranker, items, wanted, compressor)
    full_ids = _item_ids(ranker, items, wanted, None)
    scores, latencies = _requests(ranker, task, token_ids, batch_size, reuse_prefix)
    n_items = sum(len(c) for c in task.candidates)
    item_tokens = float(np.mean([len(token_ids[c]) for c in wanted]))
    answer_tokens = len(ranker.ids(ranker.template.answer))
    return {
        **relevance(task, scores),
        "parameters": parameter_count(ranker.model),
        "bytes": model_bytes(ranker.model),
        "tokens_per_item": item_tokens,
        "full_tokens_per_item": float(np.mean([len(full_ids[c]) for c in wanted])),
        "prefill_tokens_per_item": item_tokens + answer_tokens,
        "items_per_s": n_items / float(np.sum(latencies)),
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
        "requests": len(latencies),
        "batch_size": batch_size,
        "dtype": str(next(ranker.model.parameters()).dtype).removeprefix("torch."),
    }


def tune_batch_size(
    ranker,
    task,
    items: dict[str, str],
    compressor,
    batch_sizes,
    latency_target_s: float,
    *,
    rounds: int = 3,
) -> dict[str, Any]:
    """The batch size of highest items/s whose p99 request latency on ``task`` (the
    validation queries) is within ``latency_target_s``; when none is, the one of lowest p99
    (``target_met`` false). Batch sizes are timed in ``rounds`` interleaved rounds after a
    warm-up (the machine's load drifts), latencies pooled over the rounds. Sizes at or above
    the longest candidate list all run one batch per request: only the smallest is timed."""
    wanted = sorted({c for cands in task.candidates for c in cands})
    token_ids = _item_ids(ranker, items, wanted, compressor)
    n_items = sum(len(c) for c in task.candidates)
    longest = max(len(c) for c in task.candidates)
    sizes = sorted({min(int(b), longest) for b in batch_sizes})
    _requests(ranker, task, token_ids, sizes[-1])  # warm-up
    latencies: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b in sizes:
            latencies[b] += _requests(ranker, task, token_ids, b)[1]
    measured = [
        {"batch_size": b, "items_per_s": rounds * n_items / float(np.sum(latencies[b])),
         "p99_s": float(np.percentile(latencies[b], 99))}
        for b in sizes
    ]  # fmt: skip
    within = [m for m in measured if m["p99_s"] <= latency_target_s]
    best = (
        max(within, key=lambda m: m["items_per_s"])
        if within
        else min(measured, key=lambda m: m["p99_s"])
    )
    return {
        "batch_size": best["batch_size"],
        "target_met": bool(within),
        "latency_target_s": latency_target_s,
        "rounds": rounds,
        "measured": measured,
    }
