"""``DPBestSubset``: the private support and coefficients as a scikit-learn estimator."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from dpbss.data import check_bounded
from dpbss.estimate import objective_perturbation
from dpbss.select import neighbourhood, sample_mistakes, sample_top_r, sensitivity
from labcore.checks import choice, finite_array, finite_float, positive_int
from labcore.errors import LabcoreError

MECHANISMS = ("mistakes", "top-r")
LOSSES = ("squared", "hinge")
#: The official code's ridge weights: λ_ridge = 120 (least squares), 100 (hinge).
DEFAULT_RIDGE = {"squared": 120.0, "hinge": 100.0}


class DPBestSubset(RegressorMixin, BaseEstimator):
    """ε-differentially private best subset selection (least squares or hinge loss).

    The best support and its neighbourhood are found exactly by outer approximation
    (HiGHS), then one support is drawn by the Top-R or the Mistakes mechanism
    (:mod:`dpbss.select`), and its coefficients are estimated by objective perturbation
    with the rest of the budget.

    Parameters
    ----------
    k : int, default 5
        s, the support size (at most the number of features).
    epsilon : float, default 1.0
        The total privacy budget (pure ε-DP).
    loss : {"squared", "hinge"}, default "squared"
        Least squares (regression) or the hinge loss (binary classification: two classes,
        mapped to −1 and +1; ``predict`` returns the classes).
    mechanism : {"mistakes", "top-r"}, default "mistakes"
    ridge : float or None, default None
        λ of the perspective ridge; None takes the official code's defaults, 120 (squared)
        and 100 (hinge).
    radius : float, default 1.1
        r: coefficients lie in the ball ‖β‖₂ ≤ r (it enters the sensitivity).
    x_bound, y_bound : float, default 0.5
        |x_ij| ≤ b_x and |y_i| ≤ b_y (y_bound: squared loss only); data outside are an error
        unless ``clip``. The bounds are part of the privacy guarantee: fix them without
        looking at the data.
    clip : bool, default False
        Clip the data to the bounds (per record: no privacy cost) instead of refusing it.
    estimate : bool, default True
        Also estimate private coefficients (squared loss; objective perturbation); the budget
        is then split by ``epsilon_split``. The hinge loss selects only.
    epsilon_split : float, default 0.5
        Share of ε spent on the selection (the rest on the coefficients).
    time_limit : float, default 60.0
        Seconds for each outer-approximation solve.
    random_state : int or None

    Attributes
    ----------
    support_ : ndarray of int
        The private support (sorted feature indices).
    epsilon_spent_ : float
        The privacy budget used (pure ε-DP): selection plus estimation.
    coef_ : ndarray of shape (p,)
        Private coefficients (zero off the support; zero everywhere when ``estimate=False``).
    certified_ : bool
        Whether the Top-R certificate held (the 2-mistake optimum is at least every
        one-swap loss); Top-R's guarantee assumes it.
    sensitivity_ : float
        Δ of the support costs.
    solve_info_ : dict
        Outer-approximation statistics (solves, cuts, gaps, seconds). They describe the
        non-private computation and are not privatized: do not publish them.
    """

    def __init__(
        self,
        k: int = 5,
        *,
        epsilon: float = 1.0,
        loss: str = "squared",
        mechanism: str = "mistakes",
        ridge: float | None = None,
        radius: float = 1.1,
        x_bound: float = 0.5,
        y_bound: float = 0.5,
        clip: bool = False,
        estimate: bool = True,
        epsilon_split: float = 0.5,
        time_limit: float = 60.0,
        random_state: int | None = None,
    ) -> None:
        self.k = k
        self.epsilon = epsilon
        self.loss = loss
        self.mechanism = mechanism
        self.ridge = ridge
        self.radius = radius
        self.x_bound = x_bound
        self.y_bound = y_bound
        self.clip = clip
        self.estimate = estimate
        self.epsilon_split = epsilon_split
        self.time_limit = time_limit
        self.random_state = random_state

    def fit(self, X, y) -> DPBestSubset:
        t0 = time.perf_counter()
        eps = finite_float("epsilon", self.epsilon, minimum=0.0, strict=True)
        loss = choice("loss", self.loss, LOSSES)
        mechanism = choice("mechanism", self.mechanism, MECHANISMS)
        s = positive_int("k", self.k)
        ridge = DEFAULT_RIDGE[loss] if self.ridge is None else self.ridge
        ridge = finite_float("ridge", ridge, minimum=0.0, strict=True)
        radius = finite_float("radius", self.radius, minimum=0.0, strict=True)
        time_limit = finite_float("time_limit", self.time_limit, minimum=0.0, strict=True)
        estimate = bool(self.estimate) and loss == "squared"
        split = finite_float("epsilon_split", self.epsilon_split, minimum=0.0, strict=True)
        if estimate and split >= 1:
            raise LabcoreError(f"epsilon_split must lie in (0, 1), got {split}")
        X, y = validate_data(self, X, y, y_numeric=loss == "squared", ensure_all_finite=False)
        if loss == "hinge":
            X, y = self._hinge_labels(X, y)
        X, y = check_bounded(
            X,
            y,
            x_bound=self.x_bound,
            y_bound=self.y_bound if loss == "squared" else 1.0,
            clip=bool(self.clip),
        )
        n, p = X.shape
        if s > p:
            raise LabcoreError(f"k = {s} is larger than the number of features p = {p}")
        rng = np.random.default_rng(self.random_state)
        eps_select = eps * split if estimate else eps
        self.sensitivity_ = sensitivity(
            n=n, s=s, x_bound=self.x_bound, y_bound=self.y_bound, radius=radius, loss=loss
        )
        nb = neighbourhood(
            X,
            y,
            s,
            lam=ridge,
            r=radius,
            loss=loss,
            mistakes=s if mechanism == "mistakes" else 2,
            time_limit=time_limit,
        )
        draw = sample_mistakes if mechanism == "mistakes" else sample_top_r
        self.support_ = draw(nb, epsilon=eps_select, sensitivity=self.sensitivity_, rng=rng)
        self.certified_ = nb.certified
        inexact = [r for r in nb.solves if r.status not in ("optimal", "infeasible")]
        if inexact or (mechanism == "top-r" and not nb.certified):
            # The privacy analyses assume exact optima (and Top-R its certificate).
            warnings.warn(
                f"{len(inexact)} of {len(nb.solves)} solves stopped before their gap "
                f"(worst gap {max((r.gap for r in inexact), default=0.0):.1e}; raise "
                f"time_limit)"
                * bool(inexact)
                + ("; " if inexact and not nb.certified and mechanism == "top-r" else "")
                + "the Top-R certificate failed" * (mechanism == "top-r" and not nb.certified)
                + ": the ε-DP guarantee assumes exact optima",
                RuntimeWarning,
                stacklevel=2,
            )
        if estimate:
            self.coef_ = objective_perturbation(
                X,
                y,
                self.support_,
                epsilon=eps - eps_select,
                x_bound=self.x_bound,
                y_bound=self.y_bound,
                radius=radius,
                rng=rng,
            )
        else:
            self.coef_ = np.zeros(p)
        self.epsilon_spent_ = eps
        self.solve_info_ = {
            "solves": [
                {"status": r.status, "gap": r.gap, "iterations": r.iterations, "seconds": r.seconds}
                for r in nb.solves
            ],
            "cuts": nb.solves[-1].cuts,
            "seconds": time.perf_counter() - t0,
        }
        return self

    def _hinge_labels(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y)
        if y.ndim != 1:
            raise LabcoreError(f"y must be one-dimensional, got shape {y.shape}")
        classes = np.unique(y)
        if classes.size != 2:
            raise LabcoreError(f"the hinge loss needs exactly two classes in y, got {classes.size}")
        self.classes_ = classes
        return X, np.where(y == classes[1], 1.0, -1.0)

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, ensure_all_finite=False)
        return finite_array("X", X, ndim=2)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The private coefficients are noisy by design: no score threshold on toy data.
        tags.regressor_tags.poor_score = True
        return tags

    def predict(self, X) -> np.ndarray:
        """Predictions X·coef_ (squared loss)."""
        X = self._check_X(X)
        if self.loss == "hinge":
            raise LabcoreError(
                "loss='hinge' selects a support only (support_); fit a private classifier on "
                "those features (the rest of the budget) to predict"
            )
        return X @ self.coef_
