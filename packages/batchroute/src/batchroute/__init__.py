"""Robust batch-level routing of LLM queries under cost and capacity constraints.

A batch of queries is routed jointly: a model per query that maximises predicted quality
within a batch budget and per-model capacities (a MILP solved by HiGHS), optionally robust
to errors in the predicted quality (Markovic-Voronov, Behdin, Xu et al., 2026; the
formulation here is our reconstruction, see the README).

>>> from batchroute import RoutingProblem, solve
>>> p = RoutingProblem(quality=[[0.5, 0.9], [0.2, 0.8]], cost=[[1, 5], [1, 5]], budget=6)
>>> solve(p).choice.tolist()
[0, 1]
"""

from batchroute.allocate import Allocation, allocate_instances
from batchroute.problem import Assignment, Resource, RoutingProblem, Uncertainty, violations
from batchroute.solve import InfeasibleBudget, min_budget, solve

__version__ = "0.1.0"

__all__ = [
    "Allocation",
    "Assignment",
    "InfeasibleBudget",
    "Resource",
    "RoutingProblem",
    "Uncertainty",
    "__version__",
    "allocate_instances",
    "min_budget",
    "solve",
    "violations",
]
