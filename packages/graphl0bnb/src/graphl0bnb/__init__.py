"""GraphL0BnB: sparse Gaussian graphical models by l0-l2 penalized pseudolikelihood.

The estimator minimises the CONCORD-type pseudolikelihood with an l0 (edge count) and l2 penalty
and certifies its solution with a nonlinear branch-and-bound (Behdin, Chen and Mazumder, 2023).

>>> from graphl0bnb import GraphL0BnB, make_precision, sample
>>> X = sample(make_precision("banded", 10), 400, seed=0)
>>> GraphL0BnB(l0=0.05).fit(X).n_edges_
15
"""

from graphl0bnb.bnb import BnBResult, branch_and_bound
from graphl0bnb.estimator import (
    BoxActiveWarning,
    GraphL0BnB,
    GraphL0BnBCV,
    default_l0,
    pseudolikelihood_loss,
)
from graphl0bnb.graphs import GRAPHS, make_precision, sample
from graphl0bnb.heuristic import heuristic_solve, lambda0_max
from graphl0bnb.problem import GraphL0BnBError, covariance, objective

__version__ = "0.1.0"

__all__ = [
    "GRAPHS",
    "BnBResult",
    "BoxActiveWarning",
    "GraphL0BnB",
    "GraphL0BnBCV",
    "GraphL0BnBError",
    "__version__",
    "branch_and_bound",
    "covariance",
    "default_l0",
    "heuristic_solve",
    "lambda0_max",
    "make_precision",
    "objective",
    "pseudolikelihood_loss",
    "sample",
]
