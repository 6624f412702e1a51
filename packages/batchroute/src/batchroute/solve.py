"""Solving the batch routing problem with HiGHS (through ``highspy``).

Two methods, both returning an assignment that satisfies every constraint (checked):

* ``"milp"``: the whole mixed-integer program, with HiGHS's branch and cut. The bound is the
  MILP dual bound; with no time limit hit, the gap is at most ``mip_rel_gap``.
* ``"fast"``: the LP relaxation first. A basic optimal solution of the LP has at most as many
  fractional queries as there are coupling rows (budget, capacities, resources), because
  every other row is a query's own Σ_m x_im = 1. Queries whose LP solution is integral keep
  it; a small MILP re-routes the fractional ones within the residual budget and capacities.
  If that small MILP is infeasible, the queries it may re-route are widened (the ones
  whose LP model is most expensive first) until it is feasible. The bound is the LP value,
  so the reported gap is an upper bound on the true optimality gap.

Robust solves (see :class:`~batchroute.problem.Uncertainty`):

* box: the nominal problem with â − δ;
* budgeted (Γ): the Bertsimas–Sim counterpart. The worst case of a fixed routing is an LP
  in the adversary's choice; by LP duality the robust problem is the MILP

      max Σ â x − Γ z − Σ_i p_i   s.t.  p_i ≥ Σ_m δ_im x_im − z,  p, z ≥ 0,

  solved exactly by ``"milp"``. ``"fast"`` solves the LP relaxation of that MILP (its value
  is the reported bound) and uses that, for a fixed z, the problem is the nominal one with
  â_im − max(0, δ_im − z) (exact for integer routings): the nominal fast path is run at the
  relaxation's z and at two guard values, and the routing with the best worst case is kept.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from scipy import sparse

from batchroute.problem import (
    FEASIBILITY_TOL,
    Assignment,
    RoutingProblem,
    Uncertainty,
    violations,
)
from labcore.errors import LabcoreError
from labcore.highs import HIGHS_LOCK, silent_highs

METHODS = ("fast", "milp")
# Batches with more binary variables than this get the fast path's routing as a MILP start.
_WARM_START_ABOVE = 5_000
_INTEGRAL_TOL = 1e-6


class InfeasibleBudget(LabcoreError):
    """The budget (or capacity) admits no routing; ``min_budget`` says what would."""

    def __init__(self, message: str, min_budget: float | None = None):
        super().__init__(message)
        self.min_budget = min_budget


def _coupling_rows(problem: RoutingProblem):
    """(row matrix over x, upper limit) for the budget, capacity and resource rows."""
    n, m = problem.n, problem.m
    rows, uppers = [], []
    if problem.budget is not None:
        rows.append(sparse.csr_matrix(problem.cost.reshape(1, -1)))
        uppers.append([problem.budget])
    cols = np.arange(n * m)
    model_of_col = np.tile(np.arange(m), n)
    if problem.capacity is not None:
        binding = np.flatnonzero(problem.capacity < n)
        if binding.size:
            sel = np.isin(model_of_col, binding)
            row_index = np.searchsorted(binding, model_of_col[sel])
            rows.append(
                sparse.csr_matrix(
                    (np.ones(sel.sum()), (row_index, cols[sel])), shape=(binding.size, n * m)
                )
            )
            uppers.append(problem.capacity[binding])
    for r in problem.resources:
        finite = np.flatnonzero(np.isfinite(r.limit))
        if finite.size:
            sel = np.isin(model_of_col, finite)
            row_index = np.searchsorted(finite, model_of_col[sel])
            rows.append(
                sparse.csr_matrix(
                    (r.usage.ravel()[sel], (row_index, cols[sel])), shape=(finite.size, n * m)
                )
            )
            uppers.append(r.limit[finite])
    if not rows:
        return sparse.csr_matrix((0, n * m)), np.zeros(0)
    return sparse.vstack(rows).tocsr(), np.concatenate([np.asarray(u, float) for u in uppers])


def _solve_highs(
    objective: np.ndarray,
    a_eq: sparse.spmatrix,
    b_eq: np.ndarray,
    a_ub: sparse.spmatrix,
    b_ub: np.ndarray,
    *,
    integer: np.ndarray | None,
    upper: np.ndarray,
    time_limit: float,
    mip_rel_gap: float,
    lp_solver: str = "ipm",
    start: np.ndarray | None = None,
):
    """Maximise objective·v s.t. a_eq v = b_eq, a_ub v ≤ b_ub, 0 ≤ v ≤ upper.

    ``start`` is a feasible point given to the MILP solver as its first incumbent.
    """
    import highspy

    a = sparse.vstack([a_eq, a_ub]).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_ = a.shape[1]
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = np.asarray(objective, dtype=np.float64)
    lp.col_lower_ = np.zeros(a.shape[1])
    lp.col_upper_ = np.asarray(upper, dtype=np.float64)
    lp.row_lower_ = np.concatenate([b_eq, np.full(len(b_ub), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([b_eq, b_ub])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    lp.sense_ = highspy.ObjSense.kMaximize
    if integer is not None:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous
            for f in integer
        ]
    options = {"time_limit": float(time_limit)}
    if integer is not None:
        options["mip_rel_gap"] = float(mip_rel_gap)
    else:
        options["solver"] = lp_solver
    status, info, values = run_highs(lp, options, start=start)
    bound = info["mip_dual_bound"] if integer is not None else info["objective"]
    return values, info["objective"], float(bound), status


def run_highs(lp, options: dict, *, start: np.ndarray | None = None):
    """Solve ``lp`` (a ``highspy.HighsLp``) and return (status, info, column values or None).

    HiGHS keeps its parallel task scheduler in static state, and destroying one instance
    while another runs on a different thread tears it down (ERGO-Code/HiGHS#3136). The
    router solves in worker threads, so every instance is created, run and destroyed here,
    under one process-wide lock; only plain Python data leaves this function.
    """
    import highspy

    with HIGHS_LOCK:
        h = silent_highs()
        for key, value in options.items():
            h.setOptionValue(key, value)
        h.passModel(lp)
        if start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = np.asarray(start, dtype=np.float64)
            solution.value_valid = True
            h.setSolution(solution)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        raw = h.getInfo()
        info = {
            "objective": float(raw.objective_function_value),
            "mip_dual_bound": float(raw.mip_dual_bound),
            "feasible": raw.primal_solution_status == 2,  # kSolutionStatusFeasible
        }
        values = np.array(h.getSolution().col_value) if info["feasible"] else None
        del h, raw
    return status, info, values


def _assignment_rows(n: int, m: int) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (np.ones(n * m), (np.repeat(np.arange(n), m), np.arange(n * m))), shape=(n, n * m)
    )


def _milp(
    problem: RoutingProblem,
    quality: np.ndarray,
    *,
    integer: bool,
    time_limit: float,
    mip_rel_gap: float,
    deviation: np.ndarray | None = None,
    gamma: float | None = None,
    start: np.ndarray | None = None,
):
    """The (robust, budgeted) routing program; returns (x matrix or None, obj, bound, status).

    ``start`` is a feasible choice per query, passed to HiGHS as the first incumbent.
    """
    n, m = problem.n, problem.m
    a_eq = _assignment_rows(n, m)
    a_ub, b_ub = _coupling_rows(problem)
    objective = quality.ravel()
    upper = np.ones(n * m)
    is_int = np.ones(n * m, dtype=bool)
    if deviation is not None and gamma is not None:
        # Extra columns z (1) and p (n): p_i + z - Σ_m δ_im x_im >= 0, written as <= 0.
        a_eq = sparse.hstack([a_eq, sparse.csr_matrix((n, 1 + n))])
        a_ub = sparse.hstack([a_ub, sparse.csr_matrix((a_ub.shape[0], 1 + n))])
        robust_rows = sparse.hstack(
            [
                sparse.csr_matrix(
                    (deviation.ravel(), (np.repeat(np.arange(n), m), np.arange(n * m))),
                    shape=(n, n * m),
                ),
                sparse.csr_matrix(-np.ones((n, 1))),
                -sparse.identity(n, format="csr"),
            ]
        )
        a_ub = sparse.vstack([a_ub, robust_rows])
        b_ub = np.concatenate([b_ub, np.zeros(n)])
        objective = np.concatenate([objective, [-gamma], -np.ones(n)])
        upper = np.concatenate([upper, np.full(1 + n, np.inf)])
        is_int = np.concatenate([is_int, np.zeros(1 + n, dtype=bool)])
    start_values = None
    if start is not None:
        x0 = np.zeros((n, m))
        x0[np.arange(n), start] = 1.0
        start_values = x0.ravel()
        if deviation is not None and gamma is not None:
            # For a fixed routing the best z is the ⌈Γ⌉-th largest chosen deviation (the
            # largest for 0 < Γ < 1), and 0 once Γ covers every query.
            chosen = deviation[np.arange(n), start]
            ranked = np.sort(chosen)[::-1]
            z = 0.0 if gamma >= n or gamma == 0 else float(ranked[max(int(np.ceil(gamma)), 1) - 1])
            start_values = np.concatenate([start_values, [z], np.maximum(chosen - z, 0.0)])
    values, obj, bound, status = _solve_highs(
        objective,
        a_eq,
        np.ones(n),
        a_ub,
        b_ub,
        integer=is_int if integer else None,
        upper=upper,
        time_limit=time_limit,
        mip_rel_gap=mip_rel_gap,
        start=start_values,
    )
    x = None if values is None else values[: n * m].reshape(n, m)
    if deviation is not None and gamma is not None and values is not None:
        status = (status, float(values[n * m]))  # the robust model's z rides along
    return x, obj, bound, status


def min_budget(problem: RoutingProblem, *, time_limit: float = 60.0) -> float:
    """The smallest budget for which the batch can be routed within capacity and resources.

    Raises InfeasibleBudget when capacity or resources alone make routing impossible.

    Examples
    --------
    >>> p = RoutingProblem([[0.5, 0.9]] * 3, [[1, 5]] * 3, budget=0, capacity=[2, 3])
    >>> min_budget(p)
    7.0
    """
    _check_total_capacity(problem)
    free = replace(problem, budget=None)
    x, obj, _, status = _milp(
        free, -problem.cost, integer=True, time_limit=time_limit, mip_rel_gap=1e-9
    )
    if x is None:
        if status == "Infeasible":
            raise InfeasibleBudget(
                "no routing satisfies the capacity and resource limits, whatever the budget"
            )
        raise LabcoreError(f"no minimum budget found within the time limit (HiGHS: {status})")
    return float(-obj)


def _check_total_capacity(problem: RoutingProblem) -> None:
    # Capacities count whole queries: 1.5 + 0.5 slots hold one query, not two.
    if problem.capacity is not None:
        slots = np.floor(problem.capacity).sum()
        if slots < problem.n:
            raise InfeasibleBudget(
                f"total capacity {slots:g} is below the {problem.n} queries of the batch, "
                "whatever the budget"
            )


def _status_text(status) -> str:
    return status[0] if isinstance(status, tuple) else status


def _choice(x: np.ndarray) -> np.ndarray:
    return np.argmax(x, axis=1)


def _finish(
    problem: RoutingProblem,
    choice: np.ndarray,
    quality_for_objective: np.ndarray,
    robust: Uncertainty | None,
    bound: float,
    method: str,
    started: float,
    status: str,
) -> Assignment:
    bad = violations(problem, choice)
    if bad:  # never return a routing that breaks a constraint
        raise LabcoreError(f"internal error: the {method} routing violates {bad}")
    rows = np.arange(problem.n)
    predicted = float(problem.quality[rows, choice].sum())
    if robust is None:
        objective = predicted
    elif robust.gamma is None:
        objective = float(quality_for_objective[rows, choice].sum())
    else:
        objective = robust.worst_case(problem.quality, choice)
    return Assignment(
        choice=choice.astype(np.int64),
        objective=objective,
        predicted_quality=predicted,
        cost=float(problem.cost[rows, choice].sum()),
        bound=float(bound),
        gap=float(max(bound - objective, 0.0) / max(abs(bound), 1e-9)),
        method=method,
        solve_time_s=time.perf_counter() - started,
        status=status,
        loads=np.bincount(choice, minlength=problem.m),
    )


def _infeasible(problem: RoutingProblem, time_limit: float) -> InfeasibleBudget:
    needed = min_budget(problem, time_limit=time_limit)
    return InfeasibleBudget(
        f"budget {problem.budget:g} is infeasible for this batch: the minimum feasible budget "
        f"under the capacity limits is {needed:.10g}",
        min_budget=needed,
    )


def _round_fractional(
    problem: RoutingProblem,
    quality: np.ndarray,
    x: np.ndarray,
    *,
    time_limit: float,
    mip_rel_gap: float,
) -> tuple[np.ndarray, str]:
    """Keep the LP's integral queries; re-route the fractional ones by a small MILP."""
    n = problem.n
    choice = _choice(x)
    fractional = np.flatnonzero((x > _INTEGRAL_TOL).sum(axis=1) > 1)
    # Widening order: fixed queries on their LP model's cost, most expensive first.
    rows = np.arange(n)
    fixed_cost = problem.cost[rows, choice]
    widen_order = np.argsort(-fixed_cost, kind="stable")
    free = np.zeros(n, dtype=bool)
    free[fractional] = True
    if fractional.size == 0 and not violations(problem, choice):
        return choice, "lp integral"
    extra = 0

    def widen() -> None:
        nonlocal extra
        extra = max(2 * extra, 8 * max(fractional.size, 1), 16)
        free[widen_order[:extra]] = True

    while True:
        fixed = ~free
        # Residual limits; a negative one (LP values a hair off 0/1, rounded) means the
        # fixed part already overspends: free more queries instead of clipping it away.
        budget = None
        over = False
        if problem.budget is not None:
            budget = problem.budget - fixed_cost[fixed].sum()
            over |= budget < -FEASIBILITY_TOL * max(problem.budget, 1.0)
        capacity = None
        if problem.capacity is not None:
            capacity = problem.capacity - np.bincount(choice[fixed], minlength=problem.m)
            over |= bool((capacity < 0).any())
        limits = []
        for r in problem.resources:
            used = np.bincount(
                choice[fixed], weights=r.usage[rows[fixed], choice[fixed]], minlength=problem.m
            )
            limits.append(r.limit - used)
            over |= bool((limits[-1] < -FEASIBILITY_TOL * np.maximum(r.limit, 1.0)).any())
        if over and not free.all():
            widen()
            continue
        sub_rows = np.flatnonzero(free)
        sub = problem.subset(
            sub_rows,
            budget=None if budget is None else max(budget, 0.0),
            capacity=None if capacity is None else np.maximum(capacity, 0),
            limits=[np.maximum(v, 0.0) for v in limits],
        )
        xs, _, _, status = _milp(
            sub, quality[sub_rows], integer=True, time_limit=time_limit, mip_rel_gap=mip_rel_gap
        )
        if xs is not None:
            choice = choice.copy()
            choice[sub_rows] = _choice(xs)
            if not violations(problem, choice):
                return choice, f"lp + milp over {sub_rows.size} queries"
        if free.all():
            raise LabcoreError(f"no feasible routing found (HiGHS: {status})")
        widen()


def _fast_nominal(problem, quality, *, time_limit, mip_rel_gap):
    x, lp_value, _, status = _milp(
        problem, quality, integer=False, time_limit=time_limit, mip_rel_gap=mip_rel_gap
    )
    if x is None:
        return None, lp_value, status
    choice, how = _round_fractional(
        problem, quality, x, time_limit=time_limit, mip_rel_gap=mip_rel_gap
    )
    return choice, lp_value, how


def _robust_quality(problem: RoutingProblem, deviation: np.ndarray, z: float) -> np.ndarray:
    return problem.quality - np.maximum(deviation - z, 0.0)


def _fast_budgeted(problem, robust, *, time_limit, mip_rel_gap):
    """Budgeted robust routing: LP relaxation for the bound and z, nominal solves at z."""
    deviation, gamma = robust.deviation, robust.gamma
    x, bound, _, status = _milp(
        problem,
        problem.quality,
        integer=False,
        time_limit=time_limit,
        mip_rel_gap=mip_rel_gap,
        deviation=deviation,
        gamma=gamma,
    )
    if x is None:
        return None, bound, status
    z_lp = status[1]
    # For a fixed z the robust problem is nominal with â − max(0, δ − z) (exact for integer
    # routings). The relaxation's z is the natural candidate; z = 0 (every deviation counts
    # in full beyond z) and the ⌈Γ⌉-th largest deviation of the relaxation's routing guard
    # against a relaxation z that rounds badly. The best worst case among them is kept.
    chosen = np.sort(deviation[np.arange(problem.n), _choice(x)])[::-1]
    k = min(max(int(np.ceil(gamma)), 1), problem.n) - 1
    candidates = sorted({round(z_lp, 12), 0.0, float(chosen[k])})
    best = None
    for z in candidates:
        quality = _robust_quality(problem, deviation, z)
        choice, _, how = _fast_nominal(
            problem, quality, time_limit=time_limit, mip_rel_gap=mip_rel_gap
        )
        if choice is None:
            continue
        value = robust.worst_case(problem.quality, choice)
        if best is None or value > best[0]:
            best = (value, choice, f"{how}; z = {z:.4g}")
    if best is None:
        return None, bound, "no feasible rounding"
    return best[1], bound, best[2]


def solve(
    problem: RoutingProblem,
    *,
    method: str = "fast",
    robust: Uncertainty | None = None,
    time_limit: float = 60.0,
    mip_rel_gap: float = 1e-6,
) -> Assignment:
    """Route a batch: maximise (worst-case) predicted quality within budget and capacities.

    Parameters
    ----------
    problem : RoutingProblem
    method : {"fast", "milp"}
        See the module docstring.
    robust : Uncertainty, optional
        Box (``gamma=None``) or budgeted (``gamma=Γ``) uncertainty on the predicted quality.
    time_limit : float
        Seconds for each HiGHS call.
    mip_rel_gap : float
        HiGHS's relative MILP gap tolerance.

    Returns
    -------
    Assignment
        Checked against every constraint before it is returned.

    Raises
    ------
    InfeasibleBudget
        With the minimum feasible budget in its message (and ``min_budget`` attribute).

    Examples
    --------
    >>> p = RoutingProblem(quality=[[0.5, 0.9], [0.2, 0.8], [0.6, 0.7]],
    ...                    cost=[[1, 5], [1, 5], [1, 5]], budget=11)
    >>> a = solve(p, method="milp")
    >>> a.choice.tolist(), a.cost
    ([1, 1, 0], 11.0)
    """
    if method not in METHODS:
        raise LabcoreError(f"unknown method {method!r}; choose one of {METHODS}")
    started = time.perf_counter()
    if robust is not None and robust.deviation.shape != problem.quality.shape:
        raise LabcoreError(
            f"deviation has shape {robust.deviation.shape}, quality {problem.quality.shape}"
        )
    _check_total_capacity(problem)
    quality = problem.quality
    budgeted = robust is not None and robust.gamma is not None
    if robust is not None and not budgeted:
        quality = problem.quality - robust.deviation

    if method == "milp":
        # The fast path's routing is the first incumbent: on large batches HiGHS's own
        # heuristics may not find one as good within the time limit.
        start, fast_bound = None, np.inf
        if problem.n * problem.m > _WARM_START_ABOVE:
            try:
                warm = solve(problem, method="fast", robust=robust, time_limit=time_limit)
                start, fast_bound = warm.choice, warm.bound
            except InfeasibleBudget:
                raise
            except LabcoreError:
                start = None
        x, _, bound, status = _milp(
            problem,
            quality,
            integer=True,
            time_limit=time_limit,
            mip_rel_gap=mip_rel_gap,
            deviation=robust.deviation if budgeted else None,
            gamma=robust.gamma if budgeted else None,
            start=start,
        )
        status = _status_text(status)
        if x is None:
            if status == "Infeasible" and problem.budget is not None:
                raise _infeasible(problem, time_limit)
            raise LabcoreError(f"HiGHS found no feasible routing ({status})")
        # Stopped at the time limit before its root LP, HiGHS has no finite bound: the LP
        # value from the warm start (an LP relaxation of this same model) still bounds it.
        bound = min(bound, fast_bound) if np.isfinite(bound) else fast_bound
        return _finish(problem, _choice(x), quality, robust, bound, method, started, status)

    if budgeted:
        choice, bound, how = _fast_budgeted(
            problem, robust, time_limit=time_limit, mip_rel_gap=mip_rel_gap
        )
    else:
        choice, bound, how = _fast_nominal(
            problem, quality, time_limit=time_limit, mip_rel_gap=mip_rel_gap
        )
    if choice is None:
        if _status_text(how) == "Infeasible" and problem.budget is not None:
            raise _infeasible(problem, time_limit)
        raise LabcoreError(f"HiGHS found no feasible routing ({_status_text(how)})")
    return _finish(problem, choice, quality, robust, bound, method, started, how)
