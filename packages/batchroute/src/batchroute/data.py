"""Routing data: per-query correctness and cost of every model, synthetic or from a table.

A :class:`RoutingData` holds, for n queries and M models, the observed correctness
``correct[i, m]`` (0/1, or a score in [0, 1]) and the cost ``cost[i, m]`` of asking model m
query i, with optional query texts, embeddings, token counts, latencies and task labels.

Table format
------------
Tables are "RouterBench-style" wide tables: one row per query, one group of columns per
model. The column names are:

===========================  ========================================================
column                       meaning
===========================  ========================================================
``prompt``                   the query text (optional)
``eval_name``                the task or source the query comes from (optional; loaded
                             as :attr:`RoutingData.groups`)
``sample_id``                an identifier of the query (optional)
``<model>``                  correctness or score of ``<model>`` on the query, in [0, 1]
``<model>|total_cost``       cost of asking ``<model>`` (required for every model)
``<model>|tokens``           output tokens of ``<model>`` (optional; all models or none)
``<model>|latency_s``        latency of ``<model>`` in seconds (optional; all or none)
===========================  ========================================================

Every column without a ``|`` is a model, except the reserved ``prompt``, ``eval_name``,
``sample_id``, ``answer`` (the reference answer, as ``batchroute collect`` writes it) and
``oracle_model_to_route_to``. Columns with any other ``|`` suffix (such
as RouterBench's ``<model>|model_response``) are ignored. Model names therefore cannot
contain ``|`` or be one of the reserved names. Numbers must be finite: a missing value or
NaN is an error (the routers need every model's outcome on every query).

:func:`load_table` reads ``.csv``, ``.csv.gz``, ``.jsonl`` (one JSON object per line, the
column names as keys), ``.jsonl.gz`` and pandas DataFrame pickles (``.pkl``, ``.pickle``,
the form in which RouterBench ships its data). :func:`save_table` writes the same formats.
Only the table's columns are saved: embeddings, true qualities and difficulties (known for
synthetic data only) are not.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.special import expit

from labcore.embed import TfidfOptions, embed_texts
from labcore.errors import LabcoreError
from labcore.io import atomic_write_bytes

__all__ = [
    "BATCH_KINDS",
    "DEFAULT_MODELS",
    "RESERVED_COLUMNS",
    "TABLE_SUFFIXES",
    "RoutingData",
    "batches",
    "builtin_matrix_path",
    "embed_queries",
    "load_builtin",
    "load_table",
    "save_table",
    "synthetic",
]

#: Fictitious models of the synthetic data: (name, size in billions of parameters). The
#: sizes only set the skill and price of each model; no such models are implied to exist.
DEFAULT_MODELS: tuple[tuple[str, float], ...] = (
    ("tiny-0.1b", 0.1),
    ("small-1b", 1.0),
    ("medium-8b", 8.0),
    ("large-70b", 70.0),
    ("xl-400b", 400.0),
)

#: Columns of a table that are not models.
RESERVED_COLUMNS = ("prompt", "eval_name", "sample_id", "answer", "oracle_model_to_route_to")

#: File name endings :func:`load_table` and :func:`save_table` understand.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".pkl", ".pickle")

#: Kinds of batch :func:`batches` draws.
BATCH_KINDS = ("random", "hard", "expensive")

# Fraction of the queries that make up the pool of "hard" and "expensive" batches.
_TAIL_FRACTION = 0.3

# Per-model column suffixes of the table format, and the RoutingData field each fills.
_COST, _TOKENS, _LATENCY = "total_cost", "tokens", "latency_s"


# --------------------------------------------------------------------------------------------
# The data container.


def _float_array(name: str, value, ndim: int, shape: tuple | None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != ndim:
        raise LabcoreError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if shape is not None:
        expected = tuple(s if s is not None else a.shape[k] for k, s in enumerate(shape))
        if a.shape != expected:
            raise LabcoreError(f"{name} has shape {a.shape}, expected {expected}")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise LabcoreError(f"{name} contains {bad} NaN or infinite value(s)")
    return a


def _unit_interval(name: str, a: np.ndarray) -> None:
    if a.size and (a.min() < 0 or a.max() > 1):
        raise LabcoreError(f"{name} must lie in [0, 1], got values in [{a.min():g}, {a.max():g}]")


def _non_negative(name: str, a: np.ndarray) -> None:
    if a.size and a.min() < 0:
        raise LabcoreError(f"{name} must be non-negative, got a minimum of {a.min():g}")


@dataclass(frozen=True, eq=False)
class RoutingData:
    """Per-query outcomes and costs of M models on n queries.

    Arrays are converted to float64 (``groups`` to str) and checked for shape, NaN and
    range. Equality is identity (``eq=False``): arrays have no single truth value.

    Parameters
    ----------
    models : tuple of str
        The M model names (unique).
    correct : array (n, M)
        Observed correctness of model m on query i: 0/1, or a score in [0, 1].
    cost : array (n, M)
        Cost of asking model m query i (≥ 0).
    queries : tuple of str, optional
        The query texts.
    embeddings : array (n, d), optional
        Query embeddings (the predictors' input).
    tokens : array (n, M), optional
        Output tokens of each model on each query (≥ 0).
    latency_s : array (n, M), optional
        Latency in seconds (≥ 0).
    groups : array (n,) of str, optional
        Task or source label of each query.
    true_quality : array (n, M), optional
        The probability that model m answers query i correctly (synthetic data only).
    difficulty : array (n,), optional
        Latent difficulty of each query (synthetic data only; larger is harder).
    sample_ids : tuple of str, optional
        Identifiers of the queries (the table's ``sample_id`` column).

    Examples
    --------
    >>> d = RoutingData(models=("a", "b"), correct=[[0, 1], [1, 1], [0, 0]],
    ...                 cost=[[1, 3], [1, 3], [1, 3]])
    >>> d.n, d.m
    (3, 2)
    >>> d.subset([2, 0]).correct.tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """

    models: tuple[str, ...]
    correct: np.ndarray
    cost: np.ndarray
    queries: tuple[str, ...] | None = None
    embeddings: np.ndarray | None = None
    tokens: np.ndarray | None = None
    latency_s: np.ndarray | None = None
    groups: np.ndarray | None = None
    true_quality: np.ndarray | None = None
    difficulty: np.ndarray | None = None
    sample_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            raise LabcoreError("models must be a sequence of model names, not one string")
        models = tuple(self.models)
        if not models:
            raise LabcoreError("no models: RoutingData needs at least one model")
        if not all(isinstance(name, str) and name for name in models):
            raise LabcoreError(f"model names must be non-empty strings, got {list(models)}")
        if len(set(models)) != len(models):
            raise LabcoreError(f"duplicate model names: {list(models)}")
        m = len(models)
        correct = _float_array("correct", self.correct, 2, (None, m))
        _unit_interval("correct", correct)
        n = correct.shape[0]
        cost = _float_array("cost", self.cost, 2, (n, m))
        _non_negative("cost", cost)
        fields: dict[str, object] = {"models": models, "correct": correct, "cost": cost}
        for name in ("queries", "sample_ids"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str):
                raise LabcoreError(f"{name} must be a sequence of strings, not one string")
            value = tuple(str(v) for v in value)
            if len(value) != n:
                raise LabcoreError(f"{len(value)} {name} for {n} rows")
            fields[name] = value
        if self.embeddings is not None:
            fields["embeddings"] = _float_array("embeddings", self.embeddings, 2, (n, None))
        for name in ("tokens", "latency_s", "true_quality"):
            value = getattr(self, name)
            if value is None:
                continue
            a = _float_array(name, value, 2, (n, m))
            if name == "true_quality":
                _unit_interval(name, a)
            else:
                _non_negative(name, a)
            fields[name] = a
        if self.difficulty is not None:
            fields["difficulty"] = _float_array("difficulty", self.difficulty, 1, (n,))
        if self.groups is not None:
            groups = np.asarray(self.groups).astype(str)
            if groups.shape != (n,):
                raise LabcoreError(f"groups has shape {groups.shape}, expected ({n},)")
            fields["groups"] = groups
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        """Number of queries."""
        return self.correct.shape[0]

    @property
    def m(self) -> int:
        """Number of models."""
        return len(self.models)

    def subset(self, rows) -> RoutingData:
        """The data of queries ``rows`` (integer indices, in that order, or a boolean mask).

        Examples
        --------
        >>> d = synthetic(n=10, seed=1)
        >>> d.subset(np.arange(10) < 4).n
        4
        """
        idx = _row_index(rows, self.n)

        def take(value):
            if value is None:
                return None
            if isinstance(value, tuple):
                return tuple(np.asarray(value, dtype=object)[idx].tolist())
            return value[idx]

        return replace(
            self,
            correct=self.correct[idx],
            cost=self.cost[idx],
            queries=take(self.queries),
            embeddings=take(self.embeddings),
            tokens=take(self.tokens),
            latency_s=take(self.latency_s),
            groups=take(self.groups),
            true_quality=take(self.true_quality),
            difficulty=take(self.difficulty),
            sample_ids=take(self.sample_ids),
        )


def _row_index(rows, n: int) -> np.ndarray:
    """``rows`` as an int64 index array into n rows (a boolean mask must have length n)."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise LabcoreError(f"a boolean row mask must have shape ({n},), got {rows.shape}")
        return np.flatnonzero(rows)
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise LabcoreError(f"rows must be a 1-D array of integer indices, got {rows.dtype}")
    if rows.min() < 0 or rows.max() >= n:
        raise LabcoreError(f"row indices must lie in [0, {n}), got [{rows.min()}, {rows.max()}]")
    return rows.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Synthetic data.


def synthetic(
    *,
    n: int = 2000,
    models: Sequence[tuple[str, float]] = DEFAULT_MODELS,
    n_topics: int = 6,
    dim: int = 32,
    seed: int = 0,
) -> RoutingData:
    """Synthetic routing data from an item-response model.

    Each query i has a difficulty d_i ~ N(0, 1) and a topic t_i (uniform over
    ``n_topics``). Model m of size S_m (billions of parameters) has skill
    s_m = −0.3 + 0.5·log10(S_m) and a topic offset τ_{m,t} ~ N(0, 0.5²), centred over the
    topics so that s_m stays the model's average skill; because of τ the best model
    differs by topic, so routing matters. Then

    * true quality p_im = sigmoid(1.7·(s_m + τ_{m,t_i} − d_i)), correct_im ~ Bernoulli(p_im);
    * output tokens_im = round(150 · v_m · exp(0.35·d_i + ε)), ε ~ N(0, 0.5²), with a
      model verbosity v_m = exp(N(0, 0.25²)) (harder queries get longer answers);
    * cost_im = price_m · tokens_im / 1000 with price_m = 0.002·S_m^0.8 per 1000 tokens
      (units are dollar-like but arbitrary);
    * latency_s_im = 0.1 + tokens_im / (400 / S_m^0.3) (bigger models are slower);
    * embedding_i = unit(W·[d_i, onehot(t_i)] + N(0, 0.3²)) with a random W (dim × (1 +
      n_topics)) drawn once per call, so difficulty and topic, hence quality, can be
      learned from the embeddings.

    Queries are strings ``"q00042 topic 3"``, groups the topic names ``"topic-3"``.
    ``true_quality`` and ``difficulty`` are kept. Everything is drawn from ``seed``, so
    split one dataset (:meth:`RoutingData.subset`) into training and test queries rather
    than drawing two with different seeds (their models would differ).

    Parameters
    ----------
    n : int
        Number of queries.
    models : sequence of (str, float)
        Model names and sizes (default :data:`DEFAULT_MODELS`, fictitious models).
    n_topics : int
        Number of topics.
    dim : int
        Embedding dimension.
    seed : int
        Random seed.

    Examples
    --------
    >>> d = synthetic(n=500, seed=0)
    >>> d.models[0], d.correct.shape, d.embeddings.shape
    ('tiny-0.1b', (500, 5), (500, 32))
    >>> bool(d.correct[:, -1].mean() > d.correct[:, 0].mean())
    True
    """
    for name, value in (("n", n), ("n_topics", n_topics), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
    models = tuple(models)
    if not models:
        raise LabcoreError("models is empty: give (name, size) pairs")
    try:
        names = tuple(str(name) for name, _ in models)
        sizes = np.array([float(size) for _, size in models])
    except (TypeError, ValueError):
        raise LabcoreError(
            f"models must be (name, size) pairs such as ('small-1b', 1.0), got {models!r}"
        ) from None
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise LabcoreError(f"model sizes must be positive numbers, got {sizes.tolist()}")

    rng = np.random.default_rng(seed)
    m = len(names)
    difficulty = rng.standard_normal(n)
    topic = rng.integers(0, n_topics, size=n)
    skill = -0.3 + 0.5 * np.log10(sizes)
    offset = rng.normal(0.0, 0.5, size=(m, n_topics))
    # Centre each model's offsets over the topics: the offsets then reshuffle which model
    # is best per topic without changing the size ordering of the models' average skill.
    offset -= offset.mean(axis=1, keepdims=True)
    true_quality = expit(1.7 * (skill[None, :] + offset[:, topic].T - difficulty[:, None]))
    correct = (rng.random((n, m)) < true_quality).astype(np.float64)

    verbosity = np.exp(rng.normal(0.0, 0.25, size=m))
    log_tokens = np.log(150.0) + 0.35 * difficulty[:, None] + rng.normal(0.0, 0.5, (n, m))
    tokens = np.maximum(np.rint(verbosity[None, :] * np.exp(log_tokens)), 1.0)
    price = 0.002 * sizes**0.8
    cost = price[None, :] * tokens / 1000.0
    latency = 0.1 + tokens / (400.0 / sizes**0.3)[None, :]

    latent = np.column_stack([difficulty, np.eye(n_topics)[topic]])
    weights = rng.standard_normal((latent.shape[1], dim))
    embeddings = latent @ weights + rng.normal(0.0, 0.3, size=(n, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)

    ids = np.char.zfill(np.arange(n).astype(str), 5)
    queries = np.char.add(np.char.add(np.char.add("q", ids), " topic "), topic.astype(str))
    return RoutingData(
        models=names,
        correct=correct,
        cost=cost,
        queries=tuple(queries.tolist()),
        embeddings=embeddings,
        tokens=tokens,
        latency_s=latency,
        groups=np.char.add("topic-", topic.astype(str)),
        true_quality=true_quality,
        difficulty=difficulty,
    )


# --------------------------------------------------------------------------------------------
# Batches.


def batches(
    data_or_n: RoutingData | int,
    *,
    batch_size: int,
    n_batches: int,
    kind: str = "random",
    seed: int = 0,
) -> list[np.ndarray]:
    """Draw batches of query indices.

    Each batch is drawn uniformly without replacement from a pool; different batches are
    drawn independently (they may share queries). The pool depends on ``kind``:

    * ``"random"``: all queries;
    * ``"hard"``: the hardest 30% of the queries, by ``difficulty`` where the data has it,
      otherwise by the lowest mean correctness over the models (adversarial batches);
    * ``"expensive"``: the 30% of the queries with the highest mean cost over the models.

    Parameters
    ----------
    data_or_n : RoutingData or int
        The data, or just the number of queries (``kind="random"`` only).
    batch_size : int
        Queries per batch (at most the pool's size).
    n_batches : int
        Number of batches.
    kind : {"random", "hard", "expensive"}
    seed : int

    Returns
    -------
    list of int64 arrays
        One sorted index array of length ``batch_size`` per batch.

    Examples
    --------
    >>> [b.tolist() for b in batches(10, batch_size=3, n_batches=2, seed=0)]
    [[1, 2, 3], [1, 3, 5]]
    """
    if kind not in BATCH_KINDS:
        raise LabcoreError(f"unknown batch kind {kind!r}; choose one of {BATCH_KINDS}")
    for name, value in (("batch_size", batch_size), ("n_batches", n_batches)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(data_or_n, RoutingData):
        data, n = data_or_n, data_or_n.n
    elif isinstance(data_or_n, int | np.integer) and not isinstance(data_or_n, bool):
        data, n = None, int(data_or_n)
        if n < 1:
            raise LabcoreError(f"the number of queries must be positive, got {n}")
    else:
        raise LabcoreError(f"expected RoutingData or a number of queries, got {data_or_n!r}")

    if kind == "random":
        pool = np.arange(n)
    else:
        if data is None:
            raise LabcoreError(f"{kind!r} batches need the RoutingData, not just a count")
        if kind == "hard":
            hardness = (
                data.difficulty if data.difficulty is not None else -data.correct.mean(axis=1)
            )
        else:
            hardness = data.cost.mean(axis=1)
        size = max(1, int(np.ceil(_TAIL_FRACTION * n)))
        # A stable sort keeps the pool deterministic when scores tie (0/1 correctness does).
        pool = np.argsort(-hardness, kind="stable")[:size]
    if batch_size > pool.size:
        raise LabcoreError(
            f"batch_size {batch_size} exceeds the {pool.size} queries of the {kind!r} pool"
        )
    rng = np.random.default_rng(seed)
    # Sorting independent uniform keys per row is a vectorised draw without replacement.
    picks = np.argsort(rng.random((n_batches, pool.size)), axis=1)[:, :batch_size]
    return [np.sort(pool[row]).astype(np.int64) for row in picks]


# --------------------------------------------------------------------------------------------
# Tables.


def _table_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in (
        (".csv.gz", "csv"),
        (".csv", "csv"),
        (".jsonl.gz", "jsonl"),
        (".jsonl", "jsonl"),
        (".pkl", "pickle"),
        (".pickle", "pickle"),
    ):
        if name.endswith(suffix):
            return kind
    raise LabcoreError(
        f"unsupported table file {path.name!r}: the name must end in one of {TABLE_SUFFIXES}"
    )


def _read_frame(path: Path, kind: str):
    import pandas as pd

    compressed = path.name.lower().endswith(".gz")
    try:
        if kind == "csv":
            # Everything as text, nothing turned into NaN: a prompt reading "NA" stays a
            # prompt, and numbers are parsed below with Python's exact float().
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        if kind == "jsonl":
            opener = gzip.open if compressed else open
            with opener(path, "rt", encoding="utf-8") as fh:
                records = [json.loads(line) for line in fh if line.strip()]
            if not all(isinstance(r, dict) for r in records):
                raise LabcoreError(f"{path}: every line of a .jsonl table must be a JSON object")
            return pd.DataFrame.from_records(records)
        # Unpickling runs code from the file: load only pickles you trust.
        frame = pd.read_pickle(path)
    except LabcoreError:
        raise
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError) as e:
        raise LabcoreError(f"cannot read the table {path}: {e}") from None
    if not isinstance(frame, pd.DataFrame):
        raise LabcoreError(f"{path} holds a {type(frame).__name__}, not a pandas DataFrame")
    return frame


def _numeric_column(frame, column: str, source: str) -> np.ndarray:
    values = frame[column].to_numpy()
    if values.dtype.kind in "biuf":
        out = values.astype(np.float64)
    else:
        values = values.astype(object)
        # Blank cells are missing values: make them NaN so that the NaN check reports them.
        blank = frame[column].astype(str).str.strip().eq("").to_numpy()
        values[blank] = np.nan
        try:
            out = values.astype(np.float64)
        except (TypeError, ValueError):
            for row, v in enumerate(values):  # only to name the bad cell in the error
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise LabcoreError(
                        f"{source}: column {column!r} has a non-numeric value {v!r} in row {row}"
                    ) from None
            raise
    bad = ~np.isfinite(out)
    if bad.any():
        raise LabcoreError(
            f"{source}: column {column!r} has {int(bad.sum())} missing, NaN or infinite "
            f"value(s) (first in row {int(np.flatnonzero(bad)[0])})"
        )
    return out


def _from_frame(frame, source: str) -> RoutingData:
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise LabcoreError(f"{source}: duplicate column names")
    frame = frame.set_axis(columns, axis=1)
    if len(frame) == 0:
        raise LabcoreError(f"{source}: the table has no rows")
    models = [c for c in columns if "|" not in c and c not in RESERVED_COLUMNS]
    if not models:
        raise LabcoreError(
            f"{source}: no model columns (every column without '|' other than "
            f"{', '.join(RESERVED_COLUMNS)} is a model's correctness); columns: {columns}"
        )
    per_model: dict[str, set[str]] = {}
    for c in columns:
        if "|" in c:
            model, suffix = c.rsplit("|", 1)
            per_model.setdefault(suffix, set()).add(model)
    for suffix in (_COST, _TOKENS, _LATENCY):
        orphans = sorted(per_model.get(suffix, set()) - set(models))
        if orphans:
            raise LabcoreError(
                f"{source}: column(s) {[f'{o}|{suffix}' for o in orphans]} have no model "
                f"column {orphans}"
            )
    no_cost = [m for m in models if m not in per_model.get(_COST, set())]
    if no_cost:
        raise LabcoreError(
            f"{source}: model(s) {no_cost} have no cost column "
            f"({', '.join(f'{m}|{_COST}' for m in no_cost)})"
        )

    def matrix(suffix: str | None) -> np.ndarray:
        cols = [m if suffix is None else f"{m}|{suffix}" for m in models]
        return np.column_stack([_numeric_column(frame, c, source) for c in cols])

    optional = {}
    for suffix in (_TOKENS, _LATENCY):
        have = [m for m in models if m in per_model.get(suffix, set())]
        if have and len(have) < len(models):
            missing = [m for m in models if m not in have]
            raise LabcoreError(
                f"{source}: '|{suffix}' columns are given for some models but not for {missing}"
            )
        optional[suffix] = matrix(suffix) if have else None

    def text(column: str) -> tuple[str, ...] | None:
        if column not in columns:
            return None
        return tuple(frame[column].astype(str).tolist())

    correct = matrix(None)
    try:
        return RoutingData(
            models=tuple(models),
            correct=correct,
            cost=matrix(_COST),
            queries=text("prompt"),
            tokens=optional[_TOKENS],
            latency_s=optional[_LATENCY],
            groups=None if "eval_name" not in columns else np.asarray(text("eval_name")),
            sample_ids=text("sample_id"),
        )
    except LabcoreError as e:
        raise LabcoreError(f"{source}: {e}") from None


def load_table(path: str | Path) -> RoutingData:
    """Load a RouterBench-style table (see the module docstring for the format).

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``, ``.pkl`` or ``.pickle`` file.
        Pickles are unpickled, which runs code from the file: load only trusted ones.

    Returns
    -------
    RoutingData
        Models in column order; ``queries`` from ``prompt``, ``groups`` from ``eval_name``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("prompt,a,a|total_cost,b,b|total_cost\\nhi,1,0.5,0,0.1\\n")
    >>> d = load_table(path)
    >>> d.models, d.cost.tolist()
    (('a', 'b'), [[0.5, 0.1]])
    """
    path = Path(path)
    kind = _table_kind(path)
    if not path.is_file():
        raise LabcoreError(f"routing table not found: {path}")
    return _from_frame(_read_frame(path, kind), str(path))


def _to_frame(data: RoutingData):
    import pandas as pd

    for name in data.models:
        if "|" in name or name in RESERVED_COLUMNS:
            raise LabcoreError(
                f"model name {name!r} cannot be saved: names may not contain '|' or be one "
                f"of {RESERVED_COLUMNS}"
            )
    columns: dict[str, object] = {}
    if data.sample_ids is not None:
        columns["sample_id"] = list(data.sample_ids)
    if data.queries is not None:
        columns["prompt"] = list(data.queries)
    if data.groups is not None:
        columns["eval_name"] = data.groups.tolist()
    for j, name in enumerate(data.models):
        columns[name] = data.correct[:, j]
        columns[f"{name}|{_COST}"] = data.cost[:, j]
        if data.tokens is not None:
            columns[f"{name}|{_TOKENS}"] = data.tokens[:, j]
        if data.latency_s is not None:
            columns[f"{name}|{_LATENCY}"] = data.latency_s[:, j]
    return pd.DataFrame(columns)


def save_table(data: RoutingData, path: str | Path) -> Path:
    """Write ``data`` as a RouterBench-style table, atomically.

    The format follows the suffix: ``.csv`` (``.csv.gz`` compressed), ``.jsonl``
    (``.jsonl.gz``) or a pandas DataFrame pickle (``.pkl``, ``.pickle``). Floats are
    written exactly (shortest round-trip form), so :func:`load_table` reads the same
    numbers back. Embeddings, true qualities and difficulties are not saved.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv.gz"
    >>> d = synthetic(n=20, seed=0)
    >>> _ = save_table(d, path)
    >>> bool(np.array_equal(load_table(path).cost, d.cost))
    True
    """
    if not isinstance(data, RoutingData):
        raise LabcoreError(f"save_table expects RoutingData, got {type(data).__name__}")
    path = Path(path)
    kind = _table_kind(path)
    frame = _to_frame(data)
    if kind == "csv":
        payload = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    elif kind == "jsonl":
        # json.dumps writes floats in their exact shortest form (pandas' to_json rounds).
        records = frame.to_dict(orient="records")
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        payload = payload.encode("utf-8")
    else:
        buffer = io.BytesIO()
        frame.to_pickle(buffer)
        payload = buffer.getvalue()
    if path.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: same data, same bytes
    return atomic_write_bytes(path, payload)


def builtin_matrix_path() -> Path:
    """Where the package's built-in correctness matrix lives (it may not exist).

    Examples
    --------
    >>> builtin_matrix_path().name
    'correctness.csv'
    """
    return Path(__file__).parent / "data" / "correctness.csv"


def load_builtin() -> RoutingData:
    """Load the built-in correctness matrix (:func:`builtin_matrix_path`).

    Examples
    --------
    >>> d = load_builtin()  # doctest: +SKIP
    >>> d.m  # doctest: +SKIP
    5
    """
    path = builtin_matrix_path()
    if not path.is_file():
        raise LabcoreError(
            f"the built-in correctness matrix is missing ({path}); this installation does "
            "not ship it. Use synthetic() or load_table() on your own table instead."
        )
    return load_table(path)


# --------------------------------------------------------------------------------------------
# Query embeddings.


#: batchroute's TF-IDF fallback: single characters count as words ("2 + 3"), no stop words,
#: LSA-reduced to min(128, n) dimensions whenever the vocabulary is wider.
TFIDF_OPTIONS = TfidfOptions(token_pattern=r"(?u)\b\w+\b", max_dims=128)


def embed_queries(queries: Sequence[str], *, encoder: str = "minilm-l6") -> np.ndarray:
    """Unit-normalised embeddings of query texts (:func:`labcore.embed.embed_texts`).

    Parameters
    ----------
    queries : sequence of str
    encoder : str
        A sentence encoder name or path for :func:`labcore.load_sentence_encoder` (loaded
        once and cached), or ``"tfidf"``: a light fallback with no model download, tf-idf
        reduced by a truncated SVD to at most 128 dimensions (:data:`TFIDF_OPTIONS`). The tf-idf vocabulary is fitted
        on ``queries`` themselves, so embed training and test queries in one call for their
        embeddings to be comparable.

    Returns
    -------
    array (n, d)
        Float64 rows of unit norm (an empty query under tf-idf gives a zero row).

    Examples
    --------
    >>> e = embed_queries(["what is 2 + 2", "capital of France", "2 + 3 = ?"], encoder="tfidf")
    >>> e.shape[0], bool(np.allclose(np.linalg.norm(e, axis=1), 1))
    (3, True)
    """
    return embed_texts(queries, encoder=encoder, batch_size=64, tfidf=TFIDF_OPTIONS)
