"""``samstats bench``: GD against SAM per setting, in one process, with one table.

Settings: kernel regression on the circle (eigen-decay × target smoothness × noise × n),
the planted one-hidden-layer network (ReLU, quadratic, tanh; under- and over-parametrized),
and two real regression sets. Every method runs on the same samples and initializations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcore.bench import BenchReport, Row
from labcore.errors import LabcoreError
from samstats.experiments import ExperimentResult, KernelExperiment, NetworkExperiment, plot
from samstats.kernel import MercerProblem
from samstats.network import TeacherProblem
from samstats.real import RealExperiment


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # kernel | network | real
    build: Any = field(repr=False)


def settings(quick: bool) -> list[Setting]:
    k_seeds = 5 if quick else 20
    n_seeds = 2 if quick else 5
    r_seeds = 5 if quick else 10

    def kernel(key, **problem):
        return Setting(
            key, "kernel", lambda: KernelExperiment(MercerProblem(**problem), seeds=k_seeds)
        )

    def network(key, problem, **kw):
        grid = {} if not quick else {"rho_unnormalized": (0.5,), "rho_normalized": (0.2,)}
        return Setting(
            key, "network", lambda: NetworkExperiment(problem, seeds=n_seeds, **grid, **kw)
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
        Setting(f"R-{name}", "real", (lambda name=name: RealExperiment(name, seeds=r_seeds)))
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


def result_rows(key: str, res: ExperimentResult) -> list[Row]:
    """The benchmark rows of one setting: GD and each method at its best ρ."""
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
                seed=None,
                metrics=metrics,
                time_s=timing.get(method),
            )
        )
    return rows


def run_bench(*, quick: bool, out: Path | None, plots: bool = True, log=print) -> dict:
    from samstats import __version__

    command = "samstats bench" + (" --quick" if quick else "")
    report = BenchReport(
        package="samstats", version=__version__, command=command, config={"quick": quick}
    )
    results: list[tuple[str, ExperimentResult]] = []
    started = time.perf_counter()
    for setting in settings(quick):
        t0 = time.perf_counter()
        experiment = setting.build()
        try:
            res = experiment.run()
        except LabcoreError as exc:  # a real data set whose optional package is missing
            log(f"{setting.key}: skipped ({exc})")
            report.add(Row.skipped("gd", {}, setting.key, str(exc)))
            continue
        elapsed = time.perf_counter() - t0
        log(f"{setting.key} {res.setting}: {elapsed:.1f} s")
        results.append((setting.key, res))
        for row in result_rows(setting.key, res):
            report.add(row)
        if plots and out is not None:
            plot(res, Path(out) / "plots" / f"{setting.key}.png")
    table = comparison_table(results)
    total = time.perf_counter() - started
    if out is not None:
        from labcore.io import atomic_write_text

        report.write(out)
        atomic_write_text(Path(out) / "comparison.md", table + f"\nTotal time: {total:.0f} s\n")
    return {"report": report, "table": table, "total_s": total, "results": results}
