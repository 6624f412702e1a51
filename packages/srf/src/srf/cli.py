"""``srf`` command line: complete a CSV, predict missing labels, run the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import read_numeric_csv, write_numeric_csv
from srf.bench import BENCH


def _complete(args: argparse.Namespace) -> int:
    from srf import SRFCompletion, SRFTransductiveClassifier

    X, header = read_numeric_csv(args.data)
    names = header or [f"x{j}" for j in range(X.shape[1])]
    missing = int(np.isnan(X).sum())
    payload: dict = {"n_rows": X.shape[0], "n_columns": X.shape[1], "missing_entries": missing}
    if args.label is not None:
        if args.label not in names:
            raise LabcoreError(f"--label {args.label!r} is not a column of {args.data}")
        k = names.index(args.label)
        y = X[:, k]
        features = np.delete(X, k, axis=1)
        labelled = ~np.isnan(y)
        if not labelled.any():
            raise LabcoreError(f"label column {args.label!r} has no labels")
        if np.any(y[labelled] != np.round(y[labelled])):
            raise LabcoreError(f"label column {args.label!r} must hold integer class codes")
        model = SRFTransductiveClassifier(
            algorithm=args.algorithm, label_weight=args.label_weight, random_state=args.seed
        )
        model.fit(features, np.where(labelled, y, np.nan))
        completed = np.insert(model.X_imputed_, k, model.transduction_, axis=1)
        completed[~np.isnan(X)] = X[~np.isnan(X)]
        payload.update(
            label=args.label,
            predicted_labels=int((~labelled).sum()),
            classes=model.classes_.tolist(),
        )
    else:
        model = SRFCompletion(random_state=args.seed)
        completed = model.fit_transform(X)
    payload.update(
        rank=model.rank_,
        delta_levels=model.n_levels_,
        svds=model.n_svd_,
        converged=bool(model.converged_),
        time_s=model.fit_time_,
    )
    text = [
        f"{X.shape[0]} × {X.shape[1]}, {missing} missing entries: completed at effective rank "
        f"{model.rank_} ({model.n_levels_} δ levels, {model.fit_time_:.1f} s)"
    ]
    out = Path(args.out) if args.out is not None else None
    if out is not None:
        target = out if out.suffix == ".csv" else out / "completed.csv"
        write_numeric_csv(target, completed, names)
        payload["out"] = str(target)
        text.append(f"wrote {target}")
    elif not args.json:
        text.append("(use --out to write the completed matrix)")
    emit(args, payload, "\n".join(text))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from srf import __version__

    parser = make_parser(
        "srf",
        "Matrix completion and transduction by minimizing a smoothed rank function.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "complete",
        _complete,
        help="complete a numeric CSV (empty/NA = missing)",
        uses=("seed", "out"),
    )
    p.add_argument("data", type=Path, help="numeric CSV, rows as items; empty cells or NA missing")
    p.add_argument(
        "--label",
        default=None,
        help="name of a class-code column to predict where empty (transduction)",
    )
    p.add_argument("--algorithm", default="margin", choices=["equality", "margin"])
    p.add_argument("--label-weight", type=float, default=1.0, help="weight of the label block")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
