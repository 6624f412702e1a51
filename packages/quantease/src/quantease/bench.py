"""``quantease bench``: QuantEase against RTN and GPTQ on SmolLM2-135M in one process.

Every row quantizes a fresh copy of the same dense model with the same BBC calibration windows
and is evaluated on the same BBC test windows (the layerwise bench runner). Per-channel grids,
no groups: the SmolLM2 weights come from a Q4_1 GGUF file (a 4-bit grid per block of 32), so
grouped 4-bit numbers on this model would prove nothing.

Extra columns: ``beats_gptq`` is the share of layers whose relative reconstruction error is
below the GPTQ row's at the same bits (each run propagates its own compressed inputs, so
layers after the first block see slightly different data); ``time_vs_gptq`` is the
compression time over the GPTQ row's at the same bits (both at the same seed).

Seeds: the headline rows (GPTQ and plain QuantEase at each bit width) run at every seed of
``--seeds`` (default 0, 1, 2: three sets of calibration windows); the dense model, RTN and the
variants run at the first seed only, which keeps ``--quick`` under 10 minutes on 2 cores. The
summary (``summary.md``) gives the mean ± sd per bit width, whether the gap exceeds the spread,
the wall time of the whole bench, and the solver time per sweep per layer shape against GPTQ.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

from layerwise.bench import FULL, Preset, add_bench_options, plot_perplexity, run_rows

from labcore.bench import BenchConfig, BenchReport, BenchSpec, mean_std
from quantease import __version__

#: The quick run: 4,096 calibration and 4,096 evaluation tokens, and 15 sweeps (with the damped
#: default the held-out layer error after 10, 20 and 30 sweeps is the same to 3 digits), so
#: that dense, RTN, GPTQ and QuantEase at 3 seeds and the 1%-outlier row fit in 10 minutes on
#: 2 CPU cores, the first model conversion included.
QUICK_PRESET = Preset(calib_windows=16, eval_windows=16, seqlen=256)
QUICK_SWEEPS = 15


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from layerwise.methods import GPTQConfig, RTNConfig

    from quantease.config import QuantEaseConfig

    def params(bits: int, **extra: Any) -> dict[str, Any]:
        return {"bits": bits, "group": "channel", **extra}

    def qe(**options: Any) -> QuantEaseConfig:
        return QuantEaseConfig(**options, **({"sweeps": QUICK_SWEEPS} if quick else {}))

    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    for bits in (3,) if quick else (4, 3):
        rows.append(("rtn", params(bits), RTNConfig(bits=bits)))
        rows.append(("gptq", params(bits), GPTQConfig(bits=bits)))
        rows.append(("quantease", params(bits), qe(bits=bits)))
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
                qe(bits=3, outlier_fraction=fraction, outlier_structure=structure),
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


def is_headline(row: tuple[str, dict[str, Any], Any]) -> bool:
    """GPTQ and plain QuantEase (no outliers, no relaxed sweeps, no GPTQ start): the rows
    every seed runs."""
    method, params, _cfg = row[:3]
    return method == "gptq" or (method == "quantease" and set(params) == {"bits", "group"})


def headline_summary(report: Any, layer_reports: dict[int, Any], wall_s: float) -> str:
    """Markdown: GPTQ against QuantEase per bit width over the seeds, and solver time per
    layer shape."""
    seeds = sorted({r.seed for r in report.rows if r.seed is not None})
    lines = [
        f"## QuantEase against GPTQ over calibration seeds {', '.join(map(str, seeds))}",
        "",
        "| bits | GPTQ perplexity | QuantEase perplexity | gap | larger sd | gap > larger sd |",
        "|---|---|---|---|---|---|",
    ]
    bits_seen = sorted({r.params.get("bits") for r in report.rows if r.method == "gptq"})
    for bits in bits_seen:

        def ppl(method: str, bits: int = bits) -> list[float]:
            return [
                r.metrics["perplexity"]
                for r in report.rows
                if r.method == method
                and r.status == "ok"
                and r.params == {"bits": bits, "group": "channel"}
            ]

        (g_mean, g_sd, _), (q_mean, q_sd, n) = mean_std(ppl("gptq")), mean_std(ppl("quantease"))
        if g_mean is None or q_mean is None:
            continue
        gap = g_mean - q_mean
        spread = max(g_sd or 0.0, q_sd or 0.0)
        verdict = "yes" if n > 1 and gap > spread else ("no" if n > 1 else "one seed")
        lines.append(
            f"| {bits} | {g_mean:.1f} ± {g_sd or 0:.1f} | {q_mean:.1f} ± {q_sd or 0:.1f} | "
            f"{gap:.1f} | {spread:.1f} | {verdict} |"
        )
    lines += [
        "",
        f"Whole bench: {wall_s:.0f} s wall ({wall_s / 60:.1f} min), model loading "
        "and conversion included.",
        "",
    ]
    lines += solver_time_table(report, layer_reports)
    return "\n".join(lines) + "\n"


def solver_time_table(report: Any, layer_reports: dict[int, Any]) -> list[str]:
    """Per layer shape: QuantEase's solve time per sweep and per layer, GPTQ's per layer,
    and their ratio (median over the layers of that shape, over all seeds)."""
    per_shape: dict[tuple[int, ...], dict[str, list[float]]] = {}
    sweeps = 0
    for i, rep in layer_reports.items():
        row = report.rows[i]
        if not is_headline((row.method, row.params, None)):
            continue
        for layer in rep.layers:
            t = layer.info.get("solve_s")
            if t is None:
                continue
            entry = per_shape.setdefault(tuple(layer.shape), {"gptq": [], "quantease": []})
            entry[row.method].append(float(t))
            if row.method == "quantease":
                sweeps = int(layer.info.get("sweeps", sweeps))
    if not per_shape or not sweeps:
        return []
    lines = [
        f"Solver time per layer (median, ms; QuantEase runs {sweeps} sweeps):",
        "",
        "| layer shape (out x in) | QuantEase per sweep | QuantEase per layer | GPTQ per layer "
        "| QuantEase / GPTQ |",
        "|---|---|---|---|---|",
    ]
    for shape, t in sorted(per_shape.items()):
        if not t["gptq"] or not t["quantease"]:
            continue
        qe, gq = statistics.median(t["quantease"]), statistics.median(t["gptq"])
        lines.append(
            f"| {shape[0]} x {shape[1]} | {1000 * qe / sweeps:.1f} | {1000 * qe:.0f} | "
            f"{1000 * gq:.0f} | {qe / gq:.1f} |"
        )
    return [*lines, ""]


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, RTN, GPTQ and QuantEase (with the variants) on the same windows; the headline
    rows once per seed, the others at the first seed. Writes ``summary.md`` (through the
    report) and ``results.png`` (with matplotlib) into ``config.out``."""
    start = time.perf_counter()
    rows = bench_rows(config.quick)
    common = {
        "package": "quantease",
        "version": __version__,
        "quick_preset": QUICK_PRESET,
        "full_preset": FULL,
    }
    report, layer_reports = run_rows(replace(config, seeds=config.seeds[:1]), rows, **common)
    if len(config.seeds) > 1:
        more, more_layers = run_rows(
            replace(config, seeds=config.seeds[1:]),
            [row for row in rows if is_headline(row)],
            **common,
        )
        offset = len(report.rows)
        report.extend(more.rows)
        layer_reports.update({offset + i: rep for i, rep in more_layers.items()})
    add_gptq_comparison(report, layer_reports)
    report.summary = headline_summary(report, layer_reports, time.perf_counter() - start)
    plot_perplexity(report, config.out)
    return report


BENCH = BenchSpec(
    package="quantease",
    version=__version__,
    run=run_bench,
    help="QuantEase against RTN and GPTQ on SmolLM2-135M",
    uses=frozenset({"seeds", "device"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0, 1, 2),
    add_arguments=add_bench_options,
)
