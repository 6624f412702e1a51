"""``quantease`` command line: run, eval, bench."""

from __future__ import annotations

import argparse

from labcore.cli import run
from quantease.bench import BENCH


def build_config(args: argparse.Namespace):
    from quantease.config import DEFAULT_DAMP, QuantEaseConfig

    return QuantEaseConfig(
        bits=args.bits,
        sym=args.sym,
        group_size=args.group_size,
        sweeps=args.sweeps,
        act_order=args.act_order,
        relax_every=args.relax_every,
        init=args.init,
        outlier_fraction=args.outliers,
        outlier_structure="column" if args.structured else "unstructured",
        iht_step=args.iht_step,
        block_size=args.block_size,
        backend=args.backend,
        percdamp=args.percdamp,
        damp=DEFAULT_DAMP if args.damp is None else args.damp,
    )


def add_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--bits", type=int, default=4, help="2 to 8 (default 4)")
    g.add_argument("--sym", action="store_true", help="symmetric grid (default asymmetric)")
    g.add_argument("--group-size", type=int, default=None, help="default: per output channel")
    g.add_argument("--sweeps", type=int, default=30, help="coordinate-descent sweeps")
    g.add_argument("--act-order", action="store_true", help="visit columns by decreasing Σ_jj")
    g.add_argument(
        "--relax-every",
        type=int,
        default=None,
        help="unrounded sweep every N sweeps early on (3 reproduces the official code)",
    )
    g.add_argument("--init", choices=["none", "rtn", "gptq"], default="none")
    g.add_argument(
        "--outliers", type=float, default=0.0, help="fraction kept in full precision, e.g. 0.01"
    )
    g.add_argument("--structured", action="store_true", help="outliers are whole input columns")
    g.add_argument("--iht-step", type=float, default=1.0, help="α in η = α / (2 λ_max)")
    g.add_argument("--block-size", type=int, default=128)
    g.add_argument("--backend", choices=["auto", "numba", "torch"], default="auto")
    g.add_argument(
        "--percdamp", type=float, default=0.01, help="damping of the GPTQ initialisation only"
    )
    g.add_argument(
        "--damp",
        type=float,
        default=None,
        help="shrinkage of Σ towards its diagonal for the coordinate descent: Σ + damp·Diag(Σ) "
        "(default 1, chosen on held-out training text; 0 is the paper's objective)",
    )


def build_parser() -> argparse.ArgumentParser:
    from layerwise.cli import build_method_parser

    from quantease import __version__

    return build_method_parser(
        "quantease",
        "QuantEase: coordinate-descent post-training quantization of causal LMs.",
        __version__,
        add_options=add_options,
        build_config=build_config,
        bench=BENCH,
        what="quantize",
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
