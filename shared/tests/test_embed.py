"""labcore.embed: input checks, unit rows, the TF-IDF fallback's rules, the encoder cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import labcore.embed
import labcore.models
from labcore.embed import TfidfOptions, embed_texts, load_encoder, tfidf_embeddings, unit_rows
from labcore.errors import LabcoreError

QUERIES = [
    "what is the capital of france",
    "capital city of france please",
    "integrate x squared from 0 to 1",
    "compute the integral of x squared",
]


def _wide_texts(n: int, words: int, vocabulary: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = np.array([f"w{i}" for i in range(vocabulary)])
    return [" ".join(rng.choice(pool, size=words)) for _ in range(n)]


class FakeEncoder:
    def __init__(self, out=None):
        self.out = out
        self.calls = 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        if self.out is not None:
            return self.out
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Unit rows.


def test_unit_rows_scales_to_norm_one_and_keeps_zero_rows_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    out = unit_rows(x)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    assert not np.isnan(out).any()


def test_unit_rows_is_bit_identical_to_the_packages_former_division():
    # bpseg and batchroute divided by np.linalg.norm; the results were made with that.
    x = np.random.default_rng(3).normal(size=(40, 384)).astype(np.float32).astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_array_equal(unit_rows(x), x / norms)


# --------------------------------------------------------------------------------------------
# The TF-IDF fallback.


def test_tfidf_rows_are_unit_and_similar_texts_are_close():
    e = embed_texts([*QUERIES, ""], encoder="tfidf")
    assert e.shape[0] == 5
    np.testing.assert_allclose(np.linalg.norm(e[:4], axis=1), 1.0)
    assert np.all(e[4] == 0)  # no words: a zero row, not NaN
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 1]


def test_default_options_count_single_characters_and_reduce_to_n_dims():
    # Words "2", "3", "4" (single characters count): 3 words > 2 texts -> 2 LSA dimensions.
    assert tfidf_embeddings(["2 + 3", "2 + 4"]).shape == (2, 2)
    texts = _wide_texts(300, words=8, vocabulary=400)
    assert tfidf_embeddings(texts).shape == (300, 128)  # min(max_dims=128, n=300)
    assert tfidf_embeddings(texts[:50]).shape == (50, 50)  # min(128, n=50)


def test_dense_vocabulary_keeps_raw_vectors_up_to_the_threshold():
    options = TfidfOptions(dense_vocabulary=4096, max_dims=256)
    texts = _wide_texts(60, words=40, vocabulary=6000)
    dense = tfidf_embeddings(texts, options=options)
    from sklearn.feature_extraction.text import TfidfVectorizer

    raw = TfidfVectorizer(sublinear_tf=True, token_pattern=options.token_pattern)
    expected = raw.fit_transform(texts).toarray()
    assert expected.shape[1] <= 4096  # below the threshold: not reduced
    np.testing.assert_array_equal(dense, expected / np.linalg.norm(expected, axis=1)[:, None])
    wide = tfidf_embeddings(_wide_texts(200, words=60, vocabulary=6000), options=options)
    assert wide.shape == (200, 199)  # above it: min(max_dims, n - 1) dimensions


def test_stop_words_and_no_words_policy():
    zeros = TfidfOptions(stop_words="english", no_words="zeros")
    np.testing.assert_array_equal(tfidf_embeddings(["the a of", "and the"], options=zeros), 0)
    with pytest.raises(LabcoreError, match="no words"):
        tfidf_embeddings(["the a of", "and the"], options=TfidfOptions(stop_words="english"))
    with pytest.raises(LabcoreError, match="no words"):
        embed_texts(["", "  "], encoder="tfidf")


def test_tfidf_is_deterministic():
    texts = _wide_texts(80, words=10, vocabulary=500, seed=1)
    np.testing.assert_array_equal(tfidf_embeddings(texts), tfidf_embeddings(texts))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_dims": 0}, "max_dims must be >= 1"),
        ({"max_dims": 2.5}, "max_dims must be an integer"),
        ({"dense_vocabulary": 0}, "dense_vocabulary"),
        ({"no_words": "skip"}, "no_words must be one of"),
    ],
)
def test_bad_tfidf_options(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        TfidfOptions(**kwargs)


# --------------------------------------------------------------------------------------------
# Encoders.


def test_object_encoder_rows_are_unit():
    enc = FakeEncoder()
    e = embed_texts(["ab", "abcd"], encoder=enc)
    assert enc.calls == 1 and e.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0)
    np.testing.assert_allclose(e[1], np.array([4.0, 1.0, 0.0]) / np.sqrt(17.0))


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (np.ones((3, 4)), r"shape \(3, 4\) for 2 texts"),
        (np.ones(2), "shape"),
        (np.array([[1.0, np.nan], [1.0, 0.0]]), "NaN or infinite"),
    ],
)
def test_bad_encoder_output_raises(out, match):
    with pytest.raises(LabcoreError, match=match):
        embed_texts(["a", "b"], encoder=FakeEncoder(out))


def test_encoder_without_encode_raises():
    with pytest.raises(LabcoreError, match="encode"):
        embed_texts(["a"], encoder=3)


def test_named_encoder_is_loaded_once_per_name_and_device(monkeypatch):
    loads = []

    def fake_load(name, *, device="cpu"):
        loads.append((name, device))
        return FakeEncoder()

    monkeypatch.setattr(labcore.models, "load_sentence_encoder", fake_load)
    load_encoder.cache_clear()
    try:
        a = embed_texts(["ab", "abc"], encoder="some-encoder")
        b = embed_texts(["x"], encoder="some-encoder")
        embed_texts(["x"], encoder="some-encoder", device="cuda")
    finally:
        load_encoder.cache_clear()
    assert loads == [("some-encoder", "cpu"), ("some-encoder", "cuda")]
    assert a.shape == (2, 3) and b.shape == (1, 3)


def test_missing_sentence_transformers_is_a_clear_error(monkeypatch):
    def fake_load(name, *, device="cpu"):
        raise ImportError("No module named 'sentence_transformers'")

    monkeypatch.setattr(labcore.models, "load_sentence_encoder", fake_load)
    load_encoder.cache_clear()
    try:
        with pytest.raises(LabcoreError, match=r"needs sentence-transformers.*tfidf"):
            embed_texts(["a"], encoder="minilm-l6")
    finally:
        load_encoder.cache_clear()


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ("one string", "not one string"),
        (5, "sequence of strings"),
        ([], "no texts to embed"),
        (["a", 3], "text 1 is int"),
    ],
)
def test_bad_texts_raise(texts, match):
    with pytest.raises(LabcoreError, match=match):
        embed_texts(texts, encoder="tfidf")


def test_tfidf_does_not_import_torch():
    code = (
        "import sys\nfrom labcore.embed import embed_texts\n"
        "embed_texts(['a b', 'b c'], encoder='tfidf')\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


@pytest.mark.slow
def test_minilm_rows_are_unit_and_cached():
    pytest.importorskip("sentence_transformers")
    e = embed_texts(QUERIES, encoder="minilm-l6")
    assert e.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-12)
    assert load_encoder("minilm-l6", "cpu") is load_encoder("minilm-l6", "cpu")
    assert labcore.embed.DEFAULT_ENCODER == "minilm-l6"
