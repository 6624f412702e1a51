from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bpseg import data
from bpseg.data import (
    CHOI_RANGES,
    Document,
    bbc_documents,
    choi_by_range,
    choi_files,
    read_choi,
)
from bpseg.metrics import runs

from labcore.data import TopicCorpus
from labcore.errors import LabcoreError

SEP = "=========="

# ---------------------------------------------------------------------------------------
# Document


def test_document_properties():
    doc = Document("d", ["a", "b", "c", "d", "e"], [np.int64(0), 0, 1, 1, 0])
    assert doc.sentences == ("a", "b", "c", "d", "e")
    assert doc.labels == (0, 0, 1, 1, 0)
    assert all(type(y) is int for y in doc.labels)
    assert (doc.n, doc.k, doc.contiguous) == (5, 2, False)
    assert Document("d", ("a", "b", "c"), (2, 2, 5)).contiguous
    assert Document("d", ("a",), (0,)).k == 1
    with pytest.raises(AttributeError):
        doc.name = "other"


@pytest.mark.parametrize(
    ("sentences", "labels", "message"),
    [
        ((), (), "no sentences"),
        (("a", "b"), (0,), "2 sentences but 1 labels"),
        (("a",), (0.5,), "labels must be integers"),
        (("a",), (True,), "labels must be integers"),
        (("a", 3), (0, 0), "must be a str"),
        ("ab", (0, 0), "sequence of str"),
    ],
)
def test_document_errors(sentences, labels, message):
    with pytest.raises(LabcoreError, match=message):
        Document("d", sentences, labels)


# ---------------------------------------------------------------------------------------
# Choi


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_choi(tmp_path):
    path = write(
        tmp_path / "choi" / "1" / "3-5" / "12.ref",
        f"{SEP}\nFirst sentence .\n  Second one . \n\n{SEP}\nThird .\n{SEP}\n"
        f"Fourth .\nFifth .\n\n{SEP}\n",
    )
    doc = read_choi(path)
    assert doc.name == "1/3-5/12"
    assert doc.sentences == ("First sentence .", "Second one .", "Third .", "Fourth .", "Fifth .")
    assert doc.labels == (0, 0, 1, 2, 2)
    assert (doc.k, doc.n, doc.contiguous) == (3, 5, True)
    assert read_choi(str(path)) == doc


def test_read_choi_windows_line_endings(tmp_path):
    path = tmp_path / "0.ref"
    path.write_bytes(f"{SEP}\r\nA .\r\n{SEP}\r\nB .\r\n{SEP}\r\n".encode())
    doc = read_choi(path)
    assert doc.sentences == ("A .", "B .")
    assert doc.labels == (0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("A .\nB .\n", "no separator lines"),
        (f"{SEP}\n{SEP}\n", "no sentences"),
        (f"{SEP}\nA .\n{SEP}\n{SEP}\nB .\n{SEP}\n", r"0\.ref:4: empty segment"),
        (f"{SEP}\nA .\n{SEP}\n\n{SEP}\n", "empty segment"),
        (f"A .\n{SEP}\nB .\n{SEP}\n", "does not start with"),
        (f"{SEP}\nA .\n{SEP}\nB .\n", r"0\.ref:4: file does not end with"),
        (f"{SEP}=\nA .\n{SEP}=\n", "no separator lines"),
    ],
)
def test_read_choi_malformed(tmp_path, text, message):
    path = write(tmp_path / "0.ref", text)
    with pytest.raises(LabcoreError, match=message):
        read_choi(path)


def test_read_choi_missing(tmp_path):
    with pytest.raises(LabcoreError, match="not found"):
        read_choi(tmp_path / "nope.ref")
    with pytest.raises(LabcoreError, match="not a file"):
        read_choi(tmp_path)


@pytest.fixture
def choi_tree(tmp_path):
    """A miniature copy of the real layout: data/choi/<subset>/<range>/<i>.ref."""
    body = f"{SEP}\nA .\nB .\n{SEP}\nC .\n{SEP}\n"
    for subset in ("1", "2"):
        for rng in CHOI_RANGES:
            for i in (0, 1, 2, 10):
                write(tmp_path / "data" / "choi" / subset / rng / f"{i}.ref", body)
    # Files and folders that are not Choi documents are ignored.
    write(tmp_path / "data" / "choi" / "README.md", "# Choi\n")
    write(tmp_path / "data" / "choi" / "1" / "3-5" / "TestLog.txt", "log\n")
    (tmp_path / "data" / "choi" / "1" / "empty").mkdir()
    return tmp_path / "data"


def test_choi_files(choi_tree):
    files = choi_files(choi_tree)
    assert list(files) == [
        "1/3-11",
        "1/3-5",
        "1/6-8",
        "1/9-11",
        "2/3-11",
        "2/3-5",
        "2/6-8",
        "2/9-11",
    ]
    assert [p.name for p in files["1/3-5"]] == ["0.ref", "1.ref", "2.ref", "10.ref"]
    assert files["2/9-11"][0] == choi_tree / "choi" / "2" / "9-11" / "0.ref"
    # the choi folder itself works as well as the folder containing it
    assert choi_files(choi_tree / "choi") == files
    assert choi_files(str(choi_tree)) == files
    assert read_choi(files["1/6-8"][3]).name == "1/6-8/10"


def test_choi_by_range(choi_tree):
    merged = choi_by_range(choi_tree)
    assert tuple(merged) == CHOI_RANGES
    assert [p.relative_to(choi_tree / "choi").as_posix() for p in merged["3-5"]] == [
        f"{s}/3-5/{i}.ref" for s in ("1", "2") for i in (0, 1, 2, 10)
    ]


def test_choi_by_range_extra_range_last(tmp_path):
    body = f"{SEP}\nA .\n{SEP}\n"
    for name in ("1/3-15/0.ref", "1/9-11/0.ref", "1/3-5/0.ref"):
        write(tmp_path / name, body)
    assert list(choi_by_range(tmp_path)) == ["3-5", "9-11", "3-15"]


def test_choi_files_errors(tmp_path):
    with pytest.raises(LabcoreError, match="not found"):
        choi_files(tmp_path / "missing")
    with pytest.raises(LabcoreError, match=r"no Choi \.ref files found"):
        choi_files(tmp_path)
    write(tmp_path / "choi" / "1" / "3-5" / "notes.txt", "x")
    with pytest.raises(LabcoreError, match=str(tmp_path / "choi")):
        choi_files(tmp_path)
    with pytest.raises(LabcoreError, match="not a folder"):
        choi_files(tmp_path / "choi" / "1" / "3-5" / "notes.txt")


# ---------------------------------------------------------------------------------------
# BBC


@pytest.fixture(scope="module")
def interleaved():
    return bbc_documents(n_docs=8, seed=0)


@pytest.fixture(scope="module")
def contiguous():
    return bbc_documents(n_docs=8, seed=0, interleaved=False)


def run_lengths(labels) -> list[int]:
    return np.bincount(runs(labels)).tolist()


def run_labels(labels) -> list[int]:
    labels = np.asarray(labels)
    return labels[np.r_[0, np.flatnonzero(labels[1:] != labels[:-1]) + 1]].tolist()


def source_articles(doc: Document) -> list[tuple[int, int]]:
    """(topic, number of article sentences) for each label, checking the sentences."""
    corpus = data._bbc()
    found = []
    for a in range(doc.k):
        sentences = tuple(s for s, y in zip(doc.sentences, doc.labels, strict=True) if y == a)
        matches = [
            (topic, data._article_sentences(text))
            for text, topic in zip(corpus.test, corpus.test_labels, strict=True)
            if sentences[0] in " ".join(text.split())
        ]
        # the label's sentences are exactly the first ones of one article
        matches = [(t, s) for t, s in matches if s[: len(sentences)] == sentences]
        assert matches, f"{doc.name}: sentences of label {a} are from no single article"
        topic, article = matches[0]
        # ... and all of its first 18 (max_sentences) sentences are used
        assert len(sentences) == min(len(article), 18)
        found.append((topic, len(article)))
    return found


def test_bbc_deterministic(interleaved, contiguous):
    assert bbc_documents(n_docs=8, seed=0) == interleaved
    assert bbc_documents(n_docs=3, seed=1) != interleaved[:3]
    assert [d.name for d in interleaved[:2]] == ["bbc-interleaved-000", "bbc-interleaved-001"]
    assert contiguous[7].name == "bbc-contiguous-007"


def test_bbc_same_articles_in_both_layouts(interleaved, contiguous):
    for a, b in zip(interleaved, contiguous, strict=True):
        assert sorted(zip(a.labels, a.sentences, strict=True)) == sorted(
            zip(b.labels, b.sentences, strict=True)
        )


def test_bbc_interleaved_layout(interleaved):
    lo, hi = 3, 6
    for doc in interleaved:
        assert set(doc.labels) == {0, 1, 2, 3}
        assert not doc.contiguous
        labels_per_run = run_labels(doc.labels)
        # every article returns: at least two runs each, so more runs than articles
        assert len(labels_per_run) > 4
        assert all(labels_per_run.count(a) >= 2 for a in range(4))
        # each run is one chunk: within the size range, or a merged short tail
        assert all(lo <= m <= lo + hi - 1 for m in run_lengths(doc.labels))
        counts = np.bincount(doc.labels)
        assert counts.min() >= 2 * lo and counts.max() <= 18


def test_bbc_contiguous_layout(contiguous):
    for doc in contiguous:
        assert doc.contiguous
        assert run_labels(doc.labels) == [0, 1, 2, 3]
        assert len(run_lengths(doc.labels)) == 4


def test_bbc_sentences_come_from_distinct_topic_articles(interleaved):
    for doc in interleaved[:4]:
        topics = [topic for topic, _ in source_articles(doc)]
        assert len(set(topics)) == doc.k


def test_bbc_articles_not_reused_until_needed(interleaved):
    # 32 articles drawn from 5 topics of > 60 test articles each: no repeats
    first = [
        next(s for s, y in zip(d.sentences, d.labels, strict=True) if y == a)
        for d in interleaved
        for a in range(d.k)
    ]
    assert len(set(first)) == len(first)


@pytest.mark.parametrize(
    ("n_articles", "chunk_sizes"), [(2, (3, 6)), (3, (3, 6)), (5, (2, 4)), (2, (1, 1))]
)
def test_bbc_interleaving_holds_for_other_settings(n_articles, chunk_sizes):
    lo = chunk_sizes[0]
    docs = bbc_documents(n_docs=6, n_articles=n_articles, chunk_sizes=chunk_sizes, seed=3)
    for doc in docs:
        assert doc.k == n_articles
        labels_per_run = run_labels(doc.labels)
        # runs are maximal, so a run holds a whole number of chunks; all chunks separated
        # means every article needs at least two runs
        assert all(labels_per_run.count(a) >= 2 for a in range(n_articles))
        assert min(run_lengths(doc.labels)) >= lo
        assert np.bincount(doc.labels).max() <= 18


def test_bbc_other_split_and_sizes():
    (doc,) = bbc_documents(n_docs=1, n_articles=3, max_sentences=8, split="train", seed=2)
    assert doc.k == 3
    assert np.bincount(doc.labels).max() <= 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_docs": 0}, "n_docs must be an integer >= 1"),
        ({"n_docs": 1.5}, "n_docs must be an integer"),
        ({"n_docs": 1, "n_articles": 6}, "exceeds the number of BBC topics"),
        ({"n_docs": 1, "n_articles": 1}, "n_articles must be an integer >= 2"),
        ({"n_docs": 1, "chunk_sizes": (4, 3)}, "low <= high"),
        ({"n_docs": 1, "chunk_sizes": (0, 3)}, "chunk_sizes must be an integer >= 1"),
        ({"n_docs": 1, "chunk_sizes": 3}, "pair"),
        ({"n_docs": 1, "chunk_sizes": (1, 2, 3)}, "pair"),
        ({"n_docs": 1, "max_sentences": 5}, r"at least 2 \* chunk_sizes\[0\]"),
        ({"n_docs": 1, "split": "dev"}, "split must be"),
        ({"n_docs": 1, "seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bbc_errors(kwargs, message):
    with pytest.raises(LabcoreError, match=message):
        bbc_documents(**kwargs)


def test_bbc_topic_without_long_enough_articles(monkeypatch):
    short = ("One comes first.", "Two follows.", "Three ends it.")
    long = tuple(f"The {w} item is here." for w in ("first", "second", "third", "fourth", "fifth"))
    corpus = TopicCorpus(
        name="fake",
        topics=("a", "b"),
        train=(),
        train_labels=(),
        test=("Long title\n\n" + " ".join(long), "Short title\n\n" + " ".join(short)),
        test_labels=(0, 1),
    )
    monkeypatch.setattr(data, "_bbc", lambda: corpus)
    (doc,) = bbc_documents(n_docs=1, n_articles=2, chunk_sizes=(1, 2), seed=0)
    # titles dropped, everything else used
    assert sorted(doc.sentences) == sorted(short + long)
    with pytest.raises(LabcoreError, match="topic 'b' has at least 4 sentences"):
        bbc_documents(n_docs=1, n_articles=2, chunk_sizes=(2, 3), seed=0)
    with pytest.raises(LabcoreError, match=r"n_articles \(3\) exceeds .* BBC topics \(2\)"):
        bbc_documents(n_docs=1, n_articles=3, chunk_sizes=(1, 2), seed=0)
