"""Experiments as code: seeds × methods × ρ grids, summaries, plots.

Every comparison follows the fair-comparison rule: each method at its own best stopping time
(the minimum of the population risk along its path, as in early-stopping theory), and also
at the common budget (the last iterate). SAM's ρ is chosen the same way, per method, over a
grid; the tables say which ρ won.

For kernel regression the un-normalized ρ is given in units of 1/λ_max (the grid
``rho_units=(1, 3, 9)`` means ρ·λ_max ∈ {1, 3, 9}) and η = ``eta_units``/λ_max, so that the
settings are comparable across kernels and stay stable (η·λ(1 + ρλ) ≤ 1 by default).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError
from samstats.kernel import MercerProblem, SpectralKernelRegression
from samstats.network import TeacherProblem, train_network


@dataclass
class Run:
    """One path: its method, ρ, seed, and what the tables need."""

    method: str
    rho: float
    seed: int
    steps: np.ndarray
    risk: np.ndarray
    best_risk: float
    best_step: int
    final_risk: float
    sharpness_best: float
    sharpness_final: float
    time_s: float
    # What ρ is chosen by (validation error on real data); the best risk when None.
    select_risk: float | None = None
    # The validation error along the path (real data), whose argmin is the reported step.
    validation: np.ndarray | None = None


@dataclass
class ExperimentResult:
    """All runs of one setting, with the summary per (method, ρ)."""

    setting: str
    params: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    sharpness_name: str = "sharpness"
    risk_name: str = "population risk E(f̂ − f*)²"

    def configs(self) -> list[tuple[str, float]]:
        seen: list[tuple[str, float]] = []
        for r in self.runs:
            if (r.method, r.rho) not in seen:
                seen.append((r.method, r.rho))
        return seen

    def select(self, method: str, rho: float) -> list[Run]:
        return sorted(
            (r for r in self.runs if r.method == method and r.rho == rho), key=lambda r: r.seed
        )

    def summary(self) -> list[dict[str, Any]]:
        """Mean and standard error over seeds per (method, ρ)."""
        out = []
        for method, rho in self.configs():
            runs = self.select(method, rho)
            out.append(
                {
                    "method": method,
                    "rho": rho,
                    "seeds": len(runs),
                    **_mean_se("best_risk", [r.best_risk for r in runs]),
                    **_mean_se("final_risk", [r.final_risk for r in runs]),
                    "best_step": float(np.mean([r.best_step for r in runs])),
                    "sharpness_best": _nanmean([r.sharpness_best for r in runs]),
                    "sharpness_final": _nanmean([r.sharpness_final for r in runs]),
                    "time_s": float(np.sum([r.time_s for r in runs])),
                }
            )
        return out

    def best_rho(self, method: str) -> float:
        """The ρ with the smallest mean selection risk for ``method`` (the best-over-iterations
        risk, or the validation error where runs carry one)."""
        rhos = [rho for m, rho in self.configs() if m == method]
        if not rhos:
            raise LabcoreError(f"no runs of {method!r} in {self.setting}")

        def criterion(rho: float) -> float:
            runs = self.select(method, rho)
            return float(
                np.mean([r.best_risk if r.select_risk is None else r.select_risk for r in runs])
            )

        return min(rhos, key=criterion)

    def comparison(self) -> dict[str, Any]:
        """GD against each SAM variant at its best ρ: risks, ratios, paired wins, sharpness."""
        gd = self.select("gd", 0.0)
        out: dict[str, Any] = {"setting": self.setting, "params": self.params}
        out["gd"] = _stats(gd)
        for method in ("sam", "sam-normalized", "ridge"):
            if not any(r.method == method for r in self.runs):
                continue
            rho = self.best_rho(method)
            runs = self.select(method, rho)
            stats = _stats(runs)
            stats["rho"] = rho
            paired = [(a.best_risk, b.best_risk) for a, b in zip(runs, gd, strict=True)]
            stats["ratio_best"] = stats["best_risk"] / out["gd"]["best_risk"]
            stats["ratio_final"] = (
                stats["final_risk"] / out["gd"]["final_risk"]
                if math.isfinite(stats["final_risk"])
                else math.nan
            )
            stats["wins"] = sum(m < g for m, g in paired)
            stats["seeds"] = len(paired)
            out[method] = stats
        return out


def _ridge_grid(s_max: float, eta_units: float, n_steps: int, size: int = 61) -> np.ndarray:
    """λ from 1/(η·n_steps) (η = eta_units/λ_max) to 10·λ_max, log-spaced."""
    lowest = s_max / (eta_units * n_steps)
    return np.logspace(math.log10(lowest), math.log10(10 * s_max), size)


def _mean_se(name: str, values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # diverged runs: inf − inf in the spread
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return {name: float(v.mean()), f"{name}_se": se}


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan


def _stats(runs: list[Run]) -> dict[str, float]:
    return {
        **_mean_se("best_risk", [r.best_risk for r in runs]),
        **_mean_se("final_risk", [r.final_risk for r in runs]),
        "best_step": float(np.mean([r.best_step for r in runs])),
        "sharpness_best": _nanmean([r.sharpness_best for r in runs]),
        "sharpness_final": _nanmean([r.sharpness_final for r in runs]),
        "diverged": sum(math.isinf(r.final_risk) for r in runs),
    }


# --------------------------------------------------------------------------------------------
# Kernel regression


def kernel_runs(
    fit: SpectralKernelRegression,
    seed: int,
    evaluate,
    *,
    eta_units: float,
    rho_units: tuple[float, ...],
    rho_normalized: tuple[float, ...],
    n_steps: int,
    record_every: int | None,
    sharpness_radius: float,
    ridge: bool = True,
) -> list[Run]:
    """GD, both SAM forms over their ρ grids, and the ridge path on one training problem.

    ``evaluate(coefs)`` returns (the reported risk per row of f̃, the selection curve or
    None): with None the reported risk is minimized (the oracle), otherwise the step (or
    λ) minimizing the selection curve is reported.
    """
    eta = eta_units / fit.s_max
    grid = [("gd", 0.0, 0.0)]
    grid += [("sam", u, u / fit.s_max) for u in rho_units]
    grid += [("sam-normalized", r, r) for r in rho_normalized]
    runs = []

    def score(method, label_rho, steps, coefs, final, started):
        risk, selection = evaluate(coefs)
        chosen = int(np.argmin(risk if selection is None else selection))
        rows = [chosen, -1] if final else [chosen]
        sharp = fit.sharpness(coefs[rows], sharpness_radius)
        runs.append(
            Run(
                method,
                label_rho,
                seed,
                steps,
                risk,
                float(risk[chosen]),
                int(steps[chosen]) if final else chosen,
                float(risk[-1]) if final else math.nan,
                float(sharp[0]),
                float(sharp[-1]) if final else math.nan,
                time.perf_counter() - started,
                select_risk=None if selection is None else float(selection[chosen]),
                validation=selection,
            )
        )

    for method, label_rho, rho in grid:
        started = time.perf_counter()
        path = fit.path(method, rho=rho, eta=eta, n_steps=n_steps, record_every=record_every)
        score(method, label_rho, path.steps, path.coefs, True, started)
    if ridge:
        started = time.perf_counter()
        lams = _ridge_grid(fit.s_max, eta_units, n_steps)
        score("ridge", 0.0, lams, fit.ridge_path(lams), False, started)
    return runs


@dataclass(frozen=True)
class KernelExperiment:
    """GD, un-normalized and normalized SAM, and kernel ridge on one :class:`MercerProblem`.

    ``rho_units`` are un-normalized ρ·λ_max values; ``rho_normalized`` are radii of the
    normalized ascent in the RKHS; ``sharpness_radius`` is the radius of the reported
    SAM-sharpness max_{‖ε‖≤r} L(f + ε) − L(f). Kernel ridge's penalties run from
    1/(η·n_steps), the regularization early stopping reaches within the budget, to 10·λ_max.
    """

    problem: MercerProblem = field(default_factory=MercerProblem)
    seeds: int = 5
    n_steps: int = 20000
    eta_units: float = 0.1
    rho_units: tuple[float, ...] = (1.0, 3.0, 9.0)
    rho_normalized: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    ridge: bool = True
    record_every: int | None = None
    sharpness_radius: float = 0.1
    # The samples (and initializations) are seeds first_seed … first_seed + seeds − 1.
    first_seed: int = 0

    def __post_init__(self) -> None:
        positive_int("seeds", self.seeds)
        positive_int("first_seed", self.first_seed, minimum=0)
        positive_int("n_steps", self.n_steps)
        finite_float("eta_units", self.eta_units, minimum=0.0, strict=True)
        for r in (*self.rho_units, *self.rho_normalized):
            finite_float("rho", r, minimum=0.0)

    def run(self, name: str | None = None) -> ExperimentResult:
        p = self.problem
        label = name or (
            f"kernel {p.spectrum}({p.decay:g}) smooth={p.smoothness:g} σ={p.noise:g} n={p.n}"
        )
        result = ExperimentResult(
            label,
            {k: v for k, v in asdict(p).items()},
            sharpness_name=f"SAM-sharpness (r={self.sharpness_radius:g})",
        )
        for seed in range(self.first_seed, self.first_seed + self.seeds):
            fit = p.sample(seed).regression()
            result.runs += kernel_runs(
                fit,
                seed,
                lambda coefs, fit=fit: (fit.risk_path(coefs), None),
                eta_units=self.eta_units,
                rho_units=self.rho_units,
                rho_normalized=self.rho_normalized,
                n_steps=self.n_steps,
                record_every=self.record_every,
                sharpness_radius=self.sharpness_radius,
                ridge=self.ridge,
            )
        return result


# --------------------------------------------------------------------------------------------
# Network


@dataclass(frozen=True)
class NetworkExperiment:
    """GD and SAM (both forms) on a planted one-hidden-layer network, same initializations."""

    problem: TeacherProblem = field(default_factory=TeacherProblem)
    seeds: int = 3
    n_steps: int = 2000
    eta: float = 0.05
    width: int = 50
    init_scale: float = 1.0
    rho_unnormalized: tuple[float, ...] = (0.2, 0.5, 1.0)
    rho_normalized: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
    eval_every: int | None = None
    # The samples (and initializations) are seeds first_seed … first_seed + seeds − 1.
    first_seed: int = 0

    def __post_init__(self) -> None:
        positive_int("seeds", self.seeds)
        positive_int("first_seed", self.first_seed, minimum=0)
        positive_int("n_steps", self.n_steps)
        finite_float("eta", self.eta, minimum=0.0, strict=True)
        for r in (*self.rho_unnormalized, *self.rho_normalized):
            finite_float("rho", r, minimum=0.0)

    def run(self, name: str | None = None) -> ExperimentResult:
        p = self.problem
        label = name or (
            f"network {p.activation} n={p.n} d={p.d} k*={p.teacher_width} m={self.width} "
            f"σ={p.noise:g} init={self.init_scale:g}"
        )
        params = {**asdict(p), "width": self.width, "eta": self.eta, "init": self.init_scale}
        result = ExperimentResult(label, params, sharpness_name="λ_max")
        grid = [("gd", 0.0)]
        grid += [("sam", r) for r in self.rho_unnormalized]
        grid += [("sam-normalized", r) for r in self.rho_normalized]
        for seed in range(self.first_seed, self.first_seed + self.seeds):
            data = p.sample(seed)
            for method, rho in grid:
                start = time.perf_counter()
                path = train_network(
                    data,
                    method=method,
                    rho=rho,
                    eta=self.eta,
                    n_steps=self.n_steps,
                    width=self.width,
                    init_scale=self.init_scale,
                    init_seed=seed,
                    eval_every=self.eval_every,
                )
                final = float(path.risk[-1]) if not path.diverged else math.inf
                result.runs.append(
                    Run(
                        method,
                        rho,
                        seed,
                        path.steps,
                        path.risk,
                        path.best_risk,
                        path.best_step,
                        final,
                        path.sharpness_best,
                        path.sharpness_final,
                        time.perf_counter() - start,
                    )
                )
        return result


# --------------------------------------------------------------------------------------------
# Plots


def plot(result: ExperimentResult, path) -> None:
    """Two panels: risk along the iterations (mean ± standard error over seeds) for GD and
    each SAM form at its best ρ, and best-over-iterations risk against ρ."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LabcoreError("plots need matplotlib: pip install 'samstats[plot]'") from exc
    from labcore.io import atomic_write_bytes

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"gd": "black", "sam": "tab:red", "sam-normalized": "tab:blue"}
    for method in ("gd", "sam", "sam-normalized"):
        if not any(r.method == method for r in result.runs):
            continue
        rho = 0.0 if method == "gd" else result.best_rho(method)
        runs = result.select(method, rho)
        # A diverged seed's path is shorter: the curves are cut to the shortest.
        length = min(r.risk.size for r in runs)
        curves = np.stack([r.risk[:length] for r in runs])
        steps = runs[0].steps[:length]
        mean = curves.mean(0)
        se = curves.std(0, ddof=1) / math.sqrt(len(runs)) if len(runs) > 1 else 0 * mean
        label = "GD" if method == "gd" else f"{method.upper()} (ρ={rho:g})"
        left.plot(steps, mean, color=colours[method], label=label)
        left.fill_between(steps, mean - se, mean + se, color=colours[method], alpha=0.2)
    left.set_xscale("symlog", linthresh=10)
    left.set_yscale("log")
    left.set_xlabel("iteration")
    left.set_ylabel(result.risk_name)
    left.legend()
    summary = result.summary()
    gd = next(s for s in summary if s["method"] == "gd")
    right.axhline(gd["best_risk"], color="black", label="GD")
    for method in ("sam", "sam-normalized"):
        rows = [s for s in summary if s["method"] == method]
        if rows:
            right.errorbar(
                [s["rho"] for s in rows],
                [s["best_risk"] for s in rows],
                yerr=[0 if math.isnan(s["best_risk_se"]) else s["best_risk_se"] for s in rows],
                marker="o",
                color=colours[method],
                label=method.upper(),
            )
    right.set_xscale("log")
    right.set_xlabel("ρ (SAM: in units of 1/λ_max for the kernel)")
    right.set_ylabel("best-over-iterations risk")
    right.legend()
    fig.suptitle(result.setting, fontsize=10)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
