"""``hasslefree bench``: HASSLE-free against OATS and sparse-only pruning on SmolLM2-135M.

Every row decomposes (or prunes) a fresh copy of the same dense model with the same BBC
calibration windows and is evaluated on the same BBC test windows (the layerwise bench
runner), in one process. Rows, at each N:M pattern:

* ``sparsegpt``: S only (the sparse-only baseline);
* ``hasslefree``: alternating minimisation with the SparseGPT S-step (``solver`` sparsegpt)
  and the closed-form L-step, at each rank (16, 32, 64; 32 in the quick run);
* ``oats``: the diagonal relaxation (80 alternations of SVD and threshold on D·W), same ranks;
* ``sparse+lowrank``: SparseGPT, then one closed-form low-rank fit of its residual (one round
  without refit: the prune-then-correct scheme of EoRA-style methods), rank 32;
* full run only: ``alps`` (S only) and ``hasslefree-alps`` (HASSLE-free with the ALPS
  S-step) at every N:M and rank, last: they cost several ALPS runs per layer on the CPU, and
  ``--only dense,sparsegpt,alps,hasslefree-alps`` runs them alone (with the SparseGPT rows
  for the time ratios).

Extra columns: ``params_ratio`` (kept parameters of the decomposed linear layers, S's nonzeros
plus r·(out + in), over the dense count), ``time_vs_sparsegpt`` (compression time over the
SparseGPT row of the same N:M and seed) and ``mean_rounds`` (alternations run before the
early stop).
"""

from __future__ import annotations

from typing import Any

from layerwise.bench import Preset, add_bench_options, plot_perplexity, run_rows

from hasslefree import __version__
from labcore.bench import BenchConfig, BenchReport, BenchSpec

QUICK = Preset(calib_windows=16, eval_windows=16, seqlen=256)
FULL = Preset(calib_windows=16, eval_windows=32, seqlen=256)  # more settings, same calibration

QUICK_RANKS = (32,)
FULL_RANKS = (16, 32, 64)


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from alps import ALPSConfig
    from layerwise.methods import SparseGPTConfig

    from hasslefree.config import HassleFreeConfig, OATSConfig

    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    patterns = ("2:4",) if quick else ("2:4", "4:8")
    ranks = QUICK_RANKS if quick else FULL_RANKS
    for nm in patterns:
        rows.append(("sparsegpt", {"nm": nm, "rank": 0}, SparseGPTConfig(nm=nm)))
        for rank in ranks:
            params = {"nm": nm, "rank": rank}
            rows.append(
                (
                    "hasslefree",
                    {**params, "solver": "sparsegpt"},
                    HassleFreeConfig(nm=nm, rank=rank),
                )
            )
            rows.append(("oats", params, OATSConfig(nm=nm, rank=rank)))
        rank = ranks[len(ranks) // 2]  # the middle rank: 32
        rows.append(
            (
                "sparse+lowrank",
                {"nm": nm, "rank": rank, "solver": "sparsegpt"},
                HassleFreeConfig(nm=nm, rank=rank, rounds=1, refit=False),
            )
        )
    if not quick:  # the ALPS S-step: several ALPS runs per layer (about 6 min per row here)
        for nm in patterns:
            rows.append(("alps", {"nm": nm, "rank": 0}, ALPSConfig(nm=nm)))
            for rank in ranks:
                rows.append(
                    (
                        "hasslefree-alps",
                        {"nm": nm, "rank": rank, "solver": "alps"},
                        HassleFreeConfig(nm=nm, rank=rank, sparse_solver="alps"),
                    )
                )
    return rows


def parameter_count(model: Any, _tokenizer: Any, *, seed: int) -> dict[str, float]:
    """Kept parameters of the decoder blocks' linear layers: nonzeros of each weight (S for a
    decomposed layer) plus the low-rank factors' entries."""
    import torch
    from layerwise.architectures import architecture_of, get_blocks
    from layerwise.structure import FactoredLinear

    kept = 0
    for block in get_blocks(model, architecture_of(model)):
        for module in block.modules():
            if isinstance(module, FactoredLinear):
                kept += int(torch.count_nonzero(module.weight))
                kept += module.lowrank_u.numel() + module.lowrank_v.numel()
            elif isinstance(module, torch.nn.Linear):
                kept += int(torch.count_nonzero(module.weight))
    return {"linear_params": kept}


def add_ratios(report: BenchReport, compressions: dict[int, Any]) -> None:
    """``params_ratio`` against the dense row, ``time_vs_sparsegpt`` against the SparseGPT row
    of the same N:M and seed, ``mean_rounds`` from the per-layer info."""
    dense = {
        r.seed: r.metrics.get("linear_params")
        for r in report.rows
        if r.method == "dense" and r.status == "ok"
    }
    sparsegpt = {
        (r.params.get("nm"), r.seed): r.time_s
        for r in report.rows
        if r.method == "sparsegpt" and r.status == "ok"
    }
    for index, row in enumerate(report.rows):
        if row.status != "ok":
            continue
        base = dense.get(row.seed)
        if base and row.metrics.get("linear_params"):
            row.metrics["params_ratio"] = round(row.metrics["linear_params"] / base, 4)
        reference = sparsegpt.get((row.params.get("nm"), row.seed))
        if reference and row.method != "dense":
            row.metrics["time_vs_sparsegpt"] = round(row.time_s / reference, 2)
        comp = compressions.get(index)
        if comp is not None and row.method in ("hasslefree", "hasslefree-alps", "sparse+lowrank"):
            rounds = [layer.info.get("rounds", 0) for layer in comp.layers]
            row.metrics["mean_rounds"] = round(sum(rounds) / max(len(rounds), 1), 1)


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, sparse-only, HASSLE-free, sparse-then-low-rank and OATS rows on the same windows;
    writes ``results.png`` (with matplotlib) into ``config.out``."""
    report, compressions = run_rows(
        config,
        bench_rows(config.quick),
        package="hasslefree",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
        evaluators=["perplexity", parameter_count],
    )
    add_ratios(report, compressions)
    plot_perplexity(report, config.out)
    return report


BENCH = BenchSpec(
    package="hasslefree",
    version=__version__,
    run=run_bench,
    help="HASSLE-free against OATS and sparse-only pruning on SmolLM2-135M",
    uses=frozenset({"seeds", "device"}),
    add_arguments=add_bench_options,
)
