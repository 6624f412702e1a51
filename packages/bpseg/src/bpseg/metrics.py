"""Segmentation metrics: Pk, WindowDiff, and clustering agreement (ARI, NMI).

A segmentation of a document with ``n`` sentences is given as a sequence of ``n`` integer
labels, one per sentence. The two families of metrics read those labels differently:

* **Boundary metrics** (:func:`pk`, :func:`windowdiff`) only see *where the label changes*:
  a segment is a maximal run of equal consecutive labels, so a non-contiguous labelling such
  as ``[0, 0, 1, 1, 0, 0]`` counts as three segments (boundaries before sentences 2 and 4).
* **Clustering metrics** (:func:`clustering_scores`) compare the labels as a partition of the
  sentences, so the same labelling counts as two clusters, and a hypothesis that gives
  sentences 0, 1, 4 and 5 one label agrees with it perfectly wherever those sentences sit.

Pk and WindowDiff are computed exactly as ``segeval`` 2.0.11 computes them (cross-checked in
the tests), including its default window; see :func:`default_window`.
"""

from __future__ import annotations

import operator
from fractions import Fraction

import numpy as np

from labcore.errors import LabcoreError

__all__ = [
    "boundaries",
    "clustering_scores",
    "default_window",
    "labels_from_boundaries",
    "pk",
    "runs",
    "segment_scores",
    "windowdiff",
]


def _as_labels(labels, what: str = "labels") -> np.ndarray:
    """Validate a per-sentence label sequence and return it as an int64 array."""
    try:
        arr = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise LabcoreError(f"{what} must be a 1-D sequence of integer labels ({exc})") from None
    if arr.ndim != 1:
        raise LabcoreError(
            f"{what} must be a 1-D sequence of integer labels, got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise LabcoreError(f"{what} is empty: a segmentation needs at least one sentence")
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise LabcoreError(f"{what} contains NaN or infinite values")
        if not np.all(arr == np.round(arr)):
            bad = arr[arr != np.round(arr)][0]
            raise LabcoreError(f"{what} must be integers, got the non-integer label {bad}")
        return arr.astype(np.int64)
    raise LabcoreError(f"{what} must hold integer labels, got values of dtype {arr.dtype}")


def _pair(reference, hypothesis) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_labels(reference, "reference")
    hyp = _as_labels(hypothesis, "hypothesis")
    if ref.size != hyp.size:
        raise LabcoreError(
            f"reference and hypothesis differ in length ({ref.size} vs {hyp.size} sentences)"
        )
    return ref, hyp


def _runs(labels: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.size, dtype=np.int64)
    np.cumsum(labels[1:] != labels[:-1], out=out[1:])
    return out


def runs(labels) -> np.ndarray:
    """Index of the contiguous run (segment) each sentence belongs to.

    A run is a maximal stretch of equal consecutive labels; a label that comes back after
    another one starts a new run.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Per-sentence labels.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        ``0`` for the sentences of the first run, ``1`` for the second, and so on. Its value
        at sentence ``i`` is also the number of boundaries at or before ``i``.

    Examples
    --------
    >>> runs([7, 7, 3, 3, 7]).tolist()
    [0, 0, 1, 1, 2]
    """
    return _runs(_as_labels(labels))


def boundaries(labels) -> list[int]:
    """Sentence indices where a new segment (run of equal labels) starts.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Per-sentence labels.

    Returns
    -------
    list of int
        Sorted indices ``i`` with ``1 <= i <= n - 1`` and ``labels[i] != labels[i - 1]``.

    Examples
    --------
    >>> boundaries([0, 0, 1, 1, 0, 0])
    [2, 4]
    """
    arr = _as_labels(labels)
    return (np.flatnonzero(arr[1:] != arr[:-1]) + 1).tolist()


def labels_from_boundaries(boundaries, n: int) -> np.ndarray:
    """Run ids of a segmentation given by its boundaries (the inverse of :func:`boundaries`).

    Parameters
    ----------
    boundaries : array_like of int
        Sentence indices where a new segment starts, strictly increasing, each in
        ``1 .. n - 1``. May be empty (one segment).
    n : int
        Number of sentences (at least 1).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Segment index per sentence: ``0`` before the first boundary, ``1`` after it, ...

    Examples
    --------
    >>> labels_from_boundaries([2, 4], 6).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    if isinstance(n, bool):
        raise LabcoreError(f"n must be a positive integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise LabcoreError(f"n must be a positive integer, got {n!r}") from None
    if n < 1:
        raise LabcoreError(f"n must be a positive integer, got {n}")
    out = np.zeros(n, dtype=np.int64)
    try:
        if len(boundaries) == 0:
            return out
    except TypeError:
        raise LabcoreError(
            f"boundaries must be a sequence of sentence indices, got {boundaries!r}"
        ) from None
    b = _as_labels(boundaries, "boundaries")
    if b.min() < 1 or b.max() > n - 1:
        bad = b[(b < 1) | (b > n - 1)][0]
        raise LabcoreError(f"boundary {bad} is out of range: boundaries must lie in 1..{n - 1}")
    if np.any(np.diff(b) <= 0):
        raise LabcoreError(f"boundaries must be strictly increasing, got {b.tolist()}")
    out[b] = 1
    return np.cumsum(out)


def _default_window(ref: np.ndarray) -> int:
    n = ref.size
    if n < 2:
        raise LabcoreError(f"Pk and WindowDiff need at least 2 sentences, got {n}")
    n_segments = int(_runs(ref)[-1]) + 1
    # segeval rounds Decimal(mean mass) / 2 with round(), i.e. half to even; Fraction rounds
    # the exact ratio the same way (a float could only differ on ties, which are exact).
    window = max(round(Fraction(n, 2 * n_segments)), 2)
    # Beyond n - 1 there is no probe left (segeval then returns 0 or divides by zero).
    return min(window, n - 1)


def default_window(reference) -> int:
    """The standard Pk/WindowDiff window for a reference segmentation.

    Half the mean reference segment length (segments are runs of equal labels), rounded
    *half to even* and raised to at least 2, exactly as ``segeval`` 2.0.11 computes its
    default window (``int(round(Decimal(mean) / 2))``, then ``2`` if that is below 2). So a
    mean length of 5 gives 2, not 3, and a mean length of 7 gives 4. The one departure: the
    window is capped at ``n - 1`` so that at least one probe exists (only ``n = 2`` is
    affected, where segeval's window of 2 leaves no probe at all).

    Parameters
    ----------
    reference : array_like of int, shape (n,)
        Reference labels, ``n >= 2``.

    Returns
    -------
    int
        The window ``k``, ``1 <= k <= n - 1``.

    Examples
    --------
    >>> default_window([0] * 5 + [1] * 5)  # mean length 5: 2.5 rounds to even
    2
    >>> default_window([0] * 7 + [1] * 7)  # mean length 7: 3.5 rounds to even
    4
    """
    return _default_window(_as_labels(reference, "reference"))


def _resolve_window(window, ref: np.ndarray) -> int:
    n = ref.size
    if window is None:
        return _default_window(ref)
    if isinstance(window, bool):
        raise LabcoreError(f"window must be an integer, got {window!r}")
    try:
        window = operator.index(window)
    except TypeError:
        raise LabcoreError(f"window must be an integer, got {window!r}") from None
    if n < 2:
        raise LabcoreError(f"Pk and WindowDiff need at least 2 sentences, got {n}")
    if not 1 <= window <= n - 1:
        raise LabcoreError(f"window must lie in 1..{n - 1} for {n} sentences, got {window}")
    return window


def _window_counts(labels: np.ndarray, window: int) -> np.ndarray:
    # Run ids are the cumulative boundary count, so the number of boundaries between
    # sentence i and sentence i + window is a difference of two of them.
    r = _runs(labels)
    return r[window:] - r[:-window]


def pk(reference, hypothesis, *, window: int | None = None) -> float:
    """Pk (Beeferman, Berger and Lafferty, 1999): probability of a misplaced probe.

    A probe joins sentence ``i`` and sentence ``i + window``, for ``i = 0 .. n - window - 1``
    (``n - window`` probes). Pk is the fraction of probes on which the reference and the
    hypothesis disagree about whether both ends lie in the same segment. Segments are runs
    of equal consecutive labels (a label change is a boundary), so non-contiguous labellings
    are scored through their boundaries. This is segeval's ``pk`` exactly. Lower is better:
    0 for identical boundaries.

    Parameters
    ----------
    reference, hypothesis : array_like of int, shape (n,)
        Per-sentence labels of the true and the predicted segmentation.
    window : int, optional
        Probe distance ``k``, ``1 <= k <= n - 1``. Default: :func:`default_window` of the
        reference (so swapping the arguments can change the score).

    Returns
    -------
    float
        Pk in ``[0, 1]``.

    Examples
    --------
    >>> ref = [0] * 5 + [1] * 5
    >>> pk(ref, ref)
    0.0
    >>> pk(ref, [0] * 6 + [1] * 4)  # boundary one sentence late: 2 of 8 probes wrong
    0.25
    """
    ref, hyp = _pair(reference, hypothesis)
    k = _resolve_window(window, ref)
    same_ref = _window_counts(ref, k) == 0
    same_hyp = _window_counts(hyp, k) == 0
    return float(np.mean(same_ref != same_hyp))


def windowdiff(reference, hypothesis, *, window: int | None = None) -> float:
    """WindowDiff (Pevzner and Hearst, 2002): fraction of windows with a wrong boundary count.

    Window ``i`` spans sentences ``i .. i + window`` (so it holds the ``window`` sentence gaps
    after sentences ``i .. i + window - 1``), for ``i = 0 .. n - window - 1``: there are
    ``n - window`` windows and that is the denominator, as in the original paper and in
    segeval's ``window_diff`` without the Lamprier et al. (2007) padding. A window counts as
    an error when the reference and the hypothesis place a different number of boundaries
    in it. Segments are runs of equal consecutive labels (a label change is a boundary).
    Lower is better; WindowDiff is never below Pk for the same window, since Pk only checks
    whether the count is zero.

    Parameters
    ----------
    reference, hypothesis : array_like of int, shape (n,)
        Per-sentence labels of the true and the predicted segmentation.
    window : int, optional
        Window size ``k``, ``1 <= k <= n - 1``. Default: :func:`default_window` of the
        reference.

    Returns
    -------
    float
        WindowDiff in ``[0, 1]``.

    Examples
    --------
    >>> ref = [0] * 5 + [1] * 5
    >>> windowdiff(ref, [0] * 5 + [1] + [2] * 4)  # an extra boundary next to the true one
    0.25
    """
    ref, hyp = _pair(reference, hypothesis)
    k = _resolve_window(window, ref)
    return float(np.mean(_window_counts(ref, k) != _window_counts(hyp, k)))


def clustering_scores(reference, hypothesis) -> dict[str, float]:
    """Adjusted Rand index and normalized mutual information of two labellings.

    The labels are compared as partitions of the sentences (scikit-learn's
    ``adjusted_rand_score`` and ``normalized_mutual_info_score`` with its default arithmetic
    averaging), so they need not be contiguous and their values do not matter, only which
    sentences share one. Higher is better: 1 for the same partition.

    Parameters
    ----------
    reference, hypothesis : array_like of int, shape (n,)
        Per-sentence labels.

    Returns
    -------
    dict
        ``{"ari": float, "nmi": float}``.

    Examples
    --------
    >>> clustering_scores([0, 0, 1, 1, 0], [5, 5, 2, 2, 5])
    {'ari': 1.0, 'nmi': 1.0}
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    ref, hyp = _pair(reference, hypothesis)
    return {
        "ari": float(adjusted_rand_score(ref, hyp)),
        "nmi": float(normalized_mutual_info_score(ref, hyp)),
    }


def segment_scores(reference, hypothesis, *, window: int | None = None) -> dict[str, float]:
    """All four scores of a hypothesis: Pk, WindowDiff, ARI and NMI.

    Parameters
    ----------
    reference, hypothesis : array_like of int, shape (n,)
        Per-sentence labels of the true and the predicted segmentation, ``n >= 2``.
    window : int, optional
        Window of Pk and WindowDiff (default: :func:`default_window` of the reference).

    Returns
    -------
    dict
        ``{"pk": ..., "windowdiff": ..., "ari": ..., "nmi": ...}`` (floats; Pk and WindowDiff
        lower is better, ARI and NMI higher is better).

    Examples
    --------
    >>> scores = segment_scores([0] * 5 + [1] * 5, [0] * 6 + [1] * 4)
    >>> scores["pk"], scores["windowdiff"]
    (0.25, 0.25)
    >>> sorted(scores)
    ['ari', 'nmi', 'pk', 'windowdiff']
    """
    ref, hyp = _pair(reference, hypothesis)
    k = _resolve_window(window, ref)
    return {
        "pk": pk(ref, hyp, window=k),
        "windowdiff": windowdiff(ref, hyp, window=k),
        **clustering_scores(ref, hyp),
    }
