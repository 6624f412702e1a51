"""The benchmark contract every package follows.

``<name> bench [--quick] [--out DIR] [--data-root DIR]`` runs a method and its baselines in one
process on the same data and writes ``DIR/results.json`` (validated against
:data:`RESULTS_SCHEMA`) and ``DIR/results.md`` (the table that goes into the package README).

Each row is one method at one setting::

    {"method": "gptq", "params": {"bits": 3}, "dataset": "bbc", "seed": 0,
     "metrics": {"perplexity": 31.2}, "time_s": 41.3, "status": "ok"}

``method`` is the lower-case method name, ``params`` the settings that distinguish rows,
``time_s`` the method's own wall time (compression, training or solving; not evaluation).
Rows that cannot run (missing data, missing optional dependency) are kept with a status
``"skipped: <reason>"`` and ``time_s`` null, never dropped.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError

_NUMBER = {"type": "number"}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "labcore benchmark results",
    "type": "object",
    "required": ["package", "version", "command", "machine", "config", "rows"],
    "additionalProperties": False,
    "properties": {
        "package": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "command": {"type": "string", "minLength": 1},
        "machine": {"type": "object"},
        "config": {"type": "object"},
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


def markdown_table(rows: list[Row] | list[dict[str, Any]]) -> str:
    """A Markdown table: method, params, dataset, seed, one column per metric, time, status."""
    dicts = [asdict(r) if isinstance(r, Row) else r for r in rows]
    metric_names: list[str] = []
    for r in dicts:
        for name in r["metrics"]:
            if name not in metric_names:
                metric_names.append(name)
    header = ["method", "params", "dataset", "seed", *metric_names, "time_s", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in dicts:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()) or "–"
        cells = [
            r["method"],
            params,
            r["dataset"],
            _fmt(r["seed"]),
            *(_fmt(r["metrics"].get(m)) for m in metric_names),
            _fmt(r["time_s"]),
            r["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class BenchReport:
    """All rows of one benchmark run, with what is needed to reproduce it.

    Examples
    --------
    >>> report = BenchReport(package="demo", version="0.1.0", command="demo bench --quick",
    ...                      config={"quick": True})
    >>> report.add(Row("rtn", {"bits": 3}, "bbc", 0, {"perplexity": 40.1}, 1.2))
    >>> report.add(Row.skipped("gptq", {"bits": 3}, "bbc", "no data"))
    >>> report.validate()
    """

    package: str
    version: str
    command: str
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "command": self.command,
            "machine": self.machine,
            "config": self.config,
            "rows": [asdict(r) for r in self.rows],
        }

    def validate(self) -> None:
        validate_results(self.to_dict())

    def to_markdown(self) -> str:
        m = self.machine
        foot = f"\n`{self.command}` on {m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores"
        foot += f", {m['cuda_device']})" if m.get("cuda_device") else ")"
        return markdown_table(self.rows) + foot + "\n"

    def write(self, out_dir: str | os.PathLike, *, tables: str | None = None) -> tuple[Path, Path]:
        """Validate, then write ``results.json`` and ``results.md`` atomically, and the
        package's own summary ``tables`` (if given) as ``tables.md``."""
        from labcore.io import atomic_write_json, atomic_write_text

        self.machine = {**machine_info(), **self.machine}
        self.validate()
        out = Path(out_dir)
        json_path = atomic_write_json(out / "results.json", self.to_dict())
        md_path = atomic_write_text(out / "results.md", self.to_markdown())
        if tables is not None:
            atomic_write_text(out / "tables.md", tables)
        return json_path, md_path


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run a benchmark with one BLAS/OpenMP thread: every method gets the same single core,
    and timings do not swing with oversubscribed threads on a shared machine. A context
    manager, or a decorator: ``@single_threaded_blas()``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
