"""Primal heuristic: coordinate descent with l0-l2 thresholding, then swap local search.

This is the "fast" mode: it returns a good feasible Θ without a certificate. Coordinate descent
works on an active set (the current support) and alternates with full sweeps over every pair
(O(1) per pair thanks to the maintained V = ΘS), stopping when a full sweep changes no support.
Local search then tries, per row, to swap one edge for the best absent one (partial swap
inversion), and coordinate descent runs again after any accepted swap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphl0bnb import _kernels as K
from graphl0bnb.problem import merge_pairs, start_point, upper_pairs


@dataclass
class HeuristicResult:
    theta: np.ndarray
    objective: float
    n_sweeps: int
    n_swaps: int


def _value(Theta, V, l0, l2, state) -> float:
    return float(K.smooth_value(Theta, V) + K.l0_penalty(Theta, l0, l2, state))


def cd_active(S, Theta, V, l0, l2, M, state, *, tol, max_sweeps, full_sweeps=True) -> int:
    """Coordinate descent to a fixed point; returns the number of sweeps."""
    sweeps = 0
    prev = _value(Theta, V, l0, l2, state)
    while sweeps < max_sweeps:
        rows, cols = upper_pairs(Theta)
        # Pairs fixed to z = 1 stay in the active set even at θ = 0.
        if (state == K.ONE).any():
            rows, cols = merge_pairs(
                S.shape[0], (rows, cols), np.nonzero(np.triu(state == K.ONE, 1))
            )
        # Inner loop on the support until the objective settles.
        while sweeps < max_sweeps:
            K.cd_l0l2_pairs(S, Theta, V, rows, cols, l0, l2, M, state)
            K.diagonal_sweep(S, Theta, V)
            sweeps += 1
            cur = _value(Theta, V, l0, l2, state)
            if prev - cur <= tol * max(1.0, abs(cur)):
                prev = cur
                break
            prev = cur
            if len(upper_pairs(Theta)[0]) != len(rows):
                break  # support shrank: refresh the active set
        if not full_sweeps:
            break
        changed = K.cd_l0l2_full(S, Theta, V, l0, l2, M, state)
        K.diagonal_sweep(S, Theta, V)
        sweeps += 1
        cur = _value(Theta, V, l0, l2, state)
        settled = prev - cur <= tol * max(1.0, abs(cur))
        prev = cur
        if changed == 0 and settled:
            break
    return sweeps


def heuristic_solve(
    S: np.ndarray,
    l0: float,
    l2: float,
    M: float,
    *,
    theta0: np.ndarray | None = None,
    state: np.ndarray | None = None,
    local_search: bool = True,
    max_swap_rounds: int = 10,
    tol: float = 1e-8,
    max_sweeps: int = 1000,
) -> HeuristicResult:
    """Coordinate descent + partial-swap local search on the l0-l2 pseudolikelihood.

    Parameters
    ----------
    S : (p, p) covariance of the (standardized) data.
    l0, l2, M : the penalty weights and the box |θ_ij| ≤ M (``math.inf`` for no box).
    theta0 : optional warm start (symmetric, positive diagonal).
    state : optional fixings (see :mod:`graphl0bnb._kernels`); default all free.
    local_search : run swap moves after coordinate descent.
    """
    p = S.shape[0]
    st = np.zeros((p, p), np.int8) if state is None else state
    Theta, V = start_point(S, theta0)
    if state is not None:
        Theta[state == K.ZERO] = 0.0
        Theta, V = start_point(S, Theta)
    sweeps = cd_active(S, Theta, V, l0, l2, M, st, tol=tol, max_sweeps=max_sweeps)
    swaps = 0
    if local_search:
        swap_tol = 1e-10 * max(1.0, abs(_value(Theta, V, l0, l2, st)))
        for _ in range(max_swap_rounds):
            accepted = 0
            for i in range(p):
                accepted += K.swap_search_row(S, Theta, V, i, l0, l2, M, st, swap_tol)
            swaps += accepted
            if accepted == 0:
                break
            sweeps += cd_active(S, Theta, V, l0, l2, M, st, tol=tol, max_sweeps=max_sweeps)
    return HeuristicResult(Theta, _value(Theta, V, l0, l2, st), sweeps, swaps)


def lambda0_max(S: np.ndarray, l2: float, M: float = math.inf) -> float:
    """The smallest λ0 at which the empty graph is a coordinate-wise minimum (top of a path)."""
    Theta, V = start_point(S)
    return float(K.max_entry_gain(S, Theta, V, l2, M, np.zeros(S.shape, np.int8)))
