"""``graphl0bnb`` command line: fit, bench."""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from graphl0bnb.bench import BENCH
from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import read_numeric_csv


def read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """A numeric CSV with an optional header row (``labcore.io.read_numeric_csv``); returns
    (X, column names). A graph needs every value: missing cells are an error here."""
    X, header = read_numeric_csv(path)
    names = header if header is not None else [f"x{k}" for k in range(X.shape[1])]
    if np.isnan(X).any():
        bad = int(np.isnan(X).any(axis=1).sum())
        raise LabcoreError(f"{path}: {bad} row(s) have missing values; drop or impute them first")
    return X, names


def certificate(est) -> dict[str, Any]:
    def num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return {
        "status": est.status_,
        "objective": est.objective_,
        "lower_bound": num(est.lower_bound_),
        "gap_relative": num(est.gap_),
        "gap_absolute": num(est.gap_abs_),
        "gap_tolerance_applies_to": "relative gap (upper - lower) / max(|upper|, 1)",
        "n_nodes": est.n_nodes_,
        "n_edges": est.n_edges_,
        "time_s": est.time_,
        "l0": est.l0_,
        "l2": float(est.l2),
        "M": est.M_,
        "standardize": bool(est.standardize),
    }


def _fit(args: argparse.Namespace) -> int:
    from graphl0bnb.estimator import GraphL0BnB, GraphL0BnBCV
    from labcore.io import atomic_directory, atomic_write_json, atomic_write_text, check_output_dir

    if args.select and args.l0 is not None:
        raise LabcoreError("--select chooses l0 itself: give either --l0 or --select, not both")
    if args.out is not None:
        check_output_dir(args.out, overwrite=args.overwrite)
    X, names = read_csv(args.data)
    common = dict(
        M=args.M,
        mode=args.mode,
        gap_tol=args.gap_tol,
        time_limit=args.time_limit,
        search=args.search,
        standardize=not args.no_standardize,
        verbose=not args.quiet and not args.json,
    )
    if args.select:
        est = GraphL0BnBCV(l2=args.l2, criterion=args.select, **common).fit(X)
    else:
        est = GraphL0BnB(l0=args.l0, l2=args.l2, **common).fit(X)
    edges = est.edges(names)
    result = {"data": str(args.data), "n_samples": X.shape[0], "n_variables": X.shape[1]}
    result["certificate"] = certificate(est)
    result["edges"] = [
        {"i": a, "j": b, "partial_correlation": c, "theta": t} for a, b, c, t in edges
    ]
    if args.out is not None:
        out = Path(args.out)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["i", "j", "partial_correlation", "theta"])
        writer.writerows([a, b, f"{c:.6g}", f"{t:.6g}"] for a, b, c, t in edges)
        with atomic_directory(out, overwrite=args.overwrite) as tmp:  # both files or neither
            atomic_write_text(tmp / "edges.csv", buf.getvalue())
            atomic_write_json(tmp / "certificate.json", result["certificate"])
        result["written"] = [str(out / "edges.csv"), str(out / "certificate.json")]
    emit(args, result, _fit_text(result))
    return 0


def _fit_text(result: dict[str, Any]) -> str:
    c = result["certificate"]
    lines = [
        f"{result['n_variables']} variables, {result['n_samples']} samples: {c['n_edges']} edges, "
        f"objective {c['objective']:.6f}, lower bound {c['lower_bound']}, "
        f"gap {c['gap_relative']} (relative), {c['n_nodes']} nodes, {c['time_s']:.2f} s, "
        f"status {c['status']}"
    ]
    for e in result["edges"][:50]:
        lines.append(f"  {e['i']} -- {e['j']}  partial corr {e['partial_correlation']:+.3f}")
    if len(result["edges"]) > 50:
        lines.append(f"  … {len(result['edges']) - 50} more")
    lines += [f"wrote {w}" for w in result.get("written", [])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from graphl0bnb import __version__

    parser = make_parser(
        "graphl0bnb",
        "Sparse Gaussian graphical models by l0-l2 pseudolikelihood and branch-and-bound.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "fit",
        _fit,
        help="estimate a graph from a CSV (rows = samples)",
        uses=("out", "overwrite"),
    )
    p.add_argument("data", type=Path, help="CSV file, numeric, optional header row")
    p.add_argument(
        "--l0", type=float, default=None, help="price per edge (default (log n + 2 log p)/n)"
    )
    p.add_argument("--l2", type=float, default=1.0, help="ridge weight (default 1.0)")
    p.add_argument("--M", type=float, default=None, help="box |θ_ij| ≤ M (default: from the data)")
    p.add_argument("--mode", choices=("bnb", "heuristic"), default="bnb")
    p.add_argument("--select", choices=("bic", "cv"), default=None, help="choose l0 on a path")
    p.add_argument("--gap-tol", type=float, default=1e-2, help="relative gap tolerance")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds")
    p.add_argument("--search", choices=("best", "depth"), default="best")
    p.add_argument("--no-standardize", action="store_true", help="keep the columns' scales")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
