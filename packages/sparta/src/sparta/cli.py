"""``sparta`` command line: train, bench."""

from __future__ import annotations

import argparse
from typing import Any

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from sparta.bench import BENCH


def _train(args: argparse.Namespace) -> int:
    from sparta.bench import default_lr
    from sparta.tasks import load_task
    from sparta.train import SpartaConfig, dp_finetune, evaluate

    if args.lr is None:  # the benchmark's rates: tuned per method on bbc, 0.5 on images
        lr, nonprivate_lr = default_lr(args.data, args.method), default_lr(args.data, "non-private")
    else:
        lr = nonprivate_lr = args.lr
    config = SpartaConfig(
        method=args.method,
        epsilon=args.epsilon,
        delta=args.delta,
        trainable_fraction=args.sparsity,
        epochs=args.epochs if args.epochs is not None else (4 if args.data == "bbc" else 10),
        probe_epochs=(
            args.probe_epochs if args.probe_epochs is not None else (1 if args.data == "bbc" else 3)
        ),
        batch_size=args.batch_size,
        lr=lr,
        nonprivate_lr=nonprivate_lr,
        accountant=args.accountant,
        seed=args.seed,
    )
    task = load_task(
        args.data,
        model=args.model,
        seed=args.seed,
        data_root=args.data_root,
        n_train=args.n_train,
        max_length=args.max_length,
        trainable_layers=args.trainable_layers,
    )
    res = dp_finetune(
        task.model, task.X_train, task.y_train, config, head=task.head, frozen=task.frozen
    )
    result: dict[str, Any] = {
        "data": args.data,
        "model": task.name,
        "n_train": len(task.X_train),
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
    from sparta.tasks import DATASETS, MODELS
    from sparta.train import ACCOUNTANTS, METHODS

    parser = make_parser(
        "sparta",
        "SPARTA: differentially private sparse fine-tuning with privately chosen rows.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "train", _train, help="privately fine-tune on a task", uses=("seed",))
    p.add_argument("--data", choices=DATASETS, default="digits", help="private data set")
    p.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="pretrained model (default: minilm-l6 for bbc, mlp for digits, cnn-small for "
        "fashion-mnist)",
    )
    p.add_argument("--data-root", default=None, help="Fashion-MNIST folder (IDX files)")
    p.add_argument(
        "--n-train", type=int, default=None, help="private training examples (bbc: 1000)"
    )
    p.add_argument("--max-length", type=int, default=64, help="tokens per article (bbc)")
    p.add_argument(
        "--trainable-layers",
        type=int,
        default=None,
        help="bbc: transformer layers that train, from the top (default 2, up to 6)",
    )
    p.add_argument("--method", choices=METHODS, default="sparta")
    p.add_argument("--epsilon", type=float, default=4.0, help="privacy budget ε (default 4)")
    p.add_argument("--delta", type=float, default=None, help="δ (default 1/n^1.1)")
    p.add_argument(
        "--sparsity", type=float, default=0.2, help="trainable fraction of rows (default 0.2)"
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs in all (bbc 4, else 10)")
    p.add_argument(
        "--probe-epochs", type=int, default=None, help="SPARTA's linear probing (bbc 1, else 3)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: the benchmark's, tuned per method on bbc)",
    )
    p.add_argument("--accountant", choices=ACCOUNTANTS, default="prv")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
