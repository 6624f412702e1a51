"""``slm bench``: the whole pipeline on BBC News ranking, each stage measured, in one process.

The main chain is one :func:`slm.pipeline.run_pipeline` run: teacher → distilled student →
OSSCAR 40% of the MLP neurons (+ recovery) → QuantEase int8 (torchao kernel) → TF-IDF
context compression 5× → served in bfloat16 with a tuned batch size. Variants branch off the
same checkpoints (each a one-stage run reading the main run's folders): pruning 20%, 4-bit
QuantEase, RTN int8 (the quantization baseline), lead-k and TF-IDF at 2×, 5× and 10×,
and serving in float32. Then the served model without prefix sharing, and a load test of
the HTTP service on loopback.

Every row reports relevance relative to the teacher, and parameters, weight bytes, tokens
per item, items/s and p99 request latency as ratios to the unpruned full-context student
(the distill stage), all measured on the same evaluation queries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.progress import status
from slm import __version__
from slm.config import (
    CompressConfig,
    DataConfig,
    DistillConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    ServeConfig,
    TeacherConfig,
)
from slm.pipeline import STAGES, run_pipeline, stage_dir


def bench_config(quick: bool, out: Path, seed: int) -> PipelineConfig:
    """The main chain's configuration (sized for 2 CPU cores)."""
    if quick:
        return PipelineConfig(
            out=out, seed=seed,
            data=DataConfig(n_train_pairs=48, n_queries=10, n_candidates=10,
                            n_validation_queries=4, item_words=120, seed=seed),
            teacher=TeacherConfig(epochs=1), distill=DistillConfig(epochs=1),
            prune=PruneConfig(mlp_sparsity=0.4, calibration_windows=8, seqlen=128),
            quantize=QuantizeConfig(bits=8, sweeps=5, calibration_windows=8, seqlen=128),
            compress=CompressConfig("tfidf", 5.0),
            serve=ServeConfig(batch_sizes=(8, 16), latency_target_s=2.0),
        )  # fmt: skip
    return PipelineConfig(
        out=out, seed=seed,
        data=DataConfig(n_train_pairs=160, n_queries=24, n_candidates=20,
                        n_validation_queries=6, item_words=160, seed=seed),
        teacher=TeacherConfig(epochs=2), distill=DistillConfig(epochs=2),
        prune=PruneConfig(mlp_sparsity=0.4, calibration_windows=16, seqlen=256),
        quantize=QuantizeConfig(bits=8, sweeps=10, calibration_windows=16, seqlen=256),
        compress=CompressConfig("tfidf", 5.0),
        serve=ServeConfig(batch_sizes=(4, 8, 16, 32), latency_target_s=2.0),
    )  # fmt: skip


def variants(config: PipelineConfig, quick: bool) -> list[tuple[str, str, PipelineConfig]]:
    """(row label, stage, configuration) of the side rows; each reads the main run."""
    r = dataclasses.replace
    out = []
    if not quick:
        out += [
            ("prune-20", "prune", r(config, prune=r(config.prune, mlp_sparsity=0.2))),
            ("int4-quantease", "quantize", r(config, quantize=r(config.quantize, bits=4))),
            ("int8-rtn", "quantize", r(config, quantize=r(config.quantize, method="rtn"))),
        ]
        for method in ("lead", "tfidf"):
            for ratio in (2.0, 5.0, 10.0):
                if (method, ratio) != ("tfidf", 5.0):
                    LABELS[f"{method}-{ratio:g}x"] = f"+ {method} context {ratio:g}× instead"
                    out.append((f"{method}-{ratio:g}x", "compress",
                                r(config, compress=CompressConfig(method, ratio))))  # fmt: skip
    out.append(("served-fp32", "serve", r(config, serve=r(config.serve, dtype="float32"))))
    return out


#: Row id of each main-chain stage (ids are lowercase for the results schema).
IDS = {
    "teacher": "teacher",
    "distill": "student",
    "prune": "prune-40",
    "quantize": "int8-quantease",
    "compress": "tfidf-5x",
    "serve": "served-bf16",
}
#: How the summary table names each row.
LABELS = {
    "teacher": "teacher (SmolLM2-135M fine-tuned, full context)",
    "student": "student (distilled, full context)",
    "prune-40": "OSSCAR 40% of MLP neurons + recovery",
    "prune-20": "OSSCAR 20% of MLP neurons + recovery",
    "int8-quantease": "+ int8 QuantEase (torchao int8 weights)",
    "int4-quantease": "+ int4 QuantEase instead",
    "int8-rtn": "+ int8 RTN instead (baseline)",
    "tfidf-5x": "+ TF-IDF context 5×",
    "served-bf16": "+ served: bfloat16, tuned batch",
    "served-fp32": "+ served in float32 instead",
    "served-no-prefix-sharing": "served, every item recomputes the query prefix",
    "http-service": "HTTP service on loopback, concurrency 4",
}


def _run_variant(label: str, stage: str, config: PipelineConfig, main_out: Path, root: Path):
    """One stage of ``config`` in its own folder, reading the main run's checkpoints."""
    out = root / f"variant-{label}"
    out.mkdir(parents=True)
    for name in STAGES[: STAGES.index(stage)]:
        if stage_dir(main_out, name).exists():
            os.symlink(stage_dir(main_out, name), stage_dir(out, name))
    # serve reads the compressor only when compress is among the configuration's stages.
    stages = ("compress", "serve") if stage == "serve" else (stage,)
    run = dataclasses.replace(config, out=out, stages=stages)
    return run_pipeline(run, start=stage)[stage]


def _ratios(rows: list[Row], teacher: dict, student: dict) -> None:
    for row in rows:
        m = row.metrics
        m["ndcg_vs_teacher"] = m["ndcg@10"] / teacher["ndcg@10"]
        m["auc_vs_teacher"] = m["auc"] / teacher["auc"]
        for key in ("parameters", "bytes", "tokens_per_item", "items_per_s", "p99_s"):
            if m.get(key) is not None:
                m[f"{key}_vs_student"] = m[key] / student[key]


def summary_table(rows: list[Row]) -> str:
    head = (
        "| stage | NDCG@10 | ÷ teacher | AUC | ÷ teacher | parameters | bytes | tokens/item "
        "| items/s | p99 latency |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        m = r.metrics
        if "ndcg@10" not in m:
            continue
        lines.append(
            f"| {LABELS.get(r.method, r.method)} | {m['ndcg@10']:.3f} | {m['ndcg_vs_teacher']:.2f} | {m['auc']:.3f} "
            f"| {m['auc_vs_teacher']:.2f} | {m['parameters_vs_student']:.3f} "
            f"| {m['bytes_vs_student']:.3f} | {m['tokens_per_item_vs_student']:.3f} "
            f"| {m['items_per_s_vs_student']:.2f}× | {m['p99_s_vs_student']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def run_bench(config: BenchConfig) -> BenchReport:
    from mixlm.server import ScoringService, load_test_service

    from slm.evaluate import evaluate
    from slm.pipeline import build_data
    from slm.service import TextItems, served_model

    seed = config.seed
    with tempfile.TemporaryDirectory(prefix="slm-bench-") as tmp:
        root = Path(tmp)
        main = bench_config(config.quick, root / "main", seed)
        report = BenchReport(package="slm", version=__version__, config=main.to_dict())
        rows: list[Row] = []

        def add(label: str, stage: str, metrics: dict, settings: dict) -> None:
            # Rows hold numbers; the compute dtype is a setting of the row.
            numbers = {k: float(v) if isinstance(v, bool) else v
                       for k, v in metrics.items() if not isinstance(v, str)}  # fmt: skip
            params = {"stage": stage, "dtype": metrics.get("dtype"), **settings}
            rows.append(Row(label, params, "bbc", seed, numbers, metrics.get("stage_s")))
            status(
                f"{label}: NDCG@10 {metrics['ndcg@10']:.3f}, {metrics['items_per_s']:.1f} items/s"
            )

        def progress(stage: str, m: dict) -> None:
            add(IDS[stage], stage, m, dataclasses.asdict(getattr(main, stage)))
            report.rows = list(rows)
            report.save_partial(config.out)

        results = run_pipeline(main, progress=progress)
        for label, stage, cfg in variants(main, config.quick):
            m = _run_variant(label, stage, cfg, main.out, root)
            add(label, stage, m, dataclasses.asdict(getattr(cfg, stage)))
            report.rows = list(rows)
            report.save_partial(config.out)
        # The served model with every item recomputing the query prefix: what sharing buys.
        data = build_data(main)
        served = served_model(main.out)
        ranker = served["ranker"]
        t0 = time.perf_counter()
        m = evaluate(ranker, data.task, data.items, served["compressor"],
                     batch_size=served["batch_size"], reuse_prefix=False)  # fmt: skip
        m["stage_s"] = time.perf_counter() - t0
        add("served-no-prefix-sharing", "serve", m, {"reuse_prefix": False})
        # The HTTP service on loopback: the served model, compressed item texts.
        source = TextItems(ranker, data.items, served["compressor"])
        service = ScoringService(ranker, source, batch_size=served["batch_size"])
        requests = [{"query": q, "items": list(c)}
                    for q, c in zip(data.task.queries, data.task.candidates, strict=True)]  # fmt: skip
        t0 = time.perf_counter()
        stats = asyncio.run(load_test_service(service, requests, concurrency=4))
        rows.append(Row("http-service", {"concurrency": 4, "batch_size": served["batch_size"]},
                        "bbc", seed, stats, time.perf_counter() - t0))  # fmt: skip
        _ratios([r for r in rows if "ndcg@10" in r.metrics], results["teacher"], results["distill"])
        stats["items_per_s_vs_student"] = stats["items_per_s"] / results["distill"]["items_per_s"]
        stats["p99_s_vs_student"] = stats["p99_s"] / results["distill"]["p99_s"]
        report.rows = rows
        first, last = results["distill"], results["serve"]
        report.summary = (
            summary_table(rows) + f"\nThroughput, first to last stage: {last['items_per_s']:.1f} / "
            f"{first['items_per_s']:.1f} items/s = {last['items_per_s'] / first['items_per_s']:.2f}× "
            f"(the served model against the distilled full-context student, same queries).\n"
            f"HTTP service: {stats['items_per_s']:.1f} items/s "
            f"({stats['items_per_s_vs_student']:.2f}× the student), p50 {stats['p50_s']:.2f} s, "
            f"p99 {stats['p99_s']:.2f} s, {stats['errors']:.0f} errors.\n"
        )
    return report


BENCH = BenchSpec(
    package="slm",
    version=__version__,
    run=run_bench,
    help="the pipeline on BBC ranking: every stage against the teacher and the student",
    uses=frozenset(),  # one seed: the full run takes most of an hour on 2 cores
)
