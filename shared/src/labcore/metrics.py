"""Metrics shared across packages.

* :func:`perplexity`: exp of the token-weighted mean negative log-likelihood over
  non-overlapping windows (the GPTQ-style language-model evaluation).
* :func:`classification_scores`: a thin wrapper over scikit-learn's metrics.
* :func:`support_recovery`: precision, recall, F1 and MCC of an estimated sparsity pattern.
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
