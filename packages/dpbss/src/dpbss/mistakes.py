"""The best support with at least j mistakes, by branch and bound (least squares).

Outer approximation proves S* quickly but its cuts are weak for the problems the Mistakes
sampler adds, min c(S) over supports with |S ∩ S*| ≤ s − j: many supports of near-equal
cost (the j added features are noise) have to be cut off one by one. These problems have
structure the master MILP does not see: S = K ∪ A with K ⊆ S* kept (|K| ≤ s − j, at most
2^s choices) and A the added outsiders. This module solves them by best-first branch and
bound over (kept set, forced-in outsiders, excluded outsiders), with a bound from the
residualized problem:

For a node with forced-in set F and m more features to add from the candidates C, let
M = X_FᵀX_F + λI, ρ = X_Cᵀ(y − X_F M⁻¹X_Fᵀy) the residual correlations and
G̃ = X_CᵀX_C − X_CᵀX_F M⁻¹ X_FᵀX_C the residualized Gram matrix (PSD). Without the ball
(which can only raise the cost), c(F ∪ A) = c₀(F) − ρ_Aᵀ(λI + G̃_AA)⁻¹ρ_A/(2n), and by
Gershgorin λ_min(G̃_AA) ≥ min_{a∈A} d_a with d_a = G̃_aa − (the m − 1 largest |G̃_ab|,
b ≠ a). Hence

    c(F ∪ A) ≥ c₀(F) − max_τ  (the m largest ρ_a² with d_a ≥ τ) / (2n·(λ + max(τ, 0))),

a bound computed by one sort. Leaves are evaluated exactly (ball included). The bound needs
the Gram matrix, kept for p ≤ :data:`dpbss.loss.GRAM_MAX_P`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time

import numpy as np

from dpbss.bss import OAResult
from dpbss.loss import SquaredCost


def _threshold_scan(rho2: np.ndarray, d: np.ndarray, m: int, lam: float) -> tuple[float, int]:
    """max over |A| = m of Σ_A ρ_a² / (λ + max(min_A d_a, 0)), and the index of the member
    with the largest ρ² in the maximizing set."""
    if len(rho2) < m or m <= 0:
        return -math.inf, -1
    order = np.argsort(-d)  # admit candidates by decreasing d: the threshold τ falls
    best, best_member = -math.inf, int(np.argmax(rho2))
    heap: list[tuple[float, int]] = []  # the m largest ρ² admitted so far (min-heap)
    total = 0.0
    for idx in order:
        value = float(rho2[idx])
        if len(heap) < m:
            heapq.heappush(heap, (value, int(idx)))
            total += value
        elif value > heap[0][0]:
            total += value - heapq.heapreplace(heap, (value, int(idx)))[0]
        else:
            continue  # the admitted top m did not change, and τ only fell
        if len(heap) == m:
            bound = total / (lam + max(float(d[idx]), 0.0))
            if bound > best:
                best = bound
                best_member = max(heap)[1]
    return best, best_member


def _gershgorin_bound(rho2: np.ndarray, gt: np.ndarray, m: int, lam: float) -> tuple[float, int]:
    """The bound of the module notes from the residualized Gram matrix ``gt``."""
    d = np.diag(gt).copy()
    k = min(m - 1, gt.shape[1] - 1)
    if k > 0:
        off = np.abs(gt)
        np.fill_diagonal(off, 0.0)
        d -= np.partition(off, off.shape[1] - k, axis=1)[:, -k:].sum(axis=1)
    return _threshold_scan(rho2, d, m, lam)


class _Problem:
    def __init__(self, cost: SquaredCost, reference: np.ndarray) -> None:
        if cost.gram is None:
            raise ValueError("the branch and bound needs the Gram matrix (p <= GRAM_MAX_P)")
        self.cost = cost
        self.G, self.b, self.lam = cost.gram, cost.Xty, cost.lam
        self.reference = np.sort(np.asarray(reference, dtype=np.int64))
        self.outsiders = np.setdiff1d(np.arange(cost.p), self.reference)
        # The largest |G_ab| between two outsiders, for the cheap bound (one pass, by rows).
        mu = 0.0
        out = self.outsiders
        for start in range(0, len(out), 512):
            rows = np.abs(self.G[np.ix_(out[start : start + 512], out)])
            rows[np.arange(len(rows)), np.arange(start, start + len(rows))] = 0.0
            mu = max(mu, float(rows.max()) if rows.size else 0.0)
        self.mu = mu

    def _residualize(self, forced: tuple[int, ...], candidates: np.ndarray):
        """c₀(F) (no ball), ρ_C, the diagonal of G̃ and q_a = G_aF M⁻¹ G_Fa."""
        F = np.asarray(forced, dtype=np.int64)
        G, b, lam, n = self.G, self.b, self.lam, self.cost.n
        diag = G[candidates, candidates]
        if not len(F):
            return self.cost.yy / (2 * n), b[candidates], diag, np.zeros(len(candidates)), None
        M = G[np.ix_(F, F)] + lam * np.eye(len(F))
        L = np.linalg.cholesky(M)
        w = np.linalg.solve(M, b[F])
        GCF = G[np.ix_(candidates, F)]
        half = np.linalg.solve(L, GCF.T)  # L⁻¹G_FC: q_a = ‖column a‖²
        q = np.einsum("ij,ij->j", half, half)
        return (self.cost.yy - b[F] @ w) / (2 * n), b[candidates] - GCF @ w, diag - q, q, half

    def cheap_bound(self, forced: tuple[int, ...], candidates: np.ndarray, m: int) -> float:
        """A weaker bound without the p² work: |G̃_ab| ≤ μ + √(q_a q_b)."""
        c0, rho, gdiag, q, _ = self._residualize(forced, candidates)
        qmax = float(q.max()) if len(q) else 0.0
        d = gdiag - (m - 1) * (self.mu + np.sqrt(q * qmax))
        return c0 - _threshold_scan(rho**2, d, m, self.lam)[0] / (2 * self.cost.n)

    def greedy_member(self, forced: tuple[int, ...], candidates: np.ndarray) -> int:
        """The candidate whose addition alone lowers the (unconstrained) cost most."""
        _, rho, gdiag, _, _ = self._residualize(forced, candidates)
        return int(candidates[np.argmax(rho**2 / (self.lam + gdiag))])

    def node(self, forced: tuple[int, ...], candidates: np.ndarray, m: int):
        """(lower bound, branching candidate) of the node; candidates index features."""
        c0, rho, _, _, half = self._residualize(forced, candidates)
        gt = self.G[np.ix_(candidates, candidates)]
        if half is not None:
            gt = gt - half.T @ half
        bound, member = _gershgorin_bound(rho**2, gt, m, self.lam)
        return c0 - bound / (2 * self.cost.n), int(candidates[member])


def best_with_mistakes(
    cost: SquaredCost,
    reference,
    at_least: int,
    *,
    gap: float = 1e-4,
    time_limit: float = 60.0,
    incumbent: tuple[np.ndarray, float] | None = None,
) -> OAResult:
    """The support of size s = len(reference) with the smallest cost among those with at
    least ``at_least`` features outside ``reference``, by best-first branch and bound;
    stops when the relative gap reaches ``gap`` (or at ``time_limit``, with the gap)."""
    t0 = time.perf_counter()
    prob = _Problem(cost, reference)
    s, ref = len(prob.reference), prob.reference
    best_key: tuple[int, ...] | None = None
    ub = math.inf
    if incumbent is not None and len(incumbent[0]):
        best_key, ub = tuple(int(i) for i in np.sort(incumbent[0])), float(incumbent[1])
    heap: list[tuple[float, int, tuple[int, ...], tuple[int, ...], int]] = []
    counter = itertools.count()
    floor = math.inf  # the smallest bound of a subtree dropped within the gap tolerance

    def candidates_of(forced, excluded) -> np.ndarray:
        return np.setdiff1d(prob.outsiders, np.array((*excluded, *forced), dtype=np.int64))

    def leaf(forced) -> None:
        nonlocal ub, best_key
        value = cost.value(np.array(sorted(forced)))
        if value < ub:
            ub, best_key = value, tuple(sorted(forced))

    def drop(lb: float) -> None:
        nonlocal floor
        floor = min(floor, lb)

    def push(forced: tuple[int, ...], excluded: tuple[int, ...]) -> None:
        m = s - len(forced)
        if m == 0:
            leaf(forced)
            return
        candidates = candidates_of(forced, excluded)
        if len(candidates) < m:
            return
        cheap_lb = prob.cheap_bound(forced, candidates, m)
        if cheap_lb >= ub * (1 - gap):
            drop(cheap_lb)
            return
        lb, member = prob.node(forced, candidates, m)
        if lb < ub * (1 - gap):
            heapq.heappush(heap, (lb, next(counter), forced, excluded, member))
        else:
            drop(lb)

    # Roots: every kept set K ⊆ reference with |K| ≤ s − at_least, by their cheap bounds;
    # an incumbent first, by a greedy dive from the most promising root.
    top = min(s - at_least, s - 1)  # K = reference (no mistake) is a leaf, not a root
    n_out = len(prob.outsiders)
    roots = [
        kept
        for k in range(max(0, s - n_out), top + 1)  # enough outsiders to fill the support
        for kept in itertools.combinations(ref.tolist(), k)
    ]
    if at_least == 0:
        leaf(tuple(ref.tolist()))
    cheap = [prob.cheap_bound(K, candidates_of(K, ()), s - len(K)) for K in roots]
    if roots:
        forced = roots[int(np.argmin(cheap))]
        while len(forced) < s:
            forced = (*forced, prob.greedy_member(forced, candidates_of(forced, ())))
        leaf(forced)
    for i in np.argsort(cheap):
        if cheap[i] < ub * (1 - gap):
            push(roots[i], ())
        else:
            drop(cheap[i])
    nodes, status = 0, "optimal"
    while heap:
        lb, _, forced, excluded, member = heap[0]
        if lb >= ub * (1 - gap):
            break
        if time.perf_counter() - t0 > time_limit:
            status = "time_limit"
            break
        heapq.heappop(heap)
        nodes += 1
        push((*forced, member), excluded)  # the candidate in
        push(forced, (*excluded, member))  # and out
    lower = min(heap[0][0] if heap else math.inf, floor, ub)
    rel_gap = (ub - lower) / max(abs(ub), 1e-300) if math.isfinite(ub) else math.inf
    return OAResult(
        support=np.array(best_key if best_key is not None else (), dtype=np.int64),
        value=float(ub),
        lower_bound=float(lower),
        gap=float(max(rel_gap, 0.0)),
        status=status if math.isfinite(ub) else "infeasible",
        iterations=nodes,
        cuts=0,
        seconds=time.perf_counter() - t0,
    )
