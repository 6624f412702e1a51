"""``mixlm bench``: MixLM against the full-text ranker and the encoder baselines, on the same
pairs and the same candidate lists, in one process.

Task: BBC News (:func:`mixlm.data.bbc_ranking`), and GSM8K problem → solution matching
with ``--data-root``. Every ranker starts from the same checkpoints: SmolLM2-135M (the LLM
rankers) and MiniLM-L6 (MixLM's item encoder and both encoder baselines). Items are cut to
``item_tokens`` ranker tokens for every method alike.

1. ``full-text``: SmolLM2 fine-tuned on the training pairs with the item text in the prompt
   (the teacher).
2. ``mixlm-k{1,4,8}``: MiniLM + projection to k vectors + SmolLM2 starting from the
   teacher: the encoder aligned on unlabelled training items (the frozen ranker continues
   each item's first tokens from its vectors), then encoder and ranker trained on the
   labels (in-batch softmax + BCE) and distilled to the teacher's scores of the same pairs.
3. ``bi-encoder``, ``cross-encoder``: MiniLM fine-tuned on the same pairs.

Reported per method: NDCG@10 (graded relevance) and MRR (of the article itself / the
solution), items/s of scoring (MixLM: from precomputed item vectors, as the cache serves
them; its encoder time per item is reported apart, since the cache is filled nearline) and
prefill tokens per item (query prefix + item part + answer prompt, the tokens a pair costs
without prefix reuse; both LLM rankers are timed with the prefix computed once per query),
each as a ratio to full text. Then a load test of the HTTP service on loopback, reading a
real SQLite cache.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, markdown_table
from labcore.metrics import mean_reciprocal_rank, ndcg_at_k
from labcore.progress import status
from mixlm import __version__
from mixlm.data import RankingTask, bbc_ranking, reasoning_ranking
from mixlm.ranker import MixRanker
from mixlm.train import TrainConfig

KS = (1, 4, 8)


def _settings(quick: bool) -> dict:
    # Sized for 2 CPU cores: the full-text ranker costs about 2 s per training pair and
    # epoch with 256-token items, which bounds the pairs every method gets.
    if quick:
        return dict(
            pairs=64, queries=10, candidates=10, item_tokens=128, teacher_epochs=1, epochs=1,
            align_items=64,
        )  # fmt: skip
    return dict(
        pairs=160, queries=40, candidates=20, item_tokens=256, teacher_epochs=2, epochs=1,
        align_items=300,
    )  # fmt: skip


def _truncate(ranker: MixRanker, text: str, tokens: int) -> str:
    ids = ranker.ids(text)[:tokens]
    return ranker.tokenizer.decode(ids)


def _metrics(task: RankingTask, scores: list[np.ndarray]) -> dict[str, float]:
    ndcg = [ndcg_at_k(np.asarray(r), s, k=10) for r, s in zip(task.relevance, scores, strict=True)]
    mrr = [
        mean_reciprocal_rank((np.asarray(r) == 2).astype(int)[None], s[None])
        for r, s in zip(task.relevance, scores, strict=True)
    ]
    return {"ndcg@10": float(np.mean(ndcg)), "mrr": float(np.mean(mrr))}


def _evaluate(task, score_one) -> tuple[dict[str, float], float, float]:
    """Metrics, items/s and mean prefill tokens per item of a per-query scoring function."""
    scores, tokens, n_items = [], [], 0
    t0 = time.perf_counter()
    for query, cands in zip(task.queries, task.candidates, strict=True):
        s, per_item = score_one(query, list(cands))
        scores.append(np.asarray(s, dtype=float))
        tokens.append(per_item)
        n_items += len(cands)
    elapsed = time.perf_counter() - t0
    return _metrics(task, scores), n_items / elapsed, float(np.mean(tokens))


def task_rows(task: RankingTask, config: BenchConfig, seed: int) -> list[Row]:
    from labcore.models import load_causal_lm
    from mixlm.baselines import BiEncoder, CrossEncoder, minilm
    from mixlm.cache import ItemCache, fingerprint
    from mixlm.encoder import ItemEncoder, token_embedding_norm
    from mixlm.server import ScoringService, load_test_service
    from mixlm.train import align_encoder, teacher_scores, train_full_text, train_mixlm

    s = _settings(config.quick)
    torch.manual_seed(seed)
    # Learning rates from bench/tune_teacher.py and bench/tune_student.py (held-out training
    # articles, never the test queries).
    teacher_cfg = TrainConfig(epochs=s["teacher_epochs"], batch_size=8, lr=1e-4, seed=seed)
    cfg = TrainConfig(
        epochs=s["epochs"], batch_size=8, lr=1e-5, head_lr=1e-3, encoder_lr=0.0, seed=seed
    )
    base_model, tok = load_causal_lm("smollm2-135m")
    teacher = MixRanker(base_model, tok)
    items = {k: _truncate(teacher, v, s["item_tokens"]) for k, v in task.items.items()}
    pairs = [(q, _truncate(teacher, t, s["item_tokens"]), y) for q, t, y in task.train_pairs]
    rows: list[Row] = []
    align = [_truncate(teacher, t, s["item_tokens"]) for t in task.unlabelled[: s["align_items"]]]
    params = {"pairs": len(pairs), "item_tokens": s["item_tokens"]}

    def add(method, metrics, items_per_s, tokens, extra=None, train_s=None):
        m = {**metrics, "items_per_s": items_per_s, "prefill_tokens_per_item": tokens}
        m.update(extra or {})
        rows.append(
            Row(method, {**params, **(extra_params.get(method, {}))}, task.name, seed, m, train_s)
        )
        status(f"{task.name} {method}: NDCG@10 {metrics['ndcg@10']:.3f} MRR {metrics['mrr']:.3f}")

    extra_params: dict[str, dict] = {}
    t0 = time.perf_counter()
    train_full_text(teacher, pairs, teacher_cfg)
    train_s = time.perf_counter() - t0
    extra_params["full-text"] = {"epochs": s["teacher_epochs"], "lr": teacher_cfg.lr}

    def full_text(query, cands):
        vecs = [teacher.item_text_vectors(items[c]) for c in cands]
        scores, prefill = teacher.score(query, vecs)
        return scores.numpy(), prefill.without_reuse

    metrics, ips, tokens = _evaluate(task, full_text)
    add("full-text", metrics, ips, tokens, train_s=train_s)
    full_ips, full_tokens = ips, tokens
    targets = teacher_scores(teacher, pairs)
    enc_model, enc_tok = minilm()
    mix_for_service = None
    for k in KS:
        # The MixLM ranker starts from the teacher: only the item side has to be learnt anew.
        student = MixRanker(copy.deepcopy(teacher.model), tok)
        encoder = ItemEncoder(
            copy.deepcopy(enc_model),
            enc_tok,
            k=k,
            hidden_size=student.hidden_size,
            target_norm=token_embedding_norm(student.model),
        )
        t0 = time.perf_counter()
        align_encoder(student, encoder, align, cfg)
        train_mixlm(student, encoder, pairs, cfg, teacher=targets)
        train_s = time.perf_counter() - t0
        ids = sorted(items)
        t0 = time.perf_counter()
        with torch.no_grad():
            vectors = torch.cat(
                [encoder([items[i] for i in ids[j : j + 16]]) for j in range(0, len(ids), 16)]
            )
        encode_s = (time.perf_counter() - t0) / len(ids)
        by_id = dict(zip(ids, vectors, strict=True))

        def mixed(query, cands, student=student, by_id=by_id):
            scores, prefill = student.score(query, [by_id[c] for c in cands])
            return scores.numpy(), prefill.without_reuse

        metrics, ips, tokens = _evaluate(task, mixed)
        extra_params[f"mixlm-k{k}"] = {
            "k": k, "epochs": cfg.epochs, "align_items": len(align), "lr": cfg.lr,
            "head_lr": cfg.head_lr,
        }  # fmt: skip
        add(f"mixlm-k{k}", metrics, ips, tokens, {"encoder_s_per_item": encode_s}, train_s)
        if k == 4:
            mix_for_service = (student, encoder, by_id)
    for name, cls in (("bi-encoder", BiEncoder), ("cross-encoder", CrossEncoder)):
        model = cls(enc_model, enc_tok)
        t0 = time.perf_counter()
        model.fit(pairs, epochs=s["teacher_epochs"], batch_size=8, lr=1e-4, seed=seed)
        extra_params[name] = {"epochs": s["teacher_epochs"], "lr": 1e-4}
        train_s = time.perf_counter() - t0
        if name == "bi-encoder":
            ids = sorted(items)
            with torch.no_grad():
                emb = dict(zip(ids, model.embed([items[i] for i in ids]), strict=True))

            def one(query, cands, model=model, emb=emb):
                return model.score(
                    query, [], item_vectors=torch.stack([emb[c] for c in cands])
                ).numpy(), 0.0
        else:

            def one(query, cands, model=model):
                return model.score(query, [items[c] for c in cands]).numpy(), 0.0

        metrics, ips, tokens = _evaluate(task, one)
        add(name, metrics, ips, tokens, train_s=train_s)
    for r in rows:
        r.metrics["items_per_s_vs_full_text"] = r.metrics["items_per_s"] / full_ips
        if r.metrics["prefill_tokens_per_item"]:
            r.metrics["prefill_tokens_vs_full_text"] = (
                r.metrics["prefill_tokens_per_item"] / full_tokens
            )
    # The service on loopback, MixLM k = 4 from a real cache file.
    student, encoder, by_id = mix_for_service
    with (
        tempfile.TemporaryDirectory() as tmp,
        ItemCache(
            Path(tmp) / "items.db",
            encoder_version=fingerprint(encoder),
            k=4,
            dim=student.hidden_size,
        ) as cache,
    ):
        cache.put_many((i, "", v.numpy()) for i, v in by_id.items())
        service = ScoringService(student, cache)
        requests = [
            {"query": q, "items": list(c)}
            for q, c in zip(task.queries, task.candidates, strict=True)
        ]
        stats = asyncio.run(load_test_service(service, requests, concurrency=4))
    rows.append(
        Row(
            "service-mixlm-k4",
            {**params, "concurrency": 4},
            task.name,
            seed,
            stats,
            stats["wall_s"],
        )
    )
    return rows


def run_bench(config: BenchConfig) -> BenchReport:
    s = _settings(config.quick)
    report = BenchReport(package="mixlm", version=__version__, config={**s, "ks": list(KS)})
    for seed in config.seeds:
        task = bbc_ranking(
            n_train_pairs=s["pairs"],
            n_queries=s["queries"],
            n_candidates=s["candidates"],
            seed=seed,
        )
        report.extend(task_rows(task, config, seed))
        report.save_partial(config.out)
        if config.data_root is not None:
            task = reasoning_ranking(
                config.data_root, n_train_pairs=s["pairs"], n_queries=s["queries"],
                n_candidates=s["candidates"], seed=seed,
            )  # fmt: skip
            report.extend(task_rows(task, config, seed))
            report.save_partial(config.out)
    report.summary = markdown_table(report.rows)
    return report


BENCH = BenchSpec(
    package="mixlm",
    version=__version__,
    run=run_bench,
    help="MixLM (k = 1, 4, 8) against full-text SmolLM2, MiniLM bi- and cross-encoders",
    uses=frozenset({"seeds", "data_root"}),
)
