"""``skinnytrees`` command line: fit, predict, bench."""

from __future__ import annotations

import argparse
import csv
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from skinnytrees.bench import BENCH

MODEL_FILE = "model.pkl"
SELECTION_FILE = "selection.json"


def read_table(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """A CSV with a header row: the feature matrix (every cell a number), the target column
    (numbers or labels; None when ``target`` is None) and the feature names."""
    from labcore.io import parse_csv_cell, read_csv_rows

    rows = read_csv_rows(path)
    header = [c.strip() for c in rows[0][1]]
    if all(parse_csv_cell(c) is not None for c in header if c.strip()):
        raise LabcoreError(f"{path} needs a header row naming the columns")
    if len(rows) < 2:
        raise LabcoreError(f"{path} has a header but no data rows")
    if target is not None and target not in header:
        raise LabcoreError(f"{path} has no column {target!r}; columns: {', '.join(header[:20])}")
    t = None if target is None else header.index(target)
    names = [h for j, h in enumerate(header) if j != t]
    X = np.empty((len(rows) - 1, len(names)))
    y_cells = []
    for r, (line, cells) in enumerate(rows[1:]):
        if len(cells) != len(header):
            raise LabcoreError(
                f"{path}: line {line} has {len(cells)} cells, expected {len(header)}"
            )
        c = 0
        for j, cell in enumerate(cells):
            if j == t:
                value = parse_csv_cell(cell)
                if value is not None and np.isnan(value):
                    raise LabcoreError(f"{path}: line {line}: the target {target!r} is missing")
                y_cells.append(cell.strip())
                continue
            value = parse_csv_cell(cell)
            if value is None or not np.isfinite(value):
                if value is None:
                    what = f"{cell.strip()!r} is not a number"
                else:
                    what = "missing" if np.isnan(value) else f"{cell.strip()!r} is not finite"
                raise LabcoreError(
                    f"{path}: line {line}, column {j + 1} ({header[j]!r}): {what}; Skinny Trees "
                    "needs numeric features without missing values (encode or impute them first)"
                )
            X[r, c] = value
            c += 1
    if t is None:
        return X, None, names
    numeric = [parse_csv_cell(v) for v in y_cells]
    if all(v is not None for v in numeric):
        y = np.array(numeric)
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)  # class labels written as 0/1 or 1.0/2.0 stay integers
    else:
        y = np.array(y_cells)
    return X, y, names


def _task(y: np.ndarray, task: str) -> str:
    if task != "auto":
        return task
    from sklearn.utils.multiclass import type_of_target

    return "regression" if type_of_target(y) == "continuous" else "classification"


def _fit(args: argparse.Namespace) -> int:
    from labcore.io import atomic_directory, atomic_write_bytes, atomic_write_json, check_output_dir
    from skinnytrees import SkinnyTreesClassifier, SkinnyTreesRegressor, budget_count

    if args.out is not None:
        check_output_dir(args.out, overwrite=args.overwrite)
    X, y, names = read_table(args.data, args.target)
    budget = args.budget
    if budget is not None:
        budget = int(budget) if float(budget).is_integer() and budget > 1 else float(budget)
        budget_count(budget, X.shape[1])  # the error before any training
    if len(np.unique(y)) < 2:
        raise LabcoreError(
            f"the target {args.target!r} is constant (every row is {y[0].item()!r}): nothing to learn"
        )
    task = _task(y, args.task)
    Est = SkinnyTreesClassifier if task == "classification" else SkinnyTreesRegressor
    est = Est(
        max_features=budget,
        n_trees=args.trees,
        depth=args.depth,
        l0=args.l0,
        learning_rate=args.lr,
        max_epochs=args.epochs,
        random_state=args.seed,
        device=args.device,
    ).fit(X, y)
    selected = [names[j] for j in np.flatnonzero(est.support_)]
    order = np.argsort(-est.feature_importances_, kind="stable")
    result: dict[str, Any] = {
        "data": str(args.data),
        "target": args.target,
        "task": task,
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "budget": est.budget_,
        "budget_enforced": est.budget_enforced_,
        "n_selected": est.n_features_selected_,
        "l0": est.l0_,
        "validation_score": est.validation_score_,
        "validation_metric": "auc" if task == "classification" else "negative mse",
        "epochs": est.n_epochs_,
        "fit_time_s": est.fit_time_,
        "selected": selected,
        "importance": {
            names[j]: float(est.feature_importances_[j]) for j in order if est.support_[j]
        },
        "path": est.path_,
    }
    if args.out is not None:
        out = Path(args.out)
        with atomic_directory(out, overwrite=args.overwrite) as tmp:  # both files or neither
            atomic_write_bytes(tmp / MODEL_FILE, pickle.dumps({"model": est, "features": names}))
            atomic_write_json(tmp / SELECTION_FILE, result)
        result["written"] = [str(out / MODEL_FILE), str(out / SELECTION_FILE)]
    emit(args, result, _fit_text(result))
    return 0


def _fit_text(r: dict[str, Any]) -> str:
    score = r["validation_score"]
    lines = [
        f"{r['n_samples']} samples, {r['n_features']} features ({r['task']}): "
        f"{r['n_selected']} selected (budget {r['budget']}, {r['budget_enforced']}), "
        f"λ = {r['l0']:.4g}, validation {r['validation_metric']} "
        f"{'–' if score is None else f'{score:.4f}'}, {r['fit_time_s']:.1f} s"
    ]
    for name, w in list(r["importance"].items())[:30]:
        lines.append(f"  {name:30s} {w:.3f}")
    if len(r["importance"]) > 30:
        lines.append(f"  … {len(r['importance']) - 30} more")
    lines += [f"wrote {w}" for w in r.get("written", [])]
    return "\n".join(lines)


def _predict(args: argparse.Namespace) -> int:
    from labcore.io import atomic_write_text, check_output_path

    path = Path(args.model)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise LabcoreError(
            f"no model at {path} (expected a folder written by `skinnytrees fit --out`)"
        )
    if args.out is not None:
        check_output_path(args.out, kind="file")
    try:
        saved = pickle.loads(file.read_bytes())
        est, names = saved["model"], saved["features"]
    except Exception as exc:
        raise LabcoreError(f"{file} is not a skinnytrees model ({type(exc).__name__})") from None
    X, _, columns = read_table(args.data, args.drop)
    missing = [n for n in names if n not in columns]
    if missing:
        raise LabcoreError(f"{args.data} lacks the model's feature column(s) {missing[:10]}")
    X = X[:, [columns.index(n) for n in names]]
    pred = est.predict(X)
    result: dict[str, Any] = {"n_rows": len(pred), "predictions": pred.tolist()}
    if hasattr(est, "predict_proba"):
        result["classes"] = est.classes_.tolist()
        result["probabilities"] = est.predict_proba(X).round(6).tolist()
    if args.out is not None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["prediction", *(f"p_{c}" for c in result.get("classes", []))])
        for k, v in enumerate(result["predictions"]):
            w.writerow([v, *result.get("probabilities", [[]] * len(pred))[k]])
        atomic_write_text(args.out, buf.getvalue())
        result["written"] = [str(args.out)]
    text = "\n".join(str(v) for v in result["predictions"][:50])
    emit(args, result, text + "".join(f"\nwrote {w}" for w in result.get("written", [])))
    return 0


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"the budget must be a fraction in (0, 1] or a feature count, got {text}"
        )
    if value > 1 and not value.is_integer():
        raise argparse.ArgumentTypeError(
            f"the budget must be a fraction in (0, 1] or a whole feature count, got {text}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    from skinnytrees import __version__

    parser = make_parser(
        "skinnytrees",
        "Skinny Trees: feature selection inside a soft tree ensemble by a group-l0 penalty.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "fit",
        _fit,
        help="fit on a CSV (header row, numeric features) and report the selected features",
        uses=("seed", "device", "out", "overwrite"),
    )
    p.add_argument("data", type=Path, help="CSV file with a header row")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument(
        "--budget",
        type=_budget,
        default=None,
        help="feature budget: a fraction in (0, 1] or a count (default: one fit at --l0)",
    )
    p.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto: regression for a continuous target, else classification",
    )
    p.add_argument("--l0", type=float, default=None, help="λ (default 100 / n_features)")
    p.add_argument("--trees", type=int, default=20, help="number of trees (default 20)")
    p.add_argument("--depth", type=int, default=4, help="tree depth (default 4)")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument("--epochs", type=int, default=200, help="most epochs per fit (default 200)")
    q = add_command(
        sub,
        "predict",
        _predict,
        help="predict with a model written by `fit --out`",
        uses=("out",),
    )
    q.add_argument("model", type=Path, help="the folder written by `skinnytrees fit --out`")
    q.add_argument("data", type=Path, help="CSV with the model's feature columns (header row)")
    q.add_argument("--drop", default=None, help="a non-numeric column to ignore (e.g. the target)")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
