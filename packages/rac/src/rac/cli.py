"""``rac`` command line: traces, bench."""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from rac.bench import BENCH


def traces_command(args: argparse.Namespace) -> int:
    from labcore import LabcoreError
    from labcore.models import load_causal_lm
    from labcore.tasks import arithmetic_problems, load_reasoning
    from rac.traces import TraceConfig, generate_traces

    if args.out is None:
        raise LabcoreError("--out FILE is required (the trace file, .jsonl)")
    if args.task == "arith":
        problems = arithmetic_problems(args.n, seed=args.problem_seed)
    else:
        if args.data_root is None:
            raise LabcoreError(f"--task {args.task} reads its problems from --data-root")
        problems = load_reasoning(args.task, args.data_root)[args.skip : args.skip + args.n]
    model, tok = load_causal_lm(args.model, device=args.device)
    config = TraceConfig(
        samples=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    summary = generate_traces(model, tok, problems, args.out, config, model_name=args.model)
    emit(
        args,
        summary,
        f"{summary['completions']} completions of {summary['problems']} problems in "
        f"{args.out}; {summary['truncated']:.0%} hit the cap; mean "
        f"{summary['mean_completion_tokens']} tokens; dense accuracy {summary['accuracy']}",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rac import __version__

    parser = make_parser(
        "rac",
        "RAC: compress reasoning models with calibration on their own chain of thought.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_command(
        sub,
        "traces",
        traces_command,
        help="sample the dense model's own reasoning traces (resumable jsonl)",
        uses=("device", "seed", "out"),
    )
    p.add_argument("--model", default="smollm2-135m", help="offline name, checkpoint or hub id")
    p.add_argument("--task", choices=["arith", "gsm8k", "math500"], default="arith")
    p.add_argument("--n", type=int, default=256, help="problems")
    p.add_argument("--skip", type=int, default=0, help="first problems of the file to skip")
    p.add_argument("--problem-seed", type=int, default=1000, help="arith: the problems' seed")
    p.add_argument("--data-root", type=Path, default=None, help="folder with reasoning/gsm8k ...")
    p.add_argument("--samples", type=int, default=2, help="completions per problem")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8, help="problems per batch")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
