"""``layerwise`` command line: run, eval, methods, bench."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore import LabcoreError
from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.io import check_output_dir
from layerwise.bench import BENCH

if TYPE_CHECKING:
    from labcore.bench import BenchSpec

# Flags that map onto fields of method configs; a method takes those its config has.
_METHOD_FLAGS = (
    "bits",
    "sym",
    "group_size",
    "act_order",
    "sparsity",
    "nm",
    "granularity",
    "block_size",
    "percdamp",
)


def build_config(method: str, args: argparse.Namespace) -> Any:
    """The method's config dataclass from the CLI flags it has and ``--set key=value``."""
    from layerwise.methods import get_method_class

    cls = get_method_class(method).config_class
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for flag in _METHOD_FLAGS:
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag not in fields:
            raise LabcoreError(
                f"method {method!r} has no option --{flag.replace('_', '-')}; it takes: "
                f"{', '.join(sorted(fields)) or 'nothing'}"
            )
        values[flag] = value
    for item in getattr(args, "set", None) or []:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise LabcoreError(
                f"--set {item!r}: expected key=value with key one of {sorted(fields)}"
            )
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        return cls(**values)
    except TypeError as exc:
        raise LabcoreError(f"bad options for {method}: {exc}") from None


def _run_command(args: argparse.Namespace) -> int:
    return run_compression(args, build_config(args.method, args), args.method)


def run_compression(args: argparse.Namespace, config: Any, method: str) -> int:
    """Calibrate, compress, evaluate and save, from the options of :func:`add_run_arguments`.

    Method packages (``quantease run``, ...) call this with their own config so every ``run``
    command behaves the same.
    """
    import torch

    from labcore.data import load_corpus
    from labcore.device import MemoryMonitor, resolve_device, seed_everything
    from labcore.models import load_causal_lm
    from layerwise.calibration import calibration_from_source
    from layerwise.engine import compress
    from layerwise.evaluate import evaluate_perplexity
    from layerwise.export import save

    if args.out is None:
        raise LabcoreError("--out DIR is required (where the compressed model is saved)")
    check_output_dir(args.out, overwrite=args.overwrite)  # before any work
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model, tok = load_causal_lm(
        args.model, dtype=args.dtype, device="cpu" if args.offload else device
    )
    source = calibration_spec(args)
    cal = calibration_from_source(
        source, tokenizer=tok, n=args.calib_windows, seqlen=args.seqlen, seed=args.seed
    )
    with MemoryMonitor() as mem:
        report, quantized = compress(
            model,
            config,
            cal,
            device=device,
            batch_size=args.batch_size,
            offload=args.offload,
            propagate=args.propagate,
            progress=not args.quiet,
            structured=args.removed_structures,
        )
    payload: dict[str, Any] = {
        "model": args.model,
        "method": method,
        "calibration": source,
        "config": report.config,
        "time_s": round(report.time_s, 2),
        "mean_rel_error": report.mean_rel_error,
        "sparsity": report.sparsity,
        "damping_increases": report.damping_increases,
        "peak_rss_gib": mem.peak_rss_gib,
        "peak_cuda_gib": mem.peak_cuda_gib,
    }
    if report.structure:
        payload["structure"] = {str(k): v for k, v in report.structure.items()}
    if args.eval_windows > 0:
        model.to(device)
        ppl = evaluate_perplexity(
            model,
            tok,
            load_corpus(args.eval_corpus),
            seqlen=args.seqlen,
            windows=args.eval_windows,
            seed=args.seed,
            progress=not args.quiet,
        )
        payload["perplexity"] = ppl.perplexity
        model.to("cpu")
    save(
        model.to(torch.float32) if args.dtype == "float32" else model,
        tok,
        args.out,
        report=report,
        quantized=quantized,
        extra={
            "source_model": args.model,
            "calibration_source": source,
            "perplexity": payload.get("perplexity"),
        },
        overwrite=args.overwrite,
    )
    payload["out"] = str(args.out)
    text = (
        f"{method}: mean relative layer error {report.mean_rel_error:.4g}, sparsity "
        f"{report.sparsity:.3f}, damping increases {report.damping_increases}, "
        f"{report.time_s:.1f} s, peak RSS {mem.peak_rss_gib:.2f} GiB"
    )
    if "perplexity" in payload:
        text += f"; perplexity {payload['perplexity']:.3f}"
    emit(args, payload, text + f"\nsaved to {args.out}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """Perplexity (and optionally the per-layer table) of a saved output directory."""
    from labcore.device import resolve_device
    from layerwise.evaluate import evaluate_perplexity, layer_table
    from layerwise.export import load

    model, tok, sidecar = load(args.path, device=resolve_device(args.device))
    ppl = evaluate_perplexity(
        model,
        tok,
        args.corpus,
        seqlen=args.seqlen,
        windows=args.windows,
        seed=args.seed,
        progress=not args.quiet,
    )
    payload = {
        "path": str(args.path),
        "method": sidecar.get("method"),
        **ppl.as_dict(),
        "mean_rel_error": sidecar.get("mean_rel_error"),
        "sparsity": sidecar.get("sparsity"),
    }
    text = f"{args.path}: perplexity {ppl.perplexity:.3f} on {args.corpus}"
    if args.layers:
        text += "\n" + layer_table(sidecar)
    emit(args, payload, text)
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Re-write a saved output directory in another format (compressed-tensors)."""
    from layerwise.compressed import disk_bytes, save_compressed_tensors
    from layerwise.export import PACKED, load, read_quantized

    if args.out is None:
        raise LabcoreError("--out DIR is required (where the exported checkpoint goes)")
    check_output_dir(args.out, overwrite=args.overwrite)  # before any work
    model, tok, sidecar = load(args.path)
    quantized = read_quantized(args.path / PACKED) if (args.path / PACKED).is_file() else {}
    summary = save_compressed_tensors(
        model,
        tok,
        args.out,
        quantized=quantized,
        pack=args.pack,
        unsupported=args.unsupported,
        dtype=args.dtype,
        sidecar={k: sidecar.get(k) for k in ("method", "config", "source_model") if k in sidecar},
        overwrite=args.overwrite,
    )
    payload = summary.to_dict() | {
        "source": str(args.path),
        "bytes": disk_bytes(args.out),
        "source_bytes": disk_bytes(args.path),
    }
    text = (
        f"wrote {args.out} ({args.format}, {summary.pack or 'no quantized layers'}): "
        f"{summary.quantized_layers} quantized layer(s), {payload['bytes'] / 2**20:.1f} MiB of "
        f"weights (source {payload['source_bytes'] / 2**20:.1f} MiB)"
    )
    for note in summary.notes:
        text += f"\nnote: {note}"
    emit(args, payload, text)
    return 0


def _methods_command(args: argparse.Namespace) -> int:
    from layerwise.methods import available_methods, get_method_class

    rows = {}
    for name in available_methods():
        cls = get_method_class(name)
        rows[name] = {
            "kind": cls.kind,
            "statistics": cls.statistics,
            "grouping": cls.grouping,
            "options": [f.name for f in dataclasses.fields(cls.config_class)],
        }
    emit(
        args,
        rows,
        "\n".join(
            f"{n:10s} {r['kind']:12s} options: {', '.join(r['options']) or '-'}"
            for n, r in rows.items()
        ),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from layerwise import __version__

    parser = make_parser(
        "layerwise", "Sequential layer-wise compression of causal LMs.", version=__version__
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_command(
        sub,
        "run",
        _run_command,
        help="compress a model with one method and save it",
        uses=("device", "seed", "out"),
    )
    p.add_argument(
        "--method",
        default="gptq",
        help="gptq, sparsegpt, wanda, magnitude, rtn, or a plugin's name",
    )
    g = p.add_argument_group("method options (each method takes those its config has)")
    g.add_argument("--bits", type=int)
    g.add_argument("--sym", action="store_true", default=None, help="symmetric grid")
    g.add_argument("--group-size", type=int, help="input columns per quantization group")
    g.add_argument("--act-order", action="store_true", default=None, help="GPTQ activation order")
    g.add_argument("--sparsity", type=float, help="share of weights removed, in [0, 1)")
    g.add_argument("--nm", help="N:M sparsity, N kept in every M (2:4 keeps half)")
    g.add_argument("--granularity", choices=["layer", "row"], help="magnitude threshold scope")
    g.add_argument("--block-size", type=int)
    g.add_argument(
        "--percdamp", type=float, help="damping as a fraction of the mean Hessian diagonal"
    )
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other config field")
    add_run_arguments(p)

    p = add_command(
        sub,
        "eval",
        eval_command,
        help="perplexity and layer report of a saved output",
        uses=("device", "seed"),
    )
    add_eval_arguments(p)

    p = add_command(
        sub,
        "export",
        export_command,
        help="write a saved output as a compressed-tensors checkpoint (vLLM, transformers)",
        uses=("out",),
    )
    p.add_argument("path", type=Path, help="a directory written by `layerwise run`")
    p.add_argument("--format", choices=["compressed-tensors"], default="compressed-tensors")
    p.add_argument(
        "--pack",
        choices=["pack-quantized", "int-quantized"],
        default=None,
        help="default: pack-quantized when every layer is symmetric, else int-quantized "
        "(transformers cannot load packed asymmetric layers with compressed-tensors 0.20)",
    )
    p.add_argument(
        "--unsupported",
        choices=["error", "dense"],
        default="error",
        help="layers the format cannot hold (outliers): refuse, or write them unquantized",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        help="scales and unquantized tensors: float32 (exact, default), float16 or bfloat16",
    )
    p.add_argument("--overwrite", action="store_true")

    add_command(
        sub,
        "methods",
        _methods_command,
        help="list the registered methods and their options",
        uses=(),
    )

    add_bench_command(sub, BENCH)
    return parser


def build_method_parser(
    name: str,
    description: str,
    version: str,
    *,
    add_options: Callable[[argparse._ArgumentGroup], None],
    build_config: Callable[[argparse.Namespace], Any],
    bench: BenchSpec,
    what: str,
    add_commands: Callable[[Any], None] | None = None,
) -> argparse.ArgumentParser:
    """The ``run`` / ``eval`` / ``bench`` command line of a method package on this engine.

    ``add_options`` adds the method's flags, ``build_config(args)`` turns them into its config,
    ``bench`` is the package's :class:`labcore.bench.BenchSpec` (its ``run_bench`` built on
    :func:`layerwise.bench.run_rows`, its options :func:`layerwise.bench.add_bench_options`);
    ``what`` completes "… a model and save it" in the help. ``add_commands(subparsers)`` adds
    the package's own subcommands (with :func:`labcore.cli.add_command`).
    """
    parser = make_parser(name, description, version=version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_command(
        sub,
        "run",
        lambda args: run_compression(args, build_config(args), name),
        help=f"{what} a model and save it",
        uses=("device", "seed", "out"),
    )
    add_options(p.add_argument_group(f"{name} options"))
    add_run_arguments(p)
    p = add_command(
        sub,
        "eval",
        eval_command,
        help="perplexity and layer report of a saved output",
        uses=("device", "seed"),
    )
    add_eval_arguments(p)
    add_bench_command(sub, bench)
    if add_commands is not None:
        add_commands(sub)
    return parser


def calibration_spec(args: argparse.Namespace) -> str:
    """The calibration source of ``--calib``, ``--calib-file`` or ``--calib-corpus``."""
    if getattr(args, "calib", None):
        return args.calib
    if getattr(args, "calib_file", None):
        return f"file:{args.calib_file}"
    return f"corpus:{getattr(args, 'calib_corpus', None) or 'bbc'}"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Model, calibration, evaluation and output options of every ``run`` command."""
    p.add_argument(
        "--model", default="smollm2-135m", help="offline name, local checkpoint or hub id"
    )
    cal = p.add_mutually_exclusive_group()
    cal.add_argument(
        "--calib-corpus",
        default=None,
        help="random windows of this corpus (default bbc; same as --calib corpus:NAME)",
    )
    cal.add_argument(
        "--calib-file",
        type=Path,
        default=None,
        help="token ids, mask and weights from a .safetensors or .jsonl file",
    )
    cal.add_argument(
        "--calib",
        metavar="SOURCE:ARG",
        default=None,
        help="any registered calibration source: corpus:NAME, file:PATH or a plugin's "
        "(layerwise.calibration_sources entry points)",
    )
    p.add_argument("--calib-windows", type=int, default=128, help="windows of a corpus source")
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--propagate", choices=["compressed", "dense"], default="compressed")
    p.add_argument(
        "--removed-structures",
        choices=["shrink", "mask"],
        default="shrink",
        help="what heads and neurons a structured method removes become: smaller "
        "projections (default) or zeroed rows and columns",
    )
    p.add_argument(
        "--no-offload",
        dest="offload",
        action="store_false",
        help="keep the model and block inputs on the compute device",
    )
    p.add_argument("--dtype", default="float32")
    p.add_argument("--eval-corpus", default="bbc")
    p.add_argument("--eval-windows", type=int, default=64, help="0 skips the perplexity evaluation")
    p.add_argument("--overwrite", action="store_true")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Options of every ``eval`` command (a saved output directory and the test text)."""
    p.add_argument("path", type=Path)
    p.add_argument("--corpus", default="bbc")
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--windows", type=int, default=64)
    p.add_argument("--layers", action="store_true", help="also print the per-layer table")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
