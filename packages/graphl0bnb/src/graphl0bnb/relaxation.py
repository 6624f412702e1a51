"""Node relaxation: the perspective relaxation of the l0-l2 penalty, with a Fenchel dual bound.

At a node, each pair is free, fixed to z = 0 (θ = 0) or fixed to z = 1 (λ0 paid). Relaxing
z ∈ [0, 1] for the free pairs and minimising over z gives the convex penalty ψ (a reverse Huber,
see :func:`graphl0bnb._kernels.perspective_constants`). The relaxation is solved by active-set
coordinate descent (every 1-D step is closed form) with KKT screening of the pairs outside the
active set. The lower bound is the dual function evaluated at the dual point implied by the
current iterate, so it is valid whenever it is computed, converged or not; it equals the
relaxation's optimum at convergence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from graphl0bnb import _kernels as K
from graphl0bnb.problem import merge_pairs


@dataclass
class RelaxationResult:
    primal: float  # relaxation objective at the returned Θ (an upper bound on its optimum)
    lower_bound: float  # valid lower bound on the relaxation (hence on the node's MIP)
    theta: np.ndarray
    rows: np.ndarray  # active set at exit
    cols: np.ndarray
    n_sweeps: int
    cutoff_hit: bool  # stopped because the lower bound reached the cutoff


def solve_relaxation(
    S: np.ndarray,
    Theta: np.ndarray,
    V: np.ndarray,
    state: np.ndarray,
    l0: float,
    l2: float,
    M: float,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    rel_tol: float = 1e-6,
    max_outer: int = 100,
    sweeps_per_check: int = 25,
    cutoff: float = math.inf,
    max_new_per_row: int = 10,
    deadline: float = math.inf,
) -> RelaxationResult:
    """Solve the node relaxation in place on (Θ, V) from a warm start and active set (rows, cols).

    Stops when the relative primal-dual gap is ≤ ``rel_tol`` with no KKT violators, when the
    lower bound reaches ``cutoff`` (the node can be pruned), after ``max_outer`` rounds, or at
    ``deadline`` (a ``time.perf_counter()`` value). The bound is valid in every case.
    """
    p = S.shape[0]
    cap = max(1000, max_new_per_row * p)
    vi = np.empty(cap, np.int64)
    vj = np.empty(cap, np.int64)
    vs = np.empty(cap, np.float64)
    sweeps = 0
    best_lb = -math.inf
    primal = math.inf
    move_tol = 1e-9
    for _ in range(max_outer):
        for _ in range(sweeps_per_check):
            moved = K.cd_relax_pairs(S, Theta, V, rows, cols, l0, l2, M, state)
            K.diagonal_sweep(S, Theta, V)
            sweeps += 1
            if moved < move_tol:
                break
        lb, n_viol = K.relax_dual(S, Theta, V, l0, l2, M, state, vi, vj, vs)
        primal = K.relax_value(Theta, V, l0, l2, M, state)
        best_lb = max(best_lb, lb)
        if best_lb >= cutoff:
            return RelaxationResult(primal, best_lb, Theta, rows, cols, sweeps, True)
        gap = primal - best_lb
        if n_viol == 0 and gap <= rel_tol * max(1.0, abs(primal)):
            break
        if time.perf_counter() > deadline:
            break
        if n_viol > 0:
            m = min(n_viol, cap)
            order = np.argsort(-vs[:m])[: max_new_per_row * p]
            rows, cols = merge_pairs(p, (rows, cols), (vi[:m][order], vj[:m][order]))
        else:
            move_tol = max(move_tol * 0.1, 1e-14)
            sweeps_per_check = min(sweeps_per_check * 2, 1000)
    return RelaxationResult(primal, best_lb, Theta, rows, cols, sweeps, False)


def implied_z(Theta, rows, cols, state, l0, l2, M) -> np.ndarray:
    out = np.empty(rows.shape[0])
    K.implied_z(Theta, rows, cols, l0, l2, M, state, out)
    return out
