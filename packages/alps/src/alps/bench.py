"""``alps bench``: ALPS against SparseGPT, Wanda and magnitude on SmolLM2-135M, one process.

Every row prunes a fresh copy of the same dense model with the same BBC calibration windows
and is evaluated on the same BBC test windows (the layerwise bench runner). Granularity of
each sparsity: ALPS and magnitude one threshold per layer, Wanda per output row, SparseGPT the
same share in every 128-column block; N:M per row for all. ``time_vs_sparsegpt`` is ALPS's
compression time over SparseGPT's at the same sparsity. With matplotlib installed, also
``results_sparsity.png``: perplexity against sparsity for the four methods.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from layerwise.bench import FULL, QUICK, finish, run_rows

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
    ref = {
        str(r.params.get("sparsity")): r.time_s
        for r in report.rows
        if r.method == "sparsegpt" and r.status == "ok"
    }
    for r in report.rows:
        t = ref.get(str(r.params.get("sparsity")))
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


def plot_sparsity(report: Any, out: Path) -> None:
    """Perplexity against unstructured sparsity, one line per method (needs matplotlib)."""
    if importlib.util.find_spec("matplotlib") is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    dense = next((r.metrics["perplexity"] for r in report.rows if r.method == "dense"), None)
    for method in ("magnitude", "wanda", "sparsegpt", "alps"):
        pts = sorted(
            (float(r.params["sparsity"]), r.metrics["perplexity"])
            for r in report.rows
            if r.method == method and r.status == "ok" and ":" not in str(r.params["sparsity"])
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
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".results_sparsity.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out / "results_sparsity.png")


def run_bench(args: argparse.Namespace) -> int:
    from alps import __version__

    report, compressions = run_rows(
        args,
        bench_rows(args.quick),
        package="alps",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
    )
    add_sparsegpt_ratio(report)
    add_iteration_summary(report, compressions)
    finish(args, report)
    plot_sparsity(report, args.out or Path("results") / "alps")
    return 0
