"""``alps bench``: ALPS against SparseGPT, Wanda and magnitude on SmolLM2-135M, one process.

Every row prunes a fresh copy of the same dense model with the same BBC calibration windows
and is evaluated on the same BBC test windows (the layerwise bench runner). Granularity of
each sparsity: ALPS and magnitude one threshold per layer, Wanda per output row, SparseGPT the
same share in every 128-column block; N:M per row for all. ``time_vs_sparsegpt`` is ALPS's
compression time over SparseGPT's at the same sparsity and seed. With matplotlib installed,
also ``results.png`` (perplexity per row) and ``results_sparsity.png``: perplexity against
sparsity for the four methods (mean over seeds).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from layerwise.bench import (
    FULL,
    QUICK,
    add_bench_options,
    plot_perplexity,
    run_rows,
    save_figure,
)

from alps import __version__
from labcore.bench import BenchConfig, BenchReport, BenchSpec, aggregate_rows, mean_std

GRANULARITY = {
    "magnitude": "layer",
    "wanda": "row",
    "sparsegpt": "128-col block",
    "alps": "layer",
}


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from layerwise.methods import MagnitudeConfig, SparseGPTConfig, WandaConfig

    from alps.config import ALPSConfig

    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    targets = ["0.7"] if quick else ["0.5", "0.6", "0.7", "0.8", "2:4"]
    methods = ("sparsegpt", "alps") if quick else ("magnitude", "wanda", "sparsegpt", "alps")
    configs = {
        "magnitude": MagnitudeConfig,
        "wanda": WandaConfig,
        "sparsegpt": SparseGPTConfig,
        "alps": ALPSConfig,
    }
    for target in targets:
        nm = target if ":" in target else None
        for method in methods:
            cfg = configs[method](sparsity=0.0 if nm else float(target), nm=nm)
            params = {
                "sparsity": nm or float(target),
                "granularity": "N:M per row" if nm else GRANULARITY[method],
            }
            rows.append((method, params, cfg))
    return rows


def add_sparsegpt_ratio(report: Any) -> None:
    """``time_vs_sparsegpt`` on the ALPS rows: against SparseGPT at the same sparsity and seed."""
    ref = {
        (str(r.params.get("sparsity")), r.seed): r.time_s
        for r in report.rows
        if r.method == "sparsegpt" and r.status == "ok"
    }
    for r in report.rows:
        t = ref.get((str(r.params.get("sparsity")), r.seed))
        if r.method == "alps" and r.status == "ok" and t:
            r.metrics["time_vs_sparsegpt"] = round(r.time_s / t, 2)


def add_iteration_summary(report: Any, compressions: dict[int, Any]) -> None:
    """Mean ADMM iterations and total restarts per ALPS row (from the per-layer info)."""
    for idx, comp in compressions.items():
        row = report.rows[idx]
        if row.method != "alps" or row.status != "ok":
            continue
        iters = [layer.info.get("iterations", 0) for layer in comp.layers]
        row.metrics["mean_admm_iterations"] = round(sum(iters) / max(len(iters), 1), 1)
        row.metrics["restarts"] = sum(layer.info.get("restarts", 0) for layer in comp.layers)


def plot_sparsity(report: Any, out: Path) -> Path | None:
    """Perplexity (mean over seeds) against unstructured sparsity, one line per method, in
    ``out/results_sparsity.png`` (needs matplotlib)."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in aggregate_rows(report.rows) if g["status"] == "ok"]

    def ppl(g: dict[str, Any]) -> float | None:
        return mean_std(g["metrics"].get("perplexity", []))[0]

    fig, ax = plt.subplots(figsize=(6, 4))
    dense = next((ppl(g) for g in groups if g["method"] == "dense"), None)
    for method in ("magnitude", "wanda", "sparsegpt", "alps"):
        pts = sorted(
            (float(g["params"]["sparsity"]), ppl(g))
            for g in groups
            if g["method"] == method and ":" not in str(g["params"]["sparsity"])
        )
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=method)
    if dense:
        ax.axhline(dense, color="gray", linestyle="--", label="dense")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (share of weights removed)")
    ax.set_ylabel("perplexity, BBC test (log scale)")
    ax.set_title(f"{report.config.get('model')}: one-shot pruning")
    ax.legend()
    fig.tight_layout()
    path = save_figure(fig, Path(out) / "results_sparsity.png")
    plt.close(fig)
    return path


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, magnitude, Wanda, SparseGPT and ALPS on the same windows, once per seed; writes
    ``results.png`` and ``results_sparsity.png`` into ``config.out`` when matplotlib is
    installed."""
    report, compressions = run_rows(
        config,
        bench_rows(config.quick),
        package="alps",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
    )
    add_sparsegpt_ratio(report)
    add_iteration_summary(report, compressions)
    plot_perplexity(report, config.out)
    plot_sparsity(report, config.out)
    return report


BENCH = BenchSpec(
    package="alps",
    version=__version__,
    run=run_bench,
    help="ALPS against SparseGPT, Wanda and magnitude on SmolLM2-135M",
    uses=frozenset({"seeds", "device"}),
    add_arguments=add_bench_options,
)
