"""scikit-learn estimators: :class:`SkinnyTreesClassifier` and :class:`SkinnyTreesRegressor`.

Both are feature selectors too (``transform`` keeps the selected columns, ``get_support``,
``support_``) and predict with a compact model that reads the selected columns only.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.feature_selection import SelectorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from labcore.checks import finite_float, positive_int
from labcore.device import resolve_device
from labcore.errors import LabcoreError
from skinnytrees.model import SoftTreeEnsemble
from skinnytrees.train import TrainResult, TrainSettings, train_soft_trees

#: The paper's penalty: λ = 100 / p (``kernel_constraint`` 100 divided by the feature count).
DEFAULT_L0_SCALE = 100.0
#: Each step of the λ path's bracketing search multiplies or divides λ by this factor, or by
#: the larger one while a fit keeps every feature (or none): far from the budget.
PATH_FACTOR = 4.0
PATH_FACTOR_FAR = 10.0
#: The path stops early at a fit with between this share of the budget and the budget.
PATH_CLOSE = 0.9
#: Below this many samples there is no validation split (no early stopping).
MIN_SAMPLES_FOR_VALIDATION = 20


def budget_count(max_features: Any, n_features: int) -> int | None:
    """The feature budget as a count: an int in [1, p], or a fraction in (0, 1] of p
    (rounded down, at least 1); None means no budget.

    >>> budget_count(0.25, 30), budget_count(5, 30), budget_count(None, 30)
    (7, 5, None)
    """
    if max_features is None:
        return None
    if isinstance(max_features, bool):
        raise LabcoreError(
            f"max_features must be a fraction in (0, 1] or a count, got {max_features!r}"
        )
    if isinstance(max_features, numbers.Integral):
        if not 1 <= max_features <= n_features:
            raise LabcoreError(
                f"max_features={max_features} must be a count between 1 and the {n_features} "
                "features (or a fraction in (0, 1])"
            )
        return int(max_features)
    if isinstance(max_features, numbers.Real):
        if not (math.isfinite(max_features) and 0.0 < max_features <= 1.0):
            raise LabcoreError(
                f"the feature budget max_features={max_features} must be a fraction in (0, 1] "
                "(or a count of features)"
            )
        return max(1, math.floor(max_features * n_features + 1e-9))
    raise LabcoreError(
        f"max_features must be a fraction in (0, 1] or a count, got {max_features!r}"
    )


def _target_1d(y: Any, n: int) -> np.ndarray:
    """y as a 1-D array of length n (a column vector is accepted with scikit-learn's
    DataConversionWarning)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if y.ndim != 1 or len(y) != n:
        raise LabcoreError(f"y must have shape ({n},) to match X, got {y.shape}")
    return y


def _check_params(est: _SkinnyTreesBase) -> None:
    for name in ("n_trees", "depth", "batch_size", "max_epochs", "patience", "max_path"):
        positive_int(name, getattr(est, name))
    if est.depth > 12:
        raise LabcoreError(
            f"depth={est.depth} gives {2**est.depth} leaves per tree; use depth <= 12"
        )
    finite_float("learning_rate", est.learning_rate, minimum=0.0, strict=True)
    finite_float("l2", est.l2, minimum=0.0)
    if est.l0 is not None:
        finite_float("l0", est.l0, minimum=0.0)
    if est.tau is not None:
        finite_float("tau", est.tau, minimum=0.0, strict=True)
    if finite_float("validation_fraction", est.validation_fraction, minimum=0.0) >= 1.0:
        raise LabcoreError(
            f"validation_fraction must be in [0, 1), got {est.validation_fraction!r}"
        )


class _SkinnyTreesBase(SelectorMixin, BaseEstimator):
    """Shared fit logic; see :class:`SkinnyTreesClassifier` for the parameters."""

    _task = ""

    def __init__(
        self,
        *,
        max_features: int | float | None = None,
        n_trees: int = 20,
        depth: int = 4,
        l0: float | None = None,
        l2: float = 1e-2,
        tau: float | None = 0.01,
        learning_rate: float = 0.1,
        batch_size: int = 16,
        max_epochs: int = 200,
        patience: int = 20,
        validation_fraction: float = 0.2,
        max_path: int = 10,
        random_state: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.max_features = max_features
        self.n_trees = n_trees
        self.depth = depth
        self.l0 = l0
        self.l2 = l2
        self.tau = tau
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_path = max_path
        self.random_state = random_state
        self.device = device

    # ---------------------------------------------------------------------------------- data

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        if hasattr(X, "tocsr") or hasattr(X, "toarray"):
            raise LabcoreError("sparse input is not supported: pass a dense array (X.toarray())")
        try:
            return validate_data(self, X, reset=reset, dtype=np.float64)
        except LabcoreError:
            raise
        except ValueError as exc:  # scikit-learn's own messages (NaN, shape, feature count)
            raise LabcoreError(str(exc)) from None

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    # ----------------------------------------------------------------------------------- fit

    def _encode_y(self, y: Any) -> tuple[np.ndarray, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validation_score(self, model: SoftTreeEnsemble, X: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError  # pragma: no cover - abstract

    def _split(self, X: np.ndarray, y: np.ndarray, seed: int):
        n = len(X)
        if self.validation_fraction == 0 or n < MIN_SAMPLES_FOR_VALIDATION:
            return X, y, None, None
        stratify = None
        if self._task == "classification":
            counts = np.bincount(y)
            n_val = math.ceil(self.validation_fraction * n)
            if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts):
                stratify = y
        Xt, Xv, yt, yv = train_test_split(
            X, y, test_size=self.validation_fraction, random_state=seed, stratify=stratify
        )
        return Xt, yt, Xv, yv

    def fit(self, X: Any, y: Any) -> _SkinnyTreesBase:
        """Fit the ensemble and select features (on the λ path when ``max_features`` is set).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without missing values; they are standardized internally.
        y : array-like of shape (n_samples,)
            Class labels (classifier) or numbers (regressor).

        Returns
        -------
        self
        """
        _check_params(self)
        X = self._validate_X(X, reset=True)
        if X.shape[0] < 2:
            raise LabcoreError(f"n_samples={X.shape[0]}: at least 2 samples are needed")
        y_codes, n_outputs = self._encode_y(y, X.shape[0])
        p = X.shape[1]
        budget = budget_count(self.max_features, p)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = self._standardize(X)
        seed = 0 if self.random_state is None else int(self.random_state)
        Xt, yt, Xv, yv = self._split(Z, y_codes, seed)
        settings = TrainSettings(
            task=self._task,
            n_outputs=n_outputs,
            n_trees=self.n_trees,
            depth=self.depth,
            learning_rate=float(self.learning_rate),
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            l2=float(self.l2),
            tau=None if self.tau is None else float(self.tau),
            patience=self.patience,
            seed=seed,
            device=str(resolve_device(self.device)),
        )
        l0_start = DEFAULT_L0_SCALE / p if self.l0 is None else float(self.l0)
        t0 = time.perf_counter()
        path: list[dict[str, Any]] = []

        # Fits are deterministic given the data, the settings and λ: a caller fitting several
        # budgets on the same data (the benchmark) may share them through ``_path_cache``.
        cache = getattr(self, "_path_cache", None)

        def run(l0: float) -> TrainResult:
            if cache is not None and l0 in cache:
                result = cache[l0]
            else:
                result = train_soft_trees(
                    TrainSettings(**{**settings.__dict__, "l0": l0}), Xt, yt, Xv, yv
                )
                if cache is not None:
                    cache[l0] = result
            score = None if Xv is None else self._validation_score(result.model, Xv, yv)
            path.append(
                {
                    "l0": l0,
                    "n_selected": result.n_selected,
                    "validation_score": score,
                    "epochs": result.epochs,
                    "best_epoch": result.best_epoch,
                    "stopped_early": result.stopped_early,
                    "result": result,
                }
            )
            return result

        self.budget_ = budget
        self.budget_enforced_ = "none" if budget is None else "path"
        if budget is None:
            chosen = run(l0_start)
            chosen_entry = path[-1]
        else:
            chosen_entry = self._budget_path(run, path, l0_start, budget)
            if chosen_entry is None:  # no λ on the path met the budget: keep the top rows
                chosen_entry = self._hard_budget(path, budget, settings, Xt, yt, Xv, yv)
            chosen = chosen_entry["result"]
        self.fit_time_ = time.perf_counter() - t0
        self.l0_ = chosen_entry["l0"]
        self.path_ = [{k: v for k, v in e.items() if k != "result"} for e in path]
        self.n_epochs_ = chosen.epochs
        self.validation_score_ = chosen_entry["validation_score"]
        self._set_model(chosen.model)
        if self.n_features_selected_ == 0:
            warnings.warn(
                f"l0={self.l0_:.4g} removed every feature (the model predicts a constant): "
                "lower l0 or give a budget (max_features)",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _budget_path(self, run, path, l0: float, budget: int) -> dict | None:
        """Bracket then bisect log λ for the smallest λ whose fit selects at most ``budget``
        (and at least one) features, in at most ``max_path`` fits; among all fits on the path
        that meet the budget, the best validation score wins (the paper's protocol: keep the
        trials within the budget, pick by validation)."""

        def ok(e):
            return 0 < e["n_selected"] <= budget

        over, under = None, None  # largest λ with too many features, smallest with few enough
        for _ in range(self.max_path):
            r = run(l0)
            n, p = r.n_selected, r.model.n_features
            if PATH_CLOSE * budget <= n <= budget and n > 0:
                break
            if n > budget:
                over = l0 if over is None else max(over, l0)
            else:
                under = l0 if under is None else min(under, l0)
            if over is None:
                l0 = l0 / (PATH_FACTOR_FAR if n == 0 else PATH_FACTOR)
            elif under is None:
                l0 = l0 * (PATH_FACTOR_FAR if n == p else PATH_FACTOR)
            else:
                if under / over < 1.05:
                    break
                l0 = math.sqrt(over * under)
        fits = [e for e in path if ok(e)]
        if not fits:
            return None

        def key(e):
            s = e["validation_score"]
            return (-math.inf if s is None else s, e["n_selected"])

        return max(fits, key=key)

    def _hard_budget(self, path, budget, settings, Xt, yt, Xv, yv) -> dict:
        """Keep the ``budget`` rows of largest norm of the sparsest fit that selected more
        than ``budget`` features, then fine-tune with the other rows held at zero."""
        over = [e for e in path if e["n_selected"] > budget]
        if over:
            base = min(over, key=lambda e: e["n_selected"])
        else:  # every fit removed every feature: start from the densest (zero rows grow back)
            base = max(path, key=lambda e: e["n_selected"])
        model = base["result"].model
        norms = model.feature_norms().cpu().numpy()
        keep = np.zeros(len(norms), dtype=bool)
        keep[np.argsort(-norms, kind="stable")[:budget]] = True
        result = train_soft_trees(
            TrainSettings(**{**settings.__dict__, "l0": 0.0}),
            Xt,
            yt,
            Xv,
            yv,
            fixed_support=keep,
            init=model,
        )
        self.budget_enforced_ = "hard"
        score = None if Xv is None else self._validation_score(result.model, Xv, yv)
        entry = {
            "l0": base["l0"],
            "n_selected": result.n_selected,
            "validation_score": score,
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "hard_budget": True,
            "result": result,
        }
        path.append(entry)
        return entry

    def _set_model(self, model: SoftTreeEnsemble) -> None:
        model = model.to("cpu")
        norms = model.feature_norms().double().numpy()
        self.support_ = norms > 0
        self.n_features_selected_ = int(self.support_.sum())
        total = norms.sum()
        self.feature_importances_ = norms / total if total > 0 else np.zeros_like(norms)
        features = torch.as_tensor(np.flatnonzero(self.support_))
        # Prediction reads the selected columns only, in float64 (a result does not depend on
        # the batch it is predicted in).
        self.model_ = model.restricted(features).double().eval()

    # ------------------------------------------------------------------------------- predict

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_", msg="this %(name)s is not fitted yet; call fit")
        return self.support_

    def _raw_output(self, X: Any) -> np.ndarray:
        """The ensemble's output (n_samples, n_outputs): class logits or the standardized value."""
        check_is_fitted(self, "model_", msg="this %(name)s is not fitted yet; call fit")
        X = self._validate_X(X, reset=False)
        cols = self.support_
        Z = (X[:, cols] - self.mean_[cols]) / self.scale_[cols]
        with torch.no_grad():
            return self.model_(torch.as_tensor(Z, dtype=torch.float64)).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class SkinnyTreesClassifier(ClassifierMixin, _SkinnyTreesBase):
    """Soft tree ensemble classifier with group-l0 feature selection (Skinny Trees).

    All split nodes of all trees share one kernel W (features × split nodes). After every
    plain-SGD step, the rows of W with ‖W_j‖ ≤ sqrt(2 · lr · λ · s(t)) are set to zero
    (the proximal map of the group-l0 penalty λ Σ_j 1[‖W_j‖ > 0]), with the dense-to-sparse
    schedule s(t) = 1 − exp(−τ t). A feature whose row is zero is not read by any split.

    Parameters
    ----------
    max_features : int, float or None, default=None
        Feature budget: a count, or a fraction in (0, 1] of the features. With a budget, λ is
        searched on a path (bracketing, then bisection of log λ, at most ``max_path`` fits,
        stopping at a fit with 90% to 100% of the budget)
        and the in-budget fit with the best validation score is kept; if no fit on the path
        meets it, the top rows by norm are kept and fine-tuned (``budget_enforced_ == "hard"``).
        None: one fit at ``l0``.
    n_trees, depth : int, default=20, 4
        Number of trees and their depth.
    l0 : float or None, default=None
        λ, the price of a feature; None is the paper's 100 / n_features. With a budget it is
        the path's start.
    l2 : float, default=1e-2
        Ridge weight on the kernel, divided by the number of split nodes (as in the paper's code).
    tau : float or None, default=0.01
        Annealing rate of s(t) = 1 − exp(−τ t); None applies the full λ from the first step.
    learning_rate : float, default=0.1
        Constant step of plain SGD (the proximal threshold depends on it).
    batch_size, max_epochs, patience : int, default=16, 200, 20
        Mini-batch size, epoch cap and early-stopping patience (epochs without a lower
        validation loss, counted once s(t) ≥ 0.99).
    validation_fraction : float, default=0.2
        Share of the training data held out for early stopping and the λ choice (stratified);
        0, or fewer than 20 samples, trains without validation for ``max_epochs``.
    max_path : int, default=10
        Most fits on the λ path.
    random_state : int or None, default=None
        Seed of the initial weights, the batches and the validation split (None means 0: the
        fit is deterministic).
    device : str, default="cpu"
        Torch device for training: "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
        Small data train faster on the CPU; prediction always runs on the CPU.

    Attributes
    ----------
    classes_ : ndarray
    support_ : ndarray of bool, shape (n_features,)
        The selected features (non-zero kernel rows).
    n_features_selected_ : int
    feature_importances_ : ndarray
        ‖W_j‖ on the standardized features, normalized to sum to 1 (0 for dropped features).
    l0_ : float
        λ of the kept fit.
    path_ : list of dict
        Every fit on the λ path: l0, n_selected, validation_score, epochs, best_epoch.
    budget_, budget_enforced_ : int or None, str
        The budget as a count and how it was met ("path", "hard" or "none").
    model_ : SoftTreeEnsemble
        The compact model on the selected features (float64).
    n_epochs_, validation_score_, fit_time_ : int, float or None, float

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = SkinnyTreesClassifier(max_features=0.25, max_epochs=30, random_state=0).fit(X, y)
    >>> clf.n_features_selected_ <= 7, clf.transform(X).shape[1] == clf.n_features_selected_
    (True, True)
    """

    _task = "classification"

    def _encode_y(self, y: Any, n: int) -> tuple[np.ndarray, int]:
        if y is None:
            raise LabcoreError("requires y to be passed, but the target y is None")
        y = _target_1d(y, n)
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise LabcoreError(str(exc)) from None
        if type_of_target(y) not in ("binary", "multiclass"):
            raise LabcoreError(f"y must hold class labels, got {type_of_target(y)} targets")
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        if len(self.classes_) < 2:
            raise LabcoreError(
                f"y has one class ({self.classes_[0]!r}): a classifier needs at least 2 classes"
            )
        return enc.transform(y), len(self.classes_)

    def _validation_score(self, model, X, y) -> float:
        from sklearn.metrics import roc_auc_score

        with torch.no_grad():
            proba = torch.softmax(model(torch.as_tensor(X, dtype=torch.float32)), dim=1).numpy()
        if len(np.unique(y)) < proba.shape[1]:  # AUC needs every class in the validation set
            return float(np.mean(proba.argmax(axis=1) == y))
        if proba.shape[1] == 2:
            return float(roc_auc_score(y, proba[:, 1]))
        proba = proba / proba.sum(axis=1, keepdims=True)
        return float(roc_auc_score(y, proba, multi_class="ovo"))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the summed tree outputs), columns in ``classes_``."""
        check_is_fitted(self, "model_", msg="this %(name)s is not fitted yet; call fit")
        logits = self._raw_output(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        check_is_fitted(self, "model_", msg="this %(name)s is not fitted yet; call fit")
        return self.classes_[np.argmax(self._raw_output(X), axis=1)]

    def decision_function(self, X: Any) -> np.ndarray:
        """Class logits (n_samples, n_classes); for two classes the logit difference
        (n_samples,), positive for ``classes_[1]`` (scikit-learn's convention)."""
        logits = self._raw_output(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits


class SkinnyTreesRegressor(RegressorMixin, _SkinnyTreesBase):
    """Soft tree ensemble regressor with group-l0 feature selection (Skinny Trees).

    The same model and parameters as :class:`SkinnyTreesClassifier` (see there) with one
    output and the mean squared error on the standardized target; the validation score of
    the λ path is the negative validation MSE.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 12)); y = X[:, 0] - 2 * X[:, 3] + 0.1 * rng.normal(size=300)
    >>> reg = SkinnyTreesRegressor(max_features=2, max_epochs=60, random_state=0).fit(X, y)
    >>> np.flatnonzero(reg.support_).tolist()
    [0, 3]
    """

    _task = "regression"

    def _encode_y(self, y: Any, n: int) -> tuple[np.ndarray, int]:
        if y is None:
            raise LabcoreError("requires y to be passed, but the target y is None")
        y = _target_1d(y, n)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise LabcoreError("y must be numeric for a regressor") from None
        if not np.isfinite(y).all():
            raise LabcoreError("y contains NaN or infinity")
        sd = y.std()
        if not sd > 0:
            raise LabcoreError(f"the target is constant ({y[0]!r}): nothing to learn")
        self.y_mean_, self.y_scale_ = float(y.mean()), float(sd)
        return (y - self.y_mean_) / self.y_scale_, 1

    def _validation_score(self, model, X, y) -> float:
        with torch.no_grad():
            pred = model(torch.as_tensor(X, dtype=torch.float32))[:, 0].numpy()
        return -float(np.mean((pred - y) ** 2))

    def predict(self, X: Any) -> np.ndarray:
        """The predicted target of each row."""
        return self._raw_output(X)[:, 0] * self.y_scale_ + self.y_mean_
