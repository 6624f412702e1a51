"""The routing MILP, its fast path and its robust counterparts against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from batchroute.problem import Resource, RoutingProblem, Uncertainty, violations
from batchroute.solve import InfeasibleBudget, min_budget, solve

from labcore.errors import LabcoreError


def random_problem(seed: int, n: int = 8, m: int = 3, *, tight: float = 0.5, resources=False):
    rng = np.random.default_rng(seed)
    quality = rng.random((n, m))
    cost = rng.random((n, m)) * np.arange(1, m + 1)
    cheapest, dearest = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    budget = cheapest + tight * (dearest - cheapest)
    capacity = rng.integers(n // m, n, size=m)
    capacity[0] = n  # always routable
    res = ()
    if resources:
        usage = rng.random((n, m)) * 10
        res = (Resource("tokens", usage, np.full(m, usage.sum() / m)),)
    return RoutingProblem(quality, cost, budget, capacity, res)


def brute_force(problem: RoutingProblem, quality=None, robust: Uncertainty | None = None):
    quality = problem.quality if quality is None else quality
    best, best_value = None, -np.inf
    for choice in itertools.product(range(problem.m), repeat=problem.n):
        choice = np.array(choice)
        if violations(problem, choice):
            continue
        if robust is None:
            value = quality[np.arange(problem.n), choice].sum()
        else:
            value = robust.worst_case(problem.quality, choice)
        if value > best_value + 1e-12:
            best, best_value = choice, value
    return best, best_value


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("method", ["milp", "fast"])
def test_optimal_value_matches_brute_force(seed, method):
    problem = random_problem(seed, resources=seed % 3 == 0)
    _, best = brute_force(problem)
    a = solve(problem, method=method)
    assert violations(problem, a.choice) == {}
    if method == "milp":
        assert a.objective == pytest.approx(best, abs=1e-6)
    else:  # the fast path is near-optimal, and its bound (the LP value) holds
        assert a.objective <= best + 1e-9
        assert a.bound >= best - 1e-6
        assert best - a.objective <= 0.15 * best
    assert a.bound >= a.objective - 1e-9
    assert a.gap == pytest.approx(max(a.bound - a.objective, 0) / abs(a.bound), abs=1e-9)


@pytest.mark.parametrize("seed", range(25))
def test_solutions_never_violate_budget_capacity_or_resources(seed):
    rng = np.random.default_rng(1000 + seed)
    n, m = int(rng.integers(20, 300)), int(rng.integers(2, 8))
    problem = random_problem(seed, n=n, m=m, tight=float(rng.random()), resources=seed % 2 == 0)
    for method in ("fast", "milp"):
        try:
            a = solve(problem, method=method, time_limit=20)
        except InfeasibleBudget:
            continue
        assert violations(problem, a.choice) == {}
        assert a.loads.sum() == n
        assert a.cost <= problem.budget + 1e-7


@pytest.mark.parametrize("seed", range(8))
def test_lp_bound_ge_milp_ge_fast(seed):
    problem = random_problem(seed, n=60, m=4)
    exact = solve(problem, method="milp")
    fast = solve(problem, method="fast")
    assert fast.bound >= exact.objective - 1e-6  # LP relaxation bounds the MILP
    assert exact.objective >= fast.objective - 1e-6


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.5, None])
def test_budgeted_robust_matches_brute_force(seed, gamma):
    problem = random_problem(seed, n=7, m=3)
    rng = np.random.default_rng(seed)
    robust = Uncertainty(0.3 * rng.random(problem.quality.shape), gamma)
    _, best = brute_force(problem, robust=robust)
    a = solve(problem, method="milp", robust=robust)
    assert a.objective == pytest.approx(best, abs=1e-6)
    assert a.objective == pytest.approx(robust.worst_case(problem.quality, a.choice))
    fast = solve(problem, method="fast", robust=robust)
    assert violations(problem, fast.choice) == {}
    assert fast.objective <= best + 1e-9 and fast.bound >= best - 1e-6


@pytest.mark.parametrize("seed", range(6))
def test_robust_worst_case_is_at_least_the_nominal_solutions(seed):
    problem = random_problem(seed, n=40, m=4)
    rng = np.random.default_rng(seed)
    for gamma in (None, 3.0):
        robust = Uncertainty(0.4 * rng.random(problem.quality.shape), gamma)
        nominal = solve(problem, method="milp")
        rob = solve(problem, method="milp", robust=robust)
        assert (
            robust.worst_case(problem.quality, rob.choice)
            >= robust.worst_case(problem.quality, nominal.choice) - 1e-6
        )
        # ... and its nominal quality cannot exceed the nominal optimum.
        assert rob.predicted_quality <= nominal.objective + 1e-6


def test_gamma_zero_is_nominal_and_gamma_n_is_the_box():
    problem = random_problem(3, n=7, m=3)
    rng = np.random.default_rng(3)
    dev = 0.3 * rng.random(problem.quality.shape)
    nominal = solve(problem, method="milp").objective
    assert solve(problem, method="milp", robust=Uncertainty(dev, 0.0)).objective == (
        pytest.approx(nominal)
    )
    box = solve(problem, method="milp", robust=Uncertainty(dev, None)).objective
    assert solve(problem, method="milp", robust=Uncertainty(dev, 7.0)).objective == (
        pytest.approx(box)
    )


def test_infeasible_budget_names_the_minimum_budget():
    problem = RoutingProblem([[0.5, 0.9]] * 3, [[1.0, 5.0]] * 3, budget=2.0, capacity=[2, 3])
    assert min_budget(problem) == pytest.approx(7.0)
    for method in ("fast", "milp"):
        with pytest.raises(InfeasibleBudget, match=r"minimum feasible budget .* is 7") as info:
            solve(problem, method=method)
        assert info.value.min_budget == pytest.approx(7.0)
    with pytest.raises(InfeasibleBudget, match="total capacity 2 is below the 3 queries"):
        solve(RoutingProblem([[0.5, 0.9]] * 3, [[1.0, 5.0]] * 3, capacity=[1, 1]))


def test_bad_input_gives_clear_errors():
    with pytest.raises(LabcoreError, match="NaN"):
        RoutingProblem([[0.5, np.nan]], [[1, 1]])
    with pytest.raises(LabcoreError, match="cost must be non-negative"):
        RoutingProblem([[0.5, 0.4]], [[1, -1]])
    with pytest.raises(LabcoreError, match="empty"):
        RoutingProblem(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(LabcoreError, match="shape"):
        RoutingProblem([[0.5, 0.4]], [[1, 1, 1]])
    with pytest.raises(LabcoreError, match="budget"):
        RoutingProblem([[0.5, 0.4]], [[1, 1]], budget=-1)
    with pytest.raises(LabcoreError, match="capacity must be non-negative"):
        RoutingProblem([[0.5, 0.4]], [[1, 1]], capacity=[-1, 2])
    with pytest.raises(LabcoreError, match="deviation must be non-negative"):
        Uncertainty(-np.ones((1, 2)))
    with pytest.raises(LabcoreError, match="unknown method"):
        solve(RoutingProblem([[0.5, 0.4]], [[1, 1]]), method="greedy")


@pytest.mark.parametrize("seed", range(40))
def test_fast_budgeted_bound_holds_with_large_deviations(seed):
    # L(z) over LP vertices is not concave: the bound must come from the LP relaxation of
    # the robust MILP, which is never below the integer optimum.
    rng = np.random.default_rng(500 + seed)
    problem = random_problem(seed, n=5, m=3)
    robust = Uncertainty(3.0 * rng.random(problem.quality.shape), float(rng.choice([0.5, 1, 2])))
    _, best = brute_force(problem, robust=robust)
    fast = solve(problem, method="fast", robust=robust)
    assert fast.bound >= best - 1e-6
    assert fast.objective <= best + 1e-9
    assert fast.gap >= (best - fast.objective) / abs(fast.bound) - 1e-9


def test_near_integral_lp_values_do_not_break_the_budget():
    problem = RoutingProblem([[0.0, 1.0], [0.5, 0.6]], [[0.0, 100.0], [0.0, 100.0]], 100 - 1e-5)
    a = solve(problem, method="fast")
    assert violations(problem, a.choice) == {}
    assert a.objective == pytest.approx(solve(problem, method="milp").objective)


def test_fractional_capacities_count_whole_queries():
    with pytest.raises(InfeasibleBudget, match="total capacity 1 is below the 2 queries"):
        solve(RoutingProblem([[0.5, 0.9]] * 2, [[1.0, 5.0]] * 2, capacity=[1.5, 0.5]))
