"""``sparta`` command line: train, bench."""

from __future__ import annotations

import argparse
from typing import Any

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from sparta.bench import BENCH


def _train(args: argparse.Namespace) -> int:
    from sparta.tasks import load_task
    from sparta.train import SpartaConfig, dp_finetune, evaluate

    config = SpartaConfig(
        method=args.method,
        epsilon=args.epsilon,
        delta=args.delta,
        trainable_fraction=args.sparsity,
        epochs=args.epochs,
        probe_epochs=args.probe_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        accountant=args.accountant,
        seed=args.seed,
    )
    task = load_task(args.data, seed=args.seed)
    res = dp_finetune(task.model, task.X_train, task.y_train, config, head=task.head)
    result: dict[str, Any] = {
        "data": args.data,
        "method": args.method,
        "accuracy": evaluate(task.model, task.X_test, task.y_test),
        "epsilon_target": args.epsilon if args.method != "non-private" else None,
        "epsilon_spent": res.epsilon,
        "delta": res.delta,
        "noise_multiplier": res.noise_multiplier,
        "sample_rate": res.sample_rate,
        "steps": res.steps,
        "trainable_fraction": res.trainable_fraction,
        "time_s": res.time_s,
    }
    text = (
        f"{args.method} on {args.data}: accuracy {result['accuracy']:.3f}, "
        f"ε spent {res.epsilon if res.epsilon is None else round(res.epsilon, 3)} "
        f"(δ {res.delta if res.delta is None else f'{res.delta:.2g}'}), "
        f"{res.trainable_fraction:.1%} of the weights trainable, {res.time_s:.1f} s"
    )
    emit(args, result, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sparta import __version__
    from sparta.tasks import TASKS
    from sparta.train import ACCOUNTANTS, METHODS

    parser = make_parser(
        "sparta",
        "SPARTA: differentially private sparse fine-tuning with privately chosen rows.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "train", _train, help="privately fine-tune on a task", uses=("seed",))
    p.add_argument("--data", choices=TASKS, default="digits")
    p.add_argument("--method", choices=METHODS, default="sparta")
    p.add_argument("--epsilon", type=float, default=4.0, help="privacy budget ε (default 4)")
    p.add_argument("--delta", type=float, default=None, help="δ (default 1/n^1.1)")
    p.add_argument(
        "--sparsity", type=float, default=0.2, help="trainable fraction of rows (default 0.2)"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--probe-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--accountant", choices=ACCOUNTANTS, default="prv")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
