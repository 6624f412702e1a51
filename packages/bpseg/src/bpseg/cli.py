"""``bpseg`` command line: segment a document, run the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from bpseg.bench import BENCH
from labcore.cli import add_bench_command, add_command, emit, make_parser, run


def _read_text(path: Path) -> str:
    from labcore.io import decode_text, read_text_file

    if str(path) == "-":
        import sys

        return decode_text(sys.stdin.buffer.read(), name="standard input")
    return read_text_file(path)


def _format(seg, *, width: int = 100) -> str:
    lines = [
        f"{len(seg.sentences)} sentences, k = {seg.k} "
        f"({'contiguous' if seg.contiguous else 'non-contiguous'}; {seg.inference}, "
        f"{'converged' if seg.converged else 'not converged'})"
    ]
    for segment in seg.segments:
        idx = segment.indices
        span = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _ranges(idx))
        lines.append(f"\n[segment {segment.label}] sentences {span}")
        for i, sentence in zip(idx, segment.sentences, strict=True):
            text = sentence if len(sentence) <= width else sentence[: width - 1] + "…"
            lines.append(f"  {i:>4}  {text}")
    return "\n".join(lines)


def _ranges(indices):
    start = prev = indices[0]
    for i in indices[1:]:
        if i != prev + 1:
            yield start, prev
            start = i
        prev = i
    yield start, prev


def _segment(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bpseg import BPSegConfig, segment

    config = BPSegConfig()
    overrides = {
        "k": args.k,
        "contiguous": args.contiguous,
        "seed": args.seed,
        "encoder": args.encoder,
        "inference": args.inference,
    }
    for name in ("temperature", "coupling", "decay", "neighbors", "k_max"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.no_decay:
        overrides["decay"] = None
    config = replace(config, **overrides)
    text = _read_text(args.document)
    seg = segment(text, config=config)
    payload = {"document": str(args.document), **seg.to_dict()}
    if args.out:
        from labcore.io import atomic_write_json

        atomic_write_json(Path(args.out), payload)
    emit(args, payload, _format(seg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bpseg import __version__

    parser = make_parser(
        "bpseg",
        "BP-Seg: unsupervised, non-contiguous text segmentation by belief propagation.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "segment",
        _segment,
        help="segment a text file ('-' for stdin)",
        uses=("seed", "out"),
    )
    p.add_argument("document", type=Path, help="plain-text file")
    p.add_argument("--k", type=int, default=None, help="number of segments (default: chosen)")
    p.add_argument("--k-max", dest="k_max", type=int, default=None, help="largest k tried")
    p.add_argument(
        "--contiguous", action="store_true", help="exactly k contiguous segments (boundaries)"
    )
    p.add_argument("--encoder", default="minilm-l6", help="minilm-l6 (default), tfidf, or a path")
    p.add_argument(
        "--inference",
        default="sum-product",
        choices=("sum-product", "max-product", "mean-field"),
    )
    p.add_argument("--temperature", type=float, default=None, help="node-potential temperature T")
    p.add_argument("--coupling", type=float, default=None, help="edge coupling λ")
    p.add_argument("--decay", type=float, default=None, help="distance decay γ in sentences")
    p.add_argument("--no-decay", action="store_true", help="no distance decay")
    p.add_argument("--neighbors", type=int, default=None, help="similar sentences linked each")

    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
