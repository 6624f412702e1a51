import json

import numpy as np
import pytest
import torch

from labcore import LabcoreError
from labcore.data import (
    calibration_windows,
    evaluation_windows,
    load_corpus,
    load_topics,
    split_documents,
)
from labcore.models import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def bbc():
    return load_corpus("bbc")


def test_bbc_split_shares_no_article(bbc):
    assert len(bbc.train) > 1500 and len(bbc.test) > 250
    assert not set(bbc.train) & set(bbc.test)
    assert bbc.disjoint
    # About the requested fraction of the unique articles is held out.
    share = len(bbc.test) / (len(bbc.train) + len(bbc.test))
    assert 0.15 < share < 0.25


def test_split_is_deterministic_and_order_free():
    docs = [f"document number {i} " * 5 for i in range(200)]
    a = split_documents(docs, test_fraction=0.3)
    b = split_documents(list(reversed(docs)), test_fraction=0.3)
    assert set(a[0]) == set(b[0]) and set(a[1]) == set(b[1])


def test_duplicates_never_straddle_the_split():
    docs = [f"article {i}" for i in range(100)]
    docs = docs + docs[:50]  # verbatim copies, as in the raw BBC corpus
    train, test = split_documents(docs, test_fraction=0.5)
    assert not set(train) & set(test)
    assert len(train) + len(test) == 100


def test_calibration_windows_deterministic_per_seed(tok, bbc):
    a = calibration_windows(tok, bbc.train[:50], n=6, seqlen=32, seed=3)
    b = calibration_windows(tok, bbc.train[:50], n=6, seqlen=32, seed=3)
    c = calibration_windows(tok, bbc.train[:50], n=6, seqlen=32, seed=4)
    assert a.dtype == torch.long and a.shape == (6, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a[:, 0] == tok.bos_token_id).all()


def test_evaluation_windows_are_consecutive_and_disjoint(tok):
    docs = ["alpha beta gamma delta " * 40, "epsilon zeta eta theta " * 40]
    w = evaluation_windows(tok, docs, seqlen=17)
    stream = tok("\n\n".join(docs), add_special_tokens=False)["input_ids"]
    body = w[:, 1:].reshape(-1).tolist()  # BOS stripped: 16 text tokens per window
    assert body == stream[: len(body)]
    assert len(stream) - len(body) < 16  # only a partial window is left over


def test_evaluation_subset_is_seeded_and_ordered(tok):
    docs = ["word " * 2000]
    full = evaluation_windows(tok, docs, seqlen=16)
    a = evaluation_windows(tok, docs, seqlen=16, max_windows=5, seed=1)
    b = evaluation_windows(tok, docs, seqlen=16, max_windows=5, seed=1)
    assert torch.equal(a, b) and a.shape == (5, 16)
    rows = {tuple(r) for r in full.tolist()}
    assert all(tuple(r) in rows for r in a.tolist())


def test_no_bos_tokenizer_uses_full_window():
    class NoBos:
        bos_token_id = None

        def __call__(self, text, add_special_tokens=False, verbose=False):
            return {"input_ids": [ord(c) for c in text]}

    w = evaluation_windows(NoBos(), ["abcdefgh" * 4], seqlen=8)
    assert w.shape == (4, 8) and w[0].tolist() == [ord(c) for c in "abcdefgh"]


def test_txt_corpus_splits_on_blank_lines(tmp_path):
    f = tmp_path / "docs.txt"
    f.write_text("first doc\nstill first\n\n\nsecond doc\n\n  \nthird doc\n")
    c = load_corpus(str(f))
    assert c.test == ("first doc\nstill first", "second doc", "third doc")
    assert not c.disjoint  # used whole for evaluation


def test_jsonl_corpus_text_field(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join(json.dumps({"body": f"doc {i}"}) for i in range(40)) + "\n")
    c = load_corpus(str(f), text_field="body", split=True)
    assert c.disjoint and not set(c.train) & set(c.test)
    assert len(c.train) + len(c.test) == 40
    with pytest.raises(LabcoreError, match="no field 'text'"):
        load_corpus(str(f))


def test_missing_corpus_file_names_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(LabcoreError, match=r"corpus file not found: .*nope\.txt"):
        load_corpus(str(missing))


def test_empty_corpus_file_names_path(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(LabcoreError, match=r"corpus file is empty: .*empty\.txt"):
        load_corpus(str(empty))


def test_too_little_text_for_a_window(tok):
    with pytest.raises(LabcoreError, match="fewer than one window"):
        evaluation_windows(tok, ["hi"], seqlen=64)


def test_bad_fraction():
    with pytest.raises(LabcoreError, match="test_fraction"):
        split_documents(["a", "b"], test_fraction=1.0)


def test_windows_tokens_in_vocab(tok, bbc):
    w = calibration_windows(tok, bbc.train[:20], n=4, seqlen=64, seed=0)
    assert int(w.max()) < len(tok) and int(w.min()) >= 0
    assert np.isfinite(w.numpy()).all()


def test_bbc_topics_match_the_corpus_split(bbc):
    topics = load_topics("bbc")
    assert topics.topics == ("business", "entertainment", "politics", "sports", "tech")
    assert set(topics.train) <= set(bbc.train) and set(topics.test) <= set(bbc.test)
    assert len(topics.train) == len(topics.train_labels) > 1500
    assert len(topics.test) == len(topics.test_labels) > 300
    # Every topic appears on both sides of the split.
    assert set(topics.train_labels) == set(topics.test_labels) == set(range(5))


def test_unknown_topic_corpus():
    with pytest.raises(LabcoreError, match="unknown topic corpus"):
        load_topics("wiki")
