"""Ranking tasks that install offline.

**BBC News** (:func:`bbc_ranking`, from ``labcore.data.load_topics``): each article's first
line is its title, the rest its body. A query is a title; its candidates are its own body
and bodies of other articles (half from the same topic, half from others). Graded
relevance: 2 for the article itself, 1 for a same-topic article, 0 otherwise. Training pairs
come from the training split only (the title with its own body: label 1; with another
body: label 0); evaluation queries from the test split. Bodies of other training
articles come as ``unlabelled`` texts, for MixLM's alignment stage.

**Reasoning** (:func:`reasoning_ranking`, ``--data-root``): problem → worked solution
matching on a GSM8K test file (``reasoning/gsm8k/test.jsonl`` under ``--data-root``): the query is a
problem, its candidates are its own solution (relevance 2) and solutions of other problems;
training pairs and the ``unlabelled`` solutions come from the other half of the problems.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from labcore.checks import positive_int
from labcore.errors import LabcoreError

Pair = tuple[str, str, float]  # query, item text, label in {0, 1}


@dataclass(frozen=True)
class RankingTask:
    name: str
    train_pairs: tuple[Pair, ...]
    queries: tuple[str, ...]
    candidates: tuple[tuple[str, ...], ...]  # per query, the candidate item ids
    relevance: tuple[tuple[int, ...], ...]  # per query, graded relevance of each candidate
    items: dict[str, str]  # item id → text
    unlabelled: tuple[str, ...] = ()  # training-side item texts, for the alignment stage


def _check_sizes(n_train_pairs: int, n_queries: int, n_candidates: int) -> None:
    positive_int("n_train_pairs", n_train_pairs)
    positive_int("n_queries", n_queries)
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 2:
        raise LabcoreError(f"n_candidates must be an integer >= 2, got {n_candidates!r}")


def _split_article(text: str) -> tuple[str, str]:
    lines = [line.strip() for line in text.strip().splitlines()]
    title = lines[0]
    body = " ".join(line for line in lines[1:] if line)
    return title, body


def bbc_ranking(
    *,
    n_train_pairs: int = 400,
    n_queries: int = 50,
    n_candidates: int = 20,
    seed: int = 0,
    validation: bool = False,
    n_unlabelled: int = 1000,
) -> RankingTask:
    """The BBC News ranking task (see the module notes). With ``validation`` the queries and
    candidates come from training-split articles that no training pair uses (for tuning;
    never tune on the test split)."""
    from labcore.data import load_topics

    _check_sizes(n_train_pairs, n_queries, n_candidates)
    corpus = load_topics("bbc")
    rng = random.Random(seed)
    items: dict[str, str] = {}

    def articles(docs, labels, prefix):
        out = []
        for k, (doc, topic) in enumerate(zip(docs, labels, strict=True)):
            title, body = _split_article(doc)
            if title and body:
                item_id = f"{prefix}{k}"
                items[item_id] = body
                out.append((item_id, title, topic))
        return out

    train = articles(corpus.train, corpus.train_labels, "bbc-train-")
    test = articles(corpus.test, corpus.test_labels, "bbc-test-")
    pairs: list[Pair] = []
    used_ids: set[str] = set()
    for item_id, title, _ in rng.sample(train, min(n_train_pairs // 2, len(train))):
        pairs.append((title, items[item_id], 1.0))
        other = rng.choice([a for a in train if a[0] != item_id])
        pairs.append((title, items[other[0]], 0.0))
        used_ids.update((item_id, other[0]))
    rng.shuffle(pairs)
    if validation:
        test = [a for a in train if a[0] not in used_ids]
    queries, candidates, relevance = [], [], []
    for item_id, title, topic in rng.sample(test, min(n_queries, len(test))):
        same = [a for a in test if a[2] == topic and a[0] != item_id]
        diff = [a for a in test if a[2] != topic]
        half = (n_candidates - 1) // 2
        chosen = rng.sample(same, min(half, len(same)))
        chosen += rng.sample(diff, n_candidates - 1 - len(chosen))
        cands = [(item_id, 2)] + [(a[0], 1 if a[2] == topic else 0) for a in chosen]
        rng.shuffle(cands)
        queries.append(title)
        candidates.append(tuple(c for c, _ in cands))
        relevance.append(tuple(r for _, r in cands))
    used = {c for cs in candidates for c in cs}
    unlabelled = [items[a[0]] for a in train if a[0] not in used]
    rng.shuffle(unlabelled)
    return RankingTask(
        "bbc",
        tuple(pairs),
        tuple(queries),
        tuple(candidates),
        tuple(relevance),
        {k: v for k, v in items.items() if k in used},
        tuple(unlabelled[:n_unlabelled]),
    )


def reasoning_ranking(
    data_root: str | Path,
    *,
    n_train_pairs: int = 400,
    n_queries: int = 50,
    n_candidates: int = 20,
    seed: int = 0,
    n_unlabelled: int = 1000,
) -> RankingTask:
    """Problem → solution matching on the GSM8K test problems under ``data_root``."""
    from labcore.tasks import read_gsm8k

    _check_sizes(n_train_pairs, n_queries, n_candidates)
    root = Path(data_root).expanduser()
    files = sorted(root.glob("reasoning/gsm8k/test.jsonl")) or sorted(root.glob("gsm8k/test.jsonl"))
    if not files:
        raise LabcoreError(
            f"no GSM8K file (reasoning/gsm8k/test.jsonl) under {root}: pass the folder that "
            "holds the shared reasoning data with --data-root"
        )
    records = [(p.prompt, p.metadata["solution"]) for p in read_gsm8k(files[0])]
    # Half the problems are the evaluation side, and each query needs n_candidates of them.
    if len(records) < 2 * max(n_candidates, 2):
        raise LabcoreError(
            f"{files[0]} has {len(records)} problems; {2 * n_candidates} are needed for "
            f"{n_candidates} candidates per query"
        )
    rng = random.Random(seed)
    rng.shuffle(records)
    cut = len(records) // 2
    train, test = records[:cut], records[cut:]
    pairs: list[Pair] = []
    for k, (q, a) in enumerate(train[: n_train_pairs // 2]):
        pairs.append((q, a, 1.0))
        pairs.append((q, train[(k + 1 + rng.randrange(len(train) - 1)) % len(train)][1], 0.0))
    items = {f"sol-{k}": a for k, (_, a) in enumerate(test)}
    queries, candidates, relevance = [], [], []
    for k in rng.sample(range(len(test)), min(n_queries, len(test))):
        others = rng.sample([j for j in range(len(test)) if j != k], n_candidates - 1)
        cands = [(f"sol-{k}", 2)] + [(f"sol-{j}", 0) for j in others]
        rng.shuffle(cands)
        queries.append(test[k][0])
        candidates.append(tuple(c for c, _ in cands))
        relevance.append(tuple(r for _, r in cands))
    used = {c for cs in candidates for c in cs}
    return RankingTask(
        "gsm8k",
        tuple(pairs),
        tuple(queries),
        tuple(candidates),
        tuple(relevance),
        {k: v for k, v in items.items() if k in used},
        tuple(a for _, a in train[:n_unlabelled]),
    )


def read_records(path: str | Path, fields: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line, record) pairs of a JSONL file; every record an object whose ``fields`` are
    non-empty strings (``label``: 0 or 1)."""
    from labcore.io import iter_jsonl

    rows = []
    for line, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise LabcoreError(f"{path}: line {line} is not a JSON object")
        missing = [f for f in fields if f not in obj]
        if missing:
            raise LabcoreError(f"{path}: line {line} lacks {missing}")
        for f in fields:
            value = obj[f]
            if f == "label":
                if isinstance(value, bool) or value not in (0, 1):
                    raise LabcoreError(f"{path}: line {line}: labels must be 0 or 1, got {value!r}")
            elif not isinstance(value, str) or not value.strip():
                raise LabcoreError(f"{path}: line {line}: {f!r} must be a non-empty string")
        rows.append((line, obj))
    if not rows:
        raise LabcoreError(f"{path} has no records")
    return rows


def read_items(path: str | Path) -> dict[str, str]:
    """A catalogue of ``{"id", "text"}`` JSONL records: item id → text (ids unique)."""
    items: dict[str, str] = {}
    for line, r in read_records(path, ("id", "text")):
        if r["id"] in items:
            raise LabcoreError(f"{path}: line {line} repeats the item id {r['id']!r}")
        items[r["id"]] = r["text"]
    return items
