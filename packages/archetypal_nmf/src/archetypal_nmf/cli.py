"""``archetypal-nmf`` command line: fit a CSV, run the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from archetypal_nmf.bench import BENCH
from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from labcore.io import atomic_directory, check_output_dir, write_numeric_csv
from labcore.io import read_numeric_csv as read_matrix


def _fit(args: argparse.Namespace) -> int:
    from archetypal_nmf import SparseArchetypalNMF

    if args.out is not None:
        check_output_dir(args.out, overwrite=args.overwrite)
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
        with atomic_directory(out, overwrite=args.overwrite) as tmp:  # all files or none
            write_numeric_csv(tmp / "archetypes.csv", H, names)
            write_numeric_csv(tmp / "weights.csv", W, [f"a{j}" for j in range(args.k)])
            if model.X_imputed_ is not None:
                write_numeric_csv(tmp / "imputed.csv", model.X_imputed_, names)
        text.append(f"wrote {out}/archetypes.csv (H), weights.csv (W)")
        payload["out"] = str(out)
    emit(args, payload, "\n".join(text))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from archetypal_nmf import __version__

    parser = make_parser(
        "archetypal-nmf",
        "Sparse NMF with archetypal regularization: exact l0-sparse archetypes near the data.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "fit",
        _fit,
        help="fit archetypes to a CSV (points as rows)",
        uses=("seed", "out", "overwrite"),
    )
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
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
