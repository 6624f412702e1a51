"""The private support samplers: Top-R and Mistakes (exponential-mechanism style).

Both start from the best support S* and its neighbourhood, found exactly by outer
approximation (:func:`neighbourhood`): every one-swap of S* refit, and for j = 2 … s the
best support with at least j features outside S* (a mistake row in the master MILP).

**Top-R.** The R = s(p − s) + 2 supports {S*, its one-swaps, the best 2-mistake support
S_R} are drawn with probability ∝ exp(−ε·L(S)/(2Δ)); one more "rest" bucket holds the
C(p, s) − R other supports, each weighted exp(−ε·L(S_R)/(2Δ)), and a rest draw returns a
uniform support outside the top R (rejection sampling). When the certificate holds (L(S_R)
≥ every one-swap loss), the top-R set is exactly the R best supports and each support's
weight is exp(−ε·min(L(S), L_(R))/(2Δ)) with L_(R) the R-th smallest loss: a utility of
sensitivity Δ, so the draw is ε-DP. Runs where the certificate fails (the official code's
"oops") are reported (``certified=False``), never dropped silently.

**Mistakes.** Bucket j = 0 … s holds the C(s, j)·C(p − s, j) supports with exactly j swaps
from S*; it is drawn with weight C(s, j)·C(p − s, j)·exp(−ε·L_j/(2Δ)), L_j the best loss
with at least j mistakes (j ≥ 2; L_0 = L(S*), L_1 the best one-swap), and the output is a
uniform member of the drawn bucket. (The official code returns the bucket's best support
instead; the paper's mechanism treats the members alike, which is what the weights count.)

All arithmetic is in the log domain (log-binomials by ``gammaln``, log-sum-exp), exact in
float64 where the official code uses 100-digit mpmath.

Sensitivity (least squares): one replaced row changes each support's cost
min_{‖β‖≤r} (1/2n)Σ(y_i − x_iᵀβ)² + (λ/2n)‖β‖² by at most the largest value of one term,
(b_y + b_x·r·√s)²/(2n), with |y_i| ≤ b_y, |x_ij| ≤ b_x and ‖β‖ ≤ r; the hinge loss's terms
lie in [0, 1 + b_x·r·√s], so Δ = (1 + b_x·r·√s)/n.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln, logsumexp

from dpbss.bss import OAResult, OuterApproximation
from dpbss.loss import make_cost
from dpbss.mistakes import best_with_mistakes


def sensitivity(
    *, n: int, s: int, x_bound: float, y_bound: float = 1.0, radius: float, loss="squared"
) -> float:
    """Δ of every support's cost under the replacement of one row (see the module notes;
    ``y_bound`` is unused by the hinge loss, whose labels are ±1)."""
    if loss == "squared":
        return (y_bound + x_bound * radius * math.sqrt(s)) ** 2 / (2 * n)
    if loss == "hinge":
        return (1 + x_bound * radius * math.sqrt(s)) / n
    raise ValueError(f"unknown loss {loss!r}")


def log_binom(n: int, k: int) -> float:
    """log C(n, k) (−inf outside 0 ≤ k ≤ n)."""
    if k < 0 or k > n:
        return -math.inf
    return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))


@dataclass
class Neighbourhood:
    p: int
    s: int
    best: np.ndarray  # S*
    best_value: float
    swaps: np.ndarray  # (s(p − s), s) one-swap supports
    swap_values: np.ndarray
    at_least: dict[int, tuple[np.ndarray, float]]  # j ≥ 2 → best support with ≥ j mistakes
    certified: bool  # L(best ≥2-mistake support) ≥ every one-swap loss
    solves: list[OAResult] = field(default_factory=list)

    @property
    def mistake_values(self) -> np.ndarray:
        """L_j for j = 0 … s (∞ where no support has that many mistakes)."""
        vals = [self.best_value, float(self.swap_values.min()) if len(self.swaps) else math.inf]
        vals += [
            self.at_least[j][1] if j in self.at_least else math.inf for j in range(2, self.s + 1)
        ]
        return np.array(vals[: self.s + 1])


def one_swaps(support: np.ndarray, p: int) -> np.ndarray:
    """All s(p − s) supports that replace one member of ``support`` by one outsider."""
    support = np.sort(np.asarray(support, dtype=np.int64))
    outside = np.setdiff1d(np.arange(p), support)
    s = len(support)
    out = np.repeat(support[None, :], s * len(outside), axis=0)
    rows = np.arange(s * len(outside))
    out[rows, np.repeat(np.arange(s), len(outside))] = np.tile(outside, s)
    return np.sort(out, axis=1)


def neighbourhood(
    X: np.ndarray,
    y: np.ndarray,
    s: int,
    *,
    lam: float,
    r: float,
    loss: str = "squared",
    mistakes: int | None = None,
    time_limit: float = 60.0,
    cost=None,
    branch_and_bound: bool = True,
    **oa_kwargs,
) -> Neighbourhood:
    """S* by outer approximation, its one-swaps refit, and the best supports with at least
    j = 2 … ``mistakes`` (default s) mistakes, all in one master MILP with shared cuts.

    The mistake problems of the least-squares cost are solved by the branch and bound of
    :mod:`dpbss.mistakes` when the Gram matrix is at hand (``branch_and_bound``), else by
    outer approximation with a mistake row. ``time_limit`` bounds each solve; a solve that
    stops on it keeps its best support found (``Neighbourhood.solves`` records the status
    and the gap)."""
    p = X.shape[1]
    cost = cost if cost is not None else make_cost(X, y, loss=loss, lam=lam, r=r)
    oa = OuterApproximation(cost, s, **oa_kwargs)
    try:
        first = oa.solve(time_limit=time_limit)
        use_bnb = branch_and_bound and getattr(cost, "gram", None) is not None
        if use_bnb and first.status != "optimal" and len(first.support) and s < p:
            # The master MILP grows with p (10^4 binaries): finish the proof by the branch
            # and bound over the best support found (any support has ≥ 0 mistakes).
            proof = best_with_mistakes(
                cost,
                first.support,
                0,
                gap=oa.gap,
                time_limit=time_limit,
                incumbent=(first.support, first.value),
            )
            lower = max(proof.lower_bound, first.lower_bound)
            first = dataclasses.replace(
                proof,
                lower_bound=lower,
                gap=max(0.0, (proof.value - lower) / max(abs(proof.value), 1e-300)),
                iterations=first.iterations + proof.iterations,
                cuts=first.cuts,
                seconds=first.seconds + proof.seconds,
                status=proof.status,
            )
        best = first.support
        swaps = one_swaps(best, p) if s < p else np.empty((0, s), np.int64)
        swap_values = cost.losses(swaps) if len(swaps) else np.empty(0)
        solves = [first]
        at_least: dict[int, tuple[np.ndarray, float]] = {}
        for j in range(2, min(s, p - s, mistakes if mistakes is not None else s) + 1):
            if use_bnb:
                res = best_with_mistakes(
                    cost, best, j, gap=oa.gap, time_limit=time_limit, incumbent=None
                )
            else:
                oa.set_mistakes(best, j)
                oa.guess_mistakes(best, j)
                res = oa.solve(time_limit=time_limit)
            solves.append(res)
            if res.status != "infeasible":
                at_least[j] = (res.support, res.value)
        # The proof needs a lower bound on every ≥2-mistake cost (exact or not).
        two = next((r for r in solves[1:2] if r.status != "infeasible"), None)
        certified = two is None or two.lower_bound >= (
            swap_values.max() if len(swap_values) else -math.inf
        )
    finally:
        oa.close()
    return Neighbourhood(
        p, s, best, first.value, swaps, swap_values, at_least, bool(certified), solves
    )


def _mistakes_of(support, best) -> int:
    return len(set(int(i) for i in support) - set(int(i) for i in best))


def top_r_log_weights(
    nb: Neighbourhood, epsilon: float, delta_f: float
) -> tuple[np.ndarray, float]:
    """Log weights of the top-R supports (S*, one-swaps, S_R; in that order) and of the whole
    rest bucket."""
    if 2 in nb.at_least:
        L_R = nb.at_least[2][1]
    else:  # every support is S* or a one-swap (s = 1, or p − s < 2)
        L_R = float(nb.swap_values.max()) if len(nb.swap_values) else nb.best_value
    losses = np.concatenate([[nb.best_value], nb.swap_values, [L_R] if 2 in nb.at_least else []])
    R = len(losses)
    scale = epsilon / (2.0 * delta_f)
    # u(S) = min(L(S), L_R): equal to L(S) under the certificate.
    logw = -scale * np.minimum(losses, L_R)
    log_rest_count = _log_comb_minus(nb.p, nb.s, R)
    return logw, log_rest_count - scale * L_R


def _log_comb_minus(p: int, s: int, R: int) -> float:
    """log(C(p, s) − R), −inf when no support is left over."""
    lc = log_binom(p, s)
    if lc == -math.inf:
        return -math.inf
    frac = R * math.exp(-lc)
    return lc + math.log1p(-frac) if frac < 1 else -math.inf


def _top_r_members(nb: Neighbourhood) -> list[np.ndarray]:
    members = [nb.best, *nb.swaps]
    if 2 in nb.at_least:
        members.append(nb.at_least[2][0])
    return members


def sample_top_r(
    nb: Neighbourhood, *, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> np.ndarray:
    """One ε-DP draw of a support by the Top-R mechanism."""
    logw, log_rest = top_r_log_weights(nb, epsilon, sensitivity)
    all_logw = np.append(logw, log_rest)
    probs = np.exp(all_logw - logsumexp(all_logw))
    k = int(rng.choice(len(probs), p=probs / probs.sum()))
    members = _top_r_members(nb)
    if k < len(members):
        return np.sort(members[k])
    s_r = tuple(np.sort(nb.at_least[2][0])) if 2 in nb.at_least else None
    while True:  # the rest: a uniform support with ≥ 2 mistakes other than S_R
        cand = np.sort(rng.choice(nb.p, size=nb.s, replace=False))
        if _mistakes_of(cand, nb.best) >= 2 and tuple(cand) != s_r:
            return cand


def mistakes_log_weights(nb: Neighbourhood, epsilon: float, delta_f: float) -> np.ndarray:
    """Log weights of the buckets j = 0 … s."""
    scale = epsilon / (2.0 * delta_f)
    L = nb.mistake_values
    counts = np.array([log_binom(nb.s, j) + log_binom(nb.p - nb.s, j) for j in range(nb.s + 1)])
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(L), counts - scale * L, -np.inf)


def sample_mistakes(
    nb: Neighbourhood, *, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> np.ndarray:
    """One draw by the Mistakes mechanism: a bucket, then a uniform member of it."""
    logw = mistakes_log_weights(nb, epsilon, sensitivity)
    probs = np.exp(logw - logsumexp(logw))
    j = int(rng.choice(len(probs), p=probs / probs.sum()))
    outside = np.setdiff1d(np.arange(nb.p), nb.best)
    keep = rng.choice(nb.best, size=nb.s - j, replace=False)
    add = rng.choice(outside, size=j, replace=False)
    return np.sort(np.concatenate([keep, add]))


def exact_distribution(
    nb: Neighbourhood, *, mechanism: str, epsilon: float, sensitivity: float
) -> dict[tuple[int, ...], float]:
    """Every support's output probability (small p only: C(p, s) entries), for checks."""
    import itertools

    supports = [tuple(c) for c in itertools.combinations(range(nb.p), nb.s)]
    if mechanism == "top-r":
        logw, log_rest = top_r_log_weights(nb, epsilon, sensitivity)
        log_z = logsumexp(np.append(logw, log_rest))
        members = [tuple(int(i) for i in np.sort(m)) for m in _top_r_members(nb)]
        probs = {m: math.exp(w - log_z) for m, w in zip(members, logw, strict=True)}
        n_rest = len(supports) - len(members)
        each = math.exp(log_rest - log_z) / n_rest if n_rest else 0.0
        return {S: probs.get(S, each) for S in supports}
    logw = mistakes_log_weights(nb, epsilon, sensitivity)
    pj = np.exp(logw - logsumexp(logw))
    out = {}
    for S in supports:
        j = _mistakes_of(S, nb.best)
        out[S] = pj[j] / math.exp(log_binom(nb.s, j) + log_binom(nb.p - nb.s, j))
    return out
