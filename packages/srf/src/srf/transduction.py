"""Transduction with matrix completion: features and labels stacked in one low-rank matrix.

Items are rows. The stacked matrix is Z = [X_s | w·T | 1] with X_s the features standardized
by their observed means and deviations, T the label block (±1 one-vs-rest columns for classes,
or the standardized target for regression), w the label weight and an optional all-ones bias
column (Goldberg et al. 2010). Missing features and missing labels are the unobserved entries;
completing Z imputes the first and predicts the second.

Two SRF algorithms (our reading of Esmaeili, Behdin et al. 2018; see the README):

- ``"equality"``: every observed entry, features and labels alike, is an equality constraint
  (the plain constrained SRF problem on the stacked matrix).
- ``"margin"``: observed *class* labels only constrain the sign, with a margin: the feasible
  set is {z : y·z ≥ w} for a label entry y = ±1, so the label block need not be exactly ±w
  and can follow the low-rank structure of the features. The projection is
  z ← y·max(y·z, w). Regression targets stay equality constraints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labcore.checks import choice, finite_float
from labcore.errors import LabcoreError

ALGORITHMS = ("equality", "margin")


@dataclass(frozen=True)
class StackedProblem:
    """The stacked matrix, its mask and how to map the blocks back."""

    Z0: np.ndarray  # observed values (standardized features, weighted labels, ones), 0 elsewhere
    mask: np.ndarray
    n_features: int
    n_labels: int
    bias: bool
    mean: np.ndarray
    std: np.ndarray
    label_weight: float
    label_signs: np.ndarray | None  # ±1 at observed class-label entries (margin constraints)

    @property
    def features(self) -> slice:
        return slice(0, self.n_features)

    @property
    def labels(self) -> slice:
        return slice(self.n_features, self.n_features + self.n_labels)

    def unstack_features(self, Z: np.ndarray) -> np.ndarray:
        return Z[:, self.features] * self.std + self.mean

    def label_block(self, Z: np.ndarray) -> np.ndarray:
        return Z[:, self.labels] / self.label_weight


def check_features(X) -> tuple[np.ndarray, np.ndarray]:
    """Float features with NaN as missing; returns (X, observed mask)."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise LabcoreError("X must be numeric (NaN marks missing values)") from None
    if X.ndim != 2:
        raise LabcoreError(f"X must be 2-D (items × features), got shape {X.shape}")
    if X.size == 0:
        raise LabcoreError("X is empty")
    if np.isinf(X).any():
        raise LabcoreError("X contains infinite values (use NaN for missing values)")
    observed = ~np.isnan(X)
    if not observed.any():
        raise LabcoreError("all entries of X are missing")
    return X, observed


def standardize(X: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and deviations over the observed entries (1 for constant/empty columns,
    mean 0 for empty columns)."""
    counts = observed.sum(axis=0)
    filled = np.where(observed, X, 0.0)
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(X.shape[1]), where=counts > 0)
    sq = np.where(observed, (X - mean) ** 2, 0.0).sum(axis=0)
    var = np.divide(sq, counts, out=np.zeros(X.shape[1]), where=counts > 0)
    std = np.sqrt(var)
    return mean, np.where(std > 1e-12, std, 1.0)


def stack(
    X: np.ndarray,
    X_observed: np.ndarray,
    T: np.ndarray,
    T_observed: np.ndarray,
    *,
    label_weight: float = 1.0,
    bias: bool = True,
    classes: bool = True,
) -> StackedProblem:
    """Build the stacked problem from features (with their mask) and a label block T (±1 for
    classes, standardized values for regression) with its mask."""
    label_weight = finite_float("label_weight", label_weight, minimum=0.0, strict=True)
    n = X.shape[0]
    if T.shape[0] != n:
        raise LabcoreError(f"{T.shape[0]} label rows for {n} items")
    for k in range(T.shape[1]):
        if not T_observed[:, k].any():
            raise LabcoreError(f"label column {k} has no observed labels")
    mean, std = standardize(X, X_observed)
    Xs = np.where(X_observed, (np.nan_to_num(X) - mean) / std, 0.0)
    blocks = [Xs, np.where(T_observed, label_weight * T, 0.0)]
    masks = [X_observed, T_observed]
    if bias:
        blocks.append(np.ones((n, 1)))
        masks.append(np.ones((n, 1), dtype=bool))
    signs = np.where(T_observed, np.sign(T), 0.0) if classes else None
    return StackedProblem(
        Z0=np.hstack(blocks),
        mask=np.hstack(masks),
        n_features=X.shape[1],
        n_labels=T.shape[1],
        bias=bias,
        mean=mean,
        std=std,
        label_weight=label_weight,
        label_signs=signs,
    )


def projection(problem: StackedProblem, algorithm: str) -> Callable[[np.ndarray], np.ndarray]:
    """The projection onto the feasible set of the chosen algorithm."""
    choice("algorithm", algorithm, ALGORITHMS)
    values = problem.Z0
    mask = problem.mask
    if algorithm == "equality" or problem.label_signs is None:

        def project(Z: np.ndarray) -> np.ndarray:
            out = Z.copy()
            out[mask] = values[mask]
            return out

        return project

    label_cols = problem.labels
    equal_mask = mask.copy()
    equal_mask[:, label_cols] = False
    signs = problem.label_signs
    labelled = signs != 0
    w = problem.label_weight

    def project_margin(Z: np.ndarray) -> np.ndarray:
        out = Z.copy()
        out[equal_mask] = values[equal_mask]
        block = out[:, label_cols]
        margin = signs * np.maximum(signs * block, w)
        out[:, label_cols] = np.where(labelled, margin, block)
        return out

    return project_margin


def one_vs_rest(y: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes of the labelled rows and the ±1 one-vs-rest block (one column when there are two
    classes: +1 for the second class)."""
    classes = np.unique(y[labelled])
    if classes.size < 2:
        raise LabcoreError(
            f"the labelled rows hold {classes.size} class(es); at least 2 are needed"
        )
    n = y.shape[0]
    if classes.size == 2:
        T = np.zeros((n, 1))
        T[labelled, 0] = np.where(y[labelled] == classes[1], 1.0, -1.0)
        return classes, T
    T = np.zeros((n, classes.size))
    rows = np.flatnonzero(labelled)
    idx = np.searchsorted(classes, y[labelled])
    T[labelled] = -1.0
    T[rows, idx] = 1.0
    return classes, T
