"""Quality predictors: p̂_im = P(model m answers query i correctly) from query embeddings.

A predictor follows :class:`QualityPredictor`: ``fit(X, correct)`` on training queries'
embeddings X (n, d) and observed correctness (n, M) in [0, 1], then ``predict(X)`` gives an
(n, M) matrix in [0, 1], the quality input a_im of the routing problem.

* :class:`KNNPredictor`: cosine k-nearest neighbours, shrunk toward each model's mean and
  calibrated per model by isotonic regression on out-of-fold predictions;
* :class:`LogisticPredictor`: one (calibrated) logistic regression per model;
* :class:`FunctionPredictor`: any callable, checked.

:func:`cross_val_predict_quality` gives out-of-fold predictions, from which
:func:`model_deviation` estimates each model's prediction error (the box uncertainty δ_m of
:class:`~batchroute.problem.Uncertainty`), and :func:`brier_score` and
:func:`expected_calibration_error` score them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from labcore.errors import LabcoreError

__all__ = [
    "CALIBRATIONS",
    "FunctionPredictor",
    "KNNPredictor",
    "LogisticPredictor",
    "QualityPredictor",
    "brier_score",
    "cross_val_predict_quality",
    "expected_calibration_error",
    "model_deviation",
]

#: Calibration methods of :class:`LogisticPredictor` (None: uncalibrated).
CALIBRATIONS = ("sigmoid", "isotonic", None)

# Folds of the out-of-fold predictions the calibrators are fitted on.
_CALIBRATION_FOLDS = 5


@runtime_checkable
class QualityPredictor(Protocol):
    """What the routers need from a quality predictor."""

    def fit(self, X: np.ndarray, correct: np.ndarray) -> QualityPredictor: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Input checks.


def _check_X(X, *, width: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise LabcoreError(f"X must be a 2-D (queries × features) array, got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise LabcoreError(f"X is empty (shape {X.shape})")
    if not np.isfinite(X).all():
        raise LabcoreError("X contains NaN or infinite values")
    if width is not None and X.shape[1] != width:
        raise LabcoreError(f"X has {X.shape[1]} features but the predictor was fitted on {width}")
    return X


def _check_matrix(name: str, value, n: int | None = None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 2:
        raise LabcoreError(f"{name} must be a 2-D (queries × models) array, got shape {a.shape}")
    if a.shape[1] < 1:
        raise LabcoreError(f"{name} has no model columns (shape {a.shape})")
    if n is not None and a.shape[0] != n:
        raise LabcoreError(f"{name} has {a.shape[0]} rows but X has {n}")
    if not np.isfinite(a).all():
        raise LabcoreError(f"{name} contains NaN or infinite values")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise LabcoreError(f"{name} must lie in [0, 1], got values in [{a.min():g}, {a.max():g}]")
    return a


def _check_pair(pred, correct) -> tuple[np.ndarray, np.ndarray]:
    pred = _check_matrix("pred", pred)
    correct = _check_matrix("correct", correct)
    if pred.shape != correct.shape:
        raise LabcoreError(f"pred has shape {pred.shape} but correct has {correct.shape}")
    if pred.shape[0] == 0:
        raise LabcoreError("pred and correct have no rows")
    return pred, correct


def _not_fitted(name: str) -> LabcoreError:
    return LabcoreError(f"{name} is not fitted: call fit(X, correct) before predict")


# --------------------------------------------------------------------------------------------
# Predictors.


class KNNPredictor:
    """Cosine k-nearest-neighbour quality, shrunk to the model's mean and calibrated.

    For a query with neighbours j (cosine similarity s_j among the training queries) the raw
    prediction for model m is

        (Σ_j w_j y_jm + α ȳ_m) / (Σ_j w_j + α),   w_j = max(s_j, 0) + 1e-6,

    with ȳ_m the model's training mean and α = ``prior_strength`` pseudo-counts, so a query
    with few or dissimilar neighbours falls back toward the mean. With ``calibrate=True`` a
    per-model isotonic regression maps raw to calibrated predictions; it is fitted on
    out-of-fold raw predictions (shuffled 5-fold) so that it sees the errors the predictor
    makes on queries it has not seen.

    Parameters
    ----------
    n_neighbors : int
        Neighbours per query (capped at the number of training queries).
    prior_strength : float
        Pseudo-counts α ≥ 0 of the shrinkage toward the model's mean.
    calibrate : bool
        Fit the isotonic calibration (needs at least 10 training queries).
    seed : int
        Seed of the calibration folds.

    Examples
    --------
    >>> from batchroute.data import synthetic
    >>> d = synthetic(n=300, seed=0)
    >>> p = KNNPredictor(n_neighbors=10).fit(d.embeddings[:200], d.correct[:200])
    >>> p.predict(d.embeddings[200:]).shape
    (100, 5)
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 25,
        prior_strength: float = 2.0,
        calibrate: bool = True,
        seed: int = 0,
    ):
        if (
            isinstance(n_neighbors, bool)
            or not isinstance(n_neighbors, int | np.integer)
            or n_neighbors < 1
        ):
            raise LabcoreError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
        if not (np.isfinite(prior_strength) and prior_strength >= 0):
            raise LabcoreError(f"prior_strength must be ≥ 0, got {prior_strength!r}")
        self.n_neighbors = n_neighbors
        self.prior_strength = float(prior_strength)
        self.calibrate = bool(calibrate)
        self.seed = seed
        self._index = None

    def _fit_raw(self, X: np.ndarray, correct: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        k = min(self.n_neighbors, X.shape[0])
        index = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X)
        return index, correct, correct.mean(axis=0)

    def _predict_raw(self, fitted, X: np.ndarray) -> np.ndarray:
        index, y, prior = fitted
        distance, neighbours = index.kneighbors(X)
        weight = np.maximum(1.0 - distance, 0.0) + 1e-6
        # (queries, k) weights times (queries, k, M) neighbour outcomes, summed over k.
        votes = np.einsum("qk,qkm->qm", weight, y[neighbours])
        alpha = self.prior_strength
        return (votes + alpha * prior[None, :]) / (weight.sum(axis=1, keepdims=True) + alpha)

    def fit(self, X, correct) -> KNNPredictor:
        """Index the training queries (and fit the calibration); returns ``self``."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.model_selection import KFold

        self._index = None  # a failed fit leaves the predictor unfitted, not half-refitted
        X = _check_X(X)
        correct = _check_matrix("correct", correct, X.shape[0])
        self._calibrators = None
        if self.calibrate:
            folds = _CALIBRATION_FOLDS
            if X.shape[0] < 2 * folds:
                raise LabcoreError(
                    f"calibrate=True needs at least {2 * folds} training queries, got "
                    f"{X.shape[0]}; pass calibrate=False"
                )
            oof = np.empty_like(correct)
            splitter = KFold(n_splits=folds, shuffle=True, random_state=self.seed)
            for train, test in splitter.split(X):
                oof[test] = self._predict_raw(self._fit_raw(X[train], correct[train]), X[test])
            self._calibrators = [
                IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                    oof[:, j], correct[:, j]
                )
                for j in range(correct.shape[1])
            ]
        self._index = self._fit_raw(X, correct)
        self._width = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted quality (n, M) in [0, 1]."""
        if self._index is None:
            raise _not_fitted("KNNPredictor")
        X = _check_X(X, width=self._width)
        raw = self._predict_raw(self._index, X)
        if self._calibrators is None:
            return np.clip(raw, 0.0, 1.0)
        calibrated = np.column_stack(
            [cal.predict(raw[:, j]) for j, cal in enumerate(self._calibrators)]
        )
        return np.clip(calibrated, 0.0, 1.0)


class LogisticPredictor:
    """One logistic regression per model on standardised embeddings, optionally calibrated.

    The classifier needs classes, so correctness given as scores in [0, 1] is binarised at
    0.5 (score ≥ 0.5 counts as correct). With ``calibrate`` set, each model's classifier is
    wrapped in ``CalibratedClassifierCV(cv=5, method=calibrate)`` (fewer folds when a class
    has fewer than 5 training queries, none when it has one). A model whose binarised
    training labels are all one class predicts its mean training correctness (the constant,
    for a constant column).

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regressions (on standardised
        features).
    calibrate : {"sigmoid", "isotonic", None}
        Calibration method.

    Examples
    --------
    >>> from batchroute.data import synthetic
    >>> d = synthetic(n=300, seed=0)
    >>> p = LogisticPredictor(calibrate=None).fit(d.embeddings[:200], d.correct[:200])
    >>> q = p.predict(d.embeddings[200:])
    >>> q.shape, bool((q >= 0).all() and (q <= 1).all())
    ((100, 5), True)
    """

    def __init__(self, *, C: float = 1.0, calibrate: str | None = "sigmoid"):
        if not (np.isfinite(C) and C > 0):
            raise LabcoreError(f"C must be a positive number, got {C!r}")
        if calibrate not in CALIBRATIONS:
            raise LabcoreError(f"unknown calibrate {calibrate!r}; choose one of {CALIBRATIONS}")
        self.C = float(C)
        self.calibrate = calibrate
        self._models = None

    def _classifier(self, labels: np.ndarray):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        base = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=1000))
        # CalibratedClassifierCV's stratified folds need every class in every fold.
        folds = min(_CALIBRATION_FOLDS, int(np.bincount(labels).min()))
        if self.calibrate is None or folds < 2:
            return base
        return CalibratedClassifierCV(base, cv=folds, method=self.calibrate)

    def fit(self, X, correct) -> LogisticPredictor:
        """Fit one classifier per model; returns ``self``."""
        self._models = None  # a failed fit leaves the predictor unfitted
        X = _check_X(X)
        correct = _check_matrix("correct", correct, X.shape[0])
        labels = (correct >= 0.5).astype(np.int64)
        models: list = []
        for j in range(correct.shape[1]):
            if labels[:, j].min() == labels[:, j].max():
                models.append(float(correct[:, j].mean()))
            else:
                models.append(self._classifier(labels[:, j]).fit(X, labels[:, j]))
        self._models = models
        self._width = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted quality (n, M) in [0, 1]."""
        if self._models is None:
            raise _not_fitted("LogisticPredictor")
        X = _check_X(X, width=self._width)
        columns = []
        for model in self._models:
            if isinstance(model, float):
                columns.append(np.full(X.shape[0], model))
            else:
                proba = model.predict_proba(X)
                columns.append(proba[:, list(model.classes_).index(1)])
        return np.clip(np.column_stack(columns), 0.0, 1.0)


class FunctionPredictor:
    """Any callable ``fn(X) -> (n, M)`` as a predictor, with its output checked.

    ``fit`` only records the number of models (so that ``predict`` can check it); the
    callable needs no training.

    Examples
    --------
    >>> p = FunctionPredictor(lambda X: np.full((len(X), 2), 0.5))
    >>> p.predict(np.zeros((3, 4))).tolist()
    [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        if not callable(fn):
            raise LabcoreError(f"FunctionPredictor needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self._m: int | None = None

    def fit(self, X, correct) -> FunctionPredictor:
        """Check the training data and record its number of models; returns ``self``."""
        X = _check_X(X)
        self._m = _check_matrix("correct", correct, X.shape[0]).shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """``fn(X)``, checked to be (n, M) and in [0, 1]."""
        X = _check_X(X)
        try:
            out = _check_matrix("the function's output", self.fn(X), X.shape[0])
        except LabcoreError as e:
            raise LabcoreError(f"FunctionPredictor: {e}") from None
        if self._m is not None and out.shape[1] != self._m:
            raise LabcoreError(
                f"FunctionPredictor: the function gives {out.shape[1]} models, "
                f"the training data has {self._m}"
            )
        return out


# --------------------------------------------------------------------------------------------
# Evaluation.


def cross_val_predict_quality(
    predictor_factory: Callable[[], QualityPredictor],
    X,
    correct,
    *,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions: each query predicted by a predictor that did not see it.

    Parameters
    ----------
    predictor_factory : callable
        Returns a fresh, unfitted predictor (e.g. ``KNNPredictor`` or
        ``lambda: LogisticPredictor(C=0.5)``).
    X : array (n, d)
    correct : array (n, M)
    folds : int
        Number of shuffled folds (2 ≤ folds ≤ n).
    seed : int

    Returns
    -------
    array (n, M)

    Examples
    --------
    >>> from batchroute.data import synthetic
    >>> d = synthetic(n=200, seed=0)
    >>> oof = cross_val_predict_quality(
    ...     lambda: KNNPredictor(calibrate=False), d.embeddings, d.correct, folds=4)
    >>> oof.shape
    (200, 5)
    """
    from sklearn.model_selection import KFold

    X = _check_X(X)
    correct = _check_matrix("correct", correct, X.shape[0])
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= X.shape[0]:
        raise LabcoreError(f"folds must be an integer in [2, {X.shape[0]}], got {folds!r}")
    out = np.empty_like(correct)
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(X):
        predictor = predictor_factory().fit(X[train], correct[train])
        pred = np.asarray(predictor.predict(X[test]), dtype=np.float64)
        expected = (test.size, correct.shape[1])
        if pred.shape != expected:
            raise LabcoreError(f"the predictor returned shape {pred.shape}, expected {expected}")
        out[test] = pred
    return out


def model_deviation(pred, correct) -> np.ndarray:
    """Per-model RMSE of (out-of-fold) predictions: the box uncertainty δ_m.

    Examples
    --------
    >>> model_deviation([[0.5, 1.0], [0.5, 1.0]], [[0, 1], [1, 1]]).tolist()
    [0.5, 0.0]
    """
    pred, correct = _check_pair(pred, correct)
    return np.sqrt(np.mean((pred - correct) ** 2, axis=0))


def brier_score(pred, correct) -> float:
    """Mean squared error of the predicted probabilities over all queries and models.

    Examples
    --------
    >>> brier_score([[0.5, 1.0]], [[0, 1]])
    0.125
    """
    pred, correct = _check_pair(pred, correct)
    return float(np.mean((pred - correct) ** 2))


def expected_calibration_error(pred, correct, *, bins: int = 10) -> float:
    """Expected calibration error over all queries and models, with equal-width bins.

    ECE = Σ_b (n_b / N) · |mean prediction in b − mean correctness in b| over ``bins``
    bins of [0, 1] (a prediction of exactly 1 falls in the last bin).

    Examples
    --------
    >>> ece = expected_calibration_error([[0.2], [0.2], [0.9], [0.9]], [[0], [1], [1], [1]])
    >>> round(ece, 6)  # (2/4)·|0.2 − 0.5| + (2/4)·|0.9 − 1|
    0.2
    """
    pred, correct = _check_pair(pred, correct)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise LabcoreError(f"bins must be a positive integer, got {bins!r}")
    p, y = pred.ravel(), correct.ravel()
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=p, minlength=bins) - np.bincount(
        which, weights=y, minlength=bins
    )
    # |Σ_b (p − y)| / N per bin equals (n_b/N)·|mean p − mean y|.
    return float(np.abs(gap).sum() / count.sum())
