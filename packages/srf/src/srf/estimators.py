"""scikit-learn style estimators: SRF completion and SRF transduction."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from labcore.checks import choice, finite_float, positive_int
from labcore.errors import LabcoreError
from srf.solver import SRFResult, srf_solve
from srf.transduction import (
    ALGORITHMS,
    StackedProblem,
    check_features,
    one_vs_rest,
    projection,
    stack,
    standardize,
)


class _SRFParams(BaseEstimator):
    """The solver settings shared by the estimators (see :func:`srf.solver.srf_solve`)."""

    def _check_X(self, X, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """X as floats (NaN = missing) and its observed mask.

        scikit-learn's ``validate_data`` checks the type, shape, dtype and (``reset=False``)
        the feature count and records ``n_features_in_``; its errors are re-raised as
        :class:`LabcoreError` with the same message. Infinite values and a matrix with no
        observed entry are refused by :func:`srf.transduction.check_features`; at fit
        (``reset=True``), so is a column with no observed value.
        """
        try:
            X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
        except LabcoreError:
            raise
        except ValueError as exc:
            hint = " (use NaN for missing values)" if "infinity" in str(exc) else ""
            raise LabcoreError(f"{exc}{hint}") from None
        X, observed = check_features(X)
        if reset and (empty := ~observed.any(axis=0)).any():
            cols = np.flatnonzero(empty)
            raise LabcoreError(
                f"column(s) {cols[:10].tolist()} of X have no observed value: nothing to "
                "complete them from; drop them first"
            )
        return X, observed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks a missing feature value
        return tags

    def _solver_kwargs(self) -> dict:
        finite_float("mu", self.mu, minimum=0.0, strict=True)
        finite_float("c", self.c, minimum=0.0, strict=True)
        positive_int("inner", self.inner)
        choice("svd", self.svd, ("auto", "full", "truncated"))
        return {
            "mu": self.mu,
            "c": self.c,
            "inner": self.inner,
            "delta_min_ratio": self.delta_min_ratio,
            "tol": self.tol,
            "max_levels": self.max_levels,
            "svd": self.svd,
            "random_state": self.random_state,
        }

    def _record(self, result: SRFResult, t0: float) -> None:
        self.result_ = result
        self.n_levels_ = result.n_levels
        self.n_svd_ = result.n_svd
        self.converged_ = result.converged
        self.rank_ = int(result.effective_ranks[-1]) if result.effective_ranks.size else 0
        self.fit_time_ = time.perf_counter() - t0


class SRFCompletion(_SRFParams):
    """Complete a matrix with missing entries (NaN) by minimizing the smoothed rank.

    Columns are standardized by their observed means and deviations before completion
    (``standardize=True``) and mapped back after; observed entries are returned unchanged.

    Parameters
    ----------
    mu, c, inner, delta_min_ratio, tol, max_levels, svd, random_state
        Settings of :func:`srf.solver.srf_solve`: step μ ∈ (0, 1], δ decrease factor c,
        steps per δ level, stopping rules and the SVD path.
    standardize : bool
        Standardize columns first (recommended when columns differ in scale).

    Examples
    --------
    >>> import numpy as np
    >>> from srf import SRFCompletion
    >>> rng = np.random.default_rng(0)
    >>> M = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30))
    >>> X = np.where(rng.random(M.shape) < 0.6, M, np.nan)
    >>> Z = SRFCompletion(standardize=False).fit_transform(X)
    >>> bool(np.linalg.norm(Z - M) / np.linalg.norm(M) < 1e-3)
    True
    """

    def __init__(
        self,
        *,
        mu: float = 0.5,
        c: float = 0.9,
        inner: int = 8,
        delta_min_ratio: float = 1e-3,
        tol: float = 1e-7,
        max_levels: int = 500,
        svd: str = "auto",
        standardize: bool = True,
        random_state=None,
    ):
        self.mu = mu
        self.c = c
        self.inner = inner
        self.delta_min_ratio = delta_min_ratio
        self.tol = tol
        self.max_levels = max_levels
        self.svd = svd
        self.standardize = standardize
        self.random_state = random_state

    def fit(self, X, y=None):
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """The completed matrix; NaN entries of X are the missing ones."""
        t0 = time.perf_counter()
        X, observed = self._check_X(X, reset=True)
        if self.standardize:
            mean, std = standardize(X, observed)
        else:
            mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Z0 = np.where(observed, (np.nan_to_num(X) - mean) / std, 0.0)

        def project(Z: np.ndarray) -> np.ndarray:
            out = Z.copy()
            out[observed] = Z0[observed]
            return out

        result = srf_solve(Z0, project=project, **self._solver_kwargs())
        completed = result.Z * std + mean
        completed[observed] = X[observed]  # exactly, not up to the (un)scaling rounding
        self.mean_, self.std_ = mean, std
        self._record(result, t0)
        if observed.all():  # nothing to complete: no δ level ran, the rank is X's own
            self.rank_ = int(np.linalg.matrix_rank(completed))
        return completed


class _Transductive(_SRFParams):
    """Transductive estimators: ``predict`` returns the completion of the fitted items."""

    def _rows(self, X) -> np.ndarray:
        """Indices of the fitted items that the rows of X are (all of them for X=None).

        A row is matched by its values (NaN matching NaN); a row equal to several fitted
        items is given the first of them. A row that is not a fitted item is refused: a
        transductive model has nothing to say about new items without a refit.
        """
        check_is_fitted(self, "transduction_", msg="this %(name)s is not fitted yet; call fit")
        if X is None:
            return np.arange(self.transduction_.shape[0])
        X, _ = self._check_X(X, reset=False)
        if X.shape == self._X_fit.shape and np.array_equal(X, self._X_fit, equal_nan=True):
            return np.arange(X.shape[0])
        index: dict[bytes, int] = {}
        for i, row in enumerate(_row_keys(self._X_fit)):
            index.setdefault(row, i)
        rows = []
        for i, row in enumerate(_row_keys(X)):
            if row not in index:
                raise LabcoreError(
                    f"transductive model: row {i} of X is not one of the fitted items; "
                    "predict covers the fitted items only, so refit with the new items "
                    "stacked in"
                )
            rows.append(index[row])
        return np.asarray(rows, dtype=int)

    def _fit_stacked(self, problem: StackedProblem, t0: float, algorithm: str) -> np.ndarray:
        choice("algorithm", algorithm, ALGORITHMS)
        project = projection(problem, algorithm)
        result = srf_solve(problem.Z0, project=project, **self._solver_kwargs())
        self.problem_ = problem
        self._record(result, t0)
        X_imputed = problem.unstack_features(result.Z)
        return X_imputed


class SRFTransductiveClassifier(ClassifierMixin, _Transductive):
    """Predict the missing labels of a data set and impute its missing features at once.

    The features (NaN = missing) and one-vs-rest ±1 label columns (two classes: one column)
    are stacked, with a bias column, into one matrix whose smoothed rank is minimized
    (:mod:`srf.transduction`). This is transductive: ``fit`` sees all items, labelled or not,
    and ``predict`` returns the labels of those items.

    Parameters
    ----------
    algorithm : "equality" or "margin"
        How observed labels constrain the label block: exactly ±w, or only in sign with margin w.
    label_weight : float
        w, the scale of the label block relative to the standardized features.
    bias : bool
        Append an all-ones (observed) column, as MC-1 does.
    unlabeled : None or a value
        Missing labels are NaN or None entries of ``y``; with a value (e.g. -1, scikit-learn's
        semi-supervised convention), entries equal to it are missing too. The default None
        keeps -1 usable as a class (±1 labels).
    mu, c, inner, delta_min_ratio, tol, max_levels, svd, random_state
        Settings of :func:`srf.solver.srf_solve`.

    Attributes
    ----------
    classes_, transduction_ (labels of all items), label_scores_ (n × classes, or n for two
    classes), X_imputed_, rank_, n_levels_, converged_, fit_time_.

    Examples
    --------
    >>> import numpy as np
    >>> from srf import SRFTransductiveClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 8))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> y_partial = np.where(rng.random(60) < 0.5, y, -1)
    >>> model = SRFTransductiveClassifier(unlabeled=-1).fit(X, y_partial)
    >>> bool((model.transduction_ == y).mean() > 0.8)
    True
    """

    def __init__(
        self,
        *,
        algorithm: str = "equality",
        label_weight: float = 1.0,
        bias: bool = True,
        unlabeled=None,
        mu: float = 0.5,
        c: float = 0.9,
        inner: int = 8,
        delta_min_ratio: float = 1e-3,
        tol: float = 1e-7,
        max_levels: int = 500,
        svd: str = "auto",
        random_state=None,
    ):
        self.algorithm = algorithm
        self.label_weight = label_weight
        self.bias = bias
        self.unlabeled = unlabeled
        self.mu = mu
        self.c = c
        self.inner = inner
        self.delta_min_ratio = delta_min_ratio
        self.tol = tol
        self.max_levels = max_levels
        self.svd = svd
        self.random_state = random_state

    def _labels(self, y, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _target(y, type(self).__name__)
        if y.ndim != 1:
            raise LabcoreError(f"y must be 1-D (one label per item), got shape {y.shape}")
        if y.shape[0] != n:
            raise LabcoreError(f"y has {y.shape[0]} labels for {n} items")
        if y.dtype.kind == "O":
            missing = np.array([v is None or (isinstance(v, float) and v != v) for v in y])
        elif y.dtype.kind == "f":
            missing = np.isnan(y)
            if np.isinf(y).any():
                raise LabcoreError("y contains infinite labels")
            known = y[~missing]
            if np.any(known != np.round(known)):
                raise LabcoreError(
                    "Unknown label type: continuous; y has non-integer labels: class codes "
                    "must be whole numbers "
                    "(for a real-valued target use SRFTransductiveRegressor)"
                )
        elif y.dtype.kind == "U" and self.unlabeled != "nan" and np.any(y == "nan"):
            raise LabcoreError(
                "y holds the string 'nan' (strings and NaN mixed in a list): mark missing "
                "labels with None in an object array, or pass unlabeled='nan'"
            )
        else:
            missing = np.zeros(n, dtype=bool)
        if self.unlabeled is not None:
            missing |= np.asarray(y == self.unlabeled, dtype=bool)
        labelled = ~missing
        if not labelled.any():
            raise LabcoreError("no item is labelled: every label is missing")
        try:
            np.unique(y[labelled])
        except TypeError:
            raise LabcoreError("y mixes label types that cannot be ordered") from None
        return y, labelled

    def fit(self, X, y):
        t0 = time.perf_counter()
        X, observed = self._check_X(X, reset=True)
        self._X_fit = X
        y, labelled = self._labels(y, X.shape[0])
        classes, T = one_vs_rest(y, labelled)
        T_observed = np.repeat(labelled[:, None], T.shape[1], axis=1)
        problem = stack(X, observed, T, T_observed, label_weight=self.label_weight, bias=self.bias)
        self.X_imputed_ = self._fit_stacked(problem, t0, self.algorithm)
        scores = problem.label_block(self.result_.Z)
        self.classes_ = classes
        if classes.size == 2:
            self.label_scores_ = scores[:, 0]
            predicted = classes[(scores[:, 0] > 0).astype(int)]
        else:
            self.label_scores_ = scores
            predicted = classes[scores.argmax(axis=1)]
        # Known labels stay known; the equality algorithm reproduces them anyway.
        self.transduction_ = np.where(labelled, y, predicted)
        self.labelled_ = labelled
        self.fit_time_ = time.perf_counter() - t0
        return self

    def predict(self, X=None) -> np.ndarray:
        """Labels of fitted items.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features), optional
            Rows of the fitted X (matched by value, NaN matching NaN); None means all the
            fitted items, in order.

        Returns
        -------
        ndarray of shape (n_items,)
            The transduced labels (observed labels unchanged).

        Raises
        ------
        LabcoreError
            A row of X is not a fitted item: transductive, new items need a refit with them.
        """
        rows = self._rows(X)
        return self.transduction_[rows]

    def decision_function(self, X=None) -> np.ndarray:
        """Label-block scores of fitted items (the ranking used for average precision);
        rows of X are matched as in :meth:`predict`."""
        rows = self._rows(X)
        return self.label_scores_[rows]


class SRFTransductiveRegressor(RegressorMixin, _Transductive):
    """Transductive regression: a real target (NaN = missing) stacked with the features.

    The target is standardized by its observed mean and deviation, weighted by
    ``label_weight`` and completed with the features; ``transduction_`` holds the target of
    every item (observed values unchanged). Parameters as in
    :class:`SRFTransductiveClassifier` (the margin algorithm does not apply)."""

    def __init__(
        self,
        *,
        label_weight: float = 1.0,
        bias: bool = True,
        mu: float = 0.5,
        c: float = 0.9,
        inner: int = 8,
        delta_min_ratio: float = 1e-3,
        tol: float = 1e-7,
        max_levels: int = 500,
        svd: str = "auto",
        random_state=None,
    ):
        self.label_weight = label_weight
        self.bias = bias
        self.mu = mu
        self.c = c
        self.inner = inner
        self.delta_min_ratio = delta_min_ratio
        self.tol = tol
        self.max_levels = max_levels
        self.svd = svd
        self.random_state = random_state

    def fit(self, X, y):
        t0 = time.perf_counter()
        X, observed = self._check_X(X, reset=True)
        self._X_fit = X
        y = _target(y, type(self).__name__)
        try:
            y = np.asarray(y, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise LabcoreError("y must be numeric with NaN for missing targets") from None
        if y.shape[0] != X.shape[0]:
            raise LabcoreError(f"y has {y.shape[0]} targets for {X.shape[0]} items")
        labelled = ~np.isnan(y)
        if not labelled.any():
            raise LabcoreError("no item has a target: y is all NaN")
        if np.isinf(y).any():
            raise LabcoreError("y contains infinite values")
        y_mean = float(y[labelled].mean())
        y_std = float(y[labelled].std())
        y_std = y_std if y_std > 1e-12 * max(1.0, abs(y_mean)) else 1.0
        T = np.where(labelled, (np.nan_to_num(y) - y_mean) / y_std, 0.0)[:, None]
        problem = stack(
            X,
            observed,
            T,
            labelled[:, None],
            label_weight=self.label_weight,
            bias=self.bias,
            classes=False,
        )
        self.X_imputed_ = self._fit_stacked(problem, t0, "equality")
        predicted = problem.label_block(self.result_.Z)[:, 0] * y_std + y_mean
        self.transduction_ = np.where(labelled, y, predicted)
        self.labelled_ = labelled
        self.fit_time_ = time.perf_counter() - t0
        return self

    def predict(self, X=None) -> np.ndarray:
        """Targets of fitted items; rows of X are matched as in
        :meth:`SRFTransductiveClassifier.predict` (None: all fitted items, in order)."""
        rows = self._rows(X)
        return self.transduction_[rows]


def _target(y, name: str) -> np.ndarray:
    """y as an array; a column vector is flattened with scikit-learn's warning."""
    if y is None:
        raise LabcoreError(
            f"{name} requires y to be passed, but the target y is None (NaN marks a missing label)"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return y


def _row_keys(X: np.ndarray) -> list[bytes]:
    """One hashable key per row: its bytes, with every NaN (and -0.0) made canonical."""
    Xc = np.where(np.isnan(X), np.nan, X + 0.0)
    return [row.tobytes() for row in np.ascontiguousarray(Xc)]
