"""``slm`` command line: write a configuration, check its plan, run it, serve it, benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from slm.bench import BENCH


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def config_toml(config) -> str:
    """The configuration as TOML (what ``slm init`` writes)."""
    d = config.to_dict()
    lines = [f"{k} = {_toml_value(d[k])}" for k in ("out", "stages", "seed", "answer_words")]
    for section in ("data", "teacher", "distill", "prune", "quantize", "compress", "serve"):
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in d[section].items()]
    return "\n".join(lines) + "\n"


def _init(args: argparse.Namespace) -> int:
    from labcore.io import atomic_write_text
    from slm.config import PipelineConfig

    if args.path.exists() and not args.overwrite:
        raise LabcoreError(f"{args.path} exists: pass --overwrite to replace it")
    if args.path.suffix.lower() != ".toml":
        raise LabcoreError(f"{args.path}: slm init writes a .toml file")
    atomic_write_text(args.path, config_toml(PipelineConfig(out=args.run_out)))
    emit(args, {"config": str(args.path)}, f"wrote {args.path}")
    return 0


def _steps_payload(steps) -> list[dict]:
    return [
        {"stage": s.stage, "folder": str(s.folder),
         **{k: str(getattr(s, k)) for k in ("parent", "teacher", "compress") if getattr(s, k)}}
        for s in steps
    ]  # fmt: skip


def _plan(args: argparse.Namespace) -> int:
    from slm.config import load_config
    from slm.pipeline import plan

    config = load_config(args.config)
    steps = plan(config, start=args.start, overwrite=args.overwrite)
    text = "\n".join(
        f"{s.stage}: → {s.folder}" + (f" (from {s.parent.name})" if s.parent else "") for s in steps
    )
    emit(args, {"out": str(config.out), "steps": _steps_payload(steps)}, text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from labcore.progress import status
    from slm.config import load_config
    from slm.pipeline import run_pipeline

    config = load_config(args.config)

    def progress(stage: str, m: dict) -> None:
        status(
            f"{stage}: NDCG@10 {m['ndcg@10']:.3f}, AUC {m['auc']:.3f}, {m['parameters']:,} "
            f"parameters, {m['tokens_per_item']:.0f} tokens/item, {m['items_per_s']:.1f} items/s"
        )

    metrics = run_pipeline(config, start=args.start, overwrite=args.overwrite, progress=progress)
    emit(
        args,
        {"out": str(config.out), "stages": metrics},
        f"ran {', '.join(metrics)}; wrote {config.out}",
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mixlm.data import read_items
    from mixlm.server import ScoringService, ServiceLimits, serve

    from labcore.serve import check_port
    from slm.service import TextItems, served_model

    check_port(args.port)
    limits = ServiceLimits(max_items=args.max_items, timeout_s=args.timeout)
    if not args.items.is_file():
        raise LabcoreError(f"no items file at {args.items}")
    items = read_items(args.items)
    served = served_model(args.run)
    source = TextItems(served["ranker"], items, served["compressor"])
    service = ScoringService(served["ranker"], source, batch_size=served["batch_size"])

    def ready(url: str) -> None:
        facts = {"url": url, "items": len(source), "model_stage": served["model_stage"]}
        print(json.dumps(facts) if args.json else f"serving {len(source)} items on {url}",
              flush=True)  # fmt: skip

    serve(service, host=args.host, port=args.port, limits=limits, on_ready=ready)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from slm import __version__
    from slm.config import STAGES

    parser = make_parser(
        "slm",
        "Small-LM ranking pipeline: teacher → distil → prune → quantize → compress → serve.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "init", _init, help="write a default pipeline.toml", uses=("overwrite",))
    p.add_argument("path", type=Path, help="the .toml file to write")
    p.add_argument("--run-out", default="runs/bbc", help="the run folder the config names")
    for name, handler, text in (
        ("plan", _plan, "check a configuration and print the stages it would run"),
        ("run", _run, "run the pipeline (or resume it with --from)"),
    ):
        p = add_command(sub, name, handler, help=text, uses=("overwrite",))
        p.add_argument("config", type=Path, help="pipeline configuration (.toml or .yaml)")
        p.add_argument(
            "--from", dest="start", choices=STAGES, default=None,
            help="start at this stage; earlier ones are read from the run folder",
        )  # fmt: skip
    p = add_command(sub, "serve", _serve, help="serve a finished run over HTTP", uses=())
    p.add_argument("run", type=Path, help="the run folder (the configuration's out)")
    p.add_argument("--items", type=Path, required=True, help="JSONL of id,text records")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    p.add_argument("--max-items", type=int, default=512, help="items per request at most")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request at most")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
