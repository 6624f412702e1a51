"""``alps`` command line: run, eval, bench."""

from __future__ import annotations

import argparse

from alps.bench import BENCH
from labcore.cli import run


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


def add_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--sparsity", type=float, default=0.5, help="share of weights removed, per layer"
    )
    g.add_argument("--nm", default=None, help="N:M pattern, N kept in every M (2:4 keeps half)")
    g.add_argument("--per-row", action="store_true", help="same count in every output row")
    g.add_argument("--rho", type=float, default=0.1, help="initial ADMM penalty")
    g.add_argument("--max-iter", type=int, default=300)
    g.add_argument("--cg-iters", type=int, default=10, help="CG refit iterations (0: none)")


def build_parser() -> argparse.ArgumentParser:
    from layerwise.cli import build_method_parser

    from alps import __version__

    return build_method_parser(
        "alps",
        "ALPS: one-shot pruning of causal LMs by ADMM and a CG refit.",
        __version__,
        add_options=add_options,
        build_config=build_config,
        bench=BENCH,
        what="prune",
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
