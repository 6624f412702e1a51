"""Baseline segmenters to compare BP-Seg against.

Every baseline returns one ``int64`` label per sentence. The contiguous methods
(:func:`texttiling`, :func:`similarity_boundaries`) return run ids ``0, 0, ..., 1, 1, ...``;
the clustering methods (:func:`kmeans_labels`, :func:`spectral_labels`) return cluster ids,
which need not form contiguous runs.

``embeddings`` arguments are ``(n, d)`` float arrays of unit-normalised sentence embeddings,
one row per sentence.

References
----------
Hearst, M. A. (1997). TextTiling: Segmenting text into multi-paragraph subtopic passages.
Computational Linguistics, 23(1), 33-64.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from labcore.checks import finite_array, positive_int
from labcore.errors import LabcoreError

__all__ = ["kmeans_labels", "similarity_boundaries", "spectral_labels", "texttiling"]

# nltk's TextTiling keeps only these characters (after lowercasing) before it cuts the text
# into words with ``\w+``; counting words the same way lets us locate every sentence break in
# nltk's word stream without relying on its character-offset bookkeeping.
_TT_DROP = re.compile(r"[^a-z\-' \n\t]")
_TT_WORD = re.compile(r"\w+")
# Keeps the affinity graph connected, so the spectral embedding is well defined even when
# some sentences are orthogonal (or opposite) to all others.
_AFFINITY_FLOOR = 1e-6


# --------------------------------------------------------------------------- validation


def _check_k(k: object, n: int) -> int:
    k = positive_int("k", k)
    if k > n:
        raise LabcoreError(f"k={k} segments requested but the document has only n={n} sentences")
    return k


def _check_sentences(sentences: object) -> list[str]:
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise LabcoreError(f"sentences must be a sequence of str, got {type(sentences).__name__}")
    out = list(sentences)
    if not out:
        raise LabcoreError("sentences is empty: need at least one sentence")
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise LabcoreError(f"sentences[{i}] must be a str, got {type(s).__name__}")
    return out


def _check_stopwords(stopwords: Iterable[str] | None) -> frozenset[str]:
    if stopwords is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)
    if isinstance(stopwords, str):
        raise LabcoreError("stopwords must be a collection of words, not a single str")
    words = list(stopwords)
    for w in words:
        if not isinstance(w, str):
            raise LabcoreError(f"stopwords must contain str, got {type(w).__name__}")
    # nltk compares lowercased tokens with the list as given.
    return frozenset(w.lower() for w in words)


# --------------------------------------------------------------------------- helpers


def _runs_from_boundaries(n: int, starts: Iterable[int]) -> np.ndarray:
    """Run ids for ``n`` sentences where each index in ``starts`` opens a new run."""
    flags = np.zeros(n, dtype=np.int64)
    idx = np.fromiter(starts, dtype=np.int64)
    flags[idx] = 1
    flags[0] = 0
    return np.cumsum(flags, dtype=np.int64)


def _evenly_spaced(n: int, k: int) -> list[int]:
    # With k <= n the starts are distinct and lie in 1..n-1.
    return [(i * n) // k for i in range(1, k)]


def _fill_by_splitting(n: int, starts: list[int], k: int) -> list[int]:
    """Add starts until there are ``k - 1``, each halving the longest segment (earliest on ties)."""
    chosen = sorted(set(starts))
    edges = [0, *chosen, n]
    heap = [(-(b - a), a, b) for a, b in itertools.pairwise(edges)]
    heapq.heapify(heap)
    while len(chosen) < k - 1:
        neg_len, a, b = heapq.heappop(heap)
        mid = a + (-neg_len) // 2
        chosen.append(mid)
        heapq.heappush(heap, (-(mid - a), a, mid))
        heapq.heappush(heap, (-(b - mid), mid, b))
    return sorted(chosen)


def _depth_scores(sims: np.ndarray) -> np.ndarray:
    """Hearst's depth score of every gap in a similarity curve.

    From each gap the curve is climbed to the left while the similarity does not decrease, and
    likewise to the right; the depth is ``(left peak - sim) + (right peak - sim)``. Plateaus are
    climbed through (``>=``), as in nltk's TextTiling.

    Parameters
    ----------
    sims : numpy.ndarray
        1-D similarity per gap.

    Returns
    -------
    numpy.ndarray
        Non-negative depth per gap (same length as ``sims``).

    Examples
    --------
    >>> _depth_scores(np.array([0.9, 0.5, 0.7, 0.2, 0.8])).round(2).tolist()
    [0.0, 0.6, 0.0, 1.1, 0.0]
    """
    s = np.asarray(sims, dtype=np.float64)
    m = s.size
    if m == 0:
        return s.copy()
    idx = np.arange(m)
    # A leftward climb from i stops at the nearest j <= i whose left neighbour is lower
    # (or at 0); the values along the climb never decrease, so the peak is s at that stop.
    stop_left = np.ones(m, dtype=bool)
    stop_left[1:] = s[:-1] < s[1:]
    left_peak = s[np.maximum.accumulate(np.where(stop_left, idx, 0))]
    stop_right = np.ones(m, dtype=bool)
    stop_right[:-1] = s[1:] < s[:-1]
    right_stop = np.minimum.accumulate(np.where(stop_right, idx, m - 1)[::-1])[::-1]
    right_peak = s[right_stop]
    return (left_peak - s) + (right_peak - s)


def _gap_similarities(x: np.ndarray, window: int) -> np.ndarray:
    """Cosine similarity of the mean embeddings of up to ``window`` sentences either side of
    each gap ``g = 1..n-1`` (between sentences ``g-1`` and ``g``)."""
    n = x.shape[0]
    csum = np.zeros((n + 1, x.shape[1]), dtype=np.float64)
    np.cumsum(x, axis=0, out=csum[1:])
    g = np.arange(1, n)
    lo = np.maximum(g - window, 0)
    hi = np.minimum(g + window, n)
    left = (csum[g] - csum[lo]) / (g - lo)[:, None]
    right = (csum[hi] - csum[g]) / (hi - g)[:, None]
    dot = np.einsum("ij,ij->i", left, right)
    norm = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    # Window means can cancel to zero (opposite embeddings); call such a gap dissimilar.
    return np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)


def _tt_word_count(sentence: str) -> int:
    return len(_TT_WORD.findall(_TT_DROP.sub("", sentence.lower())))


def _nearest_breaks(positions: np.ndarray, break_pos: np.ndarray) -> np.ndarray:
    """Index (into ``break_pos``, sorted ascending) of the break nearest each position;
    ties and duplicate break positions resolve to the earliest break."""
    right = np.searchsorted(break_pos, positions, side="left")
    right_c = np.minimum(right, break_pos.size - 1)
    left_c = np.maximum(right - 1, 0)
    take_left = (right > 0) & (
        (right == break_pos.size)
        | (positions - break_pos[left_c] <= break_pos[right_c] - positions)
    )
    best = np.where(take_left, left_c, right_c)
    # Zero-word sentences repeat a break position; use the first break with that position.
    return np.searchsorted(break_pos, break_pos[best], side="left")


# --------------------------------------------------------------------------- baselines


def texttiling(
    sentences: Sequence[str],
    *,
    k: int | None = None,
    stopwords: Iterable[str] | None = None,
    w: int = 20,
    block_size: int = 10,
    smoothing_width: int = 2,
) -> np.ndarray:
    """TextTiling (Hearst, 1997) via :class:`nltk.tokenize.TextTilingTokenizer`.

    TextTiling only places boundaries at paragraph breaks, and benchmark documents (e.g.
    Choi's) have none, so every sentence is given its own paragraph: the sentences are joined
    with ``"\\n\\n"``. nltk scores the gaps between pseudo-sentences of ``w`` words; each gap
    is mapped to the nearest sentence break (by word position in nltk's own tokenisation).

    Parameters
    ----------
    sentences : sequence of str
        The document, one sentence per item (``n >= 1``).
    k : int, optional
        Number of segments. ``None`` lets TextTiling choose (its depth-score cutoff). When
        given, the ``k - 1`` distinct sentence breaks with the largest depth scores become
        boundaries; if TextTiling yields fewer positive-depth breaks than that, the longest
        segments are halved until there are ``k`` segments.
    stopwords : iterable of str, optional
        Words ignored when comparing blocks. Defaults to scikit-learn's
        ``ENGLISH_STOP_WORDS`` (nltk's own default needs an ``nltk_data`` download).
    w : int, default 20
        Pseudo-sentence size in words.
    block_size : int, default 10
        Block size (in pseudo-sentences) for block comparison (nltk's ``k``).
    smoothing_width : int, default 2
        Width of the moving-average smoothing of the gap scores.

    Returns
    -------
    numpy.ndarray
        ``int64`` run ids ``0, 0, ..., 1, 1, ...`` of length ``n``.

    Notes
    -----
    Documents too short for TextTiling (nltk raises, or every depth score is zero) give a
    single segment when ``k`` is None, and ``k`` evenly spaced segments when ``k`` is given.

    Examples
    --------
    >>> fruit = "apple banana cherry grape lemon mango melon orange".split()
    >>> cars = "engine piston turbine gearbox clutch axle brake rotor".split()
    >>> doc = [" ".join(fruit[i % 3 :] + fruit[: i % 3]) for i in range(20)]
    >>> doc += [" ".join(cars[i % 3 :] + cars[: i % 3]) for i in range(20)]
    >>> labels = texttiling(doc, k=2)
    >>> int(labels.argmax())
    20
    """
    from nltk.tokenize import TextTilingTokenizer

    sents = _check_sentences(sentences)
    n = len(sents)
    if k is not None:
        k = _check_k(k, n)
    stop = _check_stopwords(stopwords)
    w = positive_int("w", w)
    block_size = positive_int("block_size", block_size)
    smoothing_width = positive_int("smoothing_width", smoothing_width, minimum=0)
    if n == 1 or k == 1:
        return np.zeros(n, dtype=np.int64)

    # Whitespace inside a sentence must not add paragraph breaks, and nltk drops characters
    # such as "\r" or "\xa0", which would glue the words around them together.
    clean = [" ".join(s.split()) for s in sents]
    text = "\n\n".join(clean)
    if len(text) > TextTilingTokenizer.MAX_TEXT_LEN:
        raise LabcoreError(
            f"document has {len(text)} characters, more than nltk TextTiling accepts "
            f"({TextTilingTokenizer.MAX_TEXT_LEN})"
        )
    counts = np.array([_tt_word_count(s) for s in clean], dtype=np.int64)
    # break_pos[j] is the word offset at which sentence j + 1 starts.
    break_pos = np.cumsum(counts)[:-1]

    tiler = TextTilingTokenizer(
        w=w,
        k=block_size,
        stopwords=stop,
        smoothing_width=smoothing_width,
        demo_mode=True,
    )
    try:
        _, _, depth, flags = tiler.tokenize(text)
    except (ValueError, ZeroDivisionError):
        # Too few words: no paragraph break survives nltk's 100-character minimum, or too
        # few pseudo-sentences to smooth or score.
        depth, flags = [], []
    depth = np.asarray(depth, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool)
    # Gap i of nltk lies between pseudo-sentences i and i + 1, i.e. after word (i + 1) * w.
    gap_pos = (np.arange(depth.size, dtype=np.int64) + 1) * w
    gap_break = _nearest_breaks(gap_pos, break_pos) + 1 if depth.size else gap_pos

    if k is None:
        return _runs_from_boundaries(n, np.unique(gap_break[flags]))

    positive = np.flatnonzero(depth > 0)
    if positive.size == 0:
        return _runs_from_boundaries(n, _evenly_spaced(n, k))
    order = positive[np.lexsort((positive, -depth[positive]))]
    ranked = gap_break[order]
    _, first = np.unique(ranked, return_index=True)
    starts = ranked[np.sort(first)][: k - 1].tolist()
    return _runs_from_boundaries(n, _fill_by_splitting(n, starts, k))


def similarity_boundaries(embeddings: np.ndarray, *, k: int, window: int = 3) -> np.ndarray:
    """Contiguous segmentation at the deepest dips of embedding similarity.

    TextTiling on embeddings: gap ``g`` (between sentences ``g - 1`` and ``g``) is scored by the
    cosine similarity of the mean embedding of the up-to-``window`` sentences before it and of
    the up-to-``window`` sentences after it. Each gap's Hearst depth score is
    ``(left peak - sim) + (right peak - sim)``, where a peak is reached by climbing the
    similarity curve while it does not decrease. The ``k - 1`` deepest gaps become boundaries
    (ties: lower similarity first, then the earlier gap).

    Parameters
    ----------
    embeddings : numpy.ndarray
        ``(n, d)`` unit-normalised sentence embeddings.
    k : int
        Number of segments, ``1 <= k <= n``.
    window : int, default 3
        Sentences averaged on each side of a gap.

    Returns
    -------
    numpy.ndarray
        ``int64`` run ids ``0, 0, ..., 1, 1, ...`` of length ``n``.

    Examples
    --------
    >>> x = np.repeat(np.eye(3), [4, 3, 5], axis=0)
    >>> similarity_boundaries(x, k=3).tolist()
    [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    """
    x = finite_array("embeddings", embeddings, ndim=2)
    n = x.shape[0]
    k = _check_k(k, n)
    window = positive_int("window", window)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    sims = _gap_similarities(x, window)
    depth = _depth_scores(sims)
    order = np.lexsort((np.arange(sims.size), sims, -depth))
    return _runs_from_boundaries(n, np.sort(order[: k - 1]) + 1)


def kmeans_labels(embeddings: np.ndarray, *, k: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster sentences with k-means (:class:`sklearn.cluster.KMeans`).

    Parameters
    ----------
    embeddings : numpy.ndarray
        ``(n, d)`` unit-normalised sentence embeddings.
    k : int
        Number of clusters, ``1 <= k <= n``.
    seed : int, default 0
        Random state of the centroid initialisation.
    n_init : int, default 10
        Number of restarts; the best inertia wins.

    Returns
    -------
    numpy.ndarray
        ``int64`` cluster id per sentence (not necessarily contiguous runs).

    Examples
    --------
    >>> x = np.repeat(np.eye(2), 3, axis=0)[[0, 3, 1, 4, 2, 5]]
    >>> labels = kmeans_labels(x, k=2)
    >>> bool((labels[::2] == labels[0]).all() and (labels[1::2] != labels[0]).all())
    True
    """
    from sklearn.cluster import KMeans

    x = finite_array("embeddings", embeddings, ndim=2)
    n = x.shape[0]
    k = _check_k(k, n)
    seed = positive_int("seed", seed, minimum=0)
    n_init = positive_int("n_init", n_init)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return model.fit_predict(x).astype(np.int64)


def spectral_labels(embeddings: np.ndarray, *, k: int, seed: int = 0) -> np.ndarray:
    """Cluster sentences by spectral clustering of their cosine-similarity graph.

    The affinity is the cosine similarity clipped to ``[0, 1]`` with a tiny positive floor,
    which keeps the graph connected; labels are assigned by :class:`sklearn.cluster.
    SpectralClustering` with ``assign_labels="cluster_qr"`` (deterministic given the
    embedding).

    Parameters
    ----------
    embeddings : numpy.ndarray
        ``(n, d)`` unit-normalised sentence embeddings.
    k : int
        Number of clusters, ``1 <= k <= n``.
    seed : int, default 0
        Random state of the eigensolver.

    Returns
    -------
    numpy.ndarray
        ``int64`` cluster id per sentence (not necessarily contiguous runs).

    Examples
    --------
    >>> x = np.repeat(np.eye(2), 3, axis=0)[[0, 3, 1, 4, 2, 5]]
    >>> labels = spectral_labels(x, k=2)
    >>> bool((labels[::2] == labels[0]).all() and (labels[1::2] != labels[0]).all())
    True
    """
    from sklearn.cluster import SpectralClustering

    x = finite_array("embeddings", embeddings, ndim=2)
    n = x.shape[0]
    k = _check_k(k, n)
    seed = positive_int("seed", seed, minimum=0)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if k == n:
        # One sentence per cluster is the only partition; the eigensolver would need k < n.
        return np.arange(n, dtype=np.int64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # Cosine, not the raw dot product, so slightly non-unit inputs still give weights <= 1.
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    affinity = np.clip(unit @ unit.T, _AFFINITY_FLOOR, 1.0)
    affinity = 0.5 * (affinity + affinity.T)
    np.fill_diagonal(affinity, 1.0)
    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", assign_labels="cluster_qr", random_state=seed
    )
    return model.fit_predict(affinity).astype(np.int64)
