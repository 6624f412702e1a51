"""The router configuration (``models.yaml``), shared by the CLI and the Python API.

.. code-block:: yaml

    models:                    # the models to route to
      - name: smollm2-135m
        capacity: 32           # queries per batch it can take (concurrent slots); omit: no limit
        gpus_per_instance: 1   # for `batchroute allocate`
        concurrency: 8         # slots per instance, for `batchroute allocate`
      - name: gemma3-270m
        capacity: 16
    budget_per_query: 40.0     # a batch of n queries may cost n × this (or give `budget`)
    predictor: knn             # knn | logistic: the quality predictor
    table: correctness.csv     # a RouterBench-style table to train it on (see batchroute.data)
    encoder: minilm-l6         # query embeddings: minilm-l6 or tfidf

Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from labcore.errors import LabcoreError

PREDICTOR_NAMES = ("knn", "logistic")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    capacity: float = math.inf
    gpus_per_instance: float = 1.0
    concurrency: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise LabcoreError("a model needs a name")
        for key in ("capacity", "gpus_per_instance", "concurrency"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise LabcoreError(f"model {self.name!r}: {key} must be a number >= 0")


@dataclass(frozen=True)
class RouterConfig:
    models: tuple[ModelSpec, ...]
    budget_per_query: float | None = None
    budget: float | None = None
    predictor: str = "knn"
    table: Path | None = None
    encoder: str = "minilm-l6"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise LabcoreError("the configuration lists no models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise LabcoreError(f"duplicate model names in the configuration: {names}")
        if self.budget is not None and self.budget_per_query is not None:
            raise LabcoreError("give either budget or budget_per_query, not both")
        for key in ("budget", "budget_per_query"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise LabcoreError(f"{key} must be a number >= 0, got {value!r}")
        if self.predictor not in PREDICTOR_NAMES:
            raise LabcoreError(
                f"unknown predictor {self.predictor!r}; choose one of {PREDICTOR_NAMES}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def batch_budget(self, n: int) -> float | None:
        if self.budget is not None:
            return float(self.budget)
        return None if self.budget_per_query is None else float(self.budget_per_query) * n


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate ``models.yaml``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LabcoreError(f"configuration file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LabcoreError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise LabcoreError(f"{path}: expected a mapping with a 'models' list")
    known = {"name", "capacity", "gpus_per_instance", "concurrency"}
    models = []
    for entry in raw["models"]:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise LabcoreError(f"{path}: every model needs a name, got {entry!r}")
        unknown = set(entry) - known
        if unknown:
            raise LabcoreError(
                f"{path}: model {entry['name']!r} has unknown keys {sorted(unknown)}"
            )
        values = {k: (math.inf if v is None else v) for k, v in entry.items() if k != "name"}
        models.append(ModelSpec(name=str(entry["name"]), **values))
    table = raw.get("table")
    if table is not None:
        table = Path(table)
        if not table.is_absolute():
            table = path.parent / table
    top = {"models", "budget_per_query", "budget", "predictor", "table", "encoder"}
    unknown = set(raw) - top
    if unknown:
        raise LabcoreError(f"{path}: unknown keys {sorted(unknown)}")
    return RouterConfig(
        models=tuple(models),
        budget_per_query=raw.get("budget_per_query"),
        budget=raw.get("budget"),
        predictor=raw.get("predictor", "knn"),
        table=table,
        encoder=raw.get("encoder", "minilm-l6"),
    )
