"""``archetypal-nmf`` command line: fit a CSV, run the benchmark."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from labcore.cli import (
    add_bench_arguments,
    add_command,
    emit,
    make_parser,
    run,
    stderr_logger,
)
from labcore.errors import LabcoreError

MISSING_TOKENS = frozenset({"", "na", "nan", "null"})


def _cell(text: str) -> float | None:
    """The cell's value; NaN for a missing-value token; None if it is not a number."""
    token = text.strip()
    if token.lower() in MISSING_TOKENS:
        return float("nan")
    try:
        return float(token)
    except ValueError:
        return None


def read_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """A numeric CSV with points as rows. The first row is a header when none of its cells is
    a number. Empty cells and NA/NaN/null are missing values; any other text is an error
    naming its line and column."""
    import csv

    if not path.exists():
        raise LabcoreError(f"file not found: {path}")
    if path.is_dir():
        raise LabcoreError(f"{path} is a folder, not a CSV file")
    # utf-8-sig: a byte-order mark (spreadsheet exports) must not become part of a cell.
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = [
        (i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text))) if any(c.strip() for c in r)
    ]
    if not rows:
        raise LabcoreError(f"{path} is empty")
    header = None
    first = rows[0][1]
    if all(_cell(c) is None for c in first):
        header = [c.strip() for c in first]
        rows = rows[1:]
        if not rows:
            raise LabcoreError(f"{path} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    X = np.empty((len(rows), width))
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise LabcoreError(f"{path}: line {line} has {len(cells)} cells, expected {width}")
        for j, cell in enumerate(cells):
            value = _cell(cell)
            if value is None:
                raise LabcoreError(
                    f"{path}: line {line}, column {j + 1}: {cell.strip()!r} is not a number "
                    "(missing values are empty cells or NA)"
                )
            X[r, j] = value
    return X, header


def _fit(args: argparse.Namespace) -> int:
    from archetypal_nmf import SparseArchetypalNMF
    from labcore.io import atomic_write_text

    X, header = read_matrix(args.data)
    missing = np.isnan(X)
    mask = ~missing if missing.any() else None
    n_nonzero = args.n_nonzero
    if n_nonzero is None and args.density is not None:
        if not 0 < args.density <= 1:
            raise LabcoreError(f"--density must be in (0, 1], got {args.density}")
        n_nonzero = max(1, round(args.density * args.k * X.shape[1]))
    model = SparseArchetypalNMF(
        n_components=args.k,
        n_nonzero=n_nonzero,
        lam=args.lam,
        init=args.init,
        local_search=not args.no_local_search,
        random_state=args.seed,
    )
    W = model.fit_transform(X, mask=mask)
    H = model.components_
    payload = {
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "k": args.k,
        "n_nonzero": int(np.count_nonzero(H)),
        "missing_entries": int(missing.sum()),
        "objective": model.objective_[-1],
        "reconstruction_err": model.reconstruction_err_,
        "relative_error": model.reconstruction_err_ / float(np.linalg.norm(np.nan_to_num(X))),
        "time_s": model.fit_time_,
        "init": args.init,
        "H": H.tolist(),
        "W": W.tolist(),
    }
    text = [
        f"{X.shape[0]} points × {X.shape[1]} features, k = {args.k}: "
        f"{payload['n_nonzero']} nonzeros in H, relative error {payload['relative_error']:.4f},"
        f" objective {payload['objective']:.6g} ({payload['time_s']:.1f} s)"
    ]
    if args.out is not None:
        out = Path(args.out)
        names = header or [f"x{j}" for j in range(X.shape[1])]
        atomic_write_text(out / "archetypes.csv", _csv(H, names))
        atomic_write_text(out / "weights.csv", _csv(W, [f"a{j}" for j in range(args.k)]))
        if model.X_imputed_ is not None:
            atomic_write_text(out / "imputed.csv", _csv(model.X_imputed_, names))
        text.append(f"wrote {out}/archetypes.csv (H), weights.csv (W)")
        payload["out"] = str(out)
    emit(args, payload, "\n".join(text))
    return 0


def _csv(matrix: np.ndarray, names: list[str]) -> str:
    buf = io.StringIO()
    buf.write(",".join(names) + "\n")
    np.savetxt(buf, matrix, delimiter=",", fmt="%.10g")
    return buf.getvalue()


def _bench(args: argparse.Namespace) -> int:
    from archetypal_nmf.bench import run_bench

    out = args.out if args.out is not None else Path("bench")
    result = run_bench(quick=args.quick, out=out, log=stderr_logger(args))
    emit(
        args,
        {**result["report"].to_dict(), "total_s": result["total_s"]},
        result["table"] + f"\nTotal {result['total_s']:.0f} s; results in {out}/",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from archetypal_nmf import __version__

    parser = make_parser(
        "archetypal-nmf",
        "Sparse NMF with archetypal regularization: exact l0-sparse archetypes near the data.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "fit", _fit, help="fit archetypes to a CSV (points as rows)")
    p.add_argument("data", type=Path, help="numeric CSV; empty cells or NA are missing values")
    p.add_argument("-k", type=int, required=True, help="number of archetypes")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--n-nonzero", type=int, default=None, help="total nonzeros allowed in H")
    g.add_argument("--density", type=float, default=None, help="or: the fraction of H kept")
    p.add_argument("--lam", type=float, default=1.0, help="archetypal weight λ (default 1)")
    p.add_argument(
        "--init",
        default="spa",
        choices=["spa", "mip", "furthest", "random"],
        help="initialization (default spa; mip solves the outer-approximation MILP)",
    )
    p.add_argument("--no-local-search", action="store_true", help="skip the support swaps")
    p = add_command(
        sub,
        "bench",
        _bench,
        help="against NMF and archetypal analysis (results in --out, default bench/)",
    )
    add_bench_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
