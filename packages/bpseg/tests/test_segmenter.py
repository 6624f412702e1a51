"""BP-Seg end to end (TF-IDF or planted embeddings: no model download in fast tests)."""

from __future__ import annotations

import itertools
import json

import bpseg
import numpy as np
import pytest
from bpseg import BPSegConfig, build_graph, contiguous_decode, segment, segment_embeddings
from bpseg.cli import main
from sklearn.metrics import adjusted_rand_score

from labcore.errors import LabcoreError

CATS = [
    "The cat purred on the warm windowsill.",
    "Kittens chase yarn while the old cat naps.",
    "A cat grooms its whiskers and paws after dinner.",
    "The kitten meowed until the cat fed it.",
]
STOCKS = [
    "Stock markets fell as investors sold bank shares.",
    "Bond yields rose and shares of banks dropped.",
    "Investors expect interest rates to lift bond markets.",
    "Trading volumes in shares and bonds hit a record.",
]


def alternating_document() -> tuple[list[str], list[int]]:
    sentences = CATS[:2] + STOCKS[:2] + CATS[2:] + STOCKS[2:]
    return sentences, [0, 0, 1, 1, 0, 0, 1, 1]


def planted(blocks, *, dim=16, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    topics = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: max(blocks) + 1]
    labels = np.array(blocks)
    return topics[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def test_two_alternating_topics_are_labelled_exactly():
    sentences, truth = alternating_document()
    seg = segment(sentences, k=2, encoder="tfidf")
    assert adjusted_rand_score(truth, seg.labels) == 1.0
    assert seg.converged
    # Non-contiguous: each topic is one segment holding both of its runs.
    assert [s.indices for s in seg.segments] == [(0, 1, 4, 5), (2, 3, 6, 7)]
    assert seg.boundaries == [2, 4, 6]


@pytest.mark.parametrize("inference", ["sum-product", "max-product", "mean-field"])
def test_planted_returning_topics_are_recovered(inference):
    blocks = [0] * 6 + [1] * 5 + [2] * 6 + [0] * 5 + [1] * 6
    x, truth = planted(blocks, noise=0.15)
    seg = segment_embeddings(x, k=3, inference=inference)
    assert adjusted_rand_score(truth, seg.labels) == 1.0
    assert seg.labels[0] == 0 and seg.marginals.shape == (len(blocks), 3)
    np.testing.assert_array_equal(seg.model_labels, seg.labels)
    # Marginal columns follow the relabelling.
    np.testing.assert_array_equal(seg.marginals.argmax(axis=1), seg.labels)


def test_k_is_chosen_when_not_given():
    x, truth = planted([0] * 8 + [1] * 8 + [2] * 8 + [0] * 8, noise=0.1)
    seg = segment_embeddings(x, k_max=6)
    assert seg.k == 3
    assert set(seg.k_scores) == {2, 3, 4, 5, 6}
    assert adjusted_rand_score(truth, seg.labels) == 1.0


def test_contiguous_output_has_exactly_k_runs():
    x, _ = planted([0] * 6 + [1] * 6 + [0] * 6 + [2] * 6, noise=0.1)
    seg = segment_embeddings(x, k=4, contiguous=True)
    assert seg.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6
    # Each sentence's marginal column is its segment's model label, and is its argmax here.
    np.testing.assert_array_equal(seg.marginals.argmax(axis=1), seg.model_labels)
    assert len(set(seg.model_labels[[0, 12]])) == 1  # the returning topic shares a label
    assert seg.boundaries == [6, 12, 18]
    assert len(seg.segments) == 4
    # The same document, non-contiguous with three labels: the returning topic is one label.
    seg3 = segment_embeddings(x, k=3)
    assert seg3.labels.tolist() == [0] * 6 + [1] * 6 + [0] * 6 + [2] * 6


def brute_force_contiguous(lb, n_segments):
    n, k = lb.shape
    best, best_value = None, -np.inf
    for cuts in itertools.combinations(range(1, n), n_segments - 1):
        edges = [0, *cuts, n]
        for labs in itertools.product(range(k), repeat=n_segments):
            if any(a == b for a, b in itertools.pairwise(labs)):
                continue
            value = sum(
                lb[s:e, lab].sum() for s, e, lab in zip(edges[:-1], edges[1:], labs, strict=True)
            )
            if value > best_value:
                best_value, best = value, edges
    return best, best_value


@pytest.mark.parametrize("seed", range(6))
def test_contiguous_decode_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k, s = 7, 3, 1 + seed % 4
    lb = np.log(rng.dirichlet(np.ones(k), size=n))
    edges, value = brute_force_contiguous(lb, s)
    runs = contiguous_decode(lb, s)
    assert runs.max() == s - 1 and np.all(np.diff(runs) >= 0)
    # Same optimum (the argmax may differ only on exact ties, which random data avoids).
    got = [0, *(np.flatnonzero(np.diff(runs)) + 1).tolist(), n]
    assert got == edges
    assert np.isfinite(value)


def test_graph_is_symmetric_normalised_and_keeps_local_edges():
    x, _ = planted([0] * 10 + [1] * 10, noise=0.3, seed=4)
    cfg = BPSegConfig(coupling=2.5, window=2, neighbors=3)
    w = build_graph(x, cfg).to_dense()
    np.testing.assert_allclose(w, w.T)
    assert np.all(w >= 0) and np.all(np.diag(w) == 0)
    np.testing.assert_allclose(w.sum(axis=1).mean(), 2.5)
    n = len(x)
    sim = np.clip(x @ x.T, 0, None) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    local = [(i, i + d) for d in (1, 2) for i in range(n - d) if sim[i, i + d] > 0]
    assert all(w[i, j] > 0 for i, j in local)
    # Each sentence has at most window*2 local + 3 similar neighbours of its own.
    assert (w > 0).sum(axis=1).min() >= 3
    # Coupling zero: BP reduces to k-means-like soft assignment (no edges).
    assert np.all(build_graph(x, BPSegConfig(coupling=0.0)).to_dense() == 0)


def test_same_seed_same_labels_and_seed_changes_only_the_random_init():
    x, _ = planted([0] * 7 + [1] * 7 + [2] * 7, noise=0.4, seed=9)
    a = segment_embeddings(x, k=3, init="random", seed=5)
    b = segment_embeddings(x, k=3, init="random", seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.marginals, b.marginals)


def test_single_sentence_and_k_one_are_one_segment():
    seg = segment(["Only one sentence here."], encoder="tfidf")
    assert seg.k == 1 and seg.labels.tolist() == [0] and seg.boundaries == []
    seg = segment(CATS, k=1, encoder="tfidf")
    assert seg.labels.tolist() == [0, 0, 0, 0]


def test_bad_input_gives_clear_errors():
    with pytest.raises(LabcoreError, match="no sentences"):
        segment("   \n\n  ", encoder="tfidf")
    with pytest.raises(LabcoreError, match="k=9 segments requested but the text has 4"):
        segment(CATS, k=9, encoder="tfidf")
    with pytest.raises(LabcoreError, match="empty sentence"):
        segment(["A cat.", ""], encoder="tfidf")
    with pytest.raises(LabcoreError, match="NaN"):
        segment_embeddings(np.array([[0.0, np.nan], [1.0, 0.0]]), k=2)
    with pytest.raises(LabcoreError, match="temperature"):
        BPSegConfig(temperature=0)
    with pytest.raises(LabcoreError, match="k must be"):
        BPSegConfig(k=True)
    with pytest.raises(LabcoreError, match="init"):
        BPSegConfig(init="spectral")
    with pytest.raises(LabcoreError, match="3 sentences but 2 embedding rows"):
        segment_embeddings(np.eye(2), k=1, sentences=["a", "b", "c"])
    with pytest.raises(LabcoreError, match="str"):
        bpseg.split_sentences(None)


def test_split_sentences_handles_abbreviations_and_paragraphs():
    text = "Dr. Smith paid $3.50 at 5 p.m. on Monday. Was it late?\n\nHeading without period\nNext."
    assert bpseg.split_sentences(text) == [
        "Dr. Smith paid $3.50 at 5 p.m. on Monday.",
        "Was it late?",
        "Heading without period Next.",
    ]


def test_to_json_round_trips():
    sentences, _ = alternating_document()
    seg = segment(sentences, k=2, encoder="tfidf")
    data = json.loads(seg.to_json())
    assert data["labels"] == seg.labels.tolist() and data["k"] == 2
    assert data["segments"][0]["sentences"][0] == sentences[0]


def test_cli_segment_prints_segments_and_json(tmp_path, capsys):
    sentences, _ = alternating_document()
    doc = tmp_path / "doc.txt"
    doc.write_text(" ".join(sentences))
    assert main(["segment", str(doc), "--k", "2", "--encoder", "tfidf"]) == 0
    out = capsys.readouterr().out
    assert "[segment 0] sentences 0-1, 4-5" in out and "[segment 1] sentences 2-3, 6-7" in out
    out_file = tmp_path / "seg.json"
    code = main(
        ["segment", str(doc), "--k", "2", "--encoder", "tfidf", "--json", "--out", str(out_file)]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["boundaries"] == [2, 4, 6]
    assert json.loads(out_file.read_text())["labels"] == data["labels"]
    assert main(["segment", str(tmp_path / "missing.txt")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["segment", str(doc), "--k", "99", "--encoder", "tfidf"]) == 2
    assert "k=99" in capsys.readouterr().err
