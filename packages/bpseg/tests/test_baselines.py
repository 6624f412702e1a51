from __future__ import annotations

import math

import numpy as np
import pytest
from bpseg import baselines
from bpseg.baselines import (
    kmeans_labels,
    similarity_boundaries,
    spectral_labels,
    texttiling,
)
from sklearn.metrics import adjusted_rand_score

from labcore.errors import LabcoreError

FRUIT = [
    "apple",
    "banana",
    "cherry",
    "grape",
    "lemon",
    "mango",
    "melon",
    "orange",
    "peach",
    "pear",
    "plum",
    "kiwi",
]
CARS = [
    "engine",
    "piston",
    "turbine",
    "gearbox",
    "clutch",
    "axle",
    "brake",
    "chassis",
    "throttle",
    "valve",
    "rotor",
    "sprocket",
]


def _sentence(words: list[str], i: int, length: int) -> str:
    # Deterministic rotation through the word list, so consecutive sentences share words.
    return " ".join(words[(5 * i + j) % len(words)] for j in range(length)).capitalize() + "."


def _two_topic_doc(n_first: int = 20, n_second: int = 20, length: int = 10) -> list[str]:
    return [_sentence(FRUIT, i, length) for i in range(n_first)] + [
        _sentence(CARS, i, length) for i in range(n_second)
    ]


def _is_runs(labels: np.ndarray) -> bool:
    steps = np.diff(labels)
    return labels[0] == 0 and bool(np.isin(steps, (0, 1)).all())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _planted(sizes: list[int], pattern: list[int], *, dim: int = 16, noise: float = 0.05):
    """Embeddings of blocks (sizes[i] sentences of topic pattern[i]) around orthogonal centres."""
    rng = np.random.default_rng(7)
    centres = np.eye(dim)[: max(pattern) + 1]
    truth = np.repeat(pattern, sizes)
    x = centres[truth] + noise * rng.standard_normal((truth.size, dim))
    return _unit(x), truth


# --------------------------------------------------------------------------- texttiling


def test_texttiling_true_k_finds_planted_boundary():
    labels = texttiling(_two_topic_doc(), k=2)
    assert labels.dtype == np.int64
    assert labels.shape == (40,)
    assert labels.tolist() == [0] * 20 + [1] * 20


def test_texttiling_uneven_sentence_lengths_map_to_the_right_sentence():
    # Word offsets and sentence indices disagree here, so this checks the gap-to-break mapping.
    doc = [_sentence(FRUIT, i, 5) for i in range(30)] + [_sentence(CARS, i, 15) for i in range(12)]
    labels = texttiling(doc, k=2)
    assert abs(int(np.argmax(labels)) - 30) <= 1


def test_texttiling_auto_k_returns_runs():
    labels = texttiling(_two_topic_doc())
    assert labels.dtype == np.int64
    assert labels.shape == (40,)
    assert _is_runs(labels)
    # The topic change is among TextTiling's own boundaries.
    assert labels[19] != labels[20]


def test_texttiling_k_gives_exactly_k_segments():
    doc = _two_topic_doc()
    for k in (1, 2, 3, 7, 40):
        labels = texttiling(doc, k=k)
        assert _is_runs(labels)
        assert labels.max() == k - 1
    assert texttiling(doc, k=40).tolist() == list(range(40))


def test_texttiling_short_document_does_not_crash():
    doc = ["A short one.", "Another short sentence here.", "And a third."]
    assert texttiling(doc).tolist() == [0, 0, 0]
    # Too short for TextTiling, so the k segments are evenly spaced.
    assert texttiling(doc, k=3).tolist() == [0, 1, 2]
    six = [f"Sentence number {i}." for i in range(6)]
    assert texttiling(six, k=3).tolist() == [0, 0, 1, 1, 2, 2]


def test_texttiling_single_sentence():
    assert texttiling(["Only one sentence here."]).tolist() == [0]
    assert texttiling(["Only one sentence here."], k=1).tolist() == [0]


def test_texttiling_word_count_matches_nltk_tokenisation():
    from nltk.tokenize import TextTilingTokenizer

    doc = [
        "Don't stop-believing: it's 5 p.m. in the U.S.A., café time!",
        "Numbers 123 and x2y vanish; e-mail splits, as does O'Brien.",
        "Tabs\tand\u00a0non-breaking\r\nspaces are collapsed first.",
    ]
    clean = [" ".join(s.split()) for s in doc]
    text = "\n\n".join(clean)
    tiler = TextTilingTokenizer(stopwords=[], w=1000)
    nopunct = "".join(c for c in text.lower() if c in "abcdefghijklmnopqrstuvwxyz-' \n\t")
    (seq,) = tiler._divide_to_tokensequences(nopunct)
    assert sum(baselines._tt_word_count(s) for s in clean) == len(seq.wrdindex_list)


def test_texttiling_gap_count_matches_word_count():
    # nltk makes ceil(words / w) pseudo-sentences; our break positions assume the same words.
    from nltk.tokenize import TextTilingTokenizer
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    doc = _two_topic_doc(length=7)
    words = sum(baselines._tt_word_count(s) for s in doc)
    tiler = TextTilingTokenizer(w=20, stopwords=ENGLISH_STOP_WORDS, demo_mode=True)
    gaps, *_ = tiler.tokenize("\n\n".join(doc))
    assert len(gaps) == math.ceil(words / 20) - 1


def test_texttiling_custom_stopwords_and_options():
    doc = _two_topic_doc()
    labels = texttiling(doc, k=2, stopwords=["apple", "Engine"], w=15, block_size=6)
    # With w=15 the nearest pseudo-sentence gaps sit at words 195 and 210, not at 200, so the
    # boundary can land one sentence off.
    assert _is_runs(labels)
    assert labels.max() == 1
    assert abs(int(np.argmax(labels)) - 20) <= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"k": 41}, "k=41.*n=40"),
        ({"w": 0}, "w must be an integer >= 1"),
        ({"block_size": 0}, "block_size must be an integer >= 1"),
        ({"smoothing_width": -1}, "smoothing_width must be an integer >= 0"),
        ({"stopwords": "the"}, "stopwords"),
    ],
)
def test_texttiling_bad_options(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        texttiling(_two_topic_doc(), **kwargs)


@pytest.mark.parametrize("bad", [[], "a sentence", ["fine", 3], None])
def test_texttiling_bad_sentences(bad):
    with pytest.raises(LabcoreError, match="sentence"):
        texttiling(bad)


# --------------------------------------------------------------------------- depth scores


def test_depth_scores_hand_worked():
    # sims = [0.9, 0.5, 0.7, 0.2, 0.8]
    # gap 0: left peak 0.9 (itself), right: 0.5 < 0.9 stops -> 0.9;  depth 0
    # gap 1: left climbs to 0.9, right climbs to 0.7 (0.2 stops);    depth 0.4 + 0.2 = 0.6
    # gap 2: 0.7 is a local max;                                     depth 0
    # gap 3: left climbs to 0.7 (0.5 stops), right climbs to 0.8;    depth 0.5 + 0.6 = 1.1
    # gap 4: right end, left neighbour 0.2 is lower;                 depth 0
    depth = baselines._depth_scores(np.array([0.9, 0.5, 0.7, 0.2, 0.8]))
    np.testing.assert_allclose(depth, [0.0, 0.6, 0.0, 1.1, 0.0], atol=1e-12)


def test_depth_scores_climb_through_plateaus_and_multi_step_slopes():
    # sims = [1.0, 0.8, 0.8, 0.3, 0.4, 0.6, 0.6, 0.5]
    # gap 3 (0.3): left climbs 0.8, 0.8, 1.0 -> 1.0; right climbs 0.4, 0.6, 0.6 -> 0.6
    #   depth = 0.7 + 0.3 = 1.0
    # gap 1 (0.8): left 1.0, right 0.8 (plateau) then 0.3 stops -> 0.8; depth 0.2
    # gap 7 (0.5): left climbs to 0.6; right end -> 0.5;  depth 0.1
    sims = np.array([1.0, 0.8, 0.8, 0.3, 0.4, 0.6, 0.6, 0.5])
    depth = baselines._depth_scores(sims)
    np.testing.assert_allclose(depth, [0.0, 0.2, 0.2, 1.0, 0.2, 0.0, 0.0, 0.1], atol=1e-12)


def test_depth_scores_matches_loop_reference():
    rng = np.random.default_rng(3)
    sims = np.round(rng.random(200), 1)  # coarse values, so plateaus occur

    def reference(s):
        out = []
        for i, v in enumerate(s):
            lp = v
            for u in s[i::-1]:
                if u < lp:
                    break
                lp = u
            rp = v
            for u in s[i:]:
                if u < rp:
                    break
                rp = u
            out.append(lp + rp - 2 * v)
        return np.array(out)

    np.testing.assert_allclose(baselines._depth_scores(sims), reference(sims), atol=1e-12)
    assert baselines._depth_scores(np.array([])).size == 0


# --------------------------------------------------------------------------- similarity


def test_gap_similarities_match_loop_reference():
    rng = np.random.default_rng(1)
    x = _unit(rng.standard_normal((11, 5)))
    window = 3
    expected = []
    for g in range(1, 11):
        a = x[max(g - window, 0) : g].mean(axis=0)
        b = x[g : g + window].mean(axis=0)
        expected.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    np.testing.assert_allclose(baselines._gap_similarities(x, window), expected, atol=1e-12)


def test_similarity_boundaries_recovers_planted_blocks():
    x, truth = _planted([12, 9, 15], [0, 1, 2])
    labels = similarity_boundaries(x, k=3)
    assert labels.dtype == np.int64
    assert labels.shape == (36,)
    assert labels.tolist() == truth.tolist()
    assert similarity_boundaries(x, k=3, window=1).tolist() == truth.tolist()


def test_similarity_boundaries_edge_cases():
    x, _ = _planted([3, 3], [0, 1])
    assert similarity_boundaries(x, k=1).tolist() == [0] * 6
    assert similarity_boundaries(x, k=6).tolist() == list(range(6))
    assert similarity_boundaries(x[:1], k=1).tolist() == [0]
    # Opposite embeddings make a window mean vanish; that gap counts as dissimilar (0).
    y = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    sims = baselines._gap_similarities(y, 2)
    np.testing.assert_allclose(sims, [-(0.5**0.5), 0.0, 0.5**0.5], atol=1e-12)
    # Depths: gap 1 is 0 + (0.707 + 0.707); gaps 2 and 3 are on the rising slope (0).
    assert similarity_boundaries(y, k=2, window=2).tolist() == [0, 1, 1, 1]


def test_similarity_boundaries_ties_prefer_lower_similarity_then_earlier():
    # Four mutually orthogonal sentences: every gap has similarity 0 and depth 0, a full tie,
    # so the earliest gap wins.
    x = np.eye(4)
    assert similarity_boundaries(x, k=2, window=1).tolist() == [0, 1, 1, 1]


# --------------------------------------------------------------------------- clustering


@pytest.mark.parametrize("method", [kmeans_labels, spectral_labels])
def test_clustering_recovers_alternating_topics(method):
    x, truth = _planted([6, 5, 7, 4, 6, 5], [0, 1, 0, 1, 0, 1])
    labels = method(x, k=2)
    assert labels.dtype == np.int64
    assert labels.shape == truth.shape
    assert adjusted_rand_score(truth, labels) == 1.0


@pytest.mark.parametrize("method", [kmeans_labels, spectral_labels])
def test_clustering_recovers_three_interleaved_topics(method):
    x, truth = _planted([4, 5, 3, 4, 5, 3, 6], [0, 1, 2, 0, 1, 2, 0])
    assert adjusted_rand_score(truth, method(x, k=3, seed=1)) == 1.0


@pytest.mark.parametrize("method", [kmeans_labels, spectral_labels])
def test_clustering_trivial_k(method):
    x, _ = _planted([2, 2], [0, 1])
    assert method(x, k=1).tolist() == [0, 0, 0, 0]
    assert sorted(method(x, k=4).tolist()) == [0, 1, 2, 3]
    assert method(x[:1], k=1).tolist() == [0]


def test_spectral_handles_orthogonal_and_opposite_sentences():
    # Negative and zero cosines are clipped to the floor, so the graph stays connected.
    x = np.array([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0], [-0.99, -0.14]])
    labels = spectral_labels(_unit(x), k=2)
    assert adjusted_rand_score([0, 0, 1, 1], labels) == 1.0


# --------------------------------------------------------------------------- validation


ALL_EMBEDDING_METHODS = [similarity_boundaries, kmeans_labels, spectral_labels]


@pytest.mark.parametrize("method", ALL_EMBEDDING_METHODS)
def test_k_greater_than_n_raises(method):
    x, _ = _planted([2, 2], [0, 1])
    with pytest.raises(LabcoreError, match=r"k=5.*n=4"):
        method(x, k=5)


@pytest.mark.parametrize("method", ALL_EMBEDDING_METHODS)
@pytest.mark.parametrize("k", [0, -1, 1.5, "2", True])
def test_bad_k_raises(method, k):
    x, _ = _planted([2, 2], [0, 1])
    with pytest.raises(LabcoreError, match="k must"):
        method(x, k=k)


@pytest.mark.parametrize("method", ALL_EMBEDDING_METHODS)
def test_numpy_integer_k_is_accepted(method):
    x, _ = _planted([3, 3], [0, 1])
    assert method(x, k=np.int64(2)).shape == (6,)


@pytest.mark.parametrize("method", ALL_EMBEDDING_METHODS)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([[1.0, 0.0], [np.nan, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, 0.0], [np.inf, 1.0]]), "NaN or infinite"),
        (np.ones(3), "2-dimensional"),
        (np.ones((2, 2, 2)), "2-dimensional"),
        (np.ones((0, 3)), r"empty \(shape \(0, 3\)\)"),
        (np.ones((3, 0)), r"empty \(shape \(3, 0\)\)"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_embeddings_raise(method, bad, match):
    with pytest.raises(LabcoreError, match=match):
        method(bad, k=1)


def test_bad_window_and_seed_raise():
    x, _ = _planted([3, 3], [0, 1])
    with pytest.raises(LabcoreError, match="window must be an integer >= 1"):
        similarity_boundaries(x, k=2, window=0)
    with pytest.raises(LabcoreError, match="seed must be an integer >= 0"):
        kmeans_labels(x, k=2, seed=-1)
    with pytest.raises(LabcoreError, match="n_init must be an integer >= 1"):
        kmeans_labels(x, k=2, n_init=0)
    with pytest.raises(LabcoreError, match="seed must be an integer"):
        spectral_labels(x, k=2, seed=0.5)
