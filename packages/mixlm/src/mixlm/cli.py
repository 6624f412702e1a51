"""``mixlm`` command line (work in progress: ``bench``; ``train``, ``index`` and ``serve``
are still to come)."""

from __future__ import annotations

import argparse

from labcore.cli import add_bench_command, make_parser, run
from mixlm.bench import BENCH


def build_parser() -> argparse.ArgumentParser:
    from mixlm import __version__

    parser = make_parser(
        "mixlm",
        "MixLM: LLM ranking from a few cached item vectors instead of the item text.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
