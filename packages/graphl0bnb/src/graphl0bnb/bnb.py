"""Nonlinear branch-and-bound over the edge indicators z_ij.

Each node fixes some z to 0 or 1. Its lower bound is the Fenchel dual bound of the perspective
relaxation (:mod:`graphl0bnb.relaxation`), never smaller than its parent's. Upper bounds come from
the primal heuristic at the root and from coordinate descent on the l0-l2 objective started at
every node's relaxed solution. Branching is on the most fractional implied z; the search is
best-bound (default) or depth-first. Warm starts: a child starts from its parent's relaxed Θ and
active set.

Gaps: ``absolute = upper − lower`` and ``relative = absolute / max(|upper|, 1)``. The tolerance
``gap_tol`` applies to the relative gap: a node is pruned when its bound is within
``gap_tol · max(|upper|, 1)`` of the incumbent, so the reported global bound stays valid and the
final relative gap is ≤ gap_tol unless the time or node limit stops the search first.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from graphl0bnb import _kernels as K
from graphl0bnb.heuristic import cd_active, heuristic_solve
from graphl0bnb.problem import merge_pairs, start_point, top_correlation_pairs, upper_pairs
from graphl0bnb.relaxation import implied_z, solve_relaxation

log = logging.getLogger(__name__)


@dataclass
class Node:
    lower_bound: float
    depth: int
    zero: tuple[tuple[int, int], ...]
    one: tuple[tuple[int, int], ...]
    warm_diag: np.ndarray
    warm_I: np.ndarray
    warm_J: np.ndarray
    warm_val: np.ndarray
    active_I: np.ndarray
    active_J: np.ndarray


@dataclass
class BnBResult:
    """Outcome of :func:`branch_and_bound` (anytime: valid whenever the search stops)."""

    theta: np.ndarray
    upper_bound: float
    lower_bound: float
    n_nodes: int
    time_s: float
    status: str  # "optimal" (gap ≤ gap_tol), "time_limit", "node_limit" or "stopped"
    root_lower_bound: float
    heuristic_objective: float
    node_log: list[dict] = field(default_factory=list)

    @property
    def gap_abs(self) -> float:
        return max(0.0, self.upper_bound - self.lower_bound)

    @property
    def gap(self) -> float:
        """Relative gap (upper − lower) / max(|upper|, 1), the one ``gap_tol`` bounds."""
        return self.gap_abs / max(abs(self.upper_bound), 1.0)


def _polish(S, cand, Vc, l0, l2, M, free_state, tol) -> float:
    """l0-l2 coordinate descent on ``cand``'s support (in place); its global objective."""
    cd_active(S, cand, Vc, l0, l2, M, free_state, tol=tol, max_sweeps=200, full_sweeps=False)
    return float(K.smooth_value(cand, Vc) + K.l0_penalty(cand, l0, l2, free_state))


class _Progress:
    def __init__(self, enabled: bool, every_s: float = 2.0):
        self.enabled = enabled
        self.every_s = every_s
        self.last = -math.inf
        if enabled:
            print(
                f"{'nodes':>8} {'open':>7} {'upper':>14} {'lower':>14} {'gap':>9} {'time':>8}",
                file=sys.stderr,
            )

    def __call__(self, nodes, open_, ub, lb, t, force=False):
        if not self.enabled or (not force and t - self.last < self.every_s):
            return
        self.last = t
        gap = max(0.0, ub - lb) / max(abs(ub), 1.0)
        print(
            f"{nodes:>8} {open_:>7} {ub:>14.6f} {lb:>14.6f} {gap:>9.2%} {t:>7.1f}s", file=sys.stderr
        )


def branch_and_bound(
    S: np.ndarray,
    l0: float,
    l2: float,
    M: float,
    *,
    gap_tol: float = 1e-2,
    time_limit: float = 300.0,
    max_nodes: int | None = None,
    search: str = "best",
    int_tol: float = 1e-4,
    relax_tol: float = 1e-6,
    theta0: np.ndarray | None = None,
    local_search: bool = True,
    verbose: bool = False,
    record_nodes: bool = False,
) -> BnBResult:
    """Solve min f(Θ) + λ0·#edges + λ2·Σθ_ij² s.t. |θ_ij| ≤ M to a relative gap ``gap_tol``.

    Parameters
    ----------
    S : (p, p) covariance of the (standardized) data.
    l0, l2, M : penalty weights and the big-M box (finite, > 0).
    gap_tol : stop when (upper − lower) / max(|upper|, 1) ≤ gap_tol.
    time_limit : seconds; the search returns its best solution and bound when it runs out.
    max_nodes : optional node limit.
    search : "best" (best-bound first) or "depth" (depth-first).
    theta0 : optional warm start for the root heuristic.
    record_nodes : keep every node's fixings and lower bound in ``node_log`` (for tests).
    """
    if search not in ("best", "depth"):
        raise ValueError(f"search must be 'best' or 'depth', got {search!r}")
    if not (math.isfinite(M) and M > 0):
        raise ValueError(f"branch-and-bound needs a finite M > 0, got {M}")
    t0 = time.perf_counter()
    p = S.shape[0]
    progress = _Progress(verbose)

    heur = heuristic_solve(S, l0, l2, M, theta0=theta0, local_search=local_search)
    best_theta = heur.theta
    ub = heur.objective

    def tol_abs() -> float:
        return gap_tol * max(abs(ub), 1.0)

    hi, hj = upper_pairs(heur.theta)
    ai, aj = merge_pairs(p, (hi, hj), top_correlation_pairs(S, 5))
    root = Node(
        -math.inf, 0, (), (), np.diag(heur.theta).copy(), hi, hj, heur.theta[hi, hj].copy(), ai, aj
    )
    counter = itertools.count()
    open_nodes: list = [(root.lower_bound, next(counter), root)]
    closed_lb = math.inf  # smallest bound among nodes closed below the incumbent
    n_nodes = 0
    root_lb = -math.inf
    status = "optimal"
    node_log: list[dict] = []
    base_state = np.zeros((p, p), np.int8)

    def global_lb() -> float:
        opened = min((e[2].lower_bound for e in open_nodes), default=math.inf)
        return min(opened, closed_lb, ub)

    while open_nodes:
        elapsed = time.perf_counter() - t0
        lb_now = global_lb()
        progress(n_nodes, len(open_nodes), ub, lb_now, elapsed)
        if (ub - lb_now) <= tol_abs():
            break
        if elapsed > time_limit:
            status = "time_limit"
            break
        if max_nodes is not None and n_nodes >= max_nodes:
            status = "node_limit"
            break
        if search == "best":
            _, _, node = heapq.heappop(open_nodes)
        else:
            _, _, node = open_nodes.pop()
        if node.lower_bound >= ub - tol_abs():
            closed_lb = min(closed_lb, node.lower_bound)
            continue
        n_nodes += 1

        state = base_state.copy()
        for i, j in node.zero:
            state[i, j] = state[j, i] = K.ZERO
        for i, j in node.one:
            state[i, j] = state[j, i] = K.ONE
        Theta = np.zeros((p, p))
        Theta[np.arange(p), np.arange(p)] = node.warm_diag
        Theta[node.warm_I, node.warm_J] = node.warm_val
        Theta[node.warm_J, node.warm_I] = node.warm_val
        Theta[state == K.ZERO] = 0.0
        Theta, V = start_point(S, Theta)
        one_i = np.array([i for i, _ in node.one], np.int64)
        one_j = np.array([j for _, j in node.one], np.int64)
        rows, cols = merge_pairs(p, (node.active_I, node.active_J), (one_i, one_j))
        keep = state[rows, cols] != K.ZERO
        rows, cols = rows[keep], cols[keep]

        rel = solve_relaxation(
            S,
            Theta,
            V,
            state,
            l0,
            l2,
            M,
            rows,
            cols,
            rel_tol=relax_tol,
            cutoff=ub - tol_abs(),
            deadline=t0 + time_limit,
        )
        node_lb = max(node.lower_bound, rel.lower_bound)
        if n_nodes == 1:
            root_lb = node_lb
        if record_nodes:
            node_log.append({"zero": node.zero, "one": node.one, "lower_bound": node_lb})

        # Upper bound: l0-l2 coordinate descent from the relaxed point, on its support.
        cand = rel.theta.copy()
        val = _polish(S, cand, V.copy(), l0, l2, M, base_state, 1e-8)
        if val < ub:
            ub, best_theta = val, cand

        if node_lb >= ub - tol_abs():
            if node_lb < ub:
                closed_lb = min(closed_lb, node_lb)
            continue
        z = implied_z(rel.theta, rel.rows, rel.cols, state, l0, l2, M)
        frac = np.minimum(z, 1.0 - z)
        free = state[rel.rows, rel.cols] == K.FREE
        frac[~free] = 0.0
        converged = rel.primal - rel.lower_bound <= max(tol_abs(), 1e-9)
        if frac.size == 0 or frac.max() <= int_tol:
            # The relaxed solution is (near-)integral. Round the near-zero z to 0, polish on
            # that support and offer it as an incumbent.
            cand = rel.theta.copy()
            tiny = (z <= int_tol) & free
            cand[rel.rows[tiny], rel.cols[tiny]] = 0.0
            cand[rel.cols[tiny], rel.rows[tiny]] = 0.0
            cand, Vc = start_point(S, cand)
            val = _polish(S, cand, Vc, l0, l2, M, base_state, 1e-10)
            if val < ub:
                ub, best_theta = val, cand
            if converged or not free.any():
                # Solved to the relaxation's accuracy: close it with its (valid) bound.
                closed_lb = min(closed_lb, node_lb)
                continue
            # Not converged (time or round limit): keep branching rather than drop the subtree.
        k = int(np.argmax(np.where(free, frac, -1.0)))
        pair = (int(rel.rows[k]), int(rel.cols[k]))
        wi, wj = upper_pairs(rel.theta)
        warm = (np.diag(rel.theta).copy(), wi, wj, rel.theta[wi, wj].copy())
        children = [
            Node(node_lb, node.depth + 1, (*node.zero, pair), node.one, *warm, rel.rows, rel.cols),
            Node(node_lb, node.depth + 1, node.zero, (*node.one, pair), *warm, rel.rows, rel.cols),
        ]
        for child in children:
            if search == "best":
                heapq.heappush(open_nodes, (child.lower_bound, next(counter), child))
            else:
                open_nodes.append((child.lower_bound, next(counter), child))

    lb_final = global_lb()
    elapsed = time.perf_counter() - t0
    progress(n_nodes, len(open_nodes), ub, lb_final, elapsed, force=True)
    if status == "optimal" and (ub - lb_final) > tol_abs() + 1e-12:
        status = "stopped"  # every node closed but some only to the relaxation's accuracy
    return BnBResult(
        theta=best_theta,
        upper_bound=ub,
        lower_bound=lb_final,
        n_nodes=n_nodes,
        time_s=elapsed,
        status=status,
        root_lower_bound=root_lb if n_nodes else lb_final,
        heuristic_objective=heur.objective,
        node_log=node_log,
    )
