"""BP-Seg: segment sentences by loopy belief propagation on a Potts model over embeddings.

The model (our reconstruction; the paper's exact potentials are not public, see the README):

* node potential   φ_i(l)    = exp(cos(R_i, c_l) / T)        similarity to segment l's
                                                              representative c_l
* edge potential   ψ_ij(l,l') = exp(w_ij · 1[l = l'])
                   w_ij       = λ · max(cos(R_i, R_j), 0) · exp(−(|i−j| − 1)/γ) / Z

  on the edges of a sparse graph: every pair within ``window`` sentences with a positive
  similarity (local coherence), plus each sentence's ``neighbors`` strongest couplings
  anywhere in the document (similar sentences; the distance decay favours nearby ones, and
  γ = None ranks them by similarity alone). ``Z`` is the mean over sentences of Σ_j of the unscaled
  weights, so λ is the average total pull of a sentence's neighbours relative to its own
  evidence, whatever the document length. ``γ = None`` means no distance decay.

Loopy BP gives marginals b_i(l); the labels are their argmax. The representatives start
from k-means centres (or random sentences, ``init="random"``) and are re-estimated from the
marginals, EM-style, until the labels stop changing. Contiguous output decodes exactly k
contiguous segments from the marginals by dynamic programming.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bpseg.bp import INFERENCE_METHODS, MEAN_FIELD, SUM_PRODUCT, PottsGraph, belief_propagation
from labcore.checks import finite_array
from labcore.embed import unit_rows
from labcore.errors import LabcoreError

INIT_METHODS = ("kmeans", "random")


@dataclass(frozen=True)
class BPSegConfig:
    """Settings of BP-Seg, shared by the Python API and the CLI.

    Parameters
    ----------
    k : int or None
        Number of segments (labels). ``None`` chooses it in ``[2, k_max]`` by the mean
        silhouette of the labelling (cosine distance).
    k_max : int
        Largest k tried when ``k`` is None.
    temperature : float
        T in the node potentials: a cosine difference of T is one nat of evidence.
    coupling : float
        λ: the average total coupling of a sentence to its neighbours.
    decay : float or None
        γ, the distance (in sentences) over which a coupling falls by e; None = no decay.
    window : int
        Sentences closer than this are always linked (local coherence).
    neighbors : int or None
        Each sentence is also linked to its ``neighbors`` most similar sentences anywhere in
        the document; ``None`` links all pairs (dense; O(n²k) per BP iteration).
    inference : {"sum-product", "max-product", "mean-field"}
    damping, max_iter, tol
        Loopy BP settings (see :func:`bpseg.bp.belief_propagation`). When BP has not
        converged after ``max_iter`` iterations, the labels come from mean field instead and
        the result says so.
    em_iter : int
        Rounds of representative re-estimation (1 = BP once from the initial
        representatives).
    init : {"kmeans", "random"}
        Initial representatives: k-means centres, or k random sentences (the paper's
        summary).
    contiguous : bool
        Decode exactly k contiguous segments (ordinary boundaries) instead of the
        non-contiguous labelling.
    seed : int
    encoder : str
        Sentence encoder used when text is given: ``"minilm-l6"`` or ``"tfidf"`` (or a
        sentence-transformers name/folder).
    """

    k: int | None = None
    k_max: int = 12
    temperature: float = 0.1
    coupling: float = 4.0
    decay: float | None = 10.0
    window: int = 2
    neighbors: int | None = 5
    inference: str = SUM_PRODUCT
    damping: float = 0.5
    max_iter: int = 100
    tol: float = 1e-4
    em_iter: int = 10
    init: str = "kmeans"
    contiguous: bool = False
    seed: int = 0
    encoder: str = "minilm-l6"

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise LabcoreError(f"BPSegConfig: {msg}")

        if self.k is not None and (
            isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1
        ):
            bad(f"k must be a positive integer or None, got {self.k!r}")
        if self.k_max < 2:
            bad(f"k_max must be at least 2, got {self.k_max}")
        if not self.temperature > 0:
            bad(f"temperature must be positive, got {self.temperature}")
        if not (np.isfinite(self.coupling) and self.coupling >= 0):
            bad(f"coupling must be finite and non-negative, got {self.coupling}")
        if self.decay is not None and not self.decay > 0:
            bad(f"decay must be positive or None, got {self.decay}")
        if self.window < 0:
            bad(f"window must be non-negative, got {self.window}")
        if self.neighbors is not None and self.neighbors < 0:
            bad(f"neighbors must be non-negative or None, got {self.neighbors}")
        if self.inference not in INFERENCE_METHODS:
            bad(f"inference must be one of {INFERENCE_METHODS}, got {self.inference!r}")
        if not 0 <= self.damping < 1:
            bad(f"damping must lie in [0, 1), got {self.damping}")
        if self.max_iter < 1 or not self.tol > 0:
            bad(f"need max_iter >= 1 and tol > 0, got {self.max_iter}, {self.tol}")
        if self.em_iter < 1:
            bad(f"em_iter must be at least 1, got {self.em_iter}")
        if self.init not in INIT_METHODS:
            bad(f"init must be one of {INIT_METHODS}, got {self.init!r}")


@dataclass(frozen=True)
class Segment:
    """One segment: its label and the indices (and text) of its sentences, in order."""

    label: int
    indices: tuple[int, ...]
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment`.

    ``labels[i]`` is sentence i's segment. Non-contiguous output groups all sentences of a
    label into one segment (a topic that returns is one segment); contiguous output has one
    segment per run. ``boundaries`` are the sentence indices where a new run starts.

    ``marginals`` are the model's beliefs over its k labels and ``model_labels[i]`` is the
    column that sentence i was given: equal to ``labels`` for non-contiguous output; for
    contiguous output, the label of the sentence's segment (two segments may share one).
    ``k`` is the number of labels of the model; a labelling may use fewer (``n_labels``).
    ``converged`` tells whether the inference that produced the labels converged;
    ``inference == "mean-field"`` means loopy BP did not and mean field was used instead.
    """

    sentences: tuple[str, ...]
    labels: np.ndarray
    marginals: np.ndarray
    model_labels: np.ndarray
    k: int
    contiguous: bool
    converged: bool
    inference: str
    iterations: int
    em_rounds: int
    k_scores: dict[int, float] = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return int(np.unique(self.labels).size)

    @property
    def boundaries(self) -> list[int]:
        return (np.flatnonzero(np.diff(self.labels) != 0) + 1).tolist()

    @property
    def segments(self) -> list[Segment]:
        labels = self.labels
        if self.contiguous:
            starts = [0, *self.boundaries]
            ends = [*self.boundaries, len(labels)]
            groups = [range(s, e) for s, e in zip(starts, ends, strict=True)]
        else:
            order = {}
            for i, lab in enumerate(labels.tolist()):
                order.setdefault(lab, []).append(i)
            groups = list(order.values())
        return [
            Segment(
                label=int(labels[g[0]]),
                indices=tuple(g),
                sentences=tuple(self.sentences[i] for i in g),
            )
            for g in groups
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "n_labels": self.n_labels,
            "contiguous": self.contiguous,
            "labels": self.labels.tolist(),
            "model_labels": self.model_labels.tolist(),
            "boundaries": self.boundaries,
            "segments": [asdict(s) for s in self.segments],
            "converged": self.converged,
            "inference": self.inference,
            "iterations": self.iterations,
            "em_rounds": self.em_rounds,
            "k_scores": {str(k): v for k, v in self.k_scores.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# --------------------------------------------------------------------------------------------
# The graphical model


def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """Checked embeddings with unit rows (a zero row stays zero)."""
    return unit_rows(finite_array("embeddings", embeddings, ndim=2))


def build_graph(embeddings: np.ndarray, config: BPSegConfig) -> PottsGraph:
    """The Potts couplings w_ij of BP-Seg (see the module docstring)."""
    x = _check_embeddings(embeddings)
    n = x.shape[0]
    if n == 1:
        return PottsGraph(n=1, src=np.zeros(0), dst=np.zeros(0), weight=np.zeros(0))
    sim = np.clip(x @ x.T, 0.0, None)
    gap = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    if config.decay is not None:
        sim = sim * np.exp(-(np.maximum(gap, 1) - 1) / config.decay)
    np.fill_diagonal(sim, 0.0)
    if config.neighbors is None:
        keep = np.ones((n, n), dtype=bool)
    else:
        keep = (gap > 0) & (gap <= config.window)
        m = min(config.neighbors, n - 1)
        if m > 0:
            top = np.argpartition(-sim, m - 1, axis=1)[:, :m]
            keep[np.repeat(np.arange(n), m), top.ravel()] = True
        keep |= keep.T
    np.fill_diagonal(keep, False)
    weights = np.where(keep, sim, 0.0)
    scale = weights.sum(axis=1).mean()
    if scale > 0:
        weights *= config.coupling / scale
    return PottsGraph.from_dense(weights)


def _kmeans_centres(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x).cluster_centers_


def _initial_representatives(x: np.ndarray, k: int, config: BPSegConfig) -> np.ndarray:
    if config.init == "kmeans":
        centres = _kmeans_centres(x, k, config.seed)
    else:
        rng = np.random.default_rng(config.seed)
        centres = x[rng.choice(x.shape[0], size=k, replace=False)]
    return _check_embeddings(centres)


def _infer(theta: np.ndarray, graph: PottsGraph, config: BPSegConfig):
    result = belief_propagation(
        theta,
        graph,
        method=config.inference,
        damping=config.damping,
        max_iter=config.max_iter,
        tol=config.tol,
    )
    if not result.converged and config.inference != MEAN_FIELD:
        fallback = belief_propagation(
            theta,
            graph,
            method=MEAN_FIELD,
            damping=config.damping,
            max_iter=config.max_iter,
            tol=config.tol,
        )
        return replace(fallback, iterations=result.iterations + fallback.iterations)
    return result


def contiguous_decode(
    log_beliefs: np.ndarray, n_segments: int, *, return_labels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exactly ``n_segments`` contiguous segments maximising Σ_i log b_i(l_i).

    Each segment carries one label and adjacent segments carry different labels; the
    returned array numbers the segments 0..n_segments-1 in order. With ``return_labels``, the
    label (column of ``log_beliefs``) of each sentence's segment is returned too. Dynamic
    programming over (sentence, segments used, label): O(n · n_segments · k).

    Examples
    --------
    >>> lb = np.log([[.9, .1], [.8, .2], [.3, .7], [.9, .1]])
    >>> contiguous_decode(lb, 2).tolist()
    [0, 0, 1, 1]
    """
    lb = np.asarray(log_beliefs, dtype=np.float64)
    n, k = lb.shape
    if not 1 <= n_segments <= n:
        raise LabcoreError(f"cannot make {n_segments} contiguous segments of {n} sentences")
    if n_segments > 1 and k < 2:
        raise LabcoreError("contiguous decoding into several segments needs k >= 2 labels")
    s_count = n_segments
    neg = -np.inf
    value = np.full((s_count, k), neg)
    value[0] = lb[0]
    switched = np.zeros((n, s_count, k), dtype=bool)
    came_from = np.zeros((n, s_count, k), dtype=np.int64)
    labels_idx = np.arange(k)
    for i in range(1, n):
        # Best predecessor with a different label: the best label, or the runner-up where
        # the best is the same label.
        order = np.argsort(-value, axis=1)[:, :2] if k > 1 else np.zeros((s_count, 1), int)
        best = order[:, 0]
        second = order[:, 1] if k > 1 else best
        prev_label = np.where(best[:, None] == labels_idx[None, :], second[:, None], best[:, None])
        prev_value = np.take_along_axis(value, prev_label, axis=1)
        if k == 1:
            prev_value = np.full_like(prev_value, neg)
        new_seg = np.full((s_count, k), neg)
        new_seg[1:] = prev_value[:-1]
        from_new = new_seg > value
        value = np.where(from_new, new_seg, value) + lb[i]
        switched[i] = from_new
        came_from[i, 1:] = prev_label[:-1]
    if not np.isfinite(value[-1]).any():
        raise LabcoreError(f"cannot make {n_segments} contiguous segments of {n} sentences")
    lab = int(np.argmax(value[-1]))
    seg = s_count - 1
    out = np.empty(n, dtype=np.int64)
    chosen = np.empty(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        out[i] = seg
        chosen[i] = lab
        if i > 0 and switched[i, seg, lab]:
            lab, seg = int(came_from[i, seg, lab]), seg - 1
    return (out, chosen) if return_labels else out


def _relabel_by_first_occurrence(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    mapping = np.empty(labels.max() + 1, dtype=np.int64)
    mapping[np.unique(labels)[order]] = np.arange(order.size)
    return mapping[labels]


def _fit_k(x: np.ndarray, k: int, graph: PottsGraph, config: BPSegConfig):
    centres = _initial_representatives(x, k, config)
    labels = None
    result = None
    rounds = 0
    for rounds in range(1, config.em_iter + 1):  # noqa: B007 - reported
        theta = (x @ centres.T) / config.temperature
        result = _infer(theta, graph, config)
        new_labels = result.beliefs.argmax(axis=1)
        mass = result.beliefs.sum(axis=0)
        weighted = result.beliefs.T @ x
        # A label that lost all its sentences keeps its old representative.
        centres = np.where(mass[:, None] > 1e-9, weighted, centres)
        centres = _check_embeddings(centres)
        if labels is not None and np.array_equal(new_labels, labels):
            labels = new_labels
            break
        labels = new_labels
    return labels, result, rounds


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if np.unique(labels).size < 2 or np.unique(labels).size >= x.shape[0]:
        return -1.0
    return float(silhouette_score(x, labels, metric="cosine"))


def segment_embeddings(
    embeddings: np.ndarray,
    *,
    config: BPSegConfig | None = None,
    sentences: Sequence[str] | None = None,
    **overrides: Any,
) -> Segmentation:
    """BP-Seg on precomputed sentence embeddings (rows in document order).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> topics = np.eye(8)[:2]
    >>> x = topics[[0] * 5 + [1] * 5 + [0] * 5] + 0.05 * rng.normal(size=(15, 8))
    >>> segment_embeddings(x, k=2).labels.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    """
    config = replace(config or BPSegConfig(), **overrides)
    x = _check_embeddings(embeddings)
    n = x.shape[0]
    if sentences is None:
        sentences = tuple(f"sentence {i}" for i in range(n))
    sentences = tuple(sentences)
    if len(sentences) != n:
        raise LabcoreError(f"{len(sentences)} sentences but {n} embedding rows")
    if config.k is not None and config.k > n:
        raise LabcoreError(f"k={config.k} segments requested but the text has {n} sentences")
    graph = build_graph(x, config)

    if n == 1 or config.k == 1:
        labels = np.zeros(n, dtype=np.int64)
        return Segmentation(
            sentences,
            labels,
            np.ones((n, 1)),
            labels,
            1,
            config.contiguous,
            True,
            config.inference,
            0,
            0,
        )

    k_scores: dict[int, float] = {}
    if config.k is None:
        # Distinct labels need distinct sentences; silhouette needs k < n.
        candidates = range(2, min(config.k_max, n - 1) + 1)
        if not candidates:
            candidates = range(2, 3)
        fits = {}
        for k in candidates:
            labels, result, rounds = _fit_k(x, k, graph, config)
            decoded = (
                contiguous_decode(np.log(result.beliefs + 1e-300), k)
                if (config.contiguous)
                else labels
            )
            k_scores[k] = _silhouette(x, decoded)
            fits[k] = (labels, result, rounds)
        k = max(k_scores, key=lambda c: (k_scores[c], -c))
        labels, result, rounds = fits[k]
    else:
        k = config.k
        labels, result, rounds = _fit_k(x, k, graph, config)

    if config.contiguous:
        labels, model_labels = contiguous_decode(
            np.log(result.beliefs + 1e-300), k, return_labels=True
        )
        marginals = result.beliefs
    else:
        labels = _relabel_by_first_occurrence(labels)
        # Columns follow the relabelling so that marginals[:, labels[i]] is sentence i's.
        old = np.unique(result.beliefs.argmax(axis=1), return_index=True)
        order = old[0][np.argsort(old[1])]
        rest = np.setdiff1d(np.arange(k), order)
        marginals = result.beliefs[:, np.concatenate([order, rest])]
        model_labels = labels
    return Segmentation(
        sentences=sentences,
        labels=labels.astype(np.int64),
        marginals=marginals,
        model_labels=np.asarray(model_labels, dtype=np.int64),
        k=k,
        contiguous=config.contiguous,
        converged=result.converged,
        inference=result.method,
        iterations=result.iterations,
        em_rounds=rounds,
        k_scores=k_scores,
    )


def segment(
    text: str | Sequence[str],
    k: int | None = None,
    *,
    config: BPSegConfig | None = None,
    encoder: Any = None,
    **overrides: Any,
) -> Segmentation:
    """Segment a text (or a list of sentences) with BP-Seg.

    Parameters
    ----------
    text : str or sequence of str
        A document (split into sentences with :func:`bpseg.text.split_sentences`) or its
        sentences.
    k : int, optional
        Number of segments; chosen by silhouette when omitted.
    config : BPSegConfig, optional
        All settings; keyword ``overrides`` replace single fields (``contiguous=True``, …).
    encoder : str or object, optional
        Overrides ``config.encoder``: a name (``"minilm-l6"``, ``"tfidf"``) or a loaded
        encoder with ``encode()``.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> doc = ("Cats purr softly. Cats sleep all day. Stocks fell sharply. "
    ...        "Stocks rallied later. Cats purr and sleep.")
    >>> seg = segment(doc, k=2, encoder="tfidf")
    >>> seg.labels.tolist()
    [0, 0, 1, 1, 0]
    """
    from bpseg.embed import embed
    from bpseg.text import split_sentences

    if k is not None:
        overrides["k"] = k
    config = replace(config or BPSegConfig(), **overrides)
    if isinstance(text, str):
        sentences = split_sentences(text)
    else:
        sentences = [str(s).strip() for s in text]
        if any(not s for s in sentences):
            raise LabcoreError("empty sentence in the input list")
    if not sentences:
        raise LabcoreError("the text has no sentences")
    vectors = embed(sentences, encoder=encoder if encoder is not None else config.encoder)
    return segment_embeddings(vectors, config=config, sentences=sentences)
