"""``osscar bench``: OSSCAR against structured baselines on SmolLM2-135M in one process.

Every row prunes a fresh copy of the same dense model with the same BBC calibration windows
(the layerwise bench runner), shrinks it (whole K/V head groups and MLP neurons removed), and
is evaluated on the same BBC test windows. Rows:

* ``osscar``: backward elimination with low-rank updates, then local search (swap moves);
* ``osscar-no-ls``: backward elimination only;
* ``ziplm-like``: one-at-a-time OBS elimination (one group per round) without local search,
  the structured OBS scheme of ZipLM (its speed-aware budget search is not reproduced);
* ``magnitude`` / ``magnitude-refit``: the groups of largest weight norm, weights kept or
  refitted by least squares (the baselines of the paper's code).

Extra columns: ``params_ratio``, ``latency_ratio`` (one forward pass over 256 tokens, batch 1)
and ``tokens_per_s_ratio`` (greedy decoding with the KV cache) of the shrunk model against the
dense model, measured in the same process on the same device.
"""

from __future__ import annotations

from typing import Any

from layerwise.bench import PERPLEXITY, Preset, add_bench_options, plot_perplexity, run_rows

from labcore.bench import BenchConfig, BenchReport, BenchSpec
from osscar import __version__

QUICK = Preset(calib_windows=16, eval_windows=32, seqlen=256)
FULL = QUICK  # the full run adds settings, not tokens

#: (label, config changes) of every method row
METHODS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("osscar", {}),
    ("osscar-no-ls", {"local_search": False}),
    ("ziplm-like", {"local_search": False, "neurons_per_round": 1, "heads_per_round": 1}),
    ("magnitude", {"support": "magnitude"}),
    ("magnitude-refit", {"support": "magnitude-refit"}),
)


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from osscar.config import OSSCARConfig

    settings = [(0.3, 0.33)] if quick else [(m, h) for h in (0.0, 0.33) for m in (0.2, 0.3, 0.5)]
    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    for mlp, heads in settings:
        for label, changes in METHODS:
            # one-at-a-time elimination costs about twice OSSCAR's: one setting only
            if label == "ziplm-like" and (quick or (mlp, heads) != (0.3, 0.33)):
                continue
            params = {"mlp_sparsity": mlp, "head_sparsity": heads, "head_unit": "kv-group"}
            rows.append(
                (label, params, OSSCARConfig(mlp_sparsity=mlp, head_sparsity=heads, **changes))
            )
    if not quick:  # query heads within K/V groups (K/V heads kept)
        for label, changes in (METHODS[0], METHODS[4]):
            params = {"mlp_sparsity": 0.3, "head_sparsity": 0.33, "head_unit": "query"}
            cfg = OSSCARConfig(mlp_sparsity=0.3, head_sparsity=0.33, head_unit="query", **changes)
            rows.append((label, params, cfg))
    return rows


_SPEED_BY_SHAPE: dict[tuple, dict[str, float]] = {}


def speed(model: Any, _tokenizer: Any, *, seed: int) -> dict[str, float]:
    """Parameters, prefill latency and decoding tokens/s of the (shrunk) model; measured once
    per set of module shapes (rows that shrink to the same shapes compute the same)."""
    from layerwise.evaluate import measure_speed

    shape = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    if shape not in _SPEED_BY_SHAPE:
        _SPEED_BY_SHAPE[shape] = measure_speed(model)
    return dict(_SPEED_BY_SHAPE[shape])


def add_ratios(report: BenchReport) -> None:
    """Each row's params, latency and tokens/s as ratios to the dense row of its seed."""
    dense = {r.seed: r.metrics for r in report.rows if r.method == "dense" and r.status == "ok"}
    for row in report.rows:
        base = dense.get(row.seed)
        if base is None or row.status != "ok":
            continue
        for name in ("params", "latency_ms", "tokens_per_s"):
            if row.metrics.get(name) and base.get(name):
                key = {"latency_ms": "latency"}.get(name, name)
                row.metrics[f"{key}_ratio"] = round(row.metrics[name] / base[name], 3)


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, OSSCAR (with and without local search) and the structured baselines on the
    same windows; writes ``results.png`` (with matplotlib) into ``config.out``."""
    report, _ = run_rows(
        config,
        bench_rows(config.quick),
        package="osscar",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
        evaluators=[PERPLEXITY, speed],
    )
    add_ratios(report)
    plot_perplexity(report, config.out)
    return report


BENCH = BenchSpec(
    package="osscar",
    version=__version__,
    run=run_bench,
    help="OSSCAR against structured baselines on SmolLM2-135M (perplexity and speed)",
    uses=frozenset({"seeds", "device"}),
    add_arguments=add_bench_options,
)
