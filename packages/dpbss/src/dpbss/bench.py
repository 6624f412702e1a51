"""``dpbss bench``: Top-R and Mistakes against the private baselines, on the same data.

The paper's synthetic design (:func:`dpbss.data.make_synthetic`: AR(1) features with
ρ = 0.1, s = 5 true features of weight 1/√s, SNR = 5, clipped to b_x = b_y = 0.5; λ = 120,
r = 1.1) at p = 100 and 1,000 (and 10,000 in the full run) over a grid of n, three seeds
(data sets) each. Per data set the non-private part runs once: outer approximation for S*
(finished by the branch and bound of :mod:`dpbss.mistakes` when the master MILP does not
close the gap in the time limit), its one-swaps, and the best supports with at least
2 … s mistakes by that branch and bound (each solve under a time limit; the table reports
the gaps). Then, at each ε ∈ {0.5, 1, 2} (all of it spent on the selection):

- ``top-r``, ``mistakes``: 200 draws of the mechanism each;
- ``samp-agg``: the Lasso subsample-and-aggregate votes of one random partition, with 200
  draws of the Laplace noise;
- ``mcmc``: chains of 2,000 Metropolis–Hastings swap steps from uniform starts (the
  exponential mechanism's target, approximate DP), the last state of each chain a draw;
- ``bss``: the non-private best subset (the upper bound; the same at every ε).

Reported: the exact-recovery rate (fraction of draws equal to the true support), the mean
F1 of the drawn support against the truth, and the time of one draw including the
non-private work it needs (S*, the swaps and the ≥2-mistake solve for Top-R; every solve for
Mistakes; the votes for samp-agg; one chain for MCMC).
"""

from __future__ import annotations

import time

import numpy as np

from dpbss import __version__
from dpbss.baselines import lasso_votes, mcmc_exponential, samp_agg_lasso
from dpbss.data import make_synthetic
from dpbss.loss import SquaredCost
from dpbss.select import neighbourhood, sample_mistakes, sample_top_r, sensitivity
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, wide_table
from labcore.progress import status

S = 5
RIDGE = 120.0
RADIUS = 1.1
BOUND = 0.5
EPSILONS = (0.5, 1.0, 2.0)
DRAWS = 200
MCMC_STEPS = 2000
METHODS = ("bss", "top-r", "mistakes", "samp-agg", "mcmc")


def grid(quick: bool) -> list[tuple[int, int]]:
    """(p, n) pairs of the run."""
    if quick:
        return [(100, n) for n in (2000, 4000, 8000)] + [(1000, n) for n in (4000, 8000, 16000)]
    return (
        [(100, n) for n in (1000, 2000, 4000, 8000)]
        + [(1000, n) for n in (2000, 4000, 8000, 16000)]
        + [(10_000, n) for n in (4000, 8000, 16000)]
    )


def _f1(support: np.ndarray, truth: np.ndarray) -> float:
    hits = len(set(support.tolist()) & set(truth.tolist()))
    return 2 * hits / (len(support) + len(truth))


def _scores(draws: list[np.ndarray], truth: np.ndarray) -> dict[str, float]:
    exact = [set(d.tolist()) == set(truth.tolist()) for d in draws]
    return {
        "exact_recovery": float(np.mean(exact)),
        "f1": float(np.mean([_f1(d, truth) for d in draws])),
        "draws": float(len(draws)),
    }


def instance_rows(p: int, n: int, seed: int, *, time_limit: float, mcmc_chains: int) -> list[Row]:
    """Every method at every ε on one data set; also the outer-approximation statistics."""
    data = make_synthetic(n, p, S, x_bound=BOUND, y_bound=BOUND, seed=seed)
    truth = data.support
    rng = np.random.default_rng(10_000 + seed)
    t0 = time.perf_counter()
    cost = SquaredCost(data.X, data.y, RIDGE, RADIUS)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nb = neighbourhood(data.X, data.y, S, lam=RIDGE, r=RADIUS, time_limit=time_limit, cost=cost)
    total_s = setup_s + time.perf_counter() - t0
    solve_s = [r.seconds for r in nb.solves]
    swaps_s = total_s - setup_s - sum(solve_s)
    top_r_s = setup_s + solve_s[0] + swaps_s + (solve_s[1] if len(solve_s) > 1 else 0.0)
    delta_f = sensitivity(n=n, s=S, x_bound=BOUND, y_bound=BOUND, radius=RADIUS)
    limited = [r.status == "time_limit" for r in nb.solves]
    oa = Row(
        "outer-approx",
        {"p": p, "n": n, "s": S, "time_limit_s": time_limit},
        f"p={p}, n={n}",
        seed,
        {
            "best_s": solve_s[0],
            "two_mistakes_s": solve_s[1] if len(solve_s) > 1 else None,
            "two_mistakes_gap": nb.solves[1].gap if len(solve_s) > 1 else None,
            "more_mistakes_s": float(np.mean(solve_s[2:])) if len(solve_s) > 2 else None,
            "more_mistakes_gap": max(r.gap for r in nb.solves[2:]) if len(solve_s) > 2 else None,
            "solves": float(len(solve_s)),
            "at_time_limit": float(sum(limited)),
            "certified": float(nb.certified),
            "best_is_truth": float(set(nb.best.tolist()) == set(truth.tolist())),
            "swaps_s": swaps_s,
            "cuts": float(nb.solves[-1].cuts),
        },
        total_s,
    )
    status(
        f"p={p} n={n} seed {seed}: OA {total_s:.1f} s, gaps "
        + ", ".join(f"{r.gap:.1e}" for r in nb.solves)
    )
    t0 = time.perf_counter()
    votes = lasso_votes(data.X, data.y, S, rng=rng)
    votes_s = time.perf_counter() - t0
    rows: list[Row] = []
    dataset_of = {eps: f"p={p}, n={n}, ε={eps:g}" for eps in EPSILONS}
    for eps in EPSILONS:
        params = {"p": p, "n": n, "epsilon": eps, "s": S}
        ds = dataset_of[eps]
        bss = _scores([nb.best], truth)
        bss.update(
            {
                "oa_best_s": solve_s[0],
                "certified": float(nb.certified),
                "max_gap": float(max(r.gap for r in nb.solves)),
            }
        )
        rows.append(Row("bss", params, ds, seed, bss, solve_s[0] + setup_s))
        for name, draw, base_s in (
            ("top-r", sample_top_r, top_r_s),
            ("mistakes", sample_mistakes, total_s),
        ):
            t0 = time.perf_counter()
            draws = [draw(nb, epsilon=eps, sensitivity=delta_f, rng=rng) for _ in range(DRAWS)]
            per_draw = (time.perf_counter() - t0) / DRAWS
            rows.append(Row(name, params, ds, seed, _scores(draws, truth), base_s + per_draw))
        t0 = time.perf_counter()
        draws = [samp_agg_lasso(votes, S, n=n, epsilon=eps, rng=rng) for _ in range(DRAWS)]
        per_draw = (time.perf_counter() - t0) / DRAWS
        rows.append(Row("samp-agg", params, ds, seed, _scores(draws, truth), votes_s + per_draw))
        t0 = time.perf_counter()
        draws = [
            mcmc_exponential(cost, S, epsilon=eps, sensitivity=delta_f, steps=MCMC_STEPS, rng=rng)
            for _ in range(mcmc_chains)
        ]
        per_chain = (time.perf_counter() - t0) / mcmc_chains
        rows.append(Row("mcmc", params, ds, seed, _scores(draws, truth), per_chain))
        status(
            f"  ε={eps:g}: "
            + ", ".join(f"{r.method} {r.metrics['exact_recovery']:.2f}" for r in rows[-5:])
        )
    return [oa, *rows]


def oa_table(rows: list[Row]) -> str:
    """The non-private solves per (p, n): seconds and gaps, mean over the seeds."""
    lines = [
        "| p | n | S* (s) | ≥2 mistakes (s / gap) | ≥3…≥5 mistakes (s / max gap) | at time limit "
        "| certified | S* = truth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    oa = [r for r in rows if r.method == "outer-approx" and r.status == "ok"]

    def mean(key, rs):
        vals = [r.metrics[key] for r in rs if r.metrics.get(key) is not None]
        return np.mean(vals) if vals else float("nan")

    def worst(key, rs):
        vals = [r.metrics[key] for r in rs if r.metrics.get(key) is not None]
        return max(vals) if vals else float("nan")

    for ds in dict.fromkeys(r.dataset for r in oa):
        rs = [r for r in oa if r.dataset == ds]
        p, n = rs[0].params["p"], rs[0].params["n"]
        lines.append(
            f"| {p} | {n} | {mean('best_s', rs):.2f} | "
            f"{mean('two_mistakes_s', rs):.1f} / {worst('two_mistakes_gap', rs):.1e} | "
            f"{mean('more_mistakes_s', rs):.1f} / {worst('more_mistakes_gap', rs):.1e} | "
            f"{sum(r.metrics['at_time_limit'] for r in rs):.0f}/"
            f"{sum(r.metrics['solves'] for r in rs):.0f} | "
            f"{sum(r.metrics['certified'] for r in rs):.0f}/{len(rs)} | "
            f"{sum(r.metrics['best_is_truth'] for r in rs):.0f}/{len(rs)} |"
        )
    return "\n".join(lines) + "\n"


def run_bench(config: BenchConfig) -> BenchReport:
    time_limit = float(config.option("time_limit", 10.0 if config.quick else 30.0))
    mcmc_chains = 10 if config.quick else 20
    report = BenchReport(
        package="dpbss",
        version=__version__,
        config={
            "s": S,
            "ridge": RIDGE,
            "radius": RADIUS,
            "x_bound": BOUND,
            "y_bound": BOUND,
            "epsilons": list(EPSILONS),
            "draws": DRAWS,
            "mcmc_steps": MCMC_STEPS,
            "mcmc_chains": mcmc_chains,
            "time_limit_s": time_limit,
            "gap": 1e-4,
        },
    )
    for p, n in grid(config.quick):
        for seed in config.seeds:
            report.extend(instance_rows(p, n, seed, time_limit=time_limit, mcmc_chains=mcmc_chains))
            report.save_partial(config.out)
    table = wide_table(
        [r for r in report.rows if r.method in METHODS],
        methods=METHODS,
        metrics={"exact_recovery": ".2f", "f1": ".2f"},
        header="{method} (exact / F1 / s)",
        time_format=".2f",
    )
    report.summary = (
        "Exact recovery rate / mean F1 / seconds per draw (mean over seeds):\n\n"
        + table
        + "\nOuter approximation per data set (times: mean over seeds; gaps: the largest):\n\n"
        + oa_table(report.rows)
    )
    return report


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds per solve (S*, each mistake problem; default 10 quick, 30 full)",
    )


BENCH = BenchSpec(
    package="dpbss",
    version=__version__,
    run=run_bench,
    help="Top-R and Mistakes against BSS, samp-agg Lasso and MCMC (synthetic, p = 100 … 10^4)",
    uses=frozenset({"seeds"}),
    default_seeds=(0, 1, 2),  # the quick run too
    add_arguments=_add_arguments,
)
