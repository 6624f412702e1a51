"""Per-query routers: exact choices by hand, budget tuning, and the random router's budget."""

from __future__ import annotations

import numpy as np
import pytest
from batchroute.baselines import (
    PER_QUERY_ROUTERS,
    AlwaysBest,
    AlwaysCheapest,
    CostPenalized,
    PerQueryRouter,
    RandomWithinBudget,
    ThresholdRouter,
)
from batchroute.problem import RoutingProblem, violations

from labcore.errors import LabcoreError


def mean_cost(cost: np.ndarray, choice: np.ndarray) -> float:
    return float(cost[np.arange(len(choice)), choice].mean())


def validation(seed: int, n: int = 300, m: int = 4):
    """Quality rising with price, as with real models, plus per-query noise."""
    rng = np.random.default_rng(seed)
    price = np.sort(rng.uniform(0.1, 10.0, size=m))
    quality = np.clip(0.3 + 0.1 * np.log(price) + rng.normal(0, 0.15, (n, m)), 0, 1)
    cost = price * rng.lognormal(0, 0.5, (n, m))
    return quality, cost


def budgets(quality, cost):
    """Per-query budgets strictly between the cheapest and the best-quality routing."""
    low = cost.min(axis=1).mean()
    high = mean_cost(cost, np.argmax(quality, axis=1))
    return [low + f * (high - low) for f in (0.05, 0.3, 0.6, 0.95)]


HAND = RoutingProblem(
    quality=[[0.2, 0.6, 0.9], [0.5, 0.5, 0.4], [0.1, 0.8, 0.8], [0.3, 0.2, 0.1]],
    cost=[[1.0, 2.0, 5.0], [3.0, 1.0, 1.0], [2.0, 4.0, 3.0], [1.0, 1.0, 2.0]],
    budget=8.0,
    capacity=[1, 1, 1],
)


def test_always_cheapest_and_best_by_hand():
    # Ties: cost 1 twice in row 1 (higher quality wins: model 1), row 3 (model 0).
    assert AlwaysCheapest().route(HAND).tolist() == [0, 1, 0, 0]
    # Ties: quality 0.5 twice in row 1 (cheaper wins: model 1), 0.8 in row 2 (model 2).
    assert AlwaysBest().route(HAND).tolist() == [2, 1, 2, 0]
    assert AlwaysBest().fit().route(HAND).dtype == np.int64
    # Per-query routers ignore capacity: the bench sees the violation.
    assert "capacity[m0]" in violations(HAND, AlwaysCheapest().route(HAND))


# --------------------------------------------------------------------------------------------
# CostPenalized.


@pytest.mark.parametrize("seed", range(4))
def test_cost_penalized_lambda_is_minimal(seed):
    quality, cost = validation(seed)
    for budget in budgets(quality, cost):
        router = CostPenalized().fit(quality, cost, budget)
        lam = router.lam_
        assert lam > 0
        choice = np.argmax(quality - lam * cost, axis=1)
        assert mean_cost(cost, choice) <= budget
        assert mean_cost(cost, np.argmax(quality - 0.9 * lam * cost, axis=1)) > budget
        assert mean_cost(cost, np.argmax(quality - 0.999 * lam * cost, axis=1)) > budget
        np.testing.assert_array_equal(router.route(RoutingProblem(quality, cost)), choice)


def test_cost_penalized_zero_lambda_and_errors():
    quality, cost = validation(7)
    best = mean_cost(cost, np.argmax(quality, axis=1))
    assert CostPenalized().fit(quality, cost, best).lam_ == 0.0
    assert CostPenalized().fit(quality, cost, None).lam_ == 0.0
    with pytest.raises(LabcoreError, match=r"below .* cheapest models"):
        CostPenalized().fit(quality, cost, 0.99 * cost.min(axis=1).mean())
    # The cheapest routing exactly fits: a (large) λ that routes to it.
    router = CostPenalized().fit(quality, cost, cost.min(axis=1).mean())
    assert mean_cost(cost, router.route(RoutingProblem(quality, cost))) <= cost.min(1).mean()
    with pytest.raises(LabcoreError, match="call fit"):
        CostPenalized().route(RoutingProblem(quality, cost))
    fixed = CostPenalized(lam=0.5).fit(quality, cost, 0.0)  # a given λ is kept
    assert fixed.lam_ == 0.5
    with pytest.raises(LabcoreError, match="lam must be"):
        CostPenalized(lam=-1.0)
    with pytest.raises(LabcoreError, match="cost_val has shape"):
        CostPenalized().fit(quality, cost[:5], 1.0)
    with pytest.raises(LabcoreError, match="budget_per_query"):
        CostPenalized().fit(quality, cost, -1.0)
    with pytest.raises(LabcoreError, match="NaN"):
        CostPenalized().fit(np.where(quality > 0.5, np.nan, quality), cost, 1.0)


# --------------------------------------------------------------------------------------------
# ThresholdRouter.


@pytest.mark.parametrize("seed", range(4))
def test_threshold_router_calibration_is_tight(seed):
    quality, cost = validation(seed)
    for budget in budgets(quality, cost):
        router = ThresholdRouter().fit(quality, cost, budget)
        strong, weak = router.strong_, router.weak_
        assert weak == int(np.argmin(cost.mean(axis=0)))
        assert strong == int(np.argmax(quality.mean(axis=0)))
        gap = quality[:, strong] - quality[:, weak]
        choice = router.route(RoutingProblem(quality, cost))
        assert set(np.unique(choice)) <= {strong, weak}
        np.testing.assert_array_equal(choice == strong, gap > router.threshold_)
        assert mean_cost(cost, choice) <= budget
        assert router.strong_fraction_ == pytest.approx(np.mean(choice == strong))
        # One more level of strong calls would break the budget (unless all are strong).
        below = gap[gap <= router.threshold_]
        if below.size:
            more = np.where(gap >= below.max(), strong, weak)
            assert mean_cost(cost, more) > budget


def test_threshold_router_extremes_and_fixed_models():
    quality, cost = validation(11)
    everyone = ThresholdRouter().fit(quality, cost, np.inf)
    assert everyone.threshold_ == -np.inf and everyone.strong_fraction_ == 1.0
    weak = int(np.argmin(cost.mean(axis=0)))
    dearer = cost.copy()
    dearer[:, np.argmax(quality.mean(axis=0))] = cost[:, weak] + 1.0  # strong always dearer
    nobody = ThresholdRouter().fit(quality, dearer, cost[:, weak].mean())
    assert nobody.strong_fraction_ == 0.0 and nobody.threshold_ == np.inf
    with pytest.raises(LabcoreError, match="below the mean validation cost"):
        ThresholdRouter().fit(quality, cost, 0.0)
    # Named models and a fixed threshold route without fitting.
    problem = RoutingProblem(
        quality=[[0.1, 0.9, 0.5], [0.4, 0.5, 0.9]], cost=np.ones((2, 3)), models=("a", "b", "c")
    )
    router = ThresholdRouter(strong="b", weak="a", threshold=0.2)
    assert router.route(problem).tolist() == [1, 0]
    named = ThresholdRouter(strong="c", weak="a").fit(
        quality[:, :3], cost[:, :3], np.inf, models=("a", "b", "c")
    )
    assert (named.strong_, named.weak_) == (2, 0)
    with pytest.raises(LabcoreError, match="unknown strong model 'z'"):
        ThresholdRouter(strong="z", weak="a", threshold=0.0).route(problem)
    with pytest.raises(LabcoreError, match="call fit"):
        ThresholdRouter().route(problem)
    with pytest.raises(LabcoreError, match="does not know its models"):
        ThresholdRouter(threshold=0.1).route(problem)


def test_threshold_router_steps_over_ties():
    # Three queries with the same gap: they go to the strong model together or not at all.
    quality = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9], [0.5, 0.6]])
    cost = np.array([[1.0, 3.0]] * 4)
    router = ThresholdRouter().fit(quality, cost, budget_per_query=2.0)  # room for 2 strong
    assert router.strong_fraction_ == 0.0
    router = ThresholdRouter().fit(quality, cost, budget_per_query=2.5)  # room for 3
    assert router.strong_fraction_ == 0.75
    assert router.route(RoutingProblem(quality, cost)).tolist() == [1, 1, 1, 0]


# --------------------------------------------------------------------------------------------
# RandomWithinBudget.


@pytest.mark.parametrize("seed", range(20))
def test_random_router_stays_within_a_feasible_budget(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 60)), int(rng.integers(1, 6))
    cost = rng.lognormal(0, 1.5, (n, m)) * rng.integers(0, 2, (n, 1))  # some queries free
    cheapest = cost.min(axis=1).sum()
    router = RandomWithinBudget(seed=seed)
    for slack in (0.0, 0.01, 0.5, 3.0):
        budget = cheapest + slack * (cost.max(axis=1).sum() - cheapest)
        problem = RoutingProblem(rng.random((n, m)), cost, budget=budget)
        choice = router.route(problem)
        assert choice.dtype == np.int64 and choice.shape == (n,)
        assert "budget" not in violations(problem, choice)


def test_random_router_behaviour():
    n, m = 400, 3
    rng = np.random.default_rng(0)
    quality, cost = rng.random((n, m)), rng.uniform(1, 2, (n, m))
    free = RandomWithinBudget(seed=1).route(RoutingProblem(quality, cost))
    assert np.all(np.bincount(free, minlength=m) > 100)  # no budget: uniform
    a = RandomWithinBudget(seed=5).route(RoutingProblem(quality, cost, budget=600))
    b = RandomWithinBudget(seed=5).route(RoutingProblem(quality, cost, budget=600))
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == m  # a generous budget leaves room for every model
    broke = RoutingProblem(quality, cost, budget=1.0)  # below the cheapest: all cheapest
    np.testing.assert_array_equal(RandomWithinBudget().route(broke), cost.argmin(axis=1))
    router = RandomWithinBudget(seed=5)
    first = router.route(RoutingProblem(quality, cost, budget=600))
    assert not np.array_equal(first, router.route(RoutingProblem(quality, cost, budget=600)))


# --------------------------------------------------------------------------------------------
# Registry.


def test_registry_builds_working_routers():
    assert set(PER_QUERY_ROUTERS) == {
        "always-cheapest",
        "always-best",
        "random",
        "cost-penalized",
        "threshold",
    }
    quality, cost = validation(3, n=100)
    test = RoutingProblem(quality[:30], cost[:30], budget=30 * budgets(quality, cost)[1])
    for name, factory in PER_QUERY_ROUTERS.items():
        router = factory().fit(quality[30:], cost[30:], budgets(quality, cost)[1])
        assert isinstance(router, PerQueryRouter), name
        choice = router.route(test)
        assert choice.dtype == np.int64 and choice.shape == (30,), name
        assert choice.min() >= 0 and choice.max() < test.m, name
    with pytest.raises(LabcoreError, match="RoutingProblem"):
        AlwaysCheapest().route(quality)
