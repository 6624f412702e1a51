"""The feature-selection baselines of the benchmark, each at a feature budget of k columns.

Post-hoc importance + refit (the standard "top-k then refit" protocol): LightGBM by split
count or by total gain, random forest by impurity decrease, and the same soft trees trained
without the l0 penalty, ranked by their kernel row norms. Embedded: l1-penalized logistic
regression (Lasso for regression), the largest C (smallest α) on a grid whose model keeps
at most k features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labcore.errors import LabcoreError


@dataclass
class Selected:
    """A budgeted model: its selected columns, and the fitted model on those columns."""

    selected: np.ndarray  # the features the model uses (indices into the original ones)
    model: Any
    extra: dict[str, Any]
    columns: np.ndarray | None = None  # the columns it reads (None: the selected ones)

    def model_input(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.selected if self.columns is None else self.columns]


def top_k(importances: np.ndarray, k: int) -> np.ndarray:
    """The k columns of largest importance (ties broken by column order), sorted."""
    order = np.argsort(-np.asarray(importances, dtype=float), kind="stable")
    return np.sort(order[:k])


def lightgbm_model(task: str, seed: int):
    try:
        import lightgbm as lgb
    except ImportError as exc:
        raise LabcoreError(
            "the LightGBM baseline needs lightgbm: pip install 'skinnytrees[baselines]'"
        ) from exc
    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    return cls(random_state=seed, n_jobs=1, verbose=-1)


def forest_model(task: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return cls(n_estimators=200, random_state=seed, n_jobs=1)


def importance_then_refit(
    make_model: Callable[[], Any],
    importance: Callable[[Any], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    k: int,
    full_model: Any = None,
) -> Selected:
    """Rank the columns by ``importance`` of a model fitted on all of them (``full_model``
    if already fitted), keep the top k and fit a fresh model on those."""
    full = full_model if full_model is not None else make_model().fit(X, y)
    columns = top_k(importance(full), k)
    model = make_model().fit(X[:, columns], y)
    return Selected(columns, model, {})


def lightgbm_importance(kind: str) -> Callable[[Any], np.ndarray]:
    def importance(model) -> np.ndarray:
        return model.booster_.feature_importance(importance_type=kind)

    return importance


def l1_linear(task: str, X: np.ndarray, y: np.ndarray, k: int, seed: int) -> Selected:
    """l1-logistic regression (one-vs-rest for several classes: a feature counts when any
    class uses it) or the Lasso at the weakest penalty that keeps at most k features (and at
    least one): a 40-point grid from strong to weak penalty, then bisection of log C (log α)
    between the last grid point within the budget and the first beyond it. Features are
    standardized first."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso, LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        name, grid = "C", np.logspace(-4, 2, 40)

        multiclass = len(np.unique(y)) > 2

        def fit(c: float):
            clf = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", random_state=seed)
            if multiclass:  # liblinear is binary: one classifier per class
                clf = OneVsRestClassifier(clf)
            model = make_pipeline(StandardScaler(), clf).fit(X, y)
            last = model[-1]
            coef = np.vstack([e.coef_ for e in last.estimators_]) if multiclass else last.coef_
            return model, np.flatnonzero(np.any(coef != 0, axis=0))

    else:
        ys = (y - y.mean()) / y.std()
        alpha_max = np.abs(StandardScaler().fit_transform(X).T @ ys).max() / len(y) * y.std()
        # Weak penalty means small α: walk α down, i.e. 1/α up, to share the C logic.
        name, grid = "alpha", 1.0 / (alpha_max * np.logspace(0, -4, 40)[1:])

        def fit(c: float):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = make_pipeline(StandardScaler(), Lasso(alpha=1.0 / c, max_iter=5000))
                model.fit(X, y)
            return model, np.flatnonzero(model[-1].coef_ != 0)

    best, below, above = None, None, None
    for c in grid:
        model, used = fit(c)
        if len(used) > k:
            above = c
            break
        below = c
        if len(used) > 0:
            best = (model, used, c)
    if above is not None and below is not None:
        for _ in range(12):
            c = float(np.sqrt(below * above))
            model, used = fit(c)
            if len(used) > k:
                above = c
            else:
                below = c
                if len(used) > 0:
                    best = (model, used, c)
            if best is not None and len(best[1]) == k:
                break
    if best is None:
        raise LabcoreError("the l1 path kept no model within the budget")
    model, used, c = best
    value = c if name == "C" else 1.0 / c
    # The pipeline reads every column (zero weights elsewhere).
    return Selected(used, model, {name: float(value)}, columns=np.arange(X.shape[1]))
