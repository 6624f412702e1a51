"""``layerwise bench``: the baselines side by side on SmolLM2-135M, BBC calibration and test.

Every row starts from a fresh copy of the same dense model and uses the same calibration
windows (BBC train split) and the same evaluation windows (BBC test split). ``time_s`` is the
compression time; perplexity evaluation is not included. With several seeds every row runs once
per seed (the seed draws the calibration and evaluation windows).

The SmolLM2 weights come from a Q4_1 GGUF file (4-bit grid per block of 32 weights), so the
table uses per-channel quantization (no groups) at 3 and 4 bits, where that grid does not line
up with ours.

The ``llmcompressor-gptq`` rows are a cross-check against a widely used GPTQ implementation.
llmcompressor pins its own torch and transformers, so it lives in a separate environment; pass
its interpreter with ``--llmcompressor-python`` (or ``$LAYERWISE_LLMCOMPRESSOR_PYTHON``). It
quantizes the same checkpoint on the same calibration windows, and we evaluate its weights with
our own code. Without it the rows are reported as skipped.

Method packages (quantease, alps) build their benches on :func:`run_rows` and
:func:`add_bench_options`.
"""

from __future__ import annotations

import gc
import importlib.util
import io
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore import LabcoreError
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, aggregate_rows, mean_std
from labcore.progress import status
from layerwise import __version__

log = logging.getLogger(__name__)

#: The model every bench built on :func:`run_rows` uses without ``--model``.
DEFAULT_MODEL = "smollm2-135m"

#: The built-in evaluator of :func:`run_rows`: perplexity on BBC test windows.
PERPLEXITY = "perplexity"

#: A further result column: ``evaluator(model, tokenizer, *, seed) -> {metric: value}``.
Evaluator = Callable[..., dict]


def _calibration_for(source: Any, tokenizer: Any, seed: int) -> Any:
    """A Calibration from a Calibration or a ``(tokenizer, seed) -> Calibration`` callable."""
    from layerwise.calibration import Calibration

    cal = source(tokenizer, seed) if callable(source) else source
    if not isinstance(cal, Calibration):
        raise LabcoreError(
            f"a row's calibration must be a Calibration or a callable returning one, got "
            f"{type(cal).__name__}"
        )
    return cal


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


def add_bench_options(p: Any) -> None:
    """The own options of every ``bench`` built on :func:`run_rows` (``BenchSpec.add_arguments``);
    :func:`run_rows` reads them through ``config.option``."""
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"offline name, local checkpoint or hub id (default {DEFAULT_MODEL})",
    )
    p.add_argument("--calib-windows", type=int, default=None, help="override the preset")
    p.add_argument("--eval-windows", type=int, default=None, help="override the preset")
    p.add_argument("--seqlen", type=int, default=None, help="override the preset")
    p.add_argument("--only", default=None, help="comma-separated method names to run")


def add_cross_check_options(p: Any) -> None:
    """:func:`add_bench_options` plus ``--llmcompressor-python``, for a bench whose rows hold
    the llmcompressor GPTQ cross-check (:class:`ExternalGPTQ`)."""
    add_bench_options(p)
    p.add_argument(
        "--llmcompressor-python",
        default=None,
        help="a Python that has llmcompressor installed, for the GPTQ cross-check row "
        "(default: $LAYERWISE_LLMCOMPRESSOR_PYTHON, else this Python if it has llmcompressor)",
    )


def _llmcompressor_python(explicit: str | None) -> str | None:
    """The interpreter for the llmcompressor cross-check, or ``None`` when there is none."""
    explicit = explicit or os.environ.get("LAYERWISE_LLMCOMPRESSOR_PYTHON")
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


def run_bench(config: BenchConfig) -> BenchReport:
    """Dense, RTN, GPTQ (and the llmcompressor cross-check), magnitude, Wanda and SparseGPT on
    the same windows, once per seed; writes ``results.png`` into ``config.out`` when matplotlib
    is installed."""
    report, _ = run_rows(config, bench_rows(config.quick), package="layerwise", version=__version__)
    plot_perplexity(report, config.out)
    return report


def run_rows(
    config: BenchConfig,
    rows: list[tuple[str, dict[str, Any], Any]],
    *,
    package: str,
    version: str,
    quick_preset: Preset = QUICK,
    full_preset: Preset = FULL,
    calibration: Any = None,
    evaluators: Sequence[str | Evaluator] | None = None,
) -> tuple[BenchReport, dict[int, Any]]:
    """Run bench rows in one process on the same calibration and evaluation windows, once per
    seed of ``config.seeds``.

    ``rows`` holds (method, params, config) or (method, params, config, calibration): a method
    config, ``None`` for the dense model, or :class:`ExternalGPTQ`, and optionally the row's
    own calibration. Method packages (quantease, alps, ...) call this from their
    ``run_bench(config)`` with their own rows and the baselines.

    ``calibration`` is the calibration of every row without its own: None (random windows of
    the BBC train split, the preset's number and length), a
    :class:`~layerwise.calibration.Calibration`, or a callable ``(tokenizer, seed) ->
    Calibration`` (e.g. traces generated by the dense model). ``evaluators`` are the result
    columns: ``"perplexity"`` (BBC test windows; the default, alone) and callables
    ``(model, tokenizer, *, seed) -> dict`` of further metrics (task accuracy, generated
    length, ranking metrics), run in order on every row's compressed model. The options of
    :func:`add_bench_options` are read through ``config.option``: ``model``, ``calib_windows``,
    ``eval_windows``, ``seqlen`` (each overriding the quick or full preset), ``only``, and
    ``llmcompressor_python`` (:func:`add_cross_check_options`) when a row is
    :class:`ExternalGPTQ`. Work runs on ``config.device``.

    Returns the report and, per row index in ``report.rows``, the CompressionReport (for
    per-layer comparisons).
    """
    import torch

    from labcore.data import load_corpus
    from labcore.device import MemoryMonitor, resolve_device, seed_everything
    from labcore.models import load_causal_lm
    from layerwise.calibration import Calibration
    from layerwise.engine import compress
    from layerwise.evaluate import evaluate_perplexity

    evaluators = tuple(evaluators) if evaluators is not None else (PERPLEXITY,)
    for ev in evaluators:
        if ev != PERPLEXITY and not callable(ev):
            raise LabcoreError(f"an evaluator is 'perplexity' or a callable, got {ev!r}")
    preset = quick_preset if config.quick else full_preset
    model_name = str(config.option("model", DEFAULT_MODEL))
    calib_n = config.option("calib_windows") or preset.calib_windows
    eval_n = config.option("eval_windows") or preset.eval_windows
    seqlen = config.option("seqlen") or preset.seqlen
    device = resolve_device(config.device)
    only_text = config.option("only")
    only = set(only_text.split(",")) if only_text else None

    report = BenchReport(
        package=package,
        version=version,
        config={
            "model": model_name,
            "quick": config.quick,
            "calibration": (
                f"bbc train, {calib_n} x {seqlen} tokens"
                if calibration is None
                else "given by the package (see its bench)"
            ),
            "evaluation": f"bbc test, {eval_n} x {seqlen} tokens",
            "device": str(device),
            "propagate": "compressed",
            "note": "time_s is compression only",
        },
    )
    layer_reports: dict[int, Any] = {}
    # Only a bench with the cross-check rows looks for an interpreter (and offers the flag).
    has_cross_check = any(isinstance(row[2], ExternalGPTQ) for row in rows)
    llmc_python = (
        _llmcompressor_python(config.option("llmcompressor_python")) if has_cross_check else None
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"{package}-bench-"))
    try:
        for seed in config.seeds:
            # Per seed, the same order as a one-seed run: seed, corpus, tokenizer, windows.
            seed_everything(seed)
            corpus = load_corpus("bbc")
            _, tok = load_causal_lm(model_name, device="cpu")
            default_cal = (
                Calibration.from_corpus(tok, corpus, n=calib_n, seqlen=seqlen, seed=seed)
                if calibration is None
                else _calibration_for(calibration, tok, seed)
            )
            for row in rows:
                method, params, cfg, *own = row
                if only and method not in only:
                    continue
                cal = _calibration_for(own[0], tok, seed) if own else default_cal
                if isinstance(cfg, ExternalGPTQ) and llmc_python is None:
                    report.add(
                        Row.skipped(
                            method,
                            params,
                            "bbc",
                            "llmcompressor not installed here (pass --llmcompressor-python)",
                            seed=seed,
                        )
                    )
                    continue
                model, _ = load_causal_lm(model_name, device="cpu")
                metrics: dict[str, Any] = {}
                time_s = 0.0
                if isinstance(cfg, ExternalGPTQ):
                    try:
                        state, info = _llmcompressor_gptq(
                            llmc_python, model_name, cal, cfg.bits, workdir
                        )
                    except LabcoreError as exc:  # a broken cross-check must not sink the table
                        log.error("%s", exc)
                        report.add(
                            Row.skipped(method, params, "bbc", str(exc).splitlines()[0], seed=seed)
                        )
                        continue
                    missing = set(state) - set(model.state_dict())
                    if missing or len(state) == 0:
                        raise LabcoreError(
                            f"llmcompressor returned unknown weights: {sorted(missing)}"
                        )
                    model.load_state_dict(state, strict=False)
                    time_s = info["time_s"]
                    report.config["llmcompressor"] = (
                        f"{info['llmcompressor']} (torch {info['torch']})"
                    )
                    metrics.update(
                        peak_rss_gib=info["peak_rss_gib"],
                        levels_per_row=info["max_levels_per_row"],
                    )
                elif cfg is not None:
                    with MemoryMonitor() as mem:
                        rep, _ = compress(model, cfg, cal, device=device, batch_size=8)
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
                evaluated: dict[str, Any] = {}
                for ev in evaluators:
                    started = time.perf_counter()
                    if ev == PERPLEXITY:
                        ppl = evaluate_perplexity(
                            model,
                            tok,
                            corpus,
                            seqlen=seqlen,
                            windows=eval_n,
                            seed=seed,
                            progress=True,
                        )
                        evaluated["perplexity"] = ppl.perplexity
                    else:
                        out = ev(model, tok, seed=seed)
                        if not isinstance(out, dict):
                            raise LabcoreError(
                                f"evaluator {getattr(ev, '__name__', ev)!r} returned "
                                f"{type(out).__name__}, not a dict of metrics"
                            )
                        evaluated.update(out)
                    log.info(
                        "%s %s seed %d: evaluator %s took %.1f s",
                        method, params, seed, getattr(ev, "__name__", ev),
                        time.perf_counter() - started,
                    )  # fmt: skip
                metrics = {**evaluated, **metrics}
                report.add(Row(method, params, "bbc", seed, metrics, round(time_s, 2)))
                log.info("%s %s seed %d: %s", method, params, seed, metrics)
                shown = ", ".join(
                    f"{k} {v:.4g}" for k, v in evaluated.items() if isinstance(v, int | float)
                )
                status(f"{method:10s} {params} seed {seed}: {shown}, {time_s:.1f} s")
                del model
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report, layer_reports


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as a PNG atomically (parent folders made as needed)."""
    from labcore.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return atomic_write_bytes(path, buf.getvalue())


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
            status(f"{name} {n_out}x{n_in}: {elapsed:.2f} s")
        del H, W
    return rows, block


def solver_report(
    *,
    package: str,
    version: str,
    config: dict[str, Any],
    rows: list[Row],
    block: dict[str, float],
    command: str,
    blocks: int = 32,
) -> BenchReport:
    """The report of :func:`time_layer_solvers`, with a whole-model estimate (``blocks`` Llama
    blocks, 32 for Llama-7B) per solver. The GPU script that calls it writes and prints it."""
    report = BenchReport(package=package, version=version, command=command, config=config)
    report.extend(rows)
    for name, t in block.items():
        report.add(
            Row(f"{name}-model-estimate", {"blocks": blocks}, "random layer", 0, {}, blocks * t)
        )
    return report


def plot_perplexity(report: BenchReport, out: Path) -> Path | None:
    """Perplexity per row (mean over seeds) as a bar chart in ``out/results.png``; only when
    matplotlib is installed."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in aggregate_rows(report.rows) if g["status"] == "ok"]
    labels = [
        f"{g['method']}\n" + ",".join(str(v) for k, v in g["params"].items() if k != "granularity")
        for g in groups
    ]
    values = [mean_std(g["metrics"].get("perplexity", []))[0] or 0 for g in groups]
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 0.9), 4))
    ax.bar(range(len(groups)), values, color="tab:blue")
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (BBC test, log scale)")
    ax.set_title(f"{report.package} bench: {report.config.get('model')}")
    fig.tight_layout()
    path = save_figure(fig, Path(out) / "results.png")
    plt.close(fig)
    return path


BENCH = BenchSpec(
    package="layerwise",
    version=__version__,
    run=run_bench,
    help="RTN, GPTQ, magnitude, Wanda and SparseGPT side by side on SmolLM2-135M",
    uses=frozenset({"seeds", "device"}),
    add_arguments=add_cross_check_options,
)
