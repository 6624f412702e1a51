"""scikit-learn estimators: :class:`GraphL0BnB` and the path/model-selection :class:`GraphL0BnBCV`."""

from __future__ import annotations

import math
import numbers
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted, validate_data

from graphl0bnb import _kernels as K
from graphl0bnb.bnb import branch_and_bound
from graphl0bnb.heuristic import heuristic_solve, lambda0_max
from graphl0bnb.problem import (
    GraphL0BnBError,
    check_data,
    check_penalties,
    covariance,
    start_point,
)

M_FACTOR = 1.2  # M = 1.2 × the largest |θ_ij| of a heuristic solution (L0BnB's rule)
# Box for the unboxed path and the first heuristic: huge on the standardized scale, but finite
# so that coordinate descent cannot run off when l2 = 0 and S is singular (p > n).
PATH_BOX = 1e3
MAX_M_RAISES = 4


class BoxActiveWarning(UserWarning):
    """The big-M box |θ_ij| ≤ M binds at the solution, so M may have cut off the optimum."""


def default_l0(n: int, p: int) -> float:
    """λ0 = (log n + 2 log p) / n: the extended-BIC (γ = 0.5) price of one edge on the loss's scale."""
    return (math.log(n) + 2.0 * math.log(p)) / n


def pseudolikelihood_loss(S: np.ndarray, Theta: np.ndarray) -> float:
    """Σ_i −log θ_ii + θ_iᵀ S θ_i / θ_ii (twice the node-wise Gaussian NLL per sample)."""
    Theta = np.ascontiguousarray(Theta, dtype=np.float64)
    _, V = start_point(S, Theta)
    return float(K.smooth_value(Theta, V))


def _box_active(Theta: np.ndarray, M: float) -> bool:
    off = np.abs(Theta - np.diag(np.diag(Theta)))
    return bool(off.size and off.max() >= M * (1.0 - 1e-6))


def _first_M(S, l0, l2) -> float:
    h = heuristic_solve(S, l0, l2, PATH_BOX, local_search=False)
    off = np.abs(np.triu(h.theta, 1))
    if off.max() > 0:
        return M_FACTOR * float(off.max())
    # Empty graph: take the largest value any single edge would want.
    Theta, V = start_point(S)
    p = S.shape[0]
    a = np.add.outer(np.diag(S) / np.diag(Theta), np.diag(S) / np.diag(Theta))
    b = 2.0 * (V / np.diag(Theta)[:, None] + (V / np.diag(Theta)[:, None]).T)
    t = np.abs(b) / (2.0 * (a + l2))
    t[np.arange(p), np.arange(p)] = 0.0
    return M_FACTOR * max(float(t.max()), 1e-3)


class GraphL0BnB(BaseEstimator):
    """Sparse precision matrix by l0-l2 penalized pseudolikelihood, certified by branch-and-bound.

    Minimises, over symmetric Θ with a positive diagonal,

        Σ_i [ −log θ_ii + θ_iᵀ S θ_i / θ_ii ] + l0·#edges + l2·Σ_{i<j} θ_ij²,  |θ_ij| ≤ M,

    with S the covariance of the centred (by default standardized) data.

    Parameters
    ----------
    l0 : float or None
        Price per edge. None: (log n + 2 log p)/n, the extended BIC's price of an edge
        (γ = 0.5) on this loss's scale; tune it with :class:`GraphL0BnBCV`.
    l2 : float
        Ridge weight. It also strengthens the perspective relaxation, hence the certificate:
        with l2 ≥ l0/M² the relaxation is the reverse-Huber one and gaps close much faster.
    M : float or None
        Big-M box on the off-diagonal entries (standardized scale). None: 1.2 × the largest
        |θ_ij| of a heuristic solution, doubled and re-solved (with a warning) while the box
        binds at the solution.
    mode : {"bnb", "heuristic"}
        "bnb" certifies the solution (lower bound and gap); "heuristic" is the fast mode
        (coordinate descent + swap local search, no certificate).
    gap_tol : float
        Stop when (upper − lower) / max(|upper|, 1) ≤ gap_tol (the relative gap).
    time_limit : float
        Seconds for the branch-and-bound; the best solution and bound so far are returned.
    max_nodes : int or None
        Optional node limit.
    search : {"best", "depth"}
        Best-bound or depth-first node selection.
    standardize : bool
        Scale columns to unit variance before solving; ``precision_`` is mapped back to the
        data's units.
    local_search : bool
        Run swap moves after coordinate descent in the heuristic.
    verbose : bool
        Print branch-and-bound progress to stderr.

    Attributes
    ----------
    precision_ : (p, p) symmetric estimate in the data's units.
    covariance_ : inverse of ``precision_`` when it is positive definite, else None (a
        pseudolikelihood estimate need not be).
    support_ : (p, p) bool, the off-diagonal edges (diagonal False).
    n_edges_, objective_, lower_bound_, gap_, gap_abs_, n_nodes_, status_, time_ :
        the certificate (lower bound and gaps are NaN in heuristic mode).
    l0_, M_ : the values used. location_, scale_ : the standardization.

    Examples
    --------
    >>> from graphl0bnb import GraphL0BnB, make_precision, sample
    >>> X = sample(make_precision("banded", 10), 400, seed=0)
    >>> est = GraphL0BnB(l0=0.05, l2=1.0).fit(X)
    >>> est.gap_ <= 0.01, int(est.n_edges_)
    (True, 15)
    """

    def __init__(
        self,
        l0: float | None = None,
        l2: float = 1.0,
        M: float | None = None,
        *,
        mode: str = "bnb",
        gap_tol: float = 1e-2,
        time_limit: float = 300.0,
        max_nodes: int | None = None,
        search: str = "best",
        standardize: bool = True,
        local_search: bool = True,
        verbose: bool = False,
    ):
        self.l0 = l0
        self.l2 = l2
        self.M = M
        self.mode = mode
        self.gap_tol = gap_tol
        self.time_limit = time_limit
        self.max_nodes = max_nodes
        self.search = search
        self.standardize = standardize
        self.local_search = local_search
        self.verbose = verbose

    def _check_params(self) -> None:
        if self.mode not in ("bnb", "heuristic"):
            raise GraphL0BnBError(f"mode must be 'bnb' or 'heuristic', got {self.mode!r}")
        if self.search not in ("best", "depth"):
            raise GraphL0BnBError(f"search must be 'best' or 'depth', got {self.search!r}")
        if not (self.gap_tol >= 0):
            raise GraphL0BnBError(f"gap_tol must be ≥ 0, got {self.gap_tol!r}")
        if not (self.time_limit > 0):
            raise GraphL0BnBError(f"time_limit must be > 0, got {self.time_limit!r}")
        if self.max_nodes is not None and not (
            isinstance(self.max_nodes, numbers.Integral) and self.max_nodes > 0
        ):
            raise GraphL0BnBError(f"max_nodes must be a positive integer, got {self.max_nodes!r}")
        check_penalties(0.0 if self.l0 is None else self.l0, self.l2, self.M)

    def fit(self, X, y=None):
        """Estimate the graph from samples X (n × p). ``y`` is ignored."""
        self._check_params()
        X = self._validate(X, reset=True)
        n, p = X.shape
        S, scale = covariance(X, standardize=self.standardize)
        self.location_ = X.mean(axis=0)
        self.scale_ = scale
        l0 = default_l0(n, p) if self.l0 is None else float(self.l0)
        self._solve(S, l0, float(self.l2))
        return self

    def _validate(self, X, *, reset: bool) -> np.ndarray:
        # scikit-learn's own checks first (sparse, complex, object dtype, feature count), with
        # its standard messages; then ours (NaN, constant columns, sizes) with named problems.
        X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        if reset:
            X = check_data(X)
            self.n_features_in_ = X.shape[1]
            return X
        if not np.isfinite(X).all():
            raise GraphL0BnBError("X contains NaN or infinite values")
        return X

    def _solve(self, S: np.ndarray, l0: float, l2: float, theta0=None) -> None:
        t0 = time.perf_counter()
        M = float(self.M) if self.M is not None else _first_M(S, l0, l2)
        # One time budget for every re-solve with a raised M.
        for attempt in range(MAX_M_RAISES + 1):
            if self.mode == "heuristic":
                h = heuristic_solve(S, l0, l2, M, theta0=theta0, local_search=self.local_search)
                theta, obj, lb, nodes, status = h.theta, h.objective, math.nan, 0, "heuristic"
            else:
                r = branch_and_bound(
                    S,
                    l0,
                    l2,
                    M,
                    gap_tol=self.gap_tol,
                    time_limit=max(self.time_limit - (time.perf_counter() - t0), 1e-3),
                    max_nodes=self.max_nodes,
                    search=self.search,
                    theta0=theta0,
                    local_search=self.local_search,
                    verbose=self.verbose,
                )
                theta, obj, lb, nodes, status = (
                    r.theta,
                    r.upper_bound,
                    r.lower_bound,
                    r.n_nodes,
                    r.status,
                )
            if not _box_active(theta, M):
                break
            if self.M is not None or attempt == MAX_M_RAISES:
                warnings.warn(
                    f"the box |θ_ij| ≤ M = {M:.4g} binds at the solution; a larger M may "
                    "give a better optimum",
                    BoxActiveWarning,
                    stacklevel=3,
                )
                break
            warnings.warn(
                f"the data-driven M = {M:.4g} binds at the solution; doubling it and re-solving",
                BoxActiveWarning,
                stacklevel=3,
            )
            M *= 2.0
            theta0 = theta
        self.theta_standardized_ = theta
        inv_scale = 1.0 / self.scale_
        prec = theta * np.outer(inv_scale, inv_scale)
        self.precision_ = (prec + prec.T) / 2.0
        try:
            np.linalg.cholesky(self.precision_)
            self.covariance_ = np.linalg.inv(self.precision_)
        except np.linalg.LinAlgError:
            self.covariance_ = None
        support = np.abs(theta) > 0
        np.fill_diagonal(support, False)
        self.support_ = support
        self.n_edges_ = int(np.triu(support, 1).sum())
        self.objective_ = float(obj)
        self.lower_bound_ = float(lb)
        self.gap_abs_ = max(0.0, obj - lb) if math.isfinite(lb) else math.nan
        self.gap_ = self.gap_abs_ / max(abs(obj), 1.0) if math.isfinite(lb) else math.nan
        self.n_nodes_ = int(nodes)
        self.status_ = status
        self.l0_ = l0
        self.M_ = M
        self.time_ = time.perf_counter() - t0

    def score(self, X, y=None) -> float:
        """Minus the pseudolikelihood loss of the fitted Θ on X (higher is better)."""
        check_is_fitted(self, "precision_")
        X = self._validate(X, reset=False)
        Xc = (X - self.location_) / self.scale_
        S = np.ascontiguousarray(Xc.T @ Xc / X.shape[0])
        return -pseudolikelihood_loss(S, self.theta_standardized_)

    def edges(self, names=None) -> list[tuple]:
        """(i, j, partial correlation, θ_ij) for every edge i < j (names instead of indices)."""
        check_is_fitted(self, "precision_")
        i, j = np.nonzero(np.triu(self.support_, 1))
        d = np.sqrt(np.diag(self.precision_))
        pc = -self.precision_[i, j] / (d[i] * d[j])
        lab = (lambda k: names[k]) if names is not None else int
        return [
            (lab(a), lab(b), float(c), float(self.precision_[a, b]))
            for a, b, c in zip(i, j, pc, strict=True)
        ]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags


class GraphL0BnBCV(GraphL0BnB):
    """:class:`GraphL0BnB` with λ0 chosen along a warm-started path.

    The path runs the heuristic (fast) over a geometric grid of λ0 from the value where the
    empty graph is a coordinate-wise minimum down to ``l0_min_ratio`` of it, each point warm
    started from the previous one, stopping once a solution has more than ``max_edges``
    edges. λ0 is chosen by

    - ``criterion="bic"``: the extended BIC of Foygel and Drton (2010),
      n·loss + #edges·(log n + 4γ log p), loss the pseudolikelihood loss (twice the node-wise
      Gaussian negative log-likelihood per sample) and γ = ``ebic_gamma`` (0 gives BIC), or
    - ``criterion="cv"``: the held-out pseudolikelihood loss over ``cv`` folds.

    The chosen λ0 is then solved in ``mode`` (branch-and-bound by default) on all data.

    Attributes (besides :class:`GraphL0BnB`'s): ``l0s_`` (the grid), ``path_n_edges_``,
    ``path_scores_`` (BIC or mean held-out loss; lower is better), ``best_index_``.
    """

    def __init__(
        self,
        l0s=None,
        l2: float = 1.0,
        M: float | None = None,
        *,
        n_l0s: int = 30,
        l0_min_ratio: float = 1e-3,
        max_edges: int | None = None,
        criterion: str = "bic",
        ebic_gamma: float = 0.5,
        cv: int = 5,
        mode: str = "bnb",
        gap_tol: float = 1e-2,
        time_limit: float = 300.0,
        max_nodes: int | None = None,
        search: str = "best",
        standardize: bool = True,
        local_search: bool = True,
        verbose: bool = False,
    ):
        super().__init__(
            None,
            l2,
            M,
            mode=mode,
            gap_tol=gap_tol,
            time_limit=time_limit,
            max_nodes=max_nodes,
            search=search,
            standardize=standardize,
            local_search=local_search,
            verbose=verbose,
        )
        self.l0s = l0s
        self.n_l0s = n_l0s
        self.l0_min_ratio = l0_min_ratio
        self.max_edges = max_edges
        self.criterion = criterion
        self.ebic_gamma = ebic_gamma
        self.cv = cv

    def _grid(self, S: np.ndarray) -> np.ndarray:
        if self.l0s is not None:
            grid = np.sort(np.asarray(self.l0s, dtype=float))[::-1]
            if grid.size == 0 or not np.all(np.isfinite(grid)) or grid.min() <= 0:
                raise GraphL0BnBError("l0s must be a non-empty list of positive numbers")
            return grid
        if not (0 < self.l0_min_ratio < 1) or self.n_l0s < 2:
            raise GraphL0BnBError("need 0 < l0_min_ratio < 1 and n_l0s ≥ 2")
        top = lambda0_max(S, self.l2) * 0.999
        if top <= 0:
            raise GraphL0BnBError("every edge's gain is zero: the data carry no dependence")
        return np.geomspace(top, top * self.l0_min_ratio, self.n_l0s)

    def _path(self, S: np.ndarray, grid: np.ndarray, max_edges: int) -> list[np.ndarray]:
        thetas = []
        theta = None
        for l0 in grid:
            h = heuristic_solve(S, l0, self.l2, PATH_BOX, theta0=theta, local_search=False)
            theta = h.theta
            thetas.append(theta)
            if np.count_nonzero(np.triu(theta, 1)) > max_edges:
                break
        return thetas

    def fit(self, X, y=None):
        self._check_params()
        t0 = time.perf_counter()
        if self.criterion not in ("bic", "cv"):
            raise GraphL0BnBError(f"criterion must be 'bic' or 'cv', got {self.criterion!r}")
        if not (isinstance(self.ebic_gamma, numbers.Real) and self.ebic_gamma >= 0):
            raise GraphL0BnBError(f"ebic_gamma must be ≥ 0, got {self.ebic_gamma!r}")
        X = self._validate(X, reset=True)
        n, p = X.shape
        S, scale = covariance(X, standardize=self.standardize)
        self.location_ = X.mean(axis=0)
        self.scale_ = scale
        max_edges = self.max_edges if self.max_edges is not None else min(10 * p, p * (p - 1) // 2)
        grid = self._grid(S)
        thetas = self._path(S, grid, max_edges)
        grid = grid[: len(thetas)]
        n_edges = np.array([np.count_nonzero(np.triu(t, 1)) for t in thetas])
        if self.criterion == "bic":
            per_edge = math.log(n) + 4.0 * self.ebic_gamma * math.log(p)
            scores = np.array(
                [
                    n * pseudolikelihood_loss(S, t) + per_edge * e
                    for t, e in zip(thetas, n_edges, strict=True)
                ]
            )
        else:
            if self.cv < 2 or self.cv > n:
                raise GraphL0BnBError(f"cv must be between 2 and n = {n}, got {self.cv}")
            losses = np.zeros((self.cv, len(grid)))
            for f, (tr, te) in enumerate(KFold(self.cv, shuffle=True, random_state=0).split(X)):
                try:
                    S_tr, sc = covariance(check_data(X[tr]), standardize=self.standardize)
                except GraphL0BnBError as exc:
                    raise GraphL0BnBError(
                        f"cross-validation fold {f}: {exc}; use fewer folds or criterion='bic'"
                    ) from None
                Xte = (X[te] - X[tr].mean(axis=0)) / sc
                S_te = np.ascontiguousarray(Xte.T @ Xte / len(te))
                for k, t in enumerate(self._path(S_tr, grid, max_edges=10**12)):
                    losses[f, k] = pseudolikelihood_loss(S_te, t)
            scores = losses.mean(axis=0)
            if not np.all(np.isfinite(scores)):
                raise GraphL0BnBError("held-out losses are not finite (a fold is degenerate)")
        best = int(np.argmin(scores))
        if best == len(scores) - 1 and len(thetas) == len(self._grid(S)):
            warnings.warn(
                "the selection criterion is still falling at the smallest λ0 of the grid; "
                "lower l0_min_ratio or pass a longer l0s",
                UserWarning,
                stacklevel=2,
            )
        self.l0s_ = grid
        self.path_n_edges_ = n_edges
        self.path_scores_ = scores
        self.best_index_ = best
        self._solve(S, float(grid[best]), float(self.l2), theta0=thetas[best])
        self.time_ = time.perf_counter() - t0  # path, selection and the final solve
        return self
