"""``batchroute`` command line: route, allocate, serve, collect, bench."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from labcore.cli import add_bench_arguments, add_command, emit, make_parser, run
from labcore.errors import LabcoreError


def _read_queries(path: Path) -> list[dict]:
    if not path.is_file():
        raise LabcoreError(f"file not found: {path}")
    queries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabcoreError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(item, str):
            item = {"query": item}
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise LabcoreError(f"{path}:{lineno}: each line needs a 'query' string")
        item.setdefault("id", str(len(queries)))
        queries.append(item)
    if not queries:
        raise LabcoreError(f"{path} holds no queries (the batch is empty)")
    return queries


def _given_matrix(queries: list[dict], key: str, names: tuple[str, ...]) -> np.ndarray | None:
    """Per-query ``{"quality": {model: value}}`` given in the file, if every line has it."""
    if not all(key in q for q in queries):
        if any(key in q for q in queries):
            raise LabcoreError(f"'{key}' is given for some queries but not all")
        return None
    rows = []
    for q in queries:
        entry = q[key]
        missing = [m for m in names if m not in entry]
        if missing:
            raise LabcoreError(f"query {q['id']!r}: '{key}' lacks models {missing}")
        try:
            rows.append([float(entry[m]) for m in names])
        except (TypeError, ValueError):
            raise LabcoreError(f"query {q['id']!r}: '{key}' values must be numbers") from None
    return np.asarray(rows)


def _training_table(config):
    from batchroute.data import load_table

    if config.table is None:
        raise LabcoreError(
            "give 'quality' and 'cost' per query in the file, or a training 'table' in the "
            "configuration to predict them"
        )
    return load_table(config.table)


def _score_model(config, names, table=None):
    from batchroute.scoring import ScoreModel

    data = table if table is not None else _training_table(config)
    return ScoreModel(data, predictor=config.predictor, encoder=config.encoder, models=names)


def _route(args: argparse.Namespace) -> int:
    from batchroute.config import load_config
    from batchroute.problem import RoutingProblem, Uncertainty
    from batchroute.solve import solve

    config = load_config(args.models)
    names = config.names
    queries = _read_queries(args.queries)
    quality = _given_matrix(queries, "quality", names)
    cost = _given_matrix(queries, "cost", names)
    if quality is None or cost is None:
        q, c = _score_model(config, names).score([x["query"] for x in queries])
        quality = q if quality is None else quality
        cost = c if cost is None else cost
    budget = args.budget if args.budget is not None else config.batch_budget(len(queries))
    capacity = np.array([m.capacity for m in config.models], dtype=float)
    problem = RoutingProblem(
        quality,
        cost,
        budget,
        None if np.isinf(capacity).all() else capacity,
        models=names,
    )
    robust = None
    if args.robust is not None:
        if args.robust == "box":
            gamma = None
        else:
            try:
                gamma = float(args.robust)
            except ValueError:
                raise LabcoreError(
                    f"--robust must be 'box' or a number Γ >= 0, got {args.robust!r}"
                ) from None
        robust = Uncertainty(np.full(problem.quality.shape, args.deviation), gamma)
    result = solve(problem, method=args.method, robust=robust, time_limit=args.time_limit)
    payload = {
        "assignment": [
            {"id": q["id"], "model": names[j]} for q, j in zip(queries, result.choice, strict=True)
        ],
        "budget": problem.budget,  # None when unlimited (never Infinity in the JSON)
        **{k: v for k, v in result.to_dict(names).items() if k != "choice"},
    }
    if args.out:
        from labcore.io import atomic_write_json

        atomic_write_json(Path(args.out), payload)
    loads = ", ".join(f"{m}: {n}" for m, n in payload["loads"].items())
    text = (
        f"{len(queries)} queries routed ({result.method}, {result.status}); "
        f"predicted quality {result.predicted_quality:.3f} "
        f"(objective {result.objective:.3f}, bound {result.bound:.3f}, gap {result.gap:.2e}); "
        f"cost {result.cost:.4g}"
        + (f" of budget {problem.budget:.4g}" if problem.budget is not None else "")
        + f"\nloads: {loads}\n"
        + "\n".join(f"{a['id']}\t{a['model']}" for a in payload["assignment"])
    )
    emit(args, payload, text)
    return 0


def _allocate(args: argparse.Namespace) -> int:
    from batchroute.allocate import allocate_instances
    from batchroute.config import load_config

    config = load_config(args.models)
    names = config.names
    from batchroute.data import load_table

    table = _training_table(config)
    scorer = _score_model(config, names, table)
    sample = load_table(args.traffic_sample) if args.traffic_sample else table
    quality, cost = scorer.score(list(sample.queries))
    alloc = allocate_instances(
        quality,
        cost,
        gpus_per_instance=[m.gpus_per_instance for m in config.models],
        concurrency=[m.concurrency for m in config.models],
        gpu_budget=args.gpus,
        traffic=args.traffic,
        budget_per_query=args.budget_per_query
        if args.budget_per_query is not None
        else config.budget_per_query,
        models=names,
    )
    payload = alloc.to_dict()
    text = "\n".join(
        f"{m}: {payload['instances'][m]} instances, capacity {payload['capacity'][m]:g}, "
        f"share {payload['shares'][m]:.1%}"
        for m in names
    ) + (
        f"\nGPUs used {alloc.gpus_used:g} of {args.gpus:g}; expected quality "
        f"{alloc.expected_quality:.3f} per query (gap {alloc.gap:.1e})"
    )
    emit(args, payload, text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from batchroute.config import load_config
    from batchroute.server import Batcher, serve

    config = load_config(args.models)
    names = config.names
    scorer = _score_model(config, names)

    def score_fn(queries: list[dict]):
        return scorer.score([q["query"] for q in queries])

    if config.budget is not None:
        raise LabcoreError("the server needs budget_per_query (batches vary in size)")
    batcher = Batcher(
        models=list(names),
        score_fn=score_fn,
        capacity=[m.capacity for m in config.models],
        budget_per_query=config.budget_per_query,
        window_s=args.window_ms / 1000.0,
        max_batch=args.max_batch,
    )
    print(f"batchroute: serving {', '.join(names)} on http://{args.host}:{args.port}")
    serve(host=args.host, port=args.port, batcher=batcher)
    return 0


def _collect(args: argparse.Namespace) -> int:
    from batchroute import collect

    return collect.run_from_args(args)


def _bench(args: argparse.Namespace) -> int:
    from batchroute.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    from batchroute import __version__

    parser = make_parser(
        "batchroute",
        "Robust batch-level routing of LLM queries under cost and capacity constraints.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(sub, "route", _route, help="route a batch of queries (JSON lines)")
    p.add_argument("queries", type=Path, help="JSON lines: {'query': ..., ['quality', 'cost']}")
    p.add_argument("--models", type=Path, required=True, help="models.yaml (see the README)")
    p.add_argument("--budget", type=float, default=None, help="batch budget (overrides config)")
    p.add_argument(
        "--robust",
        default=None,
        help="'box', or Γ (a number): at most Γ predictions fall by --deviation",
    )
    p.add_argument("--deviation", type=float, default=0.1, help="δ for --robust (default 0.1)")
    p.add_argument("--method", default="fast", choices=("fast", "milp"))
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per HiGHS call")

    a = add_command(sub, "allocate", _allocate, help="instances per model for a GPU budget")
    a.add_argument("--models", type=Path, required=True, help="models.yaml")
    a.add_argument("--gpus", type=float, required=True, help="GPUs available")
    a.add_argument("--traffic", type=float, required=True, help="queries per routing window")
    a.add_argument("--traffic-sample", type=Path, default=None, help="table of expected queries")
    a.add_argument("--budget-per-query", type=float, default=None)

    s = add_command(sub, "serve", _serve, help="HTTP router that batches concurrent queries")
    s.add_argument("--models", type=Path, required=True, help="models.yaml")
    s.add_argument("--host", default="127.0.0.1", help="default loopback only")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--window-ms", type=float, default=50.0, help="batching window")
    s.add_argument("--max-batch", type=int, default=64)

    c = add_command(sub, "collect", _collect, help="build a correctness matrix with local LMs")
    from batchroute import collect as collect_module

    if hasattr(collect_module, "add_arguments"):
        collect_module.add_arguments(c)

    b = add_command(sub, "bench", _bench, help="batch-level vs per-query routing, one process")
    add_bench_arguments(b)
    b.add_argument("--encoder", default="minilm-l6", help="minilm-l6 (default) or tfidf")
    b.add_argument(
        "--table", type=Path, default=None, help="also evaluate on this RouterBench-style table"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
