"""How wrong might the predicted quality be? Deviations δ_im for the robust router.

The robust router protects against p̂_im being too optimistic by up to δ_im. The spread of
the outcomes themselves (Bernoulli noise) is not estimator error, so δ is taken from the
estimator: the standard deviation of p̂_im over predictors fitted on bootstrap resamples of
the training queries, times ``scale`` (a z-value: 1 ≈ one standard error).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labcore.errors import LabcoreError


def bootstrap_deviation(
    predictor_factory: Callable[[], object],
    X_train: np.ndarray,
    correct_train: np.ndarray,
    X: np.ndarray,
    *,
    n_boot: int = 8,
    scale: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """δ_im = scale · std over ``n_boot`` bootstrap refits of the predicted quality at ``X``.

    Examples
    --------
    >>> from batchroute.predictors import KNNPredictor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)); y = (rng.random((200, 2)) < 0.5).astype(float)
    >>> d = bootstrap_deviation(lambda: KNNPredictor(calibrate=False), X, y, X[:5], n_boot=4)
    >>> d.shape, bool((d >= 0).all())
    ((5, 2), True)
    """
    if n_boot < 2:
        raise LabcoreError(f"n_boot must be at least 2, got {n_boot}")
    if not (np.isfinite(scale) and scale >= 0):
        raise LabcoreError(f"scale must be a non-negative number, got {scale}")
    X_train = np.asarray(X_train, dtype=np.float64)
    correct_train = np.asarray(correct_train, dtype=np.float64)
    n = X_train.shape[0]
    rng = np.random.default_rng(seed)
    preds = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, size=n)
        preds.append(predictor_factory().fit(X_train[rows], correct_train[rows]).predict(X))
    return scale * np.std(np.stack(preds), axis=0, ddof=1)
