"""``alps`` command line: run, eval, bench."""

from __future__ import annotations

import argparse

from labcore.cli import add_command, make_parser, run


def build_config(args: argparse.Namespace):
    from alps.config import ALPSConfig

    return ALPSConfig(
        sparsity=args.sparsity,
        nm=args.nm,
        per_row=args.per_row,
        rho=args.rho,
        max_iter=args.max_iter,
        cg_iters=args.cg_iters,
    )


def _run_command(args: argparse.Namespace) -> int:
    from layerwise.cli import run_compression

    return run_compression(args, build_config(args), "alps")


def _eval_command(args: argparse.Namespace) -> int:
    from layerwise.cli import eval_command

    return eval_command(args)


def _bench_command(args: argparse.Namespace) -> int:
    from alps.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    from layerwise.cli import add_eval_arguments, add_layerwise_bench_arguments, add_run_arguments

    from alps import __version__

    parser = make_parser(
        "alps", "ALPS: one-shot pruning of causal LMs by ADMM and a CG refit.", version=__version__
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_command(sub, "run", _run_command, help="prune a model and save it")
    g = p.add_argument_group("ALPS options")
    g.add_argument(
        "--sparsity", type=float, default=0.5, help="share of weights removed, per layer"
    )
    g.add_argument("--nm", default=None, help="N:M pattern, N kept in every M (2:4 keeps half)")
    g.add_argument("--per-row", action="store_true", help="same count in every output row")
    g.add_argument("--rho", type=float, default=0.1, help="initial ADMM penalty")
    g.add_argument("--max-iter", type=int, default=300)
    g.add_argument("--cg-iters", type=int, default=10, help="CG refit iterations (0: none)")
    add_run_arguments(p)

    p = add_command(
        sub, "eval", _eval_command, help="perplexity and layer report of a saved output"
    )
    add_eval_arguments(p)

    p = add_command(
        sub, "bench", _bench_command, help="ALPS, SparseGPT, Wanda, magnitude on SmolLM2-135M"
    )
    add_layerwise_bench_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
