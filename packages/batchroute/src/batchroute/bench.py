"""``batchroute bench``: batch-level routing against per-query routers, in one process.

For each data set the queries are split (by a seeded shuffle) into training (predictors),
validation (the per-query routers' λ and threshold) and test queries; test batches are
drawn at random and adversarially (from the hardest 30% of the queries on synthetic data,
the most expensive 30% on real tables). Every method sees
the same predicted quality p̂ and the same costs; quality is then measured with the truth
(the true success probability for synthetic data, the observed correctness for the real
matrix). The budget of a batch is ``b × batch size`` with b a fixed fraction of the way
from the always-cheapest to the always-best mean cost per query on validation; the two most
expensive models may take at most a fixed share of a batch each (their capacity).

Rows:
* routing: mean quality per query, cost / budget, the share of batches over budget or over
  capacity, solve time per batch; per data set × batch kind × predictor × method;
* predictors: Brier score and expected calibration error on the test queries;
* speed: 10,000 queries × 10 models, fast path and full MILP (gap stated);
* allocation: optimised instance counts vs an even GPU split, quality on test batches;
* load test: the HTTP router on loopback, requests per second and latency percentiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from batchroute import __version__
from batchroute.baselines import PER_QUERY_ROUTERS
from batchroute.data import RoutingData, batches, embed_queries, load_builtin, synthetic
from batchroute.predictors import (
    KNNPredictor,
    LogisticPredictor,
    brier_score,
    expected_calibration_error,
)
from batchroute.problem import RoutingProblem, Uncertainty, violations
from batchroute.solve import InfeasibleBudget, solve
from batchroute.uncertainty import bootstrap_deviation
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.errors import LabcoreError
from labcore.progress import progress_bar, status

PREDICTORS: dict[str, Callable[[], Any]] = {
    "knn": lambda: KNNPredictor(),
    "logistic": lambda: LogisticPredictor(),
}
# Where the per-query budget b sits between the always-cheapest and always-best mean cost.
BUDGET_FRACTION = 0.3
# Capacity of the two most expensive models, as a share of the batch.
EXPENSIVE_SHARE = 0.2


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(0.5 * n), int(0.7 * n)
    return order[:a], order[a:b], order[b:]


def _truth(data: RoutingData) -> np.ndarray:
    return data.true_quality if data.true_quality is not None else data.correct


def _capacity(cost: np.ndarray, batch_size: int) -> np.ndarray:
    capacity = np.full(cost.shape[1], float(batch_size))
    dearest = np.argsort(-cost.mean(axis=0))[:2]
    capacity[dearest] = np.ceil(EXPENSIVE_SHARE * batch_size)
    return capacity


def _budget_per_query(quality_val: np.ndarray, cost_val: np.ndarray) -> float:
    rows = np.arange(len(cost_val))
    cheapest = cost_val.min(axis=1).mean()
    best = cost_val[rows, quality_val.argmax(axis=1)].mean()
    return float(cheapest + BUDGET_FRACTION * max(best - cheapest, 0.0))


def _gamma_set(deviation: np.ndarray) -> Uncertainty:
    """The budgeted uncertainty set of the bench: Γ = 10% of the batch (at least 1)."""
    return Uncertainty(deviation, max(1.0, 0.1 * deviation.shape[0]))


def _route_all(
    problem: RoutingProblem,
    gamma_set: Uncertainty,
    routers: dict[str, Any],
    oracle_quality: np.ndarray,
) -> dict[str, tuple[np.ndarray | None, float]]:
    """Each method's choice on one batch and its time (None where it found no routing)."""
    out: dict[str, tuple[np.ndarray | None, float]] = {}
    batch_methods = {
        "batch-milp": dict(method="milp", time_limit=10.0),
        "batch-fast": dict(method="fast"),
        "batch-robust-box": dict(method="fast", robust=Uncertainty(gamma_set.deviation)),
        "batch-robust-gamma": dict(method="fast", robust=gamma_set),
    }
    for name, kw in batch_methods.items():
        t = time.perf_counter()
        try:
            choice = solve(problem, **kw).choice
        except LabcoreError:  # infeasible budget, or no routing within the time limit
            choice = None
        out[name] = (choice, time.perf_counter() - t)
    for name, router in routers.items():
        t = time.perf_counter()
        out[name] = (router.route(problem), time.perf_counter() - t)
    oracle = RoutingProblem(
        oracle_quality, problem.cost, problem.budget, problem.capacity, models=problem.models
    )
    t = time.perf_counter()
    try:
        out["oracle"] = (
            solve(oracle, method="milp", time_limit=10.0).choice,
            time.perf_counter() - t,
        )
    except LabcoreError:
        out["oracle"] = (None, time.perf_counter() - t)
    return out


def routing_experiment(
    name: str,
    data: RoutingData,
    *,
    embeddings: np.ndarray,
    batch_size: int,
    n_batches: int,
    seed: int,
    report: BenchReport,
    notes: list[str],
    progress: Callable = lambda x, **k: x,
    train_size: int | None = None,
    predictors: tuple[str, ...] = tuple(PREDICTORS),
    label: str | None = None,
) -> None:
    train, val, test = _split(data.n, seed)
    truth_test = _truth(data)[test]
    if train_size is not None:  # a scarce-data estimator: its errors are what robustness targets
        train = train[:train_size]
    name = label or name
    # Hard batches come from the hardest 30% of the test queries: a batch must fit in them.
    batch_size = min(batch_size, max(2, int(0.3 * len(test))))
    test_data = data.subset(test)
    for pred_name in predictors:
        factory = PREDICTORS[pred_name]
        t = time.perf_counter()
        predictor = factory().fit(embeddings[train], data.correct[train])
        p_val = predictor.predict(embeddings[val])
        p_test = predictor.predict(embeddings[test])
        deviation = bootstrap_deviation(
            factory, embeddings[train], data.correct[train], embeddings[test], n_boot=5, seed=seed
        )
        fit_time = time.perf_counter() - t
        report.add(
            Row(
                pred_name,
                {"role": "quality predictor", "train": len(train), "test": len(test)},
                name,
                seed,
                {
                    "brier": brier_score(p_test, data.correct[test]),
                    "ece": expected_calibration_error(p_test, data.correct[test]),
                    "brier_truth": brier_score(p_test, truth_test)
                    if data.true_quality is not None
                    else None,
                    "mean_deviation": float(deviation.mean()),
                },
                fit_time,
            )
        )
        b = _budget_per_query(p_val, data.cost[val])
        routers = {
            key: cls().fit(p_val, data.cost[val], b) for key, cls in PER_QUERY_ROUTERS.items()
        }
        # Adversarial batches: the hardest queries where difficulty is known (synthetic);
        # on real tables the hardest ones by mean correctness are mostly 0 for every model,
        # which tells nothing, so the most expensive queries are used instead.
        adversarial = "hard" if data.difficulty is not None else "expensive"
        for kind in ("random", adversarial):
            draws = batches(
                test_data, batch_size=batch_size, n_batches=n_batches, kind=kind, seed=seed
            )
            stats: dict[str, dict[str, list[float]]] = {}
            skipped_batches = 0
            for rows in progress(draws, desc=f"{name} {pred_name} {kind}"):
                cost = test_data.cost[rows]
                truth_rows, p_rows = truth_test[rows], p_test[rows]
                problem = RoutingProblem(
                    p_rows,
                    cost,
                    b * len(rows),
                    _capacity(data.cost[val], len(rows)),
                    models=data.models,
                )
                gamma_set = _gamma_set(deviation[rows])
                results = _route_all(problem, gamma_set, routers, truth_rows)
                if results["oracle"][0] is None:
                    # No routing meets this batch's budget and capacity at all: the batch is
                    # left out for every method, so all rows average over the same batches.
                    skipped_batches += 1
                    continue
                for method, (choice, seconds) in results.items():
                    s = stats.setdefault(method, {})
                    if choice is None:
                        s.setdefault("infeasible", []).append(1.0)
                        continue
                    r = np.arange(len(rows))
                    bad = violations(problem, choice)
                    s.setdefault("infeasible", []).append(0.0)
                    s.setdefault("quality", []).append(float(truth_rows[r, choice].mean()))
                    s.setdefault("predicted", []).append(float(p_rows[r, choice].mean()))
                    # Predicted quality in the worst case of the Γ set (what robust maximises).
                    s.setdefault("worst_case", []).append(
                        gamma_set.worst_case(p_rows, choice) / len(rows)
                    )
                    s.setdefault("cost_over_budget", []).append(
                        float(cost[r, choice].sum() / problem.budget)
                    )
                    s.setdefault("over_budget", []).append(float("budget" in bad))
                    s.setdefault("over_capacity", []).append(
                        float(any(k.startswith("capacity") for k in bad))
                    )
                    s.setdefault("time", []).append(seconds)
            if not stats:
                report.add(
                    Row.skipped(
                        "all-methods",
                        {"predictor": pred_name, "batches": kind, "batch_size": batch_size},
                        name,
                        f"no routing meets the budget of any of the {len(draws)} {kind} "
                        f"batches ({b:.4g} per query is below their cheapest routing)",
                        seed,
                    )
                )
                notes.append(f"{name} {pred_name} {kind}: every batch infeasible for all methods")
            for method, s in stats.items():
                metrics = {k: float(np.mean(v)) for k, v in s.items() if k != "time" and len(v)}
                report.add(
                    Row(
                        method,
                        {
                            "predictor": pred_name,
                            "batches": kind,
                            "batch_size": batch_size,
                            "budget_per_query": round(b, 6),
                            "batches_left_out": skipped_batches,
                        },
                        name,
                        seed,
                        metrics,
                        float(np.mean(s["time"])) if s.get("time") else None,
                        "ok" if s.get("time") else "skipped: no feasible batch",
                    )
                )


def speed_rows(report: BenchReport, *, n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    quality = rng.random((n, m))
    cost = rng.random((n, m)) * np.linspace(1, 10, m)
    budget = 0.5 * (cost.min(axis=1).sum() + cost.mean(axis=1).sum())
    capacity = np.full(m, float(n))
    capacity[-3:] = 0.1 * n
    problem = RoutingProblem(quality, cost, budget, capacity)
    for method, kw in (("fast", {}), ("milp", {"time_limit": 10.0})):
        t = time.perf_counter()
        a = solve(problem, method=method, **kw)
        elapsed = time.perf_counter() - t
        report.add(
            Row(
                f"batch-{method}",
                {"queries": n, "models": m, "time_limit_s": kw.get("time_limit")},
                "speed-random",
                seed,
                {"gap": a.gap, "objective": a.objective, "bound": a.bound},
                elapsed,
                "ok",
            )
        )


def allocation_rows(
    report: BenchReport,
    data: RoutingData,
    *,
    embeddings,
    seed: int,
    batch_size: int,
    n_batches: int,
) -> None:
    from batchroute.allocate import allocate_instances, uniform_allocation

    train, val, test = _split(data.n, seed)
    truth_test = _truth(data)[test]
    predictor = KNNPredictor().fit(embeddings[train], data.correct[train])
    p_val, p_test = predictor.predict(embeddings[val]), predictor.predict(embeddings[test])
    b = _budget_per_query(p_val, data.cost[val])
    sizes = np.argsort(np.argsort(data.cost[val].mean(axis=0)))  # 0 = cheapest
    gpus = np.array([1, 1, 1, 2, 8, 8, 8, 8])[sizes]
    concurrency = np.array([32, 32, 16, 8, 4, 4, 4, 4])[sizes]
    gpu_budget = 12.0
    t = time.perf_counter()
    alloc = allocate_instances(
        p_val,
        data.cost[val],
        gpus_per_instance=gpus,
        concurrency=concurrency,
        gpu_budget=gpu_budget,
        traffic=batch_size,
        budget_per_query=b,
        models=data.models,
    )
    alloc_time = time.perf_counter() - t
    uniform_instances, uniform_capacity = uniform_allocation(
        gpus_per_instance=gpus, concurrency=concurrency, gpu_budget=gpu_budget, m=data.m
    )
    test_data = data.subset(test)
    draws = batches(test_data, batch_size=batch_size, n_batches=n_batches, seed=seed)
    plans = (
        ("optimised", alloc.capacity, alloc.instances),
        ("even-split", uniform_capacity, uniform_instances),
    )
    for label, capacity, instances in plans:
        qualities, infeasible = [], 0
        for rows in draws:
            problem = RoutingProblem(
                p_test[rows],
                test_data.cost[rows],
                b * len(rows),
                capacity.astype(float),
                models=data.models,
            )
            try:
                choice = solve(problem).choice
            except InfeasibleBudget:
                infeasible += 1
                continue
            qualities.append(float(truth_test[rows][np.arange(len(rows)), choice].mean()))
        report.add(
            Row(
                f"allocation-{label}",
                {
                    "gpus": gpu_budget,
                    "instances": dict(
                        zip(
                            data.models, (capacity // concurrency).astype(int).tolist(), strict=True
                        )
                    ),
                },
                "synthetic",
                seed,
                {
                    "quality": float(np.mean(qualities)) if qualities else None,
                    "infeasible_batches": infeasible / len(draws),
                    "gpus_used": float(instances @ gpus),
                },
                alloc_time if label == "optimised" else 0.0,
            )
        )


def load_test_row(report: BenchReport, *, n_requests: int, seed: int) -> None:
    from batchroute.loadtest import local_load_test

    t = time.perf_counter()
    res = local_load_test(n_requests=n_requests, concurrency=64, seed=seed, timeout_s=300.0)
    report.add(
        Row(
            "http-router",
            {"requests": n_requests, "concurrency": 64, "host": "127.0.0.1"},
            "load-test",
            seed,
            {
                "requests_per_s": res["requests_per_s"],
                "p50_ms": res["latency_p50_ms"],
                "p95_ms": res["latency_p95_ms"],
                "p99_ms": res["latency_p99_ms"],
                "errors": float(res["errors"]),
            },
            time.perf_counter() - t,
        )
    )


def summary_tables(rows: list[Row]) -> str:
    """Compact routing table: one line per data set × batches × predictor × method (each
    metric the mean over the seeds that ran; with one seed, that seed's value)."""
    lines = [
        "| data | batches | predictor | method | quality | predicted | worst case (Γ) | "
        "cost / budget | over budget | over capacity | ms / batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for r in rows:
        if "batches" not in r.params or r.status != "ok":
            continue
        key = (r.dataset, r.params["batches"], r.params["predictor"], r.method)
        groups.setdefault(key, []).append(r)
    n_seeds = max((len(g) for g in groups.values()), default=1)
    for (dataset, kind, predictor, method), group in groups.items():

        def mean(name: str, default: float, group: list[Row] = group) -> float:
            values = [r.metrics.get(name, default) for r in group]
            return float(np.mean([default if v is None else v for v in values]))

        time_ms = 1000 * float(np.mean([r.time_s or 0 for r in group]))
        lines.append(
            f"| {dataset} | {kind} | {predictor} | {method} | "
            f"{mean('quality', float('nan')):.3f} | {mean('predicted', float('nan')):.3f} | "
            f"{mean('worst_case', float('nan')):.3f} | "
            f"{mean('cost_over_budget', float('nan')):.2f}"
            f" | {mean('over_budget', 0):.0%} | {mean('over_capacity', 0):.0%} | "
            f"{time_ms:.1f} |"
        )
    if n_seeds > 1:
        lines.append(f"\nEach cell is the mean over {n_seeds} seeds.")
    return "\n".join(lines) + "\n"


def _seed_rows(
    config: BenchConfig,
    report: BenchReport,
    notes: list[str],
    *,
    seed: int,
    real: RoutingData | None,
    real_x: np.ndarray | None,
    real_error: str | None,
    user: tuple[str, RoutingData, np.ndarray] | None,
) -> None:
    """All rows of one seed: routing on the synthetic, real and user data, speed, allocation
    and the load test."""
    quick = config.quick
    syn = synthetic(n=3000 if quick else 8000, seed=seed)
    routing_experiment(
        "synthetic",
        syn,
        embeddings=syn.embeddings,
        batch_size=100,
        n_batches=6 if quick else 25,
        seed=seed,
        report=report,
        notes=notes,
        progress=_progress,
    )
    if real is not None:
        routing_experiment(
            "real-matrix",
            real,
            embeddings=real_x,
            batch_size=40,
            n_batches=8 if quick else 30,
            seed=seed,
            report=report,
            notes=notes,
            progress=_progress,
        )
    elif real_error is not None:
        report.add(Row.skipped("all-methods", {}, "real-matrix", real_error, seed))
    if user is not None:  # a user's RouterBench-style table, same protocol
        name, table, x = user
        routing_experiment(
            name,
            table,
            embeddings=x,
            batch_size=min(100, max(10, table.n // 20)),
            n_batches=8 if quick else 30,
            seed=seed,
            report=report,
            notes=notes,
            progress=_progress,
        )
    speed_rows(report, n=10_000, m=10, seed=seed)
    allocation_rows(
        report,
        syn,
        embeddings=syn.embeddings,
        seed=seed,
        batch_size=100,
        n_batches=6 if quick else 25,
    )
    load_test_row(report, n_requests=500 if quick else 2000, seed=seed)


def _add_arguments(parser) -> None:
    """The bench's own options: the query encoder and an extra table."""
    parser.add_argument(
        "--encoder", default="minilm-l6", help="minilm-l6 (default) or tfidf, for the real queries"
    )
    parser.add_argument(
        "--table", type=Path, default=None, help="also evaluate on this RouterBench-style table"
    )


def _progress(iterable, desc: str = ""):
    return progress_bar(iterable, desc=desc)


def run_bench(config: BenchConfig) -> BenchReport:
    """Batch-level routing against the per-query routers, every part once per seed.

    Package options (``config.options``): ``encoder`` (``minilm-l6``, the default, or
    ``tfidf``) embeds the real queries; ``table`` adds a RouterBench-style table.
    """
    from batchroute import __version__

    encoder = config.option("encoder", "minilm-l6")
    table_path = config.option("table")
    notes: list[str] = []
    report = BenchReport(
        package="batchroute",
        version=__version__,
        config={
            "quick": config.quick,
            "budget_fraction": BUDGET_FRACTION,
            "expensive_share": EXPENSIVE_SHARE,
            "encoder": encoder,
        },
    )
    # The real and user tables and their embeddings do not depend on the seed: read once.
    real_error = None
    try:
        real = load_builtin()
    except Exception as exc:  # the shipped matrix is part of the package; say if it is gone
        notes.append(f"real matrix skipped: {exc}")
        real, real_error = None, str(exc) or type(exc).__name__
    real_x = embed_queries(list(real.queries), encoder=encoder) if real is not None else None
    user = None
    if table_path is not None:
        from batchroute.data import load_table

        table = load_table(table_path)
        if table.queries is None:
            raise LabcoreError(f"{table_path} has no 'prompt' column to embed the queries from")
        user = (
            f"table:{Path(table_path).name}",
            table,
            embed_queries(list(table.queries), encoder=encoder),
        )
    for seed in config.seeds:
        status(f"seed {seed}")
        _seed_rows(
            config,
            report,
            notes,
            seed=seed,
            real=real,
            real_x=real_x,
            real_error=real_error,
            user=user,
        )
    report.summary = summary_tables(report.rows) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    return report


BENCH = BenchSpec(
    package="batchroute",
    version=__version__,
    run=run_bench,
    help="batch-level vs per-query routing, one process",
    uses=frozenset({"seeds"}),
    default_seeds=(0,),
    quick_seeds=(0,),
    add_arguments=_add_arguments,
)
