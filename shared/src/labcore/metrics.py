"""Metrics shared across packages.

* :func:`perplexity`: exp of the token-weighted mean negative log-likelihood over
  non-overlapping windows (the GPTQ-style language-model evaluation).
* :func:`classification_scores`: a thin wrapper over scikit-learn's metrics.
* :func:`support_recovery`: precision, recall, F1 and MCC of an estimated sparsity pattern.
* :func:`ndcg_at_k`, :func:`mean_reciprocal_rank`, :func:`roc_auc`: ranking metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labcore.errors import LabcoreError


@dataclass(frozen=True)
class Perplexity:
    """Result of :func:`perplexity`."""

    perplexity: float
    nll: float  # token-weighted mean negative log-likelihood, in nats
    tokens: int  # number of predicted tokens

    def as_dict(self) -> dict[str, float | int]:
        return {"perplexity": self.perplexity, "nll": self.nll, "tokens": self.tokens}


def perplexity(
    model: Any,
    windows: Any,
    *,
    batch_size: int = 4,
    device: Any = None,
    progress: bool = False,
) -> Perplexity:
    """Perplexity of a causal LM on token windows.

    Every window is scored on its own (no context carried between windows): token ``t`` is
    predicted from tokens ``< t`` of the same window, so each window contributes
    ``seqlen - 1`` predictions. The result is ``exp(sum NLL / number of predictions)``.

    Parameters
    ----------
    model
        A transformers causal LM (anything that returns ``.logits`` of shape [b, t, vocab]).
    windows
        LongTensor [k, seqlen] of token ids, e.g. from
        :func:`labcore.data.evaluation_windows`.
    batch_size
        Windows per forward pass.
    device
        Where to run; defaults to the model's device.
    progress
        Show a progress bar.

    Examples
    --------
    >>> import torch
    >>> from labcore.models import tiny_causal_lm
    >>> model, tok = tiny_causal_lm("llama")
    >>> ppl = perplexity(model, torch.randint(0, len(tok), (2, 16)))
    >>> ppl.tokens
    30
    """
    import torch

    if not isinstance(windows, torch.Tensor) or windows.ndim != 2:
        raise LabcoreError("windows must be a 2-D LongTensor [num_windows, seqlen]")
    if windows.shape[0] == 0 or windows.shape[1] < 2:
        raise LabcoreError(
            f"need at least one window of 2+ tokens, got shape {tuple(windows.shape)}"
        )
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and int(windows.max()) >= vocab:
        raise LabcoreError(
            f"token id {int(windows.max())} is outside the model's vocabulary ({vocab})"
        )
    if device is None:
        device = next(model.parameters()).device
    from labcore.progress import progress_bar

    total_nll = 0.0
    total_tokens = 0
    starts = range(0, windows.shape[0], batch_size)
    with torch.inference_mode():
        for start in progress_bar(starts, desc="perplexity", enabled=progress):
            batch = windows[start : start + batch_size].to(device)
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                batch[:, 1:].reshape(-1),
                reduction="none",
            )
            # Accumulate in float64: NLL sums over 10^5 tokens lose precision in fp32.
            total_nll += float(nll.double().sum())
            total_tokens += nll.numel()
    mean = total_nll / total_tokens
    if not math.isfinite(mean):
        return Perplexity(perplexity=float("nan"), nll=mean, tokens=total_tokens)
    return Perplexity(perplexity=math.exp(mean), nll=mean, tokens=total_tokens)


def classification_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy, macro-F1 and balanced accuracy from scikit-learn.

    Examples
    --------
    >>> classification_scores([0, 1, 1, 0], [0, 1, 0, 0])["accuracy"]
    0.75
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }


def support_recovery(truth: Any, estimate: Any, *, tol: float = 0.0) -> dict[str, float]:
    """Compare the nonzero pattern of an estimate with the truth.

    For square matrices (precision matrices, graphs) only the off-diagonal upper triangle
    counts, so each edge is counted once and the always-present diagonal does not inflate
    the scores. For vectors every entry counts. An entry is nonzero when ``|x| > tol``.

    Returns precision, recall, F1 and Matthews' correlation coefficient (scikit-learn's), with
    the counts of true and estimated nonzeros.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    >>> est = np.array([[1, 0.4, 0.1], [0.4, 1, 0], [0.1, 0, 1]])
    >>> support_recovery(truth, est)["recall"], support_recovery(truth, est)["precision"]
    (1.0, 0.5)
    """
    from sklearn.metrics import matthews_corrcoef, precision_recall_fscore_support

    a = np.asarray(truth, dtype=float)
    b = np.asarray(estimate, dtype=float)
    if a.shape != b.shape:
        raise LabcoreError(f"truth and estimate differ in shape: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise LabcoreError("truth and estimate must be finite (NaN or inf found)")
    if a.ndim == 2 and a.shape[0] == a.shape[1]:
        iu = np.triu_indices(a.shape[0], k=1)
        a, b = a[iu], b[iu]
    elif a.ndim != 1:
        raise LabcoreError(f"expected a vector or a square matrix, got shape {a.shape}")
    t = np.abs(a) > tol
    e = np.abs(b) > tol
    p, r, f, _ = precision_recall_fscore_support(
        t, e, average="binary", pos_label=True, zero_division=0
    )
    mcc = float(matthews_corrcoef(t, e)) if t.size else 0.0
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "mcc": mcc,
        "true_nonzeros": int(t.sum()),
        "estimated_nonzeros": int(e.sum()),
    }


# --------------------------------------------------------------------------------------------
# Ranking


def _ranking_arrays(relevance: Any, scores: Any, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(relevance, scores) as float arrays of shape (queries, items), checked."""
    rel = np.asarray(relevance, dtype=float)
    sc = np.asarray(scores, dtype=float)
    if rel.ndim == 1:
        rel, sc = rel[None, :], sc[None, :] if sc.ndim == 1 else sc
    if rel.ndim != 2 or rel.shape != sc.shape:
        raise LabcoreError(
            f"{name}: relevance and scores must have one shape (queries, items), "
            f"got {np.shape(relevance)} and {np.shape(scores)}"
        )
    if rel.shape[1] < 2:
        raise LabcoreError(f"{name}: each query needs at least 2 items, got {rel.shape[1]}")
    if not (np.isfinite(rel).all() and np.isfinite(sc).all()):
        raise LabcoreError(f"{name}: relevance and scores must be finite (NaN or inf found)")
    if (rel < 0).any():
        raise LabcoreError(f"{name}: relevance must be non-negative")
    return rel, sc


def ndcg_at_k(relevance: Any, scores: Any, *, k: int | None = 10) -> float:
    """Mean normalized discounted cumulative gain at ``k`` over queries (scikit-learn's).

    DCG@k = Σ_{i ≤ k} rel_i / log2(i + 1) over the items ranked by decreasing score (linear
    gains; ties are averaged over their orderings), divided by the DCG of the ideal ranking.
    Queries with no relevant item have no ideal ranking and are left out of the mean.

    Parameters
    ----------
    relevance : array of shape (queries, items) or (items,)
        Graded (or binary) relevance, non-negative.
    scores : array of the same shape
        The ranker's scores; higher ranks first.
    k : int or None
        Cut-off; None ranks every item.

    Examples
    --------
    >>> round(ndcg_at_k([[3, 2, 3, 0, 1, 2]], [[6, 5, 4, 3, 2, 1]], k=None), 4)
    0.9608
    """
    from sklearn.metrics import ndcg_score

    rel, sc = _ranking_arrays(relevance, scores, name="ndcg_at_k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise LabcoreError(f"ndcg_at_k: k must be a positive integer or None, got {k!r}")
    keep = rel.max(axis=1) > 0
    if not keep.any():
        raise LabcoreError("ndcg_at_k: no query has a relevant item")
    return float(ndcg_score(rel[keep], sc[keep], k=k))


def mean_reciprocal_rank(relevance: Any, scores: Any) -> float:
    """Mean over queries of 1 / (rank of the first relevant item), items ranked by decreasing
    score.

    Ties are broken at random and the expectation is taken exactly: if g items score above
    the best relevant one and t items (r of them relevant) tie with it, the first relevant
    one lands at g + J, where J is the first relevant position in a random order of the t,
    P(J = j) = C(t − j, r − 1) / C(t, r). Queries with no relevant item are left out.

    Parameters
    ----------
    relevance : array of shape (queries, items) or (items,)
        Relevance; an item is relevant when its value is > 0.
    scores : array of the same shape
        The ranker's scores.

    Examples
    --------
    >>> mean_reciprocal_rank([[0, 0, 1], [1, 0, 0]], [[3, 2, 1], [3, 2, 1]])
    0.6666666666666666
    """
    from scipy.special import comb

    rel, sc = _ranking_arrays(relevance, scores, name="mean_reciprocal_rank")
    relevant = rel > 0
    keep = relevant.any(axis=1)
    if not keep.any():
        raise LabcoreError("mean_reciprocal_rank: no query has a relevant item")
    relevant, sc = relevant[keep], sc[keep]
    best = np.where(relevant, sc, -np.inf).max(axis=1, keepdims=True)
    above = (sc > best).sum(axis=1)
    tied = (sc == best).sum(axis=1)
    tied_relevant = ((sc == best) & relevant).sum(axis=1)
    rr = np.empty(len(sc))
    for q, (g, t, r) in enumerate(zip(above, tied, tied_relevant, strict=True)):
        j = np.arange(1, t - r + 2)  # the first relevant one can be at most t - r + 1 in
        rr[q] = float(np.sum(comb(t - j, r - 1) / comb(t, r) / (g + j)))
    return float(rr.mean())


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve of binary labels (scikit-learn's): the probability that a
    random positive scores above a random negative, ties counting one half.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or y.shape != s.shape:
        raise LabcoreError(
            f"roc_auc: labels and scores must be vectors of one length, got {y.shape} and {s.shape}"
        )
    if not np.isfinite(s).all():
        raise LabcoreError("roc_auc: scores must be finite (NaN or inf found)")
    classes = np.unique(y)
    if len(classes) != 2:
        raise LabcoreError(
            f"roc_auc: needs exactly two classes in the labels, got {classes.tolist()}"
        )
    return float(roc_auc_score(y, s))
