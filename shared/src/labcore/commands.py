"""The ``labcore`` command: perplexity of a causal LM, the offline models, this machine, and
``labcore bench compare`` for two benchmark runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore.cli import add_command, emit, make_parser, run
from labcore.errors import LabcoreError


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


def _describe(results: dict, label: str) -> str:
    p = results.get("provenance") or {}
    commit = (p.get("git_commit") or "unknown commit")[:12]
    if p.get("git_dirty"):
        commit += " (modified)"
    seeds = ",".join(str(s) for s in p.get("seeds", [])) or "?"
    return f"{label}: {results.get('command', '?')} @ {commit}, seeds {seeds}"


def _compare_command(args: argparse.Namespace) -> int:
    from labcore.bench import compare_results, comparison_table, load_results

    a, b = load_results(args.a), load_results(args.b)
    if a.get("package") != b.get("package"):
        raise LabcoreError(
            f"the results are of different packages ({a.get('package')} and {b.get('package')})"
        )
    rows = compare_results(a, b)
    payload = {
        "a": {"path": str(args.a), "command": a.get("command"), "provenance": a.get("provenance")},
        "b": {"path": str(args.b), "command": b.get("command"), "provenance": b.get("provenance")},
        "rows": rows,
    }
    text = "\n".join([_describe(a, "A"), _describe(b, "B"), "", comparison_table(rows)])
    emit(args, payload, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labcore import __version__

    parser = make_parser(
        "labcore", "Shared core of the lab toolkit: models, data, metrics.", version=__version__
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = add_command(
        sub,
        "ppl",
        _ppl_command,
        help="perplexity of a causal LM on a corpus's test split",
        uses=("device", "seed", "out"),
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
    add_command(
        sub, "models", _models_command, help="list the offline models and the cache folder", uses=()
    )
    add_command(
        sub, "info", _info_command, help="describe this machine (as benchmarks record it)", uses=()
    )
    bench = sub.add_parser("bench", help="work with benchmark results")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    p = add_command(
        bench_sub,
        "compare",
        _compare_command,
        help="two results.json files side by side, with the ratio B / A of every metric",
        uses=(),
    )
    p.add_argument("a", type=Path, help="results.json of run A (or its folder)")
    p.add_argument("b", type=Path, help="results.json of run B (or its folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
