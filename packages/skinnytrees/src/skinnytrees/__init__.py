"""Skinny Trees: feature selection inside a differentiable tree ensemble (group l0).

>>> from skinnytrees import SkinnyTreesClassifier
>>> SkinnyTreesClassifier(max_features=0.25).max_features
0.25
"""

__version__ = "0.1.0"

from skinnytrees.estimator import SkinnyTreesClassifier, SkinnyTreesRegressor, budget_count
from skinnytrees.model import SoftTreeEnsemble, annealing, prox_group_l0_, prox_threshold
from skinnytrees.train import TrainSettings, train_soft_trees

__all__ = [
    "SkinnyTreesClassifier",
    "SkinnyTreesRegressor",
    "SoftTreeEnsemble",
    "TrainSettings",
    "annealing",
    "budget_count",
    "prox_group_l0_",
    "prox_threshold",
    "train_soft_trees",
]
