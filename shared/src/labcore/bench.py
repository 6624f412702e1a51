"""The benchmark contract every package follows.

One API for every package: the CLI builds a frozen :class:`BenchConfig` once and hands it to the
package's ``run_bench(config) -> BenchReport`` (library code: no argparse inside). The package
declares itself with a :class:`BenchSpec` (which of ``--seeds``, ``--data-root``, ``--device``
it reads, its own extra options); :func:`labcore.cli.add_bench_command` turns that into the
``<name> bench`` subcommand, offering only the flags the package uses.

``<name> bench [--quick] [--out DIR] [--seeds 0,1] [--data-root DIR] [--device D]`` runs a
method and its baselines in one process on the same data and writes, through
:meth:`BenchReport.write`, into ``DIR`` (default: :func:`default_out_dir`, ``bench/results`` or
``bench/results-quick`` under the working folder):

- ``results.json``: every row, validated against :data:`RESULTS_SCHEMA`, with the machine and
  the provenance (git commit and dirty flag, package versions, seeds, quick or full, command);
- ``results.md``: the rows grouped over seeds, each metric as mean ± standard deviation;
- ``summary.md``: the package's own summary tables, when it has any.

Each row is one method at one setting and one seed::

    {"method": "gptq", "params": {"bits": 3}, "dataset": "bbc", "seed": 0,
     "metrics": {"perplexity": 31.2}, "time_s": 41.3, "status": "ok"}

``method`` is the lower-case method name, ``params`` the settings that distinguish rows,
``time_s`` the method's own wall time (compression, training or solving; not evaluation).
Rows that cannot run (missing data, missing optional dependency) are kept with a status
``"skipped: <reason>"`` and ``time_s`` null, never dropped.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError

#: The flags a package may declare it reads (``BenchSpec.uses``); ``--quick``, ``--out``,
#: ``--json``, ``-v`` and ``-q`` are offered to every package's bench.
OPTIONAL_FLAGS = ("seeds", "data_root", "device")

#: The one name of a package's own summary tables in the output folder.
SUMMARY_FILE = "summary.md"

#: Rows of a run still going (or one that died), written by :meth:`BenchReport.save_partial`.
PARTIAL_FILE = "results.partial.json"

_NUMBER = {"type": "number"}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "labcore benchmark results",
    "type": "object",
    "required": ["package", "version", "command", "machine", "config", "provenance", "rows"],
    "additionalProperties": False,
    "properties": {
        "package": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "command": {"type": "string", "minLength": 1},
        "machine": {"type": "object"},
        "config": {"type": "object"},
        "provenance": {
            "type": "object",
            "required": ["git_commit", "git_dirty", "versions", "seeds", "quick", "argv"],
            "properties": {
                "git_commit": {"type": ["string", "null"]},
                "git_dirty": {"type": ["boolean", "null"]},
                "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                "seeds": {"type": "array", "items": {"type": "integer"}},
                "quick": {"type": "boolean"},
                "argv": {"type": "array", "items": {"type": "string"}},
            },
        },
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["method", "params", "dataset", "seed", "metrics", "time_s", "status"],
                "additionalProperties": False,
                "properties": {
                    "method": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.+-]*$"},
                    "params": {"type": "object"},
                    "dataset": {"type": "string", "minLength": 1},
                    "seed": {"type": ["integer", "null"]},
                    "metrics": {
                        "type": "object",
                        "additionalProperties": {"type": ["number", "null"]},
                    },
                    "time_s": {"type": ["number", "null"], "minimum": 0},
                    "status": {"type": "string", "pattern": "^(ok|skipped: .+)$"},
                },
                "if": {"properties": {"status": {"const": "ok"}}},
                "then": {"properties": {"time_s": _NUMBER}},
            },
        },
    },
}


# --------------------------------------------------------------------------------------------
# What a package's bench is given


def default_out_dir(quick: bool) -> Path:
    """The one output-folder rule: ``bench/results-quick`` for ``--quick``, else
    ``bench/results``, under the working folder (run from ``packages/<name>`` in a checkout,
    that is the package's own ``bench/`` folder, where the README's results live)."""
    return Path("bench") / ("results-quick" if quick else "results")


def parse_seeds(text: str | int | Iterable[int]) -> tuple[int, ...]:
    """``"0,1,2"``, one integer or an iterable of integers, as a tuple of distinct non-negative
    seeds.

    >>> parse_seeds("0,1, 2"), parse_seeds(3)
    ((0, 1, 2), (3,))
    """
    if isinstance(text, str):
        parts = [t.strip() for t in text.split(",")]
        if not text.strip() or not all(re.fullmatch(r"-?[0-9]+", t) for t in parts):
            raise LabcoreError(
                f"seeds must be integers separated by commas (e.g. 0,1,2), got {text!r}"
            )
        seeds = tuple(int(t) for t in parts)
    else:
        if isinstance(text, numbers.Integral) and not isinstance(text, bool):
            text = (text,)
        try:
            items = tuple(text)
        except TypeError:
            raise LabcoreError(f"seeds must be integers, got {text!r}") from None
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in items):
            raise LabcoreError(f"seeds must be integers, got {items!r}")
        seeds = tuple(int(s) for s in items)
    if not seeds:
        raise LabcoreError("at least one seed is needed")
    if any(s < 0 for s in seeds):
        raise LabcoreError(f"seeds must be non-negative, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise LabcoreError(f"seeds must be distinct, got {seeds!r}")
    return seeds


@dataclass(frozen=True)
class BenchConfig:
    """Everything a package's ``run_bench`` is told, built once (by the CLI or by the caller).

    Parameters
    ----------
    quick
        The small run (under 10 minutes on 2 CPU cores) instead of the full one.
    seeds
        Every row runs once per seed; tables report mean ± standard deviation over them.
    data_root
        Folder of external data sets; rows that need one are skipped without it.
    device
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    out
        Output folder for the results and any extra files (plots, per-item JSON); ``None``
        means :func:`default_out_dir`.
    options
        The package's own bench options (``BenchSpec.add_arguments``), by argparse ``dest``.

    Examples
    --------
    >>> cfg = BenchConfig(quick=True, seeds=(0, 1))
    >>> cfg.out.as_posix(), cfg.seed
    ('bench/results-quick', 0)
    """

    quick: bool = False
    seeds: tuple[int, ...] = (0,)
    data_root: Path | None = None
    device: str = "auto"
    out: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quick", bool(self.quick))
        object.__setattr__(self, "seeds", parse_seeds(self.seeds))
        if self.data_root is not None:
            root = Path(self.data_root).expanduser()
            if not root.is_dir():
                raise LabcoreError(f"--data-root {root} is not a folder")
            object.__setattr__(self, "data_root", root)
        if not isinstance(self.device, str) or not self.device:
            raise LabcoreError(
                f"device must be a name such as auto, cpu or cuda, got {self.device!r}"
            )
        out = default_out_dir(self.quick) if self.out is None else Path(self.out).expanduser()
        object.__setattr__(self, "out", out)
        object.__setattr__(self, "options", dict(self.options))

    @property
    def seed(self) -> int:
        """The first seed (for setup shared by all seeds, such as a calibration sample)."""
        return self.seeds[0]

    def option(self, name: str, default: Any = None) -> Any:
        """A package option by ``dest`` name (``default`` when not given)."""
        value = self.options.get(name)
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "seeds": list(self.seeds),
            "data_root": None if self.data_root is None else str(self.data_root),
            "device": self.device,
            "out": str(self.out),
            "options": {k: _jsonable(v) for k, v in self.options.items()},
        }


@dataclass(frozen=True)
class BenchSpec:
    """How a package's bench plugs into the shared ``bench`` subcommand.

    Parameters
    ----------
    package, version
        The distribution name and its version.
    run
        ``run_bench(config: BenchConfig) -> BenchReport``.
    help
        One line for ``<name> bench --help``.
    uses
        Which of ``seeds``, ``data_root``, ``device`` the bench reads; only those flags are
        offered (a flag the bench would ignore is not accepted).
    default_seeds
        Seeds without ``--seeds`` (one seed where a run is long).
    quick_seeds
        Seeds without ``--seeds`` for ``--quick``; None means ``default_seeds``.
    add_arguments
        ``f(parser)`` adding the package's own bench options; their values reach ``run`` as
        ``config.options[dest]``.
    """

    package: str
    version: str
    run: Callable[[BenchConfig], BenchReport]
    help: str
    uses: frozenset[str] = frozenset()
    default_seeds: tuple[int, ...] = (0,)
    quick_seeds: tuple[int, ...] | None = None
    add_arguments: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        uses = frozenset(self.uses)
        unknown = uses - set(OPTIONAL_FLAGS)
        if unknown:
            raise LabcoreError(
                f"BenchSpec.uses has unknown flags {sorted(unknown)}; known: {OPTIONAL_FLAGS}"
            )
        object.__setattr__(self, "uses", uses)
        seeds = parse_seeds(self.default_seeds)
        quick = seeds if self.quick_seeds is None else parse_seeds(self.quick_seeds)
        if "seeds" not in uses and (seeds, quick) != ((0,), (0,)):
            raise LabcoreError("seeds other than (0,) need 'seeds' in BenchSpec.uses")
        object.__setattr__(self, "default_seeds", seeds)
        object.__setattr__(self, "quick_seeds", quick)

    def seeds_for(self, quick: bool) -> tuple[int, ...]:
        """The seeds a run uses when ``--seeds`` is not given."""
        return self.quick_seeds if quick else self.default_seeds


# --------------------------------------------------------------------------------------------
# Rows and reports


@dataclass
class Row:
    """One benchmark row (see the module docstring)."""

    method: str
    params: dict[str, Any]
    dataset: str
    seed: int | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    time_s: float | None = None
    status: str = "ok"

    @classmethod
    def skipped(
        cls, method: str, params: dict[str, Any], dataset: str, reason: str, seed: int | None = None
    ) -> Row:
        return cls(
            method=method,
            params=params,
            dataset=dataset,
            seed=seed,
            metrics={},
            time_s=None,
            status=f"skipped: {reason}",
        )


def machine_info() -> dict[str, Any]:
    """What the results were measured on: OS, Python, CPU, memory and, if loaded, torch/CUDA."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name()
    return info


def _git_state(path: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``path``; (None, None) outside one."""
    folder = path if path.is_dir() else path.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (commit or None), bool(dirty)


#: Distributions whose versions every results file records when they are installed.
_RECORDED_DISTRIBUTIONS = (
    "labcore",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "transformers",
    "highspy",
    "numba",
)


def provenance(
    package: str,
    config: BenchConfig,
    *,
    argv: Sequence[str] | None = None,
    source: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Which code made a results file: the git commit of the checkout that ``source`` (the
    package's source folder; found from ``package`` when None) lies in and whether its tracked
    files were modified, the versions of the package and the libraries that shape its numbers,
    the seeds, quick or full, and the command line."""
    from importlib import metadata

    if source is None:
        import importlib.util

        spec = importlib.util.find_spec(package.replace("-", "_"))
        source = spec.origin if spec is not None and spec.origin else os.getcwd()
    commit, dirty = _git_state(Path(source).resolve())
    versions: dict[str, str] = {}
    for name in (package, *_RECORDED_DISTRIBUTIONS):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": versions,
        "seeds": list(config.seeds),
        "quick": config.quick,
        "argv": [str(a) for a in (sys.argv if argv is None else argv)],
        "config": config.to_dict(),
    }


def validate_results(obj: dict[str, Any]) -> None:
    """Raise :class:`LabcoreError` naming the first problem if ``obj`` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(RESULTS_SCHEMA)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise LabcoreError(f"results do not match the schema at {where}: {first.message}")
    for i, row in enumerate(obj["rows"]):
        for name, value in row["metrics"].items():
            if isinstance(value, float) and math.isinf(value):
                raise LabcoreError(f"results row {i} metric {name!r} is infinite")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation, n) of the finite values; std is None for n < 2."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return statistics.fmean(finite), std, len(finite)


def format_mean_std(values: Sequence[float | None]) -> str:
    """``"1.23 ± 0.04"`` over seeds, the plain value for one, ``–`` for none.

    >>> format_mean_std([1.0, 1.2]), format_mean_std([3.5]), format_mean_std([])
    ('1.1 ± 0.1414', '3.5', '–')
    """
    mean, std, _ = mean_std(values)
    if mean is None:
        return "–"
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


def _row_key(r: dict[str, Any]) -> tuple[str, str, str]:
    return r["method"], json.dumps(_jsonable(r["params"]), sort_keys=True), r["dataset"]


def aggregate_rows(rows: Iterable[Row | dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows over seeds: one entry per (method, params, dataset, status kind), in first-seen
    order, with ``seeds``, ``n`` (rows that ran), per-metric value lists and time values."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        r = asdict(row) if isinstance(row, Row) else row
        ok = r["status"] == "ok"
        key = (*_row_key(r), "ok" if ok else r["status"])
        g = groups.setdefault(
            key,
            {
                "method": r["method"],
                "params": r["params"],
                "dataset": r["dataset"],
                "status": r["status"],
                "seeds": [],
                "n": 0,
                "metrics": {},
                "time_s": [],
            },
        )
        g["seeds"].append(r["seed"])
        if ok:
            g["n"] += 1
            g["time_s"].append(r["time_s"])
        for name, value in r["metrics"].items():
            g["metrics"].setdefault(name, []).append(value)
    return list(groups.values())


def markdown_table(rows: list[Row] | list[dict[str, Any]]) -> str:
    """A Markdown table with one line per (method, params, dataset): ``n`` (seeds that ran),
    one column per metric and the time, each as mean ± standard deviation over the seeds."""
    groups = aggregate_rows(rows)
    metric_names: list[str] = []
    for g in groups:
        for name in g["metrics"]:
            if name not in metric_names:
                metric_names.append(name)
    header = ["method", "params", "dataset", "n", *metric_names, "time_s", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for g in groups:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in g["params"].items()) or "–"
        cells = [
            g["method"],
            params,
            g["dataset"],
            str(g["n"]),
            *(format_mean_std(g["metrics"].get(m, [])) for m in metric_names),
            format_mean_std(g["time_s"]),
            g["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def wide_table(
    rows: Iterable[Row],
    *,
    methods: Sequence[str],
    metrics: dict[str, str],
    header: str = "{method} ({metrics} / s)",
    time_format: str = ".2f",
) -> str:
    """A compact Markdown table: one line per dataset, one column per method, each cell the
    means over seeds of ``metrics`` and of the time, joined by `` / ``.

    Only rows with status ``ok`` count; a metric that is None is left out of its mean, and a
    cell with no value shows ``–``. Datasets keep the order of their first row.

    Parameters
    ----------
    rows
        The benchmark rows.
    methods
        The columns, in order.
    metrics
        Metric name → format spec of its mean (e.g. ``{"rel_error": ".3g"}``).
    header
        Column title; ``{method}`` and ``{metrics}`` (the names joined by `` / ``) are filled.
    time_format
        Format spec of the mean time in seconds.

    Examples
    --------
    >>> rows = [Row("a", {}, "d1", s, {"err": 0.1 * (s + 1)}, 2.0) for s in (0, 1)]
    >>> print(wide_table(rows, methods=["a", "b"], metrics={"err": ".2f"}), end="")
    | data | a (err / s) | b (err / s) |
    |---|---|---|
    | d1 | 0.15 / 2.00 | – |
    """
    import numpy as np

    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    datasets: list[str] = []
    for r in rows:
        if r.status != "ok":
            continue
        if r.dataset not in datasets:
            datasets.append(r.dataset)
        cell = cells.setdefault((r.dataset, r.method), {k: [] for k in [*metrics, "time"]})
        for k in metrics:
            if r.metrics.get(k) is not None:
                cell[k].append(r.metrics[k])
        cell["time"].append(r.time_s or 0.0)
    names = " / ".join(metrics)
    lines = [
        "| data | " + " | ".join(header.format(method=m, metrics=names) for m in methods) + " |",
        "|" + "---|" * (len(methods) + 1),
    ]
    for ds in datasets:
        parts = []
        for m in methods:
            c = cells.get((ds, m))
            if c is None:
                parts.append("–")
                continue
            values = [format(np.mean(c[k]), f) if c[k] else "–" for k, f in metrics.items()]
            parts.append(" / ".join([*values, format(np.mean(c["time"]), time_format)]))
        lines.append(f"| {ds} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class BenchReport:
    """All rows of one benchmark run, with what is needed to reproduce it.

    ``summary`` is the package's own Markdown tables (written as ``summary.md``); ``command``
    and ``provenance`` are filled by the ``bench`` subcommand (or by :meth:`stamp`).

    Examples
    --------
    >>> report = BenchReport(package="demo", version="0.1.0", config={"corpus": "bbc"})
    >>> report.add(Row("rtn", {"bits": 3}, "bbc", 0, {"perplexity": 40.1}, 1.2))
    >>> report.add(Row.skipped("gptq", {"bits": 3}, "bbc", "no data"))
    >>> report.stamp(BenchConfig(quick=True), argv=["demo", "bench", "--quick"])
    >>> report.validate()
    """

    package: str
    version: str
    config: dict[str, Any]
    command: str = ""
    rows: list[Row] = field(default_factory=list)
    summary: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def extend(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)

    def stamp(
        self,
        config: BenchConfig,
        *,
        argv: Sequence[str] | None = None,
        total_s: float | None = None,
        before: dict[str, Any] | None = None,
    ) -> None:
        """Record the command line and the provenance of this run; ``before`` is a
        :func:`provenance` taken when the run started (the code that ran is the code of the
        start: edits made while a long run goes on do not mark it modified)."""
        argv = list(sys.argv if argv is None else argv)
        if not self.command:
            # The console script's name, also under `python -m <name>` (argv[0] is then a path
            # to __main__.py).
            self.command = " ".join(shlex.quote(a) for a in [self.package, *argv[1:]])
        self.provenance = (
            dict(before) if before is not None else provenance(self.package, config, argv=argv)
        )
        if total_s is not None:
            self.provenance["total_s"] = round(total_s, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "command": self.command,
            "machine": self.machine,
            "config": _jsonable(self.config),
            "provenance": self.provenance,
            "rows": [asdict(r) for r in self.rows],
        }

    def validate(self) -> None:
        validate_results(self.to_dict())

    def to_markdown(self) -> str:
        m = self.machine
        foot = f"\n`{self.command}` on {m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores"
        foot += f", {m['cuda_device']})" if m.get("cuda_device") else ")"
        p = self.provenance
        if p.get("git_commit"):
            foot += f", commit {p['git_commit'][:12]}" + (
                " (modified)" if p.get("git_dirty") else ""
            )
        if p.get("seeds"):
            foot += f", seeds {','.join(str(s) for s in p['seeds'])}"
        if p.get("total_s") is not None:
            foot += f", {p['total_s']:.0f} s wall"
        return markdown_table(self.rows) + foot + "\n"

    def save_partial(self, out_dir: str | os.PathLike) -> Path:
        """Write the rows so far to ``results.partial.json`` (atomically, not validated), so a
        long run that dies late keeps what it measured; :meth:`write` removes the file."""
        from labcore.io import atomic_write_json

        return atomic_write_json(Path(out_dir) / PARTIAL_FILE, {**self.to_dict(), "partial": True})

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Validate, then write ``results.json``, ``results.md`` and (if there is a summary)
        ``summary.md`` atomically into ``out_dir``."""
        from labcore.io import atomic_write_json, atomic_write_text

        self.machine = {**machine_info(), **self.machine}
        self.validate()
        out = Path(out_dir)
        json_path = atomic_write_json(out / "results.json", self.to_dict())
        md_path = atomic_write_text(out / "results.md", self.to_markdown())
        if self.summary is not None:
            atomic_write_text(out / SUMMARY_FILE, self.summary)
        (out / PARTIAL_FILE).unlink(missing_ok=True)
        return json_path, md_path


# --------------------------------------------------------------------------------------------
# Comparing two runs


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` (or the folder holding one) and check its rows."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise LabcoreError(f"no results file at {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabcoreError(f"{path} is not a JSON results file: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("rows"), list):
        raise LabcoreError(f"{path} is not a benchmark results file (no 'rows' list)")
    # Files written before provenance was recorded still compare; anything else must fit.
    check = {**obj, "provenance": obj.get("provenance") or _EMPTY_PROVENANCE}
    try:
        validate_results(check)
    except LabcoreError as exc:
        raise LabcoreError(f"{path}: {exc}") from None
    return obj


_EMPTY_PROVENANCE = {
    "git_commit": None,
    "git_dirty": None,
    "versions": {},
    "seeds": [],
    "quick": False,
    "argv": [],
}


def compare_results(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Match the rows of two results (grouped over seeds) by method, params and dataset, and
    give each metric and the time as mean in A, mean in B and the ratio B / A."""
    groups_a = {_row_key(g): g for g in aggregate_rows(r for r in a["rows"] if r["status"] == "ok")}
    groups_b = {_row_key(g): g for g in aggregate_rows(r for r in b["rows"] if r["status"] == "ok")}
    out: list[dict[str, Any]] = []
    for key in [*groups_a, *(k for k in groups_b if k not in groups_a)]:
        ga, gb = groups_a.get(key), groups_b.get(key)
        names = list((ga or gb)["metrics"])
        for extra in (gb or ga)["metrics"]:
            if extra not in names:
                names.append(extra)
        entry: dict[str, Any] = {
            "method": key[0],
            "params": (ga or gb)["params"],
            "dataset": key[2],
            "n_a": ga["n"] if ga else 0,
            "n_b": gb["n"] if gb else 0,
            "values": {},
        }
        for name in [*names, "time_s"]:
            va = (ga["time_s"] if name == "time_s" else ga["metrics"].get(name, [])) if ga else []
            vb = (gb["time_s"] if name == "time_s" else gb["metrics"].get(name, [])) if gb else []
            ma, mb = mean_std(va)[0], mean_std(vb)[0]
            ratio = mb / ma if ma not in (None, 0) and mb is not None else None
            entry["values"][name] = {"a": ma, "b": mb, "ratio": ratio}
        out.append(entry)
    return out


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of :func:`compare_results`: one line per row and quantity."""
    header = ["method", "params", "dataset", "n (A/B)", "quantity", "A", "B", "B / A"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()) or "–"
        for name, v in r["values"].items():
            ratio = "–" if v["ratio"] is None else f"{v['ratio']:.3f}"
            lines.append(
                f"| {r['method']} | {params} | {r['dataset']} | {r['n_a']}/{r['n_b']} | {name} "
                f"| {_fmt(v['a'])} | {_fmt(v['b'])} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run a benchmark with one BLAS/OpenMP thread: every method gets the same single core,
    and timings do not swing with oversubscribed threads on a shared machine. A context
    manager, or a decorator: ``@single_threaded_blas()``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
