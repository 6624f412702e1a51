"""``osscar`` command line: run, eval, bench."""

from __future__ import annotations

import argparse

from labcore.cli import run
from osscar.bench import BENCH


def build_config(args: argparse.Namespace):
    from osscar.config import OSSCARConfig

    return OSSCARConfig(
        mlp_sparsity=args.mlp_sparsity,
        head_sparsity=args.head_sparsity,
        head_unit=args.head_unit,
        local_search=not args.no_local_search,
        local_iterations=args.local_iterations,
        neuron_swaps=args.neuron_swaps,
        head_swaps=args.head_swaps,
        neurons_per_round=args.neurons_per_round,
        heads_per_round=args.heads_per_round,
        ridge=args.ridge,
        target=args.target,
        support=args.support,
        allocation=args.allocation,
    )


def add_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--mlp-sparsity", type=float, default=0.0, help="share of MLP neurons removed, in [0, 1)"
    )
    g.add_argument(
        "--head-sparsity", type=float, default=0.0, help="share of attention heads removed"
    )
    g.add_argument(
        "--head-unit",
        choices=["kv-group", "query"],
        default="kv-group",
        help="remove whole K/V head groups (default; shrinks the KV cache) or the same number "
        "of query heads in every group",
    )
    g.add_argument(
        "--no-local-search", action="store_true", help="backward elimination only (no swaps)"
    )
    g.add_argument("--local-iterations", type=int, default=30, help="swap tries per layer")
    g.add_argument("--neuron-swaps", type=int, default=10, help="neurons per swap move")
    g.add_argument("--head-swaps", type=int, default=5, help="heads per swap move")
    g.add_argument(
        "--neurons-per-round", type=int, default=10, help="neurons removed per elimination round"
    )
    g.add_argument(
        "--heads-per-round", type=int, default=2, help="heads removed per elimination round"
    )
    g.add_argument("--ridge", type=float, default=1e-2, help="λ in XᵀX + λ·mean(diag)·I")
    g.add_argument(
        "--target",
        choices=["dense", "layer"],
        default="dense",
        help="reconstruct the dense model's outputs (default) or the layer's own",
    )
    g.add_argument(
        "--support",
        choices=["osscar", "magnitude", "magnitude-refit"],
        default="osscar",
        help="OSSCAR, or the group-norm magnitude baselines",
    )
    g.add_argument(
        "--allocation",
        choices=["uniform", "obs"],
        default="uniform",
        help="same share in every block (default; loads with plain transformers) or split "
        "by OBS costs from a profiling pass (loads with layerwise.load)",
    )


def build_parser() -> argparse.ArgumentParser:
    from layerwise.cli import build_method_parser

    from osscar import __version__

    return build_method_parser(
        "osscar",
        "OSSCAR: one-shot structured pruning of attention heads and MLP neurons.",
        __version__,
        add_options=add_options,
        build_config=build_config,
        bench=BENCH,
        what="prune (and shrink)",
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
