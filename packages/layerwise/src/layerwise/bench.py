"""``layerwise bench``: the baselines side by side on SmolLM2-135M, BBC calibration and test.

Every row starts from a fresh copy of the same dense model and uses the same calibration
windows (BBC train split) and the same evaluation windows (BBC test split). ``time_s`` is the
compression time; perplexity evaluation is not included.

The SmolLM2 weights come from a Q4_1 GGUF file (4-bit grid per block of 32 weights), so the
table uses per-channel quantization (no groups) at 3 and 4 bits, where that grid does not line
up with ours.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.bench import BenchReport, Row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    calib_windows: int
    eval_windows: int
    seqlen: int


QUICK = Preset(calib_windows=16, eval_windows=32, seqlen=256)
FULL = Preset(calib_windows=64, eval_windows=64, seqlen=512)


def bench_rows(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    """(method, params, config) for every row; ``None`` config is the dense model."""
    from layerwise.methods import (
        GPTQConfig,
        MagnitudeConfig,
        RTNConfig,
        SparseGPTConfig,
        WandaConfig,
    )

    rows: list[tuple[str, dict[str, Any], Any]] = [("dense", {}, None)]
    for bits in (3,) if quick else (3, 4):
        rows.append(("rtn", {"bits": bits, "group": "channel"}, RTNConfig(bits=bits)))
        rows.append(("gptq", {"bits": bits, "group": "channel"}, GPTQConfig(bits=bits)))
    for target in ("0.7",) if quick else ("0.5", "0.7", "2:4"):
        nm = target if ":" in target else None
        s = 0.0 if nm else float(target)
        gran = {"magnitude": "layer", "wanda": "row", "sparsegpt": "128-col block"}
        for name, cfg in (
            ("magnitude", MagnitudeConfig(sparsity=s, nm=nm)),
            ("wanda", WandaConfig(sparsity=s, nm=nm)),
            ("sparsegpt", SparseGPTConfig(sparsity=s, nm=nm)),
        ):
            params = {
                "sparsity": nm or float(target),
                "granularity": "N:M per row" if nm else gran[name],
            }
            rows.append((name, params, cfg))
    return rows


def _llmcompressor_row(quick: bool) -> Row:
    params = {"bits": 3, "group": "channel"}
    if importlib.util.find_spec("llmcompressor") is None:
        return Row.skipped(
            "llmcompressor-gptq",
            params,
            "bbc",
            "llmcompressor is not installed in this environment",
        )
    return Row.skipped(
        "llmcompressor-gptq", params, "bbc", "cross-check not wired for this llmcompressor version"
    )


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from labcore.cli import emit
    from labcore.data import load_corpus
    from labcore.device import MemoryMonitor, resolve_device, seed_everything
    from labcore.models import load_causal_lm
    from layerwise import __version__
    from layerwise.calibration import Calibration
    from layerwise.engine import compress
    from layerwise.evaluate import evaluate_perplexity

    preset = QUICK if args.quick else FULL
    calib_n = args.calib_windows or preset.calib_windows
    eval_n = args.eval_windows or preset.eval_windows
    seqlen = args.seqlen or preset.seqlen
    device = resolve_device(args.device)
    out = args.out or Path("results") / "layerwise"
    only = set(args.only.split(",")) if args.only else None
    seed_everything(args.seed)

    corpus = load_corpus("bbc")
    _, tok = load_causal_lm(args.model, device="cpu")
    cal = Calibration.from_corpus(tok, corpus, n=calib_n, seqlen=seqlen, seed=args.seed)
    config = {
        "model": args.model,
        "quick": bool(args.quick),
        "calibration": f"bbc train, {calib_n} x {seqlen} tokens",
        "evaluation": f"bbc test, {eval_n} x {seqlen} tokens",
        "device": str(device),
        "propagate": "compressed",
        "note": "time_s is compression only",
    }
    report = BenchReport(
        package="layerwise",
        version=__version__,
        command="layerwise bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        config=config,
    )
    for method, params, cfg in bench_rows(args.quick):
        if only and method not in only:
            continue
        model, _ = load_causal_lm(args.model, device="cpu")
        metrics: dict[str, Any] = {}
        time_s = 0.0
        if cfg is not None:
            with MemoryMonitor() as mem:
                rep, _ = compress(
                    model, cfg, cal, device=device, batch_size=8, progress=not args.quiet
                )
            time_s = rep.time_s
            metrics.update(
                mean_rel_error=rep.mean_rel_error,
                sparsity=round(rep.sparsity, 4),
                damping_increases=rep.damping_increases,
                peak_rss_gib=mem.peak_rss_gib,
            )
            if mem.peak_cuda_gib is not None:
                metrics["peak_cuda_gib"] = mem.peak_cuda_gib
        model.to(device)
        ppl = evaluate_perplexity(
            model,
            tok,
            corpus,
            seqlen=seqlen,
            windows=eval_n,
            seed=args.seed,
            progress=not args.quiet,
        )
        metrics = {"perplexity": ppl.perplexity, **metrics}
        report.add(Row(method, params, "bbc", args.seed, metrics, round(time_s, 2)))
        log.info("%s %s: %s", method, params, metrics)
        if not args.quiet:
            print(
                f"{method:10s} {params}: ppl {ppl.perplexity:.3f}, {time_s:.1f} s", file=sys.stderr
            )
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not only or "llmcompressor-gptq" in only:
        report.add(_llmcompressor_row(args.quick))
    json_path, md_path = report.write(out)
    _plot(report, out)
    emit(args, report.to_dict(), report.to_markdown() + f"\nwritten: {json_path}, {md_path}")
    return 0


def _plot(report: BenchReport, out: Path) -> None:
    """Perplexity per row as a bar chart (only when matplotlib is installed)."""
    if importlib.util.find_spec("matplotlib") is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r.status == "ok"]
    labels = [
        f"{r.method}\n" + ",".join(str(v) for k, v in r.params.items() if k != "granularity")
        for r in rows
    ]
    values = [r.metrics.get("perplexity") or 0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.9), 4))
    ax.bar(range(len(rows)), values, color="tab:blue")
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (BBC test, log scale)")
    ax.set_title(f"layerwise bench: {report.config.get('model')}")
    fig.tight_layout()
    tmp = out / ".results.png.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out / "results.png")
