"""``qmc`` command line: complete a ratings file, run the benchmark."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import read_csv_rows
from qmc.bench import BENCH


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_ratings(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """A long-format CSV ``user,item,rating`` (header optional: a first row whose rating cell is
    not a number). Users and items are any strings; ratings must be numbers."""
    rows = read_csv_rows(path)
    if len(rows[0][1]) >= 3 and not _is_number(rows[0][1][2].strip()):
        rows = rows[1:]
    if not rows:
        raise LabcoreError(f"{path} has a header but no ratings")
    users, items, ratings = [], [], []
    for line, cells in rows:
        if len(cells) < 3:
            raise LabcoreError(f"{path}: line {line} has {len(cells)} cells; need user,item,rating")
        cell = cells[2].strip()
        if not _is_number(cell) or not np.isfinite(float(cell)):
            raise LabcoreError(f"{path}: line {line}: rating {cell!r} is not a finite number")
        users.append(cells[0].strip())
        items.append(cells[1].strip())
        ratings.append(float(cell))
    return users, items, np.asarray(ratings)


#: Without --levels, ratings may take at most this many distinct values: more looks like a
#: continuous score, which QMC (ordinal levels) would treat as one level per value.
MAX_AUTO_LEVELS = 20


def _level_values(ratings: np.ndarray, spec: str | None) -> np.ndarray:
    if spec is None:
        values = np.unique(ratings)
        if values.size > MAX_AUTO_LEVELS:
            example = next((v for v in values if v != round(v)), values[-1])
            raise LabcoreError(
                f"ratings take {values.size} distinct values (e.g. {example:g}); QMC completes "
                f"ordinal levels: round or bin them first, or list the levels with --levels "
                f"(at most {MAX_AUTO_LEVELS} are taken automatically)"
            )
        return values
    try:
        values = np.asarray([float(v) for v in spec.split(",")])
    except ValueError:
        raise LabcoreError(f"--levels must be comma-separated numbers, got {spec!r}") from None
    if values.size < 2 or np.any(np.diff(values) <= 0):
        raise LabcoreError("--levels must list at least two increasing values")
    unknown = ~np.isin(ratings, values)
    if unknown.any():
        raise LabcoreError(
            f"ratings {sorted(set(ratings[unknown].tolist()))[:5]} are not among --levels"
        )
    return values


def _fit(args: argparse.Namespace) -> int:
    from labcore.io import atomic_directory, check_output_dir
    from qmc import QuantizedMatrixCompletion

    if args.out is not None:
        check_output_dir(args.out, overwrite=args.overwrite)
    users, items, ratings = read_ratings(args.ratings)
    values = _level_values(ratings, args.levels)
    if values.size < 2:
        raise LabcoreError("all ratings are equal: at least two levels are needed")
    user_ids, u = np.unique(np.asarray(users), return_inverse=True)
    item_ids, i = np.unique(np.asarray(items), return_inverse=True)
    levels = np.searchsorted(values, ratings) + 1
    Y = np.zeros((user_ids.size, item_ids.size), dtype=np.int64)
    mask = np.zeros_like(Y, dtype=bool)
    keys = u * item_ids.size + i
    if np.unique(keys).size != keys.size:
        raise LabcoreError("a (user, item) pair is rated more than once")
    Y[u, i] = levels
    mask[u, i] = True
    if args.predict_missing and args.out is None:
        raise LabcoreError("--predict-missing writes predictions.csv: give --out DIR")
    lam = args.lam if args.lam is not None else "auto"
    model = QuantizedMatrixCompletion(
        rank=args.rank,
        lam=lam,
        link=args.link,
        scale=args.scale,
        thresholds="learn" if args.learn_thresholds else "uniform",
        n_levels=int(values.size),
        random_state=args.seed,
    ).fit(Y, mask=mask)
    payload = {
        "n_users": int(user_ids.size),
        "n_items": int(item_ids.size),
        "n_ratings": int(ratings.size),
        "levels": values.tolist(),
        "lam": model.lam_,
        "rank": model.rank_,
        "objective": model.objective_,
        "n_iter": model.n_iter_,
        "converged": bool(model.converged_),
        "certificate": model.certificate_,
        "thresholds": model.thresholds_.tolist(),
        # X̂ = offset + U Vᵀ (user_factors × item_factorsᵀ) on the level scale 1..L, and
        # P(level | X̂) uses these thresholds, link and scale.
        "offset": model.offset_,
        "link": args.link,
        "scale": args.scale,
        "train_loglik_per_rating": model.score(Y, mask=mask),
        "time_s": model.fit_time_,
    }
    text = [
        f"{user_ids.size} users × {item_ids.size} items, {ratings.size} ratings on "
        f"{values.size} levels: rank {model.rank_} at λ = {model.lam_:.4g}, "
        f"{model.n_iter_} ALM iterations ({model.fit_time_:.1f} s)"
    ]
    if args.out is not None:
        out = Path(args.out)
        with atomic_directory(out, overwrite=args.overwrite) as tmp:  # all files or none
            _write_fit(tmp, args, model, payload, user_ids, item_ids, mask, values)
        text.append(f"wrote {out}/user_factors.csv, item_factors.csv, model.json")
        if args.predict_missing:
            n_missing = int((~mask).sum())
            text.append(f"wrote {out}/predictions.csv ({n_missing} missing entries)")
        payload["out"] = str(out)
    emit(args, payload, "\n".join(text))
    return 0


def _write_fit(out: Path, args, model, payload, user_ids, item_ids, mask, values) -> None:
    from labcore.io import atomic_write_json, atomic_write_text

    atomic_write_text(out / "user_factors.csv", _factors_csv(user_ids, model.U_, "user"))
    atomic_write_text(out / "item_factors.csv", _factors_csv(item_ids, model.V_, "item"))
    atomic_write_json(out / "model.json", payload)
    if args.predict_missing:
        rr, cc = np.nonzero(~mask)
        pred = model.predict_entries(rr, cc)
        expected_value = model.predict_proba_entries(rr, cc) @ values  # E[rating], any spacing
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["user", "item", "rating", "expected_rating"])
        writer.writerows(
            (user_ids[a], item_ids[b], repr(float(values[p - 1])), f"{e:.6g}")
            for a, b, p, e in zip(rr, cc, pred, expected_value, strict=True)
        )
        atomic_write_text(out / "predictions.csv", buf.getvalue())


def _factors_csv(ids: np.ndarray, F: np.ndarray, kind: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([kind, *(f"f{k}" for k in range(F.shape[1]))])
    writer.writerows([name, *(f"{v:.10g}" for v in row)] for name, row in zip(ids, F, strict=True))
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    from qmc import __version__

    parser = make_parser(
        "qmc",
        "Quantized matrix completion (QMC-BIF): low-rank completion of ordinal ratings.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub, "fit", _fit, help="complete a user,item,rating CSV", uses=("seed", "out", "overwrite")
    )
    p.add_argument("ratings", type=Path, help="CSV with columns user,item,rating (header optional)")
    p.add_argument("--rank", type=int, default=30, help="rank cap (default 30)")
    p.add_argument("--lam", type=float, default=None, help="trace-norm weight (default: validated)")
    p.add_argument("--link", default="logistic", choices=["logistic", "probit"])
    p.add_argument("--scale", type=float, default=1.0, help="noise scale in level units")
    p.add_argument(
        "--levels", default=None, help="comma-separated rating values (default: those seen)"
    )
    p.add_argument("--learn-thresholds", action="store_true", help="fit the bin edges too")
    p.add_argument(
        "--predict-missing", action="store_true", help="with --out: write predictions.csv"
    )
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
