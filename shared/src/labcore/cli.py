"""The CLI conventions every package follows (only CLI modules import this one).

Every package's CLI is built the same way::

    parser = make_parser("layerwise", "…", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "run", run_command, help="…", uses=("device", "seed", "out"))
    p.add_argument("--bits", type=int, default=4)
    add_bench_command(sub, layerwise.bench.BENCH)        # the shared `bench` subcommand
    def main(argv=None) -> int:
        return run(parser, argv)

Every subcommand takes ``--json`` (exactly one JSON document on stdout; progress and logs go to
stderr), ``-v/--verbose`` and ``-q/--quiet``. ``--device``, ``--seed`` and ``--out`` are offered
only by the subcommands that declare they read them (``uses``), so no flag is accepted and then
ignored. Errors are printed as one line ``<prog>: error: <message>`` with exit status 2 for bad
input (:class:`LabcoreError`, missing files) and 1 for anything else; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError

#: The options a subcommand may declare it reads, with how each is added.
COMMON_OPTIONS = ("device", "seed", "out", "overwrite")


def _add_common_options(parser: argparse.ArgumentParser, uses: Iterable[str]) -> None:
    uses = set(uses)
    unknown = uses - set(COMMON_OPTIONS)
    if unknown:
        raise ValueError(f"unknown common options {sorted(unknown)}; known: {COMMON_OPTIONS}")
    g = parser.add_argument_group("common options")
    if "device" in uses:
        g.add_argument(
            "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N"
        )
    if "seed" in uses:
        g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if "out" in uses:
        g.add_argument("--out", type=Path, default=None, help="output directory or file")
    if "overwrite" in uses:  # with labcore.io.check_output_dir / atomic_directory
        g.add_argument(
            "--overwrite",
            action="store_true",
            help="replace an earlier output in --out (never a folder this tool did not write)",
        )
    g.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    g.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; tracebacks on error"
    )
    g.add_argument("-q", "--quiet", action="count", default=0, help="less output, no progress bars")


def make_parser(prog: str, description: str, *, version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    return parser


def add_command(
    subparsers: Any,
    name: str,
    handler: Callable[[argparse.Namespace], Any],
    *,
    help: str,
    uses: Iterable[str],
) -> argparse.ArgumentParser:
    """Add a subcommand; ``handler(args)`` runs it.

    ``uses`` names the common options the handler reads, among ``device``, ``seed``,
    ``out`` and ``overwrite``; ``--json``, ``-v`` and ``-q`` are always there.
    """
    # No abbreviations: `--seed` must not silently mean `--seeds` (or `--out` `--outdir`).
    p = subparsers.add_parser(name, help=help, description=help, allow_abbrev=False)
    _add_common_options(p, uses)
    p.set_defaults(handler=handler)
    return p


def add_bench_command(subparsers: Any, spec: Any) -> argparse.ArgumentParser:
    """Add the shared ``bench`` subcommand for a package's :class:`labcore.bench.BenchSpec`.

    Always: ``--quick``, ``--out`` (default :func:`labcore.bench.default_out_dir`), ``--json``,
    ``-v``, ``-q``. Only where ``spec.uses`` names them: ``--seeds``, ``--data-root``,
    ``--device``. Then the package's own options (``spec.add_arguments``).
    """
    from labcore.bench import BenchConfig, default_out_dir

    p = subparsers.add_parser("bench", help=spec.help, description=spec.help, allow_abbrev=False)
    p.add_argument(
        "--quick", action="store_true", help="the small run (under 10 minutes on 2 CPU cores)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {default_out_dir(False)}, or {default_out_dir(True)} "
        "with --quick, under the working folder)",
    )
    if "seeds" in spec.uses:
        full, quick = (",".join(str(s) for s in spec.seeds_for(q)) for q in (False, True))
        default = full if full == quick else f"{full}, or {quick} with --quick"
        p.add_argument(
            "--seeds",
            type=_seeds_argument,
            default=None,
            help=f"comma-separated seeds; every row runs once per seed and the tables give "
            f"mean ± standard deviation (default {default})",
        )
    if "data_root" in spec.uses:
        p.add_argument(
            "--data-root",
            type=Path,
            default=None,
            help="folder of external data sets; rows that need one are skipped without it",
        )
    if "device" in spec.uses:
        p.add_argument(
            "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N"
        )
    _add_common_options(p, ())
    standard = {a.dest for a in p._actions}
    if spec.add_arguments is not None:
        spec.add_arguments(p)
    own = [a.dest for a in p._actions if a.dest not in standard]

    def handler(args: argparse.Namespace) -> int:
        config = BenchConfig(
            quick=args.quick,
            seeds=getattr(args, "seeds", None) or spec.seeds_for(args.quick),
            data_root=getattr(args, "data_root", None),
            device=getattr(args, "device", "auto"),
            out=args.out,
            options={dest: getattr(args, dest) for dest in own},
        )
        from labcore.bench import provenance
        from labcore.io import check_output_path

        check_output_path(config.out, kind="dir")  # before an hour of work, not after
        before = provenance(spec.package, config)  # the code as it is when the run starts
        started = time.perf_counter()
        report = spec.run(config)
        total_s = time.perf_counter() - started
        report.stamp(config, total_s=total_s, before=before)
        json_path, _ = report.write(config.out)
        text = (report.summary or report.to_markdown()) + (
            f"\nTotal {total_s:.0f} s; results in {config.out}/"
        )
        emit(args, {**report.to_dict(), "results_file": str(json_path)}, text)
        return 0

    p.set_defaults(handler=handler)
    return p


def _seeds_argument(text: str) -> tuple[int, ...]:
    from labcore.bench import parse_seeds

    try:
        return parse_seeds(text)
    except LabcoreError as exc:  # argparse prints its own message for ArgumentTypeError only
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
        stream=sys.stderr,
    )
    if verbosity <= 1:
        # transformers and friends are chatty at INFO; keep them at WARNING unless -vv.
        for name in ("transformers", "accelerate", "urllib3", "filelock"):
            logging.getLogger(name).setLevel(logging.WARNING)


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print ``payload`` as one JSON document with ``--json``, else the human-readable ``text``.

    The JSON is strict: NaN and infinities are written as ``null``.
    """
    from labcore.io import dumps_json

    if getattr(args, "json", False):
        print(dumps_json(payload, indent=2, default=str))
    elif getattr(args, "quiet", 0) < 2:
        print(text)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand's handler and turn errors into one line.

    Progress bars and status lines (:mod:`labcore.progress`) are on during the handler unless
    ``-q`` was given.
    """
    from labcore.progress import progress_enabled

    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    configure_logging(verbosity)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        with progress_enabled(getattr(args, "quiet", 0) == 0):
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
