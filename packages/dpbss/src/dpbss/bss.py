"""Best subset selection by outer approximation, with HiGHS as the master MILP solver.

The support cost c(z) (:mod:`dpbss.loss`) is convex on [0,1]^p, so every evaluated support
z_t gives a cut η ≥ c(z_t) + ∇c(z_t)ᵀ(z − z_t) valid for every support. The master MILP,
min η over the cuts with Σz = s and z binary, gives a lower bound and the next support; the
loop stops when the best evaluated cost and the master's bound agree to ``gap`` (relative).
As in the paper's code, the loop starts from iterative hard thresholding and seeds cuts at
every one-swap of the IHT support among the features most correlated with y.

The cuts never depend on the side constraints, so one :class:`OuterApproximation` keeps its
master and its cuts across solves with "mistake" rows Σ_{i∈S*} z_i ≤ s − j (the best support
with at least j mistakes), which the private samplers need.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from dpbss.loss import HingeCost, SquaredCost, make_cost
from labcore.highs import HIGHS_LOCK, silent_highs
from labcore.lowrank import spectral_norm_squared

#: At most this many features get seed cuts (the 10% rule would give 100 at p = 1,000 and
#: 1,000 at p = 10,000: a master HiGHS cannot solve in minutes).
MAX_SEED_FEATURES = 50


@dataclass
class OAResult:
    support: np.ndarray  # sorted feature indices
    value: float  # c at the support (upper bound)
    lower_bound: float
    gap: float
    status: str  # "optimal" (gap reached), "time_limit", "max_iter", "stalled", "infeasible"
    iterations: int  # master solves
    cuts: int  # cuts in the master (seed cuts included)
    seconds: float
    history: list[tuple[float, float]] = field(default_factory=list)  # (LB, UB) per solve


def iht_support(X: np.ndarray, y: np.ndarray, s: int, *, iters: int = 300) -> np.ndarray:
    """Iterative hard thresholding for least squares (step 1/L), the s largest |β_j| kept."""
    n, p = X.shape
    # Power iteration (a full SVD of X costs minutes at p = 10⁴); its estimate is from
    # below, so a small margin keeps the step safe.
    L = 1.01 * spectral_norm_squared(X, iters=200)[0] / n
    beta = np.zeros(p)
    support: np.ndarray | None = None  # the first step from β = 0 is marginal screening
    for _ in range(iters):
        step = beta + X.T @ (y - X @ beta) / (n * L)
        new = np.argpartition(-np.abs(step), s - 1)[:s]
        beta = np.zeros(p)
        beta[new] = step[new]
        if support is not None and set(new) == set(support):
            break
        support = new
    return np.sort(support)


class OuterApproximation:
    """Best subset selection by outer approximation on a support cost (:mod:`dpbss.loss`);
    :meth:`solve` may be called again with mistake rows.

    Parameters
    ----------
    cost
        A :class:`~dpbss.loss.SquaredCost` or :class:`~dpbss.loss.HingeCost`.
    s
        Support size.
    gap
        Relative gap (UB − LB)/UB at which a solve stops (the official code stops at 1e-3).
    mip_rel_gap
        HiGHS's relative gap on each master problem.
    seed_fraction
        Seed cuts at the one-swaps of the IHT support among this top fraction of features by
        |Xᵀy| (the official code's ``per1mist``: 10% for least squares, 1% for the hinge),
        at most :data:`MAX_SEED_FEATURES` of them.
    neighbour_cuts
        After each new proposal, also cut at its one-swaps toward the this many outsiders
        with the most negative ∂c/∂z (s × this many more cuts per master solve; 0: off).
    """

    def __init__(
        self,
        cost: SquaredCost | HingeCost,
        s: int,
        *,
        gap: float = 1e-4,
        mip_rel_gap: float = 1e-6,
        seed_fraction: float | None = None,
        neighbour_cuts: int = 4,
    ) -> None:
        self.cost, self.s = cost, int(s)
        self.X, self.y = cost.X, cost.y
        self.gap, self.mip_rel_gap = float(gap), float(mip_rel_gap)
        self.p = cost.p
        self.values: dict[tuple[int, ...], float] = {}
        self.n_cuts = 0
        self._fits: dict[tuple[int, ...], object] = {}
        self._h = None
        self._mistake_row: int | None = None
        self._at_least = 0
        if seed_fraction is None:
            seed_fraction = 0.1 if cost.loss == "squared" else 0.01
        self.seed_fraction = float(seed_fraction)
        self.neighbour_cuts = int(neighbour_cuts)

    # -- the master -----------------------------------------------------------------------
    def _master(self):
        if self._h is None:
            import highspy

            h = silent_highs()
            h.setOptionValue("mip_rel_gap", self.mip_rel_gap)
            p = self.p
            inf = highspy.kHighsInf
            lower = np.zeros(p + 1)
            upper = np.ones(p + 1)
            upper[p] = inf
            h.addVars(p + 1, lower, upper)
            h.changeColCost(p, 1.0)
            cols = np.arange(p, dtype=np.int32)
            h.changeColsIntegrality(
                p, cols, np.full(p, int(highspy.HighsVarType.kInteger), np.uint8)
            )
            h.addRow(float(self.s), float(self.s), p, cols, np.ones(p))
            self._h, self._inf = h, inf
        return self._h

    def evaluate(self, support) -> float:
        """c at a support (cached), adding its cut to the master."""
        key = tuple(sorted(int(i) for i in support))
        if key in self.values:
            return self.values[key]
        return self._cut(key).value

    def _cut(self, key: tuple[int, ...]):
        fit = self.cost.fit(np.array(key))
        self.values[key] = fit.value
        self._fits[key] = fit
        # η ≥ c_t + gᵀ(z − z_t)  ⇔  η + Σ(−g_i) z_i ≥ c_t − Σ_{i∈S_t} g_i; −g ≥ 0. A tiny
        # coefficient dropped (HiGHS would zero it, tightening the row) lowers the right side
        # by its value (z ≤ 1), which keeps the cut valid.
        coef = -fit.grad
        rhs = fit.value + coef[list(key)].sum()
        top = float(coef.max()) if coef.size else 0.0
        keep = coef > 1e-12 * top if top > 0 else np.zeros(self.p, bool)
        rhs -= float(coef[~keep].sum())
        idx = np.flatnonzero(keep)
        with HIGHS_LOCK:
            h = self._master()
            h.addRow(
                float(rhs),
                self._inf,
                idx.size + 1,
                np.concatenate([[self.p], idx]).astype(np.int32),
                np.concatenate([[1.0], coef[idx]]),
            )
        self.n_cuts += 1
        return fit

    def set_mistakes(self, reference, at_least: int) -> None:
        """Restrict the next solves to supports with at least ``at_least`` features outside
        ``reference`` (Σ_{i∈reference} z_i ≤ s − at_least); 0 lifts the restriction."""
        with HIGHS_LOCK:
            h = self._master()
            upper = float(self.s - at_least) if at_least > 0 else self._inf
            if self._mistake_row is None:
                idx = np.asarray(sorted(reference), dtype=np.int32)
                self._mistake_ref = tuple(int(i) for i in idx)
                h.addRow(-self._inf, upper, idx.size, idx, np.ones(idx.size))
                self._mistake_row = h.getNumRow() - 1
            else:
                if tuple(sorted(int(i) for i in reference)) != self._mistake_ref:
                    raise ValueError("the mistake rows refer to one reference support")
                h.changeRowBounds(self._mistake_row, -self._inf, upper)
        self._at_least = at_least

    def guess_mistakes(self, reference, at_least: int) -> None:
        """Evaluate one support with ``at_least`` mistakes (an incumbent for the next solve):
        the reference's members with the largest |β| kept, the outsiders whose cut
        gradient is most negative added."""
        ref = tuple(sorted(int(i) for i in reference))
        fit = self._fits.get(ref) or self.cost.fit(np.array(ref))
        keep = np.array(ref)[np.argsort(-np.abs(fit.beta))][: self.s - at_least]
        grad = fit.grad.copy()
        grad[list(ref)] = np.inf
        add = np.argsort(grad)[:at_least]
        self.evaluate(np.concatenate([keep, add]))

    def _feasible(self, key: tuple[int, ...]) -> bool:
        if self._mistake_row is None or self._at_least <= 0:
            return True
        inside = len(set(key) & set(self._mistake_ref))
        return inside <= self.s - self._at_least

    def _neighbours(self, key: tuple[int, ...]):
        grad = self._fits[key].grad.copy()
        grad[list(key)] = np.inf
        outsiders = np.argsort(grad)[: self.neighbour_cuts]
        for i, j in itertools.product(range(len(key)), outsiders):
            cand = tuple(sorted((*key[:i], int(j), *key[i + 1 :])))
            if cand not in self.values and self._feasible(cand):
                yield cand, self._cut(cand).value

    def seed(self) -> np.ndarray:
        """Evaluate the IHT support and its one-swaps among the top features (seed cuts)."""
        start = iht_support(self.X, self.y, self.s)
        self.evaluate(start)
        n_top = min(max(self.s + 1, math.ceil(self.seed_fraction * self.p)), MAX_SEED_FEATURES)
        top = np.argsort(-np.abs(self.X.T @ self.y))[:n_top]
        outside = [int(j) for j in top if j not in set(start)]
        for i, j in itertools.product(range(self.s), outside):
            swapped = start.copy()
            swapped[i] = j
            self.evaluate(swapped)
        return start

    # -- the loop -------------------------------------------------------------------------
    def solve(self, *, time_limit: float = 60.0, max_iter: int = 500) -> OAResult:
        t0 = time.perf_counter()
        with HIGHS_LOCK:
            h = self._master()
            if not self.values:
                self.seed()
            feasible = {k: v for k, v in self.values.items() if self._feasible(k)}
            best_key = min(feasible, key=feasible.get) if feasible else None
            ub = feasible[best_key] if feasible else math.inf
            lb, status, history, it = 0.0, "max_iter", [], 0
            while it < max_iter:
                remaining = time_limit - (time.perf_counter() - t0)
                if remaining <= 0:
                    status = "time_limit"
                    break
                h.setOptionValue("time_limit", max(remaining, 0.01))
                h.run()
                it += 1
                model_status = h.modelStatusToString(h.getModelStatus())
                info = h.getInfo()
                if model_status == "Infeasible":
                    status = "infeasible"
                    break
                bound = float(info.mip_dual_bound)
                if math.isfinite(bound):
                    lb = max(lb, bound)
                if info.primal_solution_status != 2:
                    status = "time_limit"
                    break
                z = np.asarray(h.getSolution().col_value)[: self.p]
                key = tuple(int(i) for i in np.flatnonzero(z > 0.5))
                known = key in self.values
                value = self.evaluate(key)
                if value < ub:
                    ub, best_key = value, key
                if not known and self.neighbour_cuts:
                    # More cuts per master solve: the proposal's one-swaps toward the
                    # outsiders its gradient favours most (feasible ones only).
                    for nkey, nvalue in self._neighbours(key):
                        if nvalue < ub:
                            ub, best_key = nvalue, nkey
                history.append((lb, ub))
                if (ub - lb) <= self.gap * max(abs(ub), 1e-300):
                    status = "optimal"
                    break
                if model_status == "Time limit reached":
                    status = "time_limit"
                    break
                if known:
                    # The master's optimum is a support already evaluated, whose cut is tight
                    # there (η ≥ c ≥ UB): UB is optimal up to HiGHS's own gap.
                    status = "optimal" if model_status == "Optimal" else "stalled"
                    break
        support = np.array(best_key if best_key is not None else (), dtype=np.int64)
        gap = (ub - lb) / max(abs(ub), 1e-300) if math.isfinite(ub) else math.inf
        return OAResult(
            support=support,
            value=float(ub),
            lower_bound=float(min(lb, ub)),
            gap=float(max(gap, 0.0)),
            status=status,
            iterations=it,
            cuts=self.n_cuts,
            seconds=time.perf_counter() - t0,
            history=history,
        )

    def close(self) -> None:
        with HIGHS_LOCK:
            self._h = None


def best_subset(
    X: np.ndarray,
    y: np.ndarray,
    s: int,
    *,
    lam: float,
    r: float,
    loss: str = "squared",
    time_limit: float = 60.0,
    **kwargs,
) -> OAResult:
    """The best support of size s by outer approximation (see :class:`OuterApproximation`)."""
    oa = OuterApproximation(make_cost(X, y, loss=loss, lam=lam, r=r), s, **kwargs)
    try:
        return oa.solve(time_limit=time_limit)
    finally:
        oa.close()


def brute_force_losses(
    X: np.ndarray, y: np.ndarray, s: int, *, lam: float, r: float, loss: str = "squared"
) -> tuple[np.ndarray, np.ndarray]:
    """Every support of size s (rows, lexicographic) and its cost: for tests and small p."""
    supports = np.array(list(itertools.combinations(range(X.shape[1]), s)), dtype=np.int64)
    return supports, make_cost(X, y, loss=loss, lam=lam, r=r).losses(supports)
