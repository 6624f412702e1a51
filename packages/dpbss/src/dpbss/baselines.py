"""Baselines run side by side with the private samplers.

- :func:`samp_agg_lasso`: subsample and aggregate (Kifer, Smith and Thakurta 2012): ⌊√n⌋
  disjoint blocks, each selects s features by the Lasso path (LARS, the first s variables
  to enter), the vote counts get Laplace noise of scale 2s/(K·ε) (one row changes one block's
  s-set: an ℓ1 change of 2s/K in the vote frequencies), and the top s are returned. ε-DP.
- :func:`mcmc_exponential`: the Metropolis–Hastings sampler of Roy and Tewari (2024): swap
  proposals targeting the exponential mechanism exp(−ε·L(S)/(2Δ)) over all supports, run for
  a fixed number of steps. Only approximately DP (the chain is not at stationarity). We
  target our support cost and its Δ so that it samples the same distribution as an exact
  exponential mechanism would; their own code uses ‖y − X_Sβ̂‖² with an ℓ1-bounded β̂.
"""

from __future__ import annotations

import math

import numpy as np

from dpbss.loss import SquaredCost


def lasso_votes(X: np.ndarray, y: np.ndarray, s: int, *, rng: np.random.Generator) -> np.ndarray:
    """Subsample-and-aggregate votes: ⌊√n⌋ disjoint random blocks, each choosing the first s
    features to enter its Lasso path; the fraction of blocks choosing each feature."""
    from sklearn.linear_model import lars_path

    n, p = X.shape
    k = max(1, math.isqrt(n))
    order = rng.permutation(n)
    votes = np.zeros(p)
    for block in np.array_split(order, k):
        _, _, coefs = lars_path(X[block], y[block], method="lasso", max_iter=4 * s)
        # The order of first entry along the path (a variable may leave it later).
        nonzero = coefs != 0
        entered = np.flatnonzero(nonzero.any(axis=1))
        first = nonzero[entered].argmax(axis=1)
        chosen = entered[np.lexsort((-np.abs(coefs[entered, -1]), first))][:s]
        votes[chosen] += 1.0 / k
    return votes


def samp_agg_lasso(
    votes: np.ndarray, s: int, *, n: int, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """One ε-DP draw from the votes of :func:`lasso_votes` (n rows): Laplace noise of scale
    2s/(K·ε) on each frequency, then the top s."""
    k = max(1, math.isqrt(n))
    noisy = votes + rng.laplace(scale=2.0 * s / (k * epsilon), size=votes.size)
    return np.sort(np.argsort(-noisy)[:s])


def mcmc_exponential(
    cost: SquaredCost,
    s: int,
    *,
    epsilon: float,
    sensitivity: float,
    steps: int = 1000,
    rng: np.random.Generator,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """The support after ``steps`` Metropolis–Hastings swap moves from a uniform start."""
    p = cost.p
    current = np.sort(start if start is not None else rng.choice(p, size=s, replace=False))
    scale = epsilon / (2.0 * sensitivity)
    cur_loss = cost.value(current)
    for _ in range(steps):
        i = int(rng.integers(s))
        j = int(rng.integers(p - s))
        outsider = j + int(np.searchsorted(current - np.arange(s), j, side="right"))
        proposal = current.copy()
        proposal[i] = outsider
        proposal.sort()
        loss = cost.value(proposal)
        if math.log(rng.random() + 1e-300) < -scale * (loss - cur_loss):  # symmetric proposal
            current, cur_loss = proposal, loss
    return current
