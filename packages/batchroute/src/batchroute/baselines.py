"""Per-query routers: the baselines that batch routing is compared with.

Each router decides query by query from that query's predicted quality and costs; it does
not see the rest of the batch, so it cannot trade one query's cost against another's, and
it ignores the capacities (its routing may violate them; the bench counts violations with
:func:`~batchroute.problem.violations`). Only :class:`RandomWithinBudget` looks at the
batch budget, as a running account.

Every router has ``fit(quality_val, cost_val, budget_per_query)``, which tunes its
parameters on validation queries (disjoint from the test batch; a no-op for the routers
with nothing to tune), and ``route(problem) -> choice``, one model index per query
(int64). Parameters given to the constructor are kept; ``fit`` tunes only those left None.

* :class:`AlwaysCheapest`, :class:`AlwaysBest`: the cheapest or the best-predicted model;
* :class:`RandomWithinBudget`: a random model that fits a fair share of the budget left;
* :class:`CostPenalized`: argmax of quality − λ·cost, λ tuned to the budget;
* :class:`ThresholdRouter`: RouteLLM-style choice between a strong and a weak model.

:data:`PER_QUERY_ROUTERS` maps names to the classes (their own factories).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from batchroute.problem import RoutingProblem
from labcore.errors import LabcoreError

__all__ = [
    "PER_QUERY_ROUTERS",
    "AlwaysBest",
    "AlwaysCheapest",
    "CostPenalized",
    "PerQueryRouter",
    "RandomWithinBudget",
    "ThresholdRouter",
]

# Bisection steps of CostPenalized.fit: over a bracket spanning up to ~1e600, 60 halvings
# of the log-width leave a relative width of about 1e-15.
_BISECTION_STEPS = 60


@runtime_checkable
class PerQueryRouter(Protocol):
    """What the bench needs from a per-query router."""

    def fit(self, quality_val, cost_val, budget_per_query) -> PerQueryRouter: ...

    def route(self, problem: RoutingProblem) -> np.ndarray: ...


def _validation(quality_val, cost_val, budget_per_query) -> tuple[np.ndarray, np.ndarray, float]:
    """Checked validation data; an unlimited budget (None or inf) comes back as inf."""
    quality = np.asarray(quality_val, dtype=np.float64)
    cost = np.asarray(cost_val, dtype=np.float64)
    if quality.ndim != 2 or quality.shape[0] == 0 or quality.shape[1] == 0:
        raise LabcoreError(
            f"quality_val must be a non-empty (queries × models) array, got shape {quality.shape}"
        )
    if cost.shape != quality.shape:
        raise LabcoreError(f"cost_val has shape {cost.shape}, quality_val {quality.shape}")
    if not (np.isfinite(quality).all() and np.isfinite(cost).all()):
        raise LabcoreError("quality_val and cost_val must not contain NaN or infinite values")
    if (cost < 0).any():
        raise LabcoreError("cost_val must be non-negative")
    budget = np.inf if budget_per_query is None else float(budget_per_query)
    if np.isnan(budget) or budget < 0:
        raise LabcoreError(f"budget_per_query must be ≥ 0, got {budget_per_query!r}")
    return quality, cost, budget


def _check_problem(problem) -> RoutingProblem:
    if not isinstance(problem, RoutingProblem):
        raise LabcoreError(f"route expects a RoutingProblem, got {type(problem).__name__}")
    return problem


def _argmax_tiebreak(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``primary``; ties go to the largest ``secondary``, then the first."""
    top = primary == primary.max(axis=1, keepdims=True)
    return np.argmax(np.where(top, secondary, -np.inf), axis=1).astype(np.int64)


class AlwaysCheapest:
    """Every query to its cheapest model (ties: the higher predicted quality, then index).

    Examples
    --------
    >>> p = RoutingProblem(quality=[[0.5, 0.9], [0.6, 0.7]], cost=[[1, 5], [4, 2]])
    >>> AlwaysCheapest().route(p).tolist()
    [0, 1]
    """

    def fit(self, quality_val=None, cost_val=None, budget_per_query=None) -> AlwaysCheapest:
        """Nothing to tune; returns ``self``."""
        return self

    def route(self, problem: RoutingProblem) -> np.ndarray:
        """The cheapest model per query."""
        problem = _check_problem(problem)
        return _argmax_tiebreak(-problem.cost, problem.quality)


class AlwaysBest:
    """Every query to its best-predicted model (ties: the cheaper, then the lower index).

    Examples
    --------
    >>> p = RoutingProblem(quality=[[0.5, 0.9], [0.7, 0.7]], cost=[[1, 5], [4, 2]])
    >>> AlwaysBest().route(p).tolist()
    [1, 1]
    """

    def fit(self, quality_val=None, cost_val=None, budget_per_query=None) -> AlwaysBest:
        """Nothing to tune; returns ``self``."""
        return self

    def route(self, problem: RoutingProblem) -> np.ndarray:
        """The model of highest predicted quality per query."""
        problem = _check_problem(problem)
        return _argmax_tiebreak(problem.quality, -problem.cost)


class RandomWithinBudget:
    """A random model per query, within a fair share of the budget that is left.

    The queries are visited in a random order. With R budget left and r queries to go,
    a query picks uniformly among the models whose cost is at most its fair share R / r
    and that leave enough budget for the cheapest model of every query after it; if no
    model qualifies, it takes its cheapest model. The second condition makes the routing
    stay within the budget whenever the budget covers the cheapest model of every query
    (the fair share alone does not: an early query may spend what a later, expensive one
    needs). Without a budget, every model qualifies. The random generator persists across
    calls, so consecutive batches get fresh draws, reproducible from ``seed``.

    Examples
    --------
    >>> p = RoutingProblem(quality=[[0.5, 0.9]] * 4, cost=[[1, 5]] * 4, budget=8)
    >>> choice = RandomWithinBudget(seed=0).route(p)
    >>> float(p.cost[np.arange(4), choice].sum()) <= 8
    True
    """

    def __init__(self, *, seed: int = 0):
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def fit(self, quality_val=None, cost_val=None, budget_per_query=None) -> RandomWithinBudget:
        """Nothing to tune; returns ``self``."""
        return self

    def route(self, problem: RoutingProblem) -> np.ndarray:
        """One random affordable model per query."""
        problem = _check_problem(problem)
        n = problem.n
        order = self._rng.permutation(n)
        # Uniform keys: the argmax of the keys over the qualifying models is a uniform pick.
        keys = self._rng.random((n, problem.m))
        if problem.budget is None:
            picks = np.argmax(keys, axis=1)
        else:
            cost = problem.cost[order]
            cheapest = _argmax_tiebreak(-cost, problem.quality[order])
            cheapest_cost = cost[np.arange(n), cheapest]
            # after[k]: what the cheapest models of the queries after the k-th one cost.
            after = np.concatenate([np.cumsum(cheapest_cost[::-1])[::-1][1:], [0.0]])
            picks = np.empty(n, dtype=np.int64)
            left = problem.budget
            # Sequential by nature: each query's share depends on what the earlier ones spent.
            for k in range(n):
                ok = (cost[k] <= left / (n - k)) & (left - cost[k] >= after[k])
                picks[k] = np.argmax(np.where(ok, keys[k], -1.0)) if ok.any() else cheapest[k]
                left -= cost[k, picks[k]]
        choice = np.empty(n, dtype=np.int64)
        choice[order] = picks
        return choice


def _penalized_choice(quality: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    return np.argmax(quality - lam * cost, axis=1)


class CostPenalized:
    """Each query to argmax_m (quality − λ·cost).

    ``fit`` tunes λ ≥ 0 to the smallest value whose mean cost per validation query is
    within ``budget_per_query``: λ = 0 if the best-quality routing already fits, otherwise
    a bisection on log λ over a bracket widened until it holds the answer (the mean cost of
    the argmax is non-increasing in λ, so the bisection is valid). A budget below the mean
    cost of the cheapest models is an error: no λ fits.

    Parameters
    ----------
    lam : float, optional
        A fixed λ ≥ 0 (then ``fit`` keeps it).

    Examples
    --------
    >>> q = np.array([[0.5, 0.9], [0.2, 0.8], [0.6, 0.7]])
    >>> c = np.array([[1.0, 5.0], [1.0, 5.0], [1.0, 5.0]])
    >>> router = CostPenalized().fit(q, c, budget_per_query=11 / 3)
    >>> router.route(RoutingProblem(q, c)).tolist()
    [1, 1, 0]
    """

    def __init__(self, *, lam: float | None = None):
        if lam is not None and not (np.isfinite(lam) and lam >= 0):
            raise LabcoreError(f"lam must be a non-negative number or None, got {lam!r}")
        self.lam = None if lam is None else float(lam)
        self.lam_ = self.lam

    def fit(self, quality_val, cost_val, budget_per_query) -> CostPenalized:
        """Tune λ on validation data (unless it was given); returns ``self``."""
        quality, cost, budget = _validation(quality_val, cost_val, budget_per_query)
        if self.lam is not None:
            self.lam_ = self.lam
            return self
        rows = np.arange(quality.shape[0])

        def fits(lam: float) -> bool:
            return cost[rows, _penalized_choice(quality, cost, lam)].mean() <= budget

        if fits(0.0):
            self.lam_ = 0.0
            return self
        floor = cost.min(axis=1).mean()
        if floor > budget:
            raise LabcoreError(
                f"budget_per_query {budget:g} is below {floor:g}, the mean cost of the "
                "cheapest models on the validation queries: no λ fits"
            )
        # Bracket on the scale of quality differences per unit of cost, then widen it until
        # lo does not fit and hi does.
        positive = cost[cost > 0]
        scale = max(np.ptp(quality), 1e-12) / (positive.mean() if positive.size else 1.0)
        lo, hi = 1e-6 * scale, 1e6 * scale
        while not fits(hi) and hi < 1e300:
            hi *= 1e3
        while fits(lo) and lo > 1e-300:
            lo /= 1e3
        for _ in range(_BISECTION_STEPS):
            mid = np.sqrt(lo * hi)
            if fits(mid):
                hi = mid
            else:
                lo = mid
        self.lam_ = float(hi)
        return self

    def route(self, problem: RoutingProblem) -> np.ndarray:
        """argmax(quality − λ·cost) per query."""
        problem = _check_problem(problem)
        if self.lam_ is None:
            raise LabcoreError("CostPenalized has no λ: call fit(...) or pass lam=")
        return _penalized_choice(problem.quality, problem.cost, self.lam_).astype(np.int64)


def _model_index(which, models: tuple[str, ...] | None, m: int, role: str) -> int:
    if isinstance(which, str):
        if models is None:
            raise LabcoreError(f"{role} model {which!r} is a name but no model names are known")
        if which not in models:
            raise LabcoreError(f"unknown {role} model {which!r}; models: {list(models)}")
        return models.index(which)
    if isinstance(which, bool) or not isinstance(which, int | np.integer):
        raise LabcoreError(f"{role} must be a model index or name, got {which!r}")
    if not 0 <= which < m:
        raise LabcoreError(f"{role} model index {which} is out of range for {m} models")
    return int(which)


class ThresholdRouter:
    """RouteLLM-style two-model routing on the predicted quality gap.

    A query goes to the strong model when p̂_strong − p̂_weak > t, otherwise to the weak
    one. By default (set by ``fit``) the weak model is the one of lowest mean validation
    cost and the strong one the model of highest mean predicted validation quality. ``fit``
    calibrates t to the largest fraction of strong calls whose mean validation cost per
    query fits ``budget_per_query``: the validation gaps are sorted, and t separates the
    top k gaps (k as large as fits, stepping over ties) from the rest, at the midpoint
    between them (t = −inf when every query fits, +inf when none does). It is an error if
    no fraction fits, the weak model alone included.

    Parameters
    ----------
    strong, weak : int or str, optional
        Model index or name (names are resolved against the problem's models, or the
        ``models`` given to ``fit``).
    threshold : float, optional
        A fixed t (then ``fit`` keeps it).

    Examples
    --------
    >>> q = np.array([[0.5, 0.9], [0.2, 0.8], [0.6, 0.7]])
    >>> c = np.array([[1.0, 5.0], [1.0, 5.0], [1.0, 5.0]])
    >>> router = ThresholdRouter().fit(q, c, budget_per_query=11 / 3)
    >>> router.strong_, router.weak_, router.route(RoutingProblem(q, c)).tolist()
    (1, 0, [1, 1, 0])
    """

    def __init__(
        self,
        *,
        strong: int | str | None = None,
        weak: int | str | None = None,
        threshold: float | None = None,
    ):
        if threshold is not None and np.isnan(threshold):
            raise LabcoreError("threshold must be a number, not NaN")
        self.strong = strong
        self.weak = weak
        self.threshold = None if threshold is None else float(threshold)
        self.strong_: int | None = None
        self.weak_: int | None = None
        self.threshold_ = self.threshold
        self.strong_fraction_: float | None = None

    def fit(
        self,
        quality_val,
        cost_val,
        budget_per_query,
        *,
        models: tuple[str, ...] | None = None,
    ) -> ThresholdRouter:
        """Pick the models (unless given) and calibrate t (unless given); returns ``self``."""
        quality, cost, budget = _validation(quality_val, cost_val, budget_per_query)
        n, m = quality.shape
        weak = (
            int(np.argmin(cost.mean(axis=0)))
            if self.weak is None
            else _model_index(self.weak, models, m, "weak")
        )
        strong = (
            int(np.argmax(quality.mean(axis=0)))
            if self.strong is None
            else _model_index(self.strong, models, m, "strong")
        )
        gap = quality[:, strong] - quality[:, weak]
        order = np.argsort(-gap, kind="stable")
        sorted_gap = gap[order]
        # mean_cost[k]: all queries on the weak model, except the k of largest gap.
        extra = np.concatenate([[0.0], np.cumsum(cost[order, strong] - cost[order, weak])])
        mean_cost = (cost[:, weak].sum() + extra) / n
        # A threshold can only split the sorted gaps between two different values.
        splittable = np.ones(n + 1, dtype=bool)
        splittable[1:n] = sorted_gap[:-1] > sorted_gap[1:]
        feasible = np.flatnonzero(splittable & (mean_cost <= budget))
        self.strong_, self.weak_ = strong, weak
        if self.threshold is not None:
            self.threshold_ = self.threshold
            self.strong_fraction_ = float(np.mean(gap > self.threshold))
            return self
        if feasible.size == 0:
            raise LabcoreError(
                f"budget_per_query {budget:g} is below the mean validation cost of any "
                f"split between the strong and weak models (weak alone: {mean_cost[0]:g})"
            )
        k = int(feasible[-1])
        if k == 0:
            self.threshold_ = np.inf
        elif k == n:
            self.threshold_ = -np.inf
        else:
            self.threshold_ = float((sorted_gap[k - 1] + sorted_gap[k]) / 2)
        self.strong_fraction_ = k / n
        return self

    def route(self, problem: RoutingProblem) -> np.ndarray:
        """The strong model where the predicted gap exceeds t, else the weak one."""
        problem = _check_problem(problem)
        if self.threshold_ is None:
            raise LabcoreError("ThresholdRouter has no threshold: call fit(...) or pass one")
        if self.strong_ is not None:
            strong, weak = self.strong_, self.weak_
        elif self.strong is not None and self.weak is not None:
            strong = _model_index(self.strong, problem.models, problem.m, "strong")
            weak = _model_index(self.weak, problem.models, problem.m, "weak")
        else:
            raise LabcoreError(
                "ThresholdRouter does not know its models: call fit(...) or pass strong= and weak="
            )
        if max(strong, weak) >= problem.m:
            raise LabcoreError(
                f"the router was fitted on more models than the problem's {problem.m}"
            )
        gap = problem.quality[:, strong] - problem.quality[:, weak]
        return np.where(gap > self.threshold_, strong, weak).astype(np.int64)


#: Per-query routers by name; each value builds a router (keyword options as above).
PER_QUERY_ROUTERS: dict[str, Callable[..., PerQueryRouter]] = {
    "always-cheapest": AlwaysCheapest,
    "always-best": AlwaysBest,
    "random": RandomWithinBudget,
    "cost-penalized": CostPenalized,
    "threshold": ThresholdRouter,
}
