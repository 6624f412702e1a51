"""``hasslefree`` command line: run, eval, bench, export-peft."""

from __future__ import annotations

import argparse
from pathlib import Path

from hasslefree.bench import BENCH
from labcore.cli import add_command, emit, run


def build_config(args: argparse.Namespace):
    from hasslefree.config import HassleFreeConfig

    return HassleFreeConfig(
        nm=None if args.nm in (None, "none") else args.nm,
        sparsity=args.sparsity,
        rank=args.rank,
        compression=args.compression,
        sparse_solver=args.sparse_solver,
        lowrank_step=args.lowrank_step,
        rounds=args.rounds,
        tol=args.tol,
        refit=not args.no_refit,
        damp=args.damp,
        diag_damp=args.diag_damp,
        svd=args.svd,
        refit_iters=args.refit_iters,
        solver_patience=args.solver_patience,
        alps_max_iter=args.alps_max_iter,
        adam_steps=args.adam_steps,
        adam_lr=args.adam_lr,
        seed=args.seed,
    )


def add_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--nm",
        default="2:4",
        help="N:M pattern of S, N kept in every M (default 2:4); 'none' for unstructured",
    )
    g.add_argument("--sparsity", type=float, default=0.5, help="S's share of zeros when --nm none")
    g.add_argument("--rank", type=int, default=None, help="rank of L in every layer (default 32)")
    g.add_argument(
        "--compression",
        type=float,
        default=None,
        help="share of each layer's weights removed by S + L together; sets the rank per "
        "layer instead of --rank",
    )
    g.add_argument(
        "--sparse-solver",
        choices=["sparsegpt", "alps"],
        default="sparsegpt",
        help="the S-step (alps: better layer objective, slower)",
    )
    g.add_argument(
        "--lowrank-step",
        choices=["closed-form", "adam"],
        default="closed-form",
        help="the L-step: exact reduced-rank regression, or the original code's Adam steps",
    )
    g.add_argument("--rounds", type=int, default=5, help="alternations of S- and L-step")
    g.add_argument(
        "--tol", type=float, default=1e-3, help="stop once a round gains less than this share"
    )
    g.add_argument("--no-refit", action="store_true", help="no CG refit after the S-step")
    g.add_argument("--refit-iters", type=int, default=3, help="CG steps of each refit")
    g.add_argument(
        "--solver-patience",
        type=int,
        default=1,
        help="rounds in a row the solver may lose before later rounds only refit its support",
    )
    g.add_argument("--alps-max-iter", type=int, default=200, help="ADMM cap of the ALPS S-step")
    g.add_argument("--adam-steps", type=int, default=50, help="Adam L-step: steps per round")
    g.add_argument("--adam-lr", type=float, default=1e-2, help="Adam L-step: initial rate")
    g.add_argument("--damp", type=float, default=0.005, help="damping, share of mean diag XᵀX")
    g.add_argument(
        "--diag-damp", type=float, default=0.005, help="damping, share of each diagonal entry"
    )
    g.add_argument("--svd", choices=["randomized", "exact"], default="randomized")


def export_peft_command(args: argparse.Namespace) -> int:
    from layerwise.export import load

    from hasslefree.export import save_peft
    from labcore import LabcoreError

    if args.out is None:
        raise LabcoreError("--out DIR is required (where base/ and adapter/ are written)")
    model, tokenizer, _ = load(args.path)
    out = save_peft(model, tokenizer, args.out, overwrite=args.overwrite)
    payload = {"source": str(args.path), "out": str(out), "base": str(out / "base"),
               "adapter": str(out / "adapter")}  # fmt: skip
    emit(
        args,
        payload,
        f"wrote {out}/base (S, a transformers checkpoint) and {out}/adapter (L, a PEFT LoRA "
        "adapter): PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "
        "adapter)",
    )
    return 0


def add_commands(sub) -> None:
    p = add_command(
        sub,
        "export-peft",
        export_peft_command,
        help="write a saved run's S as a plain checkpoint and its L as a PEFT LoRA adapter",
        uses=("out",),
    )
    p.add_argument("path", type=Path, help="a folder written by `hasslefree run --out`")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")


def build_parser() -> argparse.ArgumentParser:
    from layerwise.cli import build_method_parser

    from hasslefree import __version__

    return build_method_parser(
        "hasslefree",
        "HASSLE-free: sparse (N:M) plus low-rank decomposition of every linear layer.",
        __version__,
        add_options=add_options,
        build_config=build_config,
        bench=BENCH,
        what="decompose",
        add_commands=add_commands,
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
