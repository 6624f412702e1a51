"""``samstats bench``: GD against SAM per setting, in one process, with one table.

Settings: kernel regression on the circle (eigen-decay × target smoothness × noise × n),
the planted one-hidden-layer network (ReLU, quadratic, tanh; under- and over-parametrized),
and two real regression sets. Every method runs on the same samples and initializations.

Seeds. Each setting is an experiment over several sample seeds (kernel 20, network 5, real
data 10 splits; 5, 2 and 5 with ``--quick``: :data:`SAMPLES_PER_SEED`), summarised as one
row per method (best risk ± standard error, paired wins against GD). A bench seed ``s`` is
one such block: a setting with K sample seeds uses the sample seeds s·K … s·K + K − 1, so
bench seed 0 (the default) is the committed run and distinct bench seeds use disjoint
samples. Every row runs once per bench seed; ``results.md`` gives mean ± standard deviation
over the bench seeds, ``summary.md`` the comparison table of each.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.errors import LabcoreError
from labcore.progress import status
from samstats import __version__

if TYPE_CHECKING:
    from samstats.experiments import ExperimentResult

#: Sample seeds per bench seed, by kind of setting: the full run, and the quick run.
SAMPLES_PER_SEED: dict[bool, dict[str, int]] = {
    False: {"kernel": 20, "network": 5, "real": 10},
    True: {"kernel": 5, "network": 2, "real": 5},
}


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # kernel | network | real
    build: Any = field(repr=False)


def settings(quick: bool, seed: int = 0) -> list[Setting]:
    """The bench's settings at bench seed ``seed`` (see the module docstring)."""
    from samstats.experiments import KernelExperiment, NetworkExperiment
    from samstats.kernel import MercerProblem
    from samstats.network import TeacherProblem
    from samstats.real import RealExperiment

    counts = SAMPLES_PER_SEED[bool(quick)]
    k_seeds, n_seeds, r_seeds = counts["kernel"], counts["network"], counts["real"]

    def kernel(key, **problem):
        return Setting(
            key,
            "kernel",
            lambda: KernelExperiment(
                MercerProblem(**problem), seeds=k_seeds, first_seed=seed * k_seeds
            ),
        )

    def network(key, problem, **kw):
        grid = {} if not quick else {"rho_unnormalized": (0.5,), "rho_normalized": (0.2,)}
        return Setting(
            key,
            "network",
            lambda: NetworkExperiment(
                problem, seeds=n_seeds, first_seed=seed * n_seeds, **grid, **kw
            ),
        )

    out = [
        kernel("K1", spectrum="polynomial", decay=2.0, smoothness=1.0, noise=0.2),
        kernel("K2", spectrum="polynomial", decay=2.0, smoothness=2.0, noise=0.2),
        kernel("K3", spectrum="polynomial", decay=2.0, smoothness=3.0, noise=0.2),
        kernel("K4", spectrum="polynomial", decay=2.0, smoothness=3.0, noise=1.0),
        kernel("K5", spectrum="polynomial", decay=4.0, smoothness=3.0, noise=1.0),
        kernel("K6", spectrum="exponential", decay=0.3, smoothness=2.0, noise=0.2),
        kernel("K7", spectrum="exponential", decay=0.3, smoothness=3.0, noise=1.0),
        kernel("K8", spectrum="exponential", decay=0.3, smoothness=3.0, noise=1.0, n=800),
        kernel("K9", spectrum="gaussian", decay=0.05, smoothness=2.0, noise=0.5),
        # N1 → N2 changes only n; N2 → N3 changes only the initialization scale.
        network("N1", TeacherProblem(n=200), eta=0.05, init_scale=1.0, n_steps=2000),
        network("N2", TeacherProblem(n=600), eta=0.05, init_scale=1.0, n_steps=2000),
        network("N3", TeacherProblem(n=600), eta=0.05, init_scale=0.3, n_steps=2000),
        network(
            "N4",
            TeacherProblem(n=600, activation="quadratic"),
            eta=0.02,
            init_scale=0.3,
            n_steps=2000,
        ),
        network(
            "N5",
            TeacherProblem(n=300, activation="tanh"),
            eta=0.05,
            init_scale=1.0,
            n_steps=2000,
        ),
    ]
    out += [
        Setting(
            f"R-{name}",
            "real",
            (lambda name=name: RealExperiment(name, seeds=r_seeds, first_seed=seed * r_seeds)),
        )
        for name in ("diabetes", "meats")
    ]
    return out


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


def comparison_table(results: list[tuple[str, ExperimentResult]]) -> str:
    """GD against each SAM form at its best ρ, per setting (the README's table)."""
    head = (
        "| setting | GD best risk | SAM best (ρ) | SAM/GD | wins | SAM-n best (ρ) | SAM-n/GD "
        "| wins | ridge/GD | last iterate SAM/GD, SAM-n/GD | sharpness GD / SAM / SAM-n |"
    )
    lines = [head, "|" + "---|" * 11]
    for key, res in results:
        c = res.comparison()
        gd = c["gd"]
        cells = [
            f"{key}: {res.setting}",
            f"{_fmt(gd['best_risk'])} ± {_fmt(gd['best_risk_se'], 2)}",
        ]
        for method in ("sam", "sam-normalized"):
            m = c.get(method)
            if m is None:
                cells += ["–", "–", "–"]
                continue
            cells += [
                f"{_fmt(m['best_risk'])} ({m['rho']:g})",
                # Bold where SAM is at least 1% better than GD.
                f"**{m['ratio_best']:.3f}**"
                if m["ratio_best"] <= 0.99
                else f"{m['ratio_best']:.3f}",
                f"{m['wins']}/{m['seeds']}",
            ]
        ridge = c.get("ridge")
        cells.append(f"{ridge['ratio_best']:.3f}" if ridge else "–")
        finals = [c[m]["ratio_final"] for m in ("sam", "sam-normalized") if m in c]
        cells.append(", ".join(_fmt(f, 3) for f in finals))
        sharp = [c[m]["sharpness_best"] for m in ("gd", "sam", "sam-normalized") if m in c]
        cells.append(" / ".join(_fmt(s, 3) for s in sharp))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def result_rows(key: str, res: ExperimentResult, seed: int | None = None) -> list[Row]:
    """The benchmark rows of one setting (run at bench seed ``seed``): GD and each method at
    its best ρ."""
    comparison = res.comparison()
    timing: dict[str, float] = {}
    for s in res.summary():
        timing[s["method"]] = timing.get(s["method"], 0.0) + s["time_s"]
    rows = []
    for method in ("gd", "sam", "sam-normalized", "ridge"):
        if method not in comparison:
            continue
        m = comparison[method]
        metrics = {
            "best_risk": m["best_risk"],
            "best_risk_se": _finite(m["best_risk_se"]),
            "ratio_to_gd": m.get("ratio_best", 1.0),
            "wins_vs_gd": m.get("wins"),
            # A diverged seed makes the last-iterate risk infinite: no value then.
            "final_risk": _finite(m["final_risk"]),
            "diverged_runs": m["diverged"],
            # Ridge has no steps (its "step" is an index into the λ grid).
            "best_step": None if method == "ridge" else m["best_step"],
            "sharpness_best": _finite(m["sharpness_best"]),
        }
        rows.append(
            Row(
                method=method,
                params={"rho": m.get("rho", 0.0), "sharpness": res.sharpness_name},
                dataset=f"{key}: {res.setting}",
                seed=seed,
                metrics=metrics,
                time_s=timing.get(method),
            )
        )
    return rows


def run_bench(config: BenchConfig) -> BenchReport:
    """Every setting once per bench seed in ``config.seeds``; the comparison table of each goes
    to ``report.summary``, one PNG per setting to ``config.out/plots/`` (``KEY.png``, or
    ``KEY-seedS.png`` when there are several bench seeds) unless ``--no-plot``."""
    from samstats.experiments import plot

    plots = not config.option("no_plot", False)
    report = BenchReport(
        package="samstats",
        version=__version__,
        config={"quick": config.quick, "samples_per_seed": SAMPLES_PER_SEED[config.quick]},
    )
    several = len(config.seeds) > 1
    tables: list[str] = []
    for seed in config.seeds:
        results: list[tuple[str, ExperimentResult]] = []
        tag = f" (bench seed {seed})" if several else ""
        for setting in settings(config.quick, seed):
            t0 = time.perf_counter()
            experiment = setting.build()
            try:
                res = experiment.run()
            except LabcoreError as exc:  # a real data set whose optional package is missing
                status(f"{setting.key}{tag}: skipped ({exc})")
                report.add(Row.skipped("gd", {}, setting.key, str(exc), seed=seed))
                continue
            elapsed = time.perf_counter() - t0
            status(f"{setting.key} {res.setting}{tag}: {elapsed:.1f} s")
            results.append((setting.key, res))
            report.extend(result_rows(setting.key, res, seed=seed))
            if plots:
                name = f"{setting.key}-seed{seed}" if several else setting.key
                plot(res, Path(config.out) / "plots" / f"{name}.png")
        table = comparison_table(results)
        if several:
            counts = ", ".join(
                f"{kind} {seed * n}–{seed * n + n - 1}"
                for kind, n in SAMPLES_PER_SEED[config.quick].items()
            )
            table = f"## Bench seed {seed} (sample seeds: {counts})\n\n{table}"
        tables.append(table)
    report.summary = "\n".join(tables)
    return report


def _add_arguments(parser: Any) -> None:
    parser.add_argument("--no-plot", action="store_true", help="skip the per-setting PNGs")


BENCH = BenchSpec(
    package="samstats",
    version=__version__,
    run=run_bench,
    help="GD against SAM in every setting (kernel, network, real data), one table",
    uses=frozenset({"seeds"}),
    default_seeds=(0,),
    quick_seeds=(0,),
    add_arguments=_add_arguments,
)
