"""``layerwise bench``: the baselines side by side on SmolLM2-135M, BBC calibration and test.

Every row starts from a fresh copy of the same dense model and uses the same calibration
windows (BBC train split) and the same evaluation windows (BBC test split). ``time_s`` is the
compression time; perplexity evaluation is not included.

The SmolLM2 weights come from a Q4_1 GGUF file (4-bit grid per block of 32 weights), so the
table uses per-channel quantization (no groups) at 3 and 4 bits, where that grid does not line
up with ours.

The ``llmcompressor-gptq`` rows are a cross-check against a widely used GPTQ implementation.
llmcompressor pins its own torch and transformers, so it lives in a separate environment; pass
its interpreter with ``--llmcompressor-python`` (or ``$LAYERWISE_LLMCOMPRESSOR_PYTHON``). It
quantizes the same checkpoint on the same calibration windows, and we evaluate its weights with
our own code. Without it the rows are reported as skipped.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore import LabcoreError
from labcore.bench import BenchReport, Row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    calib_windows: int
    eval_windows: int
    seqlen: int


QUICK = Preset(calib_windows=16, eval_windows=32, seqlen=256)
FULL = Preset(calib_windows=64, eval_windows=64, seqlen=512)


@dataclass(frozen=True)
class ExternalGPTQ:
    """A row quantized by llmcompressor's GPTQ (asymmetric, per channel, as our GPTQ rows)."""

    bits: int


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
        rows.append(("llmcompressor-gptq", {"bits": bits, "group": "channel"}, ExternalGPTQ(bits)))
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


def _llmcompressor_python(args: argparse.Namespace) -> str | None:
    """The interpreter for the llmcompressor cross-check, or ``None`` when there is none."""
    explicit = args.llmcompressor_python or os.environ.get("LAYERWISE_LLMCOMPRESSOR_PYTHON")
    if explicit:
        if shutil.which(explicit) is None and not Path(explicit).is_file():
            raise LabcoreError(f"--llmcompressor-python: no such interpreter {explicit!r}")
        return explicit
    return sys.executable if importlib.util.find_spec("llmcompressor") is not None else None


def _llmcompressor_gptq(
    python: str, model_name: str, cal: Any, bits: int, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quantize with llmcompressor's GPTQModifier in its own interpreter.

    llmcompressor pins torch/transformers versions other than our lock, so it runs as a
    subprocess on the same checkpoint and the same calibration windows; it hands back the
    fake-quantized linear weights, which we load into our own copy of the model so that the
    perplexity evaluation is the same code as every other row. Returns (state, info).
    """
    from safetensors.torch import load_file, save_file

    from labcore.models import causal_lm_path

    calib_path = workdir / "calibration.safetensors"
    save_file(
        {
            "input_ids": cal.input_ids.contiguous(),
            "attention_mask": cal.attention_mask.contiguous(),
        },
        str(calib_path),
    )
    out_path = workdir / f"llmcompressor-w{bits}.safetensors"
    cmd = [
        python,
        str(Path(__file__).with_name("_llmcompressor_worker.py")),
        "--model",
        str(causal_lm_path(model_name)),
        "--calibration",
        str(calib_path),
        "--bits",
        str(bits),
        "--out",
        str(out_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise LabcoreError(f"llmcompressor worker failed (exit {proc.returncode}):\n{tail}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of waited-for children, in KiB on Linux: the worker is the largest child.
    info["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3)
    return load_file(str(out_path)), info


def run_bench(args: argparse.Namespace) -> int:
    from layerwise import __version__

    report, _ = run_rows(args, bench_rows(args.quick), package="layerwise", version=__version__)
    finish(args, report)
    return 0


def run_rows(
    args: argparse.Namespace,
    rows: list[tuple[str, dict[str, Any], Any]],
    *,
    package: str,
    version: str,
    quick_preset: Preset = QUICK,
    full_preset: Preset = FULL,
) -> tuple[BenchReport, dict[int, Any]]:
    """Run bench rows in one process on the same calibration and evaluation windows.

    ``rows`` holds (method, params, config): a method config, ``None`` for the dense model, or
    :class:`ExternalGPTQ`. Method packages (quantease, alps, ...) call this with their own rows
    and the baselines. Returns the report and, per row index, the CompressionReport (for
    per-layer comparisons).
    """
    import torch

    from labcore.data import load_corpus
    from labcore.device import MemoryMonitor, resolve_device, seed_everything
    from labcore.models import load_causal_lm
    from layerwise.calibration import Calibration
    from layerwise.engine import compress
    from layerwise.evaluate import evaluate_perplexity

    preset = quick_preset if args.quick else full_preset
    calib_n = args.calib_windows or preset.calib_windows
    eval_n = args.eval_windows or preset.eval_windows
    seqlen = args.seqlen or preset.seqlen
    device = resolve_device(args.device)
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
        package=package,
        version=version,
        command=f"{package} bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        config=config,
    )
    layer_reports: dict[int, Any] = {}
    llmc_python = _llmcompressor_python(args)
    workdir = Path(tempfile.mkdtemp(prefix=f"{package}-bench-"))
    try:
        for method, params, cfg in rows:
            if only and method not in only:
                continue
            if isinstance(cfg, ExternalGPTQ) and llmc_python is None:
                report.add(
                    Row.skipped(
                        method,
                        params,
                        "bbc",
                        "llmcompressor not installed here (pass --llmcompressor-python)",
                    )
                )
                continue
            model, _ = load_causal_lm(args.model, device="cpu")
            metrics: dict[str, Any] = {}
            time_s = 0.0
            if isinstance(cfg, ExternalGPTQ):
                try:
                    state, info = _llmcompressor_gptq(
                        llmc_python, args.model, cal, cfg.bits, workdir
                    )
                except LabcoreError as exc:  # a broken cross-check must not sink the table
                    log.error("%s", exc)
                    report.add(Row.skipped(method, params, "bbc", str(exc).splitlines()[0]))
                    continue
                missing = set(state) - set(model.state_dict())
                if missing or len(state) == 0:
                    raise LabcoreError(f"llmcompressor returned unknown weights: {sorted(missing)}")
                model.load_state_dict(state, strict=False)
                time_s = info["time_s"]
                report.config["llmcompressor"] = f"{info['llmcompressor']} (torch {info['torch']})"
                metrics.update(
                    peak_rss_gib=info["peak_rss_gib"], levels_per_row=info["max_levels_per_row"]
                )
            elif cfg is not None:
                with MemoryMonitor() as mem:
                    rep, _ = compress(
                        model, cfg, cal, device=device, batch_size=8, progress=not args.quiet
                    )
                time_s = rep.time_s
                errors = sorted(x.rel_error for x in rep.layers if x.rel_error is not None)
                metrics.update(
                    mean_rel_error=rep.mean_rel_error,
                    median_rel_error=errors[len(errors) // 2] if errors else None,
                    sparsity=round(rep.sparsity, 4),
                    damping_increases=rep.damping_increases,
                    peak_rss_gib=mem.peak_rss_gib,
                )
                if mem.peak_cuda_gib is not None:
                    metrics["peak_cuda_gib"] = mem.peak_cuda_gib
                layer_reports[len(report.rows)] = rep
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
                    f"{method:10s} {params}: ppl {ppl.perplexity:.3f}, {time_s:.1f} s",
                    file=sys.stderr,
                )
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report, layer_reports


def finish(args: argparse.Namespace, report: BenchReport) -> None:
    """Write results.json / results.md (and a plot) under ``--out`` and print the table."""
    from labcore.cli import emit

    out = args.out or Path("results") / report.package
    json_path, md_path = report.write(out)
    _plot(report, out)
    emit(args, report.to_dict(), report.to_markdown() + f"\nwritten: {json_path}, {md_path}")


def random_hessian(d: int, tokens: int, device: Any, *, seed: int = 0) -> Any:
    """Σ = XᵀX for ``tokens`` correlated Gaussian rows of width ``d`` (built in chunks).

    For timing solvers at real model sizes (e.g. a Llama-7B layer) without the model.
    """
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed + d)
    mix = (torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)).to(device)
    H = torch.zeros(d, d, device=device)
    chunk = 8192
    for start in range(0, tokens, chunk):
        n = min(chunk, tokens - start)
        X = torch.randn(n, d, device=device) @ mix
        H.addmm_(X.T, X)
    return H


LLAMA_7B_LAYERS = {"attn": (4096, 4096), "mlp_up": (11008, 4096), "mlp_down": (4096, 11008)}
SMALL_LAYERS = {"attn": (256, 256), "mlp_up": (688, 256), "mlp_down": (256, 688)}
LAYERS_PER_BLOCK = {"attn": 4, "mlp_up": 2, "mlp_down": 1}  # Llama: q/k/v/o, gate/up, down


def time_layer_solvers(
    solvers: dict[str, Any],
    *,
    shapes: dict[str, tuple[int, int]],
    tokens: int,
    device: Any,
    objective: Any,
) -> tuple[list[Row], dict[str, float]]:
    """Time one-layer solvers ``fn(W, H) -> W_new`` on random layers of the given shapes.

    Returns a row per (solver, shape) with the layer objective, and per solver the estimated
    time of one Llama block (``LAYERS_PER_BLOCK``). For the GPU scripts of method packages.
    """
    import time

    import torch

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    warm = torch.randn(64, 64, device=device)
    for fn in solvers.values():  # kernels, allocator, compilation
        fn(warm, warm.T @ warm + torch.eye(64, device=device))
    rows: list[Row] = []
    block = dict.fromkeys(solvers, 0.0)
    for label, (n_out, n_in) in shapes.items():
        H = random_hessian(n_in, tokens, device)
        W = torch.randn(n_out, n_in, device=device) * 0.02
        for name, fn in solvers.items():
            sync()
            start = time.perf_counter()
            W_new = fn(W, H)
            sync()
            elapsed = time.perf_counter() - start
            block[name] += LAYERS_PER_BLOCK.get(label, 1) * elapsed
            rows.append(
                Row(
                    name,
                    {"shape": f"{n_out}x{n_in}"},
                    "random layer",
                    0,
                    {"objective": objective(W, W_new, H)},
                    round(elapsed, 3),
                )
            )
            print(f"{name} {n_out}x{n_in}: {elapsed:.2f} s", file=sys.stderr)
        del H, W
    return rows, block


def write_solver_report(
    *,
    package: str,
    version: str,
    config: dict[str, Any],
    rows: list[Row],
    block: dict[str, float],
    out: Path,
    blocks: int = 32,
) -> BenchReport:
    """Write and print the table of :func:`time_layer_solvers`, with a whole-model estimate
    (``blocks`` Llama blocks, 32 for Llama-7B) per solver."""
    from labcore.bench import machine_info

    report = BenchReport(
        package=package,
        version=version,
        command="bench/gpu.sh " + " ".join(sys.argv[1:]),
        config=config,
    )
    for row in rows:
        report.add(row)
    for name, t in block.items():
        report.add(
            Row(f"{name}-model-estimate", {"blocks": blocks}, "random layer", 0, {}, blocks * t)
        )
    report.write(out)
    print(report.to_markdown())
    print(machine_info())
    return report


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
