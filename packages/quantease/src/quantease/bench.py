"""``quantease bench``: QuantEase against RTN and GPTQ on SmolLM2-135M in one process.

Every row quantizes a fresh copy of the same dense model with the same BBC calibration windows
and is evaluated on the same BBC test windows (the layerwise bench runner). Per-channel grids,
no groups: the SmolLM2 weights come from a Q4_1 GGUF file (a 4-bit grid per block of 32), so
grouped 4-bit numbers on this model would prove nothing.

Extra columns: ``beats_gptq`` is the share of layers whose relative reconstruction error is
below the GPTQ row's at the same bits (each run propagates its own compressed inputs, so
layers after the first block see slightly different data); ``time_vs_gptq`` is the
compression time over the GPTQ row's at the same bits (both at the same seed).
"""

from __future__ import annotations

from typing import Any

from layerwise.bench import FULL, QUICK, add_bench_options, plot_perplexity, run_rows

from labcore.bench import BenchConfig, BenchReport, BenchSpec
from quantease import __version__


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from layerwise.methods import GPTQConfig, RTNConfig

    from quantease.config import QuantEaseConfig

    def params(bits: int, **extra: Any) -> dict[str, Any]:
        return {"bits": bits, "group": "channel", **extra}

    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    for bits in (3,) if quick else (4, 3):
        rows.append(("rtn", params(bits), RTNConfig(bits=bits)))
        rows.append(("gptq", params(bits), GPTQConfig(bits=bits)))
        rows.append(("quantease", params(bits), QuantEaseConfig(bits=bits)))
    if not quick:
        rows.append(("gptq+quantease", params(3), QuantEaseConfig(bits=3, init="gptq")))
        # the official code's hidden heuristic: unrounded sweeps 1, 4, ..., 25
        rows.append(("quantease", params(3, relax_every=3), QuantEaseConfig(bits=3, relax_every=3)))
    outliers = (
        [(0.01, "unstructured")]
        if quick
        else [
            (0.005, "unstructured"),
            (0.01, "unstructured"),
            (0.01, "column"),
        ]
    )
    for fraction, structure in outliers:
        rows.append(
            (
                "quantease",
                params(3, outliers=f"{fraction:.1%} {structure}"),
                QuantEaseConfig(bits=3, outlier_fraction=fraction, outlier_structure=structure),
            )
        )
    return rows


def add_gptq_comparison(report: Any, layer_reports: dict[int, Any]) -> None:
    """Add ``beats_gptq`` and ``time_vs_gptq`` to the QuantEase rows (against the GPTQ row at
    the same bits and seed)."""
    gptq = {
        (row.params["bits"], row.seed): i
        for i, row in enumerate(report.rows)
        if row.method == "gptq" and row.status == "ok"
    }
    for i, row in enumerate(report.rows):
        if "quantease" not in row.method or row.status != "ok":
            continue
        j = gptq.get((row.params.get("bits"), row.seed))
        if j is None or i not in layer_reports or j not in layer_reports:
            continue
        ref = {x.name: x.rel_error for x in layer_reports[j].layers}
        ours = [(x.rel_error, ref.get(x.name)) for x in layer_reports[i].layers]
        pairs = [(a, b) for a, b in ours if a is not None and b is not None]
        if not pairs:
            continue
        row.metrics["beats_gptq"] = round(sum(a < b for a, b in pairs) / len(pairs), 3)
        gptq_time = report.rows[j].time_s
        if gptq_time:
            row.metrics["time_vs_gptq"] = round(row.time_s / gptq_time, 2)


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, RTN, GPTQ and QuantEase (with the outlier variants) on the same windows, once per
    seed; writes ``results.png`` into ``config.out`` when matplotlib is installed."""
    report, layer_reports = run_rows(
        config,
        bench_rows(config.quick),
        package="quantease",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
    )
    add_gptq_comparison(report, layer_reports)
    plot_perplexity(report, config.out)
    return report


BENCH = BenchSpec(
    package="quantease",
    version=__version__,
    run=run_bench,
    help="QuantEase against RTN and GPTQ on SmolLM2-135M",
    uses=frozenset({"seeds", "device"}),
    add_arguments=add_bench_options,
)
