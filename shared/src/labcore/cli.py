"""The CLI conventions every package follows, and the ``labcore`` command itself.

Every package's CLI is built the same way::

    parser = make_parser("layerwise", "…", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "run", run_command, help="…")   # gets the common options
    p.add_argument("--bits", type=int, default=4)
    def main(argv=None) -> int:
        return run(parser, argv)

Common options on every subcommand: ``--device``, ``--seed``, ``--json`` (machine-readable
result on stdout), ``--out``, ``-v/--verbose`` and ``-q/--quiet``. Errors are printed as one
line ``<prog>: error: <message>`` with exit status 2 for bad input (:class:`LabcoreError`,
missing files) and 1 for anything else; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError


def common_parser() -> argparse.ArgumentParser:
    """The options every subcommand shares (use as a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    g.add_argument("--out", type=Path, default=None, help="output directory or file")
    g.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; tracebacks on error"
    )
    g.add_argument("-q", "--quiet", action="count", default=0, help="less output, no progress bars")
    return common


def make_parser(prog: str, description: str, *, version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    return parser


def add_command(
    subparsers: Any, name: str, handler: Callable[[argparse.Namespace], Any], *, help: str
) -> argparse.ArgumentParser:
    """Add a subcommand with the common options; ``handler(args)`` runs it."""
    p = subparsers.add_parser(name, help=help, description=help, parents=[common_parser()])
    p.set_defaults(handler=handler)
    return p


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark contract's options: ``--quick`` and ``--data-root`` (``--out`` is common)."""
    parser.add_argument(
        "--quick", action="store_true", help="the small run (under 10 minutes on 2 CPU cores)"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder of external data sets; rows that need one are skipped without it",
    )


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if verbosity <= 1:
        # transformers and friends are chatty at INFO; keep them at WARNING unless -vv.
        for name in ("transformers", "accelerate", "urllib3", "filelock"):
            logging.getLogger(name).setLevel(logging.WARNING)


_PROGRESS = {"enabled": True}


def progress_bar(
    iterable: Iterable, *, desc: str = "", enabled: bool = True, total: int | None = None
):
    """Wrap an iterable in a tqdm bar on stderr (off with ``-q``, or when ``enabled`` is False)."""
    if not (enabled and _PROGRESS["enabled"]):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


def stderr_logger(args: argparse.Namespace) -> Callable[[str], None]:
    """A progress logger for long commands: lines on stderr, silent with ``-q`` or ``--json``
    (so that stdout stays machine-readable)."""
    quiet = getattr(args, "quiet", 0) > 0 or getattr(args, "json", False)

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)

    return log


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    elif getattr(args, "quiet", 0) < 2:
        print(text)


def bench_out(args: argparse.Namespace) -> Path:
    """Where ``bench`` writes its results: ``--out``, else ``bench/`` in the working folder."""
    return Path(args.out) if args.out is not None else Path("bench")


def emit_bench(args: argparse.Namespace, result: dict[str, Any], out: Path) -> int:
    """Print a benchmark run (``report``, ``table``, ``total_s``) the shared way: the report
    as JSON with ``--json``, else the table and where the results went."""
    emit(
        args,
        {**result["report"].to_dict(), "total_s": result["total_s"]},
        result["table"] + f"\nTotal {result['total_s']:.0f} s; results in {out}/",
    )
    return 0


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand's handler and turn errors into one line."""
    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    configure_logging(verbosity)
    _PROGRESS["enabled"] = getattr(args, "quiet", 0) == 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result = handler(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "verbose", 0):
            traceback.print_exc()
        message = str(exc) or type(exc).__name__
        if isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"file not found: {exc.filename}"
        elif not isinstance(exc, LabcoreError | FileNotFoundError):
            message = f"{type(exc).__name__}: {message} (run with -v for the traceback)"
        print(f"{parser.prog}: error: {message.splitlines()[0]}", file=sys.stderr)
        return 2 if isinstance(exc, LabcoreError | FileNotFoundError) else 1
    return int(result or 0)


# --------------------------------------------------------------------------------------------
# The `labcore` command


def _ppl_command(args: argparse.Namespace) -> int:
    from labcore.data import evaluation_windows, load_corpus
    from labcore.device import Timer, memory_report, resolve_device, seed_everything
    from labcore.io import atomic_write_json
    from labcore.metrics import perplexity
    from labcore.models import context_length, load_causal_lm

    if args.windows is not None and args.windows < 1:
        raise LabcoreError(f"--windows must be positive, got {args.windows}")
    if args.batch_size < 1:
        raise LabcoreError(f"--batch-size must be positive, got {args.batch_size}")
    corpus = load_corpus(args.corpus, split=args.split or None, text_field=args.text_field)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    with Timer(device) as load_timer:
        model, tokenizer = load_causal_lm(args.model, dtype=args.dtype, device=device)
    ctx = context_length(model)
    if ctx is not None and args.seqlen > ctx:
        raise LabcoreError(
            f"--seqlen {args.seqlen} is longer than the model's context length {ctx}"
        )
    windows = evaluation_windows(
        tokenizer, corpus.test, seqlen=args.seqlen, max_windows=args.windows, seed=args.seed
    )
    with Timer(device) as eval_timer:
        result = perplexity(
            model, windows, batch_size=args.batch_size, device=device, progress=True
        )
    payload = {
        "model": args.model,
        "corpus": corpus.name,
        "split": "test" if corpus.disjoint else "whole file",
        "seqlen": args.seqlen,
        "windows": int(windows.shape[0]),
        **result.as_dict(),
        "load_s": round(load_timer.elapsed, 3),
        "eval_s": round(eval_timer.elapsed, 3),
        "device": str(device),
        **memory_report(),
    }
    if args.out is not None:
        atomic_write_json(
            args.out if args.out.suffix == ".json" else args.out / "ppl.json", payload
        )
    emit(
        args,
        payload,
        f"perplexity {result.perplexity:.3f} on {payload['windows']} windows x {args.seqlen} tokens "
        f"of {corpus.name} ({payload['split']}); model load {load_timer.elapsed:.1f} s, "
        f"evaluation {eval_timer.elapsed:.1f} s on {device}",
    )
    return 0


def _models_command(args: argparse.Namespace) -> int:
    from labcore.models import CAUSAL_LMS, SENTENCE_ENCODERS, cache_dir

    payload = {
        "causal_lms": {k: v.description for k, v in CAUSAL_LMS.items()},
        "sentence_encoders": {k: v.description for k, v in SENTENCE_ENCODERS.items()},
        "cache_dir": str(cache_dir()),
    }
    lines = ["causal LMs:"] + [f"  {k:14s} {v}" for k, v in payload["causal_lms"].items()]
    lines += ["sentence encoders:"] + [
        f"  {k:14s} {v}" for k, v in payload["sentence_encoders"].items()
    ]
    lines.append(f"cache: {payload['cache_dir']}")
    emit(args, payload, "\n".join(lines))
    return 0


def _info_command(args: argparse.Namespace) -> int:
    from labcore.bench import machine_info

    info = machine_info()
    emit(args, info, "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labcore import __version__

    parser = make_parser(
        "labcore", "Shared core of the lab toolkit: models, data, metrics.", version=__version__
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_command(
        sub, "ppl", _ppl_command, help="perplexity of a causal LM on a corpus's test split"
    )
    p.add_argument(
        "--model", default="smollm2-135m", help="offline name, local checkpoint or hub id"
    )
    p.add_argument("--corpus", default="bbc", help="bbc, a .txt/.jsonl file, or a hub dataset")
    p.add_argument("--text-field", default="text", help="text field of a .jsonl corpus")
    p.add_argument("--split", action="store_true", help="use the test split of a local file")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument(
        "--windows",
        type=int,
        default=64,
        help="number of evaluation windows, a seeded subset (default 64)",
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    add_command(sub, "models", _models_command, help="list the offline models and the cache folder")
    add_command(sub, "info", _info_command, help="describe this machine (as benchmarks record it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
