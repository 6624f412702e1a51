"""Offline instance allocation: how many instances of each model to run on a GPU budget.

Given a sample of expected traffic (predicted quality and cost of each model on n sample
queries, standing for ``traffic`` queries per routing window), choose integer instance
counts N_m and the routing shares y_im jointly:

    maximise   Σ_im a_im y_im
    subject to Σ_m y_im = 1                          ∀ i   (each sample query routed)
               (traffic / n) · Σ_i y_im ≤ κ_m N_m    ∀ m   (instances serve the load)
               Σ_m g_m N_m ≤ G                             (GPU budget)
               Σ_im c_im y_im ≤ b · n                      (optional cost per query b)
               N_m ∈ {0, 1, …, N_max},  y ≥ 0.

κ_m is the number of concurrent queries one instance of model m serves in a window (its
concurrency slots, or its throughput × window); g_m its GPUs. The routing shares are
continuous (the expected mix over many batches), the instance counts integer: a small MILP
(M integer variables) solved by HiGHS. The capacities the batch router then uses are
K_m = κ_m N_m.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from labcore.errors import LabcoreError


@dataclass(frozen=True)
class Allocation:
    """Instances per model and what they give on the traffic sample."""

    models: tuple[str, ...]
    instances: np.ndarray
    capacity: np.ndarray
    gpus_used: float
    expected_quality: float  # mean predicted quality per query under the optimal shares
    shares: np.ndarray  # fraction of traffic routed to each model
    bound: float
    gap: float
    status: str
    solve_time_s: float

    def to_dict(self) -> dict:
        return {
            "models": list(self.models),
            "instances": dict(zip(self.models, self.instances.tolist(), strict=True)),
            "capacity": dict(zip(self.models, self.capacity.tolist(), strict=True)),
            "gpus_used": self.gpus_used,
            "expected_quality": self.expected_quality,
            "shares": dict(zip(self.models, self.shares.round(6).tolist(), strict=True)),
            "gap": self.gap,
            "status": self.status,
            "solve_time_s": self.solve_time_s,
        }


def _vector(name: str, value, m: int, *, positive: bool) -> np.ndarray:
    v = np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)).copy()
    if not np.all(np.isfinite(v)) or (v <= 0 if positive else v < 0).any():
        raise LabcoreError(f"{name} must be finite and {'positive' if positive else '>= 0'}")
    return v


def allocate_instances(
    quality: np.ndarray,
    cost: np.ndarray | None = None,
    *,
    gpus_per_instance,
    concurrency,
    gpu_budget: float,
    traffic: float,
    budget_per_query: float | None = None,
    max_instances: int = 64,
    models: tuple[str, ...] | None = None,
    time_limit: float = 60.0,
) -> Allocation:
    """Choose instance counts per model (see the module docstring).

    Parameters
    ----------
    quality, cost : array (n, M)
        Predicted quality and cost on a sample of expected traffic.
    gpus_per_instance, concurrency : float or array (M,)
        g_m and κ_m.
    gpu_budget : float
        G, the GPUs available.
    traffic : float
        Queries per routing window that the sample stands for.
    budget_per_query : float, optional
        Mean cost per query allowed.

    Examples
    --------
    >>> q = np.array([[0.2, 0.9]] * 10)   # the big model is much better ...
    >>> alloc = allocate_instances(q, gpus_per_instance=[1, 4], concurrency=[8, 8],
    ...                            gpu_budget=8, traffic=16)
    >>> alloc.instances.tolist()           # ... so it gets both slots of 4 GPUs
    [0, 2]
    """
    import highspy

    from batchroute.solve import run_highs

    a = np.asarray(quality, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0 or not np.all(np.isfinite(a)):
        raise LabcoreError(f"quality must be a finite, non-empty (n, M) array, got {a.shape}")
    n, m = a.shape
    g = _vector("gpus_per_instance", gpus_per_instance, m, positive=True)
    kappa = _vector("concurrency", concurrency, m, positive=True)
    if not (np.isfinite(gpu_budget) and gpu_budget > 0):
        raise LabcoreError(f"gpu_budget must be positive, got {gpu_budget}")
    if not (np.isfinite(traffic) and traffic > 0):
        raise LabcoreError(f"traffic must be positive, got {traffic}")
    names = tuple(models) if models is not None else tuple(f"m{j}" for j in range(m))
    if len(names) != m:
        raise LabcoreError(f"{len(names)} model names for {m} models")
    # Whatever the mix, the instances must serve all traffic: a quick necessary check.
    best_rate = float((kappa / g).max() * gpu_budget)
    if best_rate < traffic:
        raise LabcoreError(
            f"{gpu_budget:g} GPUs serve at most {best_rate:g} queries per window, below the "
            f"traffic of {traffic:g}; at least {traffic / (kappa / g).max():g} GPUs are needed"
        )
    started = time.perf_counter()
    weight = traffic / n
    n_y = n * m
    # Columns: y (n*m, i-major), then N (m).
    cols_y = np.arange(n_y)
    model_of_y = np.tile(np.arange(m), n)
    a_eq = sparse.hstack(
        [
            sparse.csr_matrix((np.ones(n_y), (np.repeat(np.arange(n), m), cols_y)), (n, n_y)),
            sparse.csr_matrix((n, m)),
        ]
    )
    cap_rows = sparse.hstack(
        [
            sparse.csr_matrix((np.full(n_y, weight), (model_of_y, cols_y)), (m, n_y)),
            sparse.diags(-kappa),
        ]
    )
    gpu_row = sparse.hstack([sparse.csr_matrix((1, n_y)), sparse.csr_matrix(g.reshape(1, -1))])
    ub_rows = [cap_rows, gpu_row]
    b_ub = [np.zeros(m), [gpu_budget]]
    if budget_per_query is not None:
        if cost is None:
            raise LabcoreError("budget_per_query needs the cost matrix")
        c = np.asarray(cost, dtype=np.float64)
        if c.shape != a.shape or not np.all(np.isfinite(c)) or (c < 0).any():
            raise LabcoreError(f"cost must be a finite non-negative array of shape {a.shape}")
        ub_rows.append(
            sparse.hstack([sparse.csr_matrix(c.reshape(1, -1)), sparse.csr_matrix((1, m))])
        )
        b_ub.append([budget_per_query * n])
    a_all = sparse.vstack([a_eq, *ub_rows]).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a_all.shape[1], a_all.shape[0]
    lp.col_cost_ = np.concatenate([a.ravel(), np.zeros(m)])
    lp.col_lower_ = np.zeros(n_y + m)
    lp.col_upper_ = np.concatenate([np.ones(n_y), np.full(m, float(max_instances))])
    b_ub_all = np.concatenate([np.asarray(b, float) for b in b_ub])
    lp.row_lower_ = np.concatenate([np.ones(n), np.full(len(b_ub_all), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([np.ones(n), b_ub_all])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = (
        a_all.indptr,
        a_all.indices,
        a_all.data,
    )
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_y + [highspy.HighsVarType.kInteger] * m
    status, info, values = run_highs(lp, {"time_limit": float(time_limit), "mip_rel_gap": 1e-6})
    if values is None:
        raise LabcoreError(
            f"no allocation serves the traffic within the GPU (and cost) budget ({status})"
        )
    instances = np.round(values[n_y:]).astype(np.int64)
    y = values[:n_y].reshape(n, m)
    objective = info["objective"]
    bound = info["mip_dual_bound"]
    return Allocation(
        models=tuple(names),
        instances=instances,
        capacity=instances * kappa,
        gpus_used=float(instances @ g),
        expected_quality=objective / n,
        shares=y.sum(axis=0) / n,
        bound=bound / n,
        gap=float(max(bound - objective, 0.0) / max(abs(bound), 1e-9)),
        status=status,
        solve_time_s=time.perf_counter() - started,
    )


def uniform_allocation(
    *, gpus_per_instance, concurrency, gpu_budget: float, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The naive baseline: the GPU budget split evenly across models (instances, capacity).

    Each model gets ⌊G / M / g_m⌋ instances; GPUs left over are then handed out one instance
    at a time, round robin over the models that still fit, so no GPU the budget allows
    stays idle.

    Examples
    --------
    >>> uniform_allocation(gpus_per_instance=[1, 2], concurrency=[4, 2], gpu_budget=9, m=2)
    (array([5, 2]), array([20.,  4.]))
    """
    g = _vector("gpus_per_instance", gpus_per_instance, m, positive=True)
    kappa = _vector("concurrency", concurrency, m, positive=True)
    instances = np.floor(gpu_budget / m / g).astype(np.int64)
    left = gpu_budget - float(instances @ g)
    while True:
        added = False
        for j in range(m):
            if g[j] <= left + 1e-9:
                instances[j] += 1
                left -= g[j]
                added = True
        if not added:
            break
    return instances, instances * kappa
