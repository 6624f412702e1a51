"""``dpbss`` command line: privately select the features of a CSV, run the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dpbss.bench import BENCH
from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import read_numeric_csv


def read_table(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, y, feature names) from a numeric CSV with a header naming ``target``."""
    data, header = read_numeric_csv(path)
    if header is None:
        raise LabcoreError(f"{path} has no header row: --target names a column of the header")
    if target not in header:
        raise LabcoreError(f"--target {target!r} is not a column of {path} (columns: {header})")
    if np.isnan(data).any():
        bad = int(np.isnan(data).any(axis=1).sum())
        raise LabcoreError(f"{path}: {bad} row(s) have missing values; drop or impute them first")
    j = header.index(target)
    names = [h for k, h in enumerate(header) if k != j]
    return np.delete(data, j, axis=1), data[:, j], names


def _fit(args: argparse.Namespace) -> int:
    from dpbss.estimator import DPBestSubset
    from labcore.io import atomic_write_json, check_output_path

    if args.out is not None:
        check_output_path(args.out, kind="file", what="--out")
    X, y, names = read_table(args.data, args.target)
    model = DPBestSubset(
        args.k,
        epsilon=args.epsilon,
        loss=args.loss,
        mechanism=args.mechanism,
        ridge=args.ridge,
        radius=args.radius,
        x_bound=args.x_bound,
        y_bound=args.y_bound,
        clip=args.clip,
        estimate=not args.no_estimate,
        epsilon_split=args.epsilon_split,
        time_limit=args.time_limit,
        random_state=args.seed,
    ).fit(X, y)
    selected = [names[i] for i in model.support_]
    estimated = not args.no_estimate and args.loss == "squared"
    payload = {
        "data": str(args.data),
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "loss": args.loss,
        "mechanism": args.mechanism,
        "epsilon": model.epsilon_spent_,
        "support": selected,
        "support_index": [int(i) for i in model.support_],
        "coef": ({names[i]: float(model.coef_[i]) for i in model.support_} if estimated else None),
        "sensitivity": model.sensitivity_,
    }
    if args.solve_info:
        # Not private: how the non-private optimization went (see DPBestSubset.solve_info_).
        payload["solve_info"] = model.solve_info_
        payload["certified"] = bool(model.certified_)
    coef = ", ".join(f"{names[i]} {model.coef_[i]:+.4g}" for i in model.support_)
    text = (
        f"{X.shape[0]} rows × {X.shape[1]} features, k = {args.k}, ε = {args.epsilon:g} "
        f"({args.mechanism}, {args.loss} loss): selected {', '.join(selected)}"
        + (f"\ncoefficients (private): {coef}" if estimated else "")
    )
    if args.out is not None:
        atomic_write_json(args.out, payload)
        text += f"\nwrote {args.out}"
        payload["out"] = str(args.out)
    emit(args, payload, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dpbss import __version__

    parser = make_parser(
        "dpbss",
        "Differentially private best subset selection by mixed-integer optimization.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub, "fit", _fit, help="privately select k features of a CSV", uses=("seed", "out")
    )
    p.add_argument("data", type=Path, help="numeric CSV with a header row")
    p.add_argument("--target", required=True, help="the response column")
    p.add_argument("--k", type=int, default=5, help="number of features to select (default 5)")
    p.add_argument("--epsilon", type=float, default=1.0, help="privacy budget (default 1)")
    p.add_argument("--loss", choices=["squared", "hinge"], default="squared")
    p.add_argument("--mechanism", choices=["mistakes", "top-r"], default="mistakes")
    p.add_argument("--ridge", type=float, default=None, help="λ (default 120, hinge 100)")
    p.add_argument("--radius", type=float, default=1.1, help="coefficient ball radius r")
    p.add_argument("--x-bound", type=float, default=0.5, help="|x_ij| bound (default 0.5)")
    p.add_argument("--y-bound", type=float, default=0.5, help="|y_i| bound (default 0.5)")
    p.add_argument("--clip", action="store_true", help="clip the data to the bounds")
    p.add_argument("--no-estimate", action="store_true", help="select only (all ε on it)")
    p.add_argument("--epsilon-split", type=float, default=0.5, help="share of ε for the selection")
    p.add_argument(
        "--time-limit", type=float, default=60.0, help="seconds per optimization (default 60)"
    )
    p.add_argument(
        "--solve-info",
        action="store_true",
        help="add the solver's statistics to the output (NOT private: do not publish them)",
    )
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
