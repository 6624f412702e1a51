"""``msam`` command line: train, flatness, bench."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from msam.bench import BENCH

# TrainConfig fields the common options already provide (--seed, --device) or that have
# their own spelling here.
_COMMON = {"seed", "device", "data_root"}
_HELP = {
    "data": "fashion-mnist, digits or bbc",
    "model": "cnn-small, resnet-small, resnet18 (images) or minilm (bbc)",
    "norm": "batch, group or none (image models; default: group for cnn-small, batch for resnets)",
    "optimizer": "sgd (the base optimizer alone), sam or msam",
    "micro_batches": "k, micro-batches per mini-batch (msam)",
    "mode": "sequential or vmap (msam/sam; vmap needs no BatchNorm)",
    "rho": "ascent radius",
    "adaptive": "ASAM: scale the ascent step by |w|",
    "base": "base optimizer: sgd (with momentum) or adamw",
    "schedule": "cosine or constant learning rate",
    "amp": "off, bf16 (autocast) or fp16 (autocast and a GradScaler)",
    "train_subset": "train on a seeded subset of this many examples",
    "max_length": "tokens per text (bbc)",
}


def _add_config_options(p: argparse.ArgumentParser) -> None:
    from msam.train import TrainConfig

    g = p.add_argument_group("training configuration (msam.train.TrainConfig)")
    hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        if f.name in _COMMON:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = _HELP.get(f.name, "") + f" (default {f.default})"
        if isinstance(f.default, bool):
            g.add_argument(flag, action="store_true", help=_HELP.get(f.name))
            continue
        kind = str(hints[f.name])
        if "float" in kind:
            conv: Any = float
        elif "int" in kind:
            conv = int
        else:
            conv = str
        g.add_argument(flag, type=conv, default=f.default, help=help_text)
    g.add_argument(
        "--data-root", default=None, help="folder of the Fashion-MNIST .gz files (default: system)"
    )


def config_from_args(args: argparse.Namespace):
    from msam.train import TrainConfig

    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in _COMMON
    }
    return TrainConfig(**values, seed=args.seed, device=args.device, data_root=args.data_root)


def _train(args: argparse.Namespace) -> int:
    from msam.train import save_checkpoint, train

    config = config_from_args(args)
    result = train(config, progress=args.quiet == 0)
    payload: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "train_loss": result.train_loss,
        "steps": result.steps,
        "skipped_steps": result.skipped_steps,
        "train_time_s": result.train_time_s,
        "ms_per_step": 1000 * result.time_per_step_s,
    }
    if args.out is not None:
        payload["checkpoint"] = str(save_checkpoint(args.out, result))
    text = (
        f"{config.optimizer} on {config.data}/{config.model}: test accuracy "
        f"{result.test_accuracy:.4f}, test loss {result.test_loss:.4f}, "
        f"{result.steps} steps, {1000 * result.time_per_step_s:.1f} ms/step"
    )
    if "checkpoint" in payload:
        text += f"\ncheckpoint: {payload['checkpoint']}"
    emit(args, payload, text)
    return 0


def _flatness(args: argparse.Namespace) -> int:
    from labcore.device import resolve_device
    from msam.bench import flatness_batches
    from msam.flatness import hessian_eigenvalue, hessian_trace, m_sharpness
    from msam.train import load_checkpoint, loss_fn

    model, _, data = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    batches = flatness_batches(
        data, args.samples, args.batch_size, split=args.split, seed=args.seed, device=device
    )
    result = {
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "samples": sum(len(y) for _, y in batches),
        "top_eigenvalue": hessian_eigenvalue(
            model, loss_fn, batches, iters=args.iters, seed=args.seed
        ),
        "hessian_trace": hessian_trace(model, loss_fn, batches, probes=args.probes, seed=args.seed),
        "m_sharpness": m_sharpness(
            model, loss_fn, batches, rho=args.rho, micro_batch_size=args.micro_batch_size
        ),
    }
    text = "\n".join(f"{k}: {v}" for k, v in result.items())
    emit(args, result, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from msam import __version__

    parser = make_parser(
        "msam",
        "mSAM (micro-batch-averaged sharpness-aware minimization) and SAM: train, measure "
        "flatness, benchmark.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "train",
        _train,
        help="train a model with SGD, SAM or mSAM",
        uses=("device", "seed", "out"),
    )
    _add_config_options(p)
    p.epilog = "--out FILE saves a checkpoint for `msam flatness`."

    p = add_command(
        sub,
        "flatness",
        _flatness,
        help="top Hessian eigenvalue, trace and m-sharpness",
        uses=("device", "seed"),
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint written by `msam train --out`")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--samples", type=int, default=1024, help="examples measured on")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--iters", type=int, default=20, help="power iterations")
    p.add_argument("--probes", type=int, default=10, help="Hutchinson probes")
    p.add_argument("--rho", type=float, default=0.05, help="m-sharpness radius")
    p.add_argument("--micro-batch-size", type=int, default=32, help="m-sharpness micro-batch")

    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
