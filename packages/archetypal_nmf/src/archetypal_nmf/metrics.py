"""The objective and the measures of archetype recovery.

Notation (Behdin & Mazumder): X is m × n (m points, n features), H (k × n) holds the
archetypes as rows, W (m × k) and W̃ (``Wt``, k × m) are row-stochastic, and

    Ψ(W, H, W̃) = ‖X − W H‖²_F + λ ‖H − W̃ X‖²_F,

with X replaced by the completed matrix X̂ = M ⊙ X + (1 − M) ⊙ Z when a mask M marks the
observed entries (see :mod:`archetypal_nmf.bcd`).

The robustness measure between two sets of archetypes (rows) is

    L(H₁, H₂) = Σ_i min_j ‖H₁_i − H₂_j‖²,

which is not symmetric. With H₀ the truth and Ĥ the estimate, **weak robustness is L(H₀, Ĥ)**
(every true archetype has an estimate close to it) and **strong robustness is L(Ĥ, H₀)**
(every estimate is close to a true archetype).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from archetypal_nmf.bcd import _check_completion, _check_data, _check_factors
from labcore.checks import finite_array, finite_float
from labcore.errors import LabcoreError

__all__ = [
    "matched_error",
    "objective",
    "pairwise_squared_distances",
    "robustness",
    "strong_robustness",
    "support_recovery",
    "weak_robustness",
]


def objective(
    X: Any,
    W: Any,
    H: Any,
    Wt: Any,
    lam: float,
    Z: Any = None,
    mask: Any = None,
) -> float:
    """Ψ(W, H, W̃) = ‖X̂ − W H‖²_F + λ ‖H − W̃ X̂‖²_F.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Nonnegative data (anything, NaN included, where ``mask`` is False).
    W, H, Wt : array_like
        The blocks, shapes (m, k), (k, n), (k, m). Feasibility is not checked: Ψ is
        evaluated at whatever point is given.
    lam : float
        λ ≥ 0.
    Z : array_like, shape (m, n), optional
        The missing-entry values; required with a mask, only its missing entries are read.
    mask : array_like of bool, shape (m, n), optional
        True where X is observed; without it X̂ = X.

    Returns
    -------
    float
    """
    data = _check_data(X, mask)
    W, H, Wt = _check_factors(data, W, H, Wt)
    lam = finite_float("lam", lam, minimum=0.0)
    Xh = _check_completion(data, Z, required=True)
    if Xh is None:
        Xh = data.X
    R = Xh - W @ H
    D = H - Wt @ Xh
    return float(np.vdot(R, R) + lam * np.vdot(D, D))


def _two_archetype_sets(A: Any, B: Any, names: tuple[str, str]) -> tuple[np.ndarray, ...]:
    A = finite_array(names[0], A, ndim=2)
    B = finite_array(names[1], B, ndim=2)
    if A.shape[1] != B.shape[1]:
        raise LabcoreError(
            f"{names[0]} and {names[1]} must have the same number of columns (features), "
            f"got shapes {A.shape} and {B.shape}"
        )
    return A, B


def pairwise_squared_distances(A: Any, B: Any) -> np.ndarray:
    """The matrix ‖A_i − B_j‖² over rows (computed from differences, so it is exactly 0
    for equal rows, unlike the ‖a‖² + ‖b‖² − 2aᵀb expansion).

    >>> pairwise_squared_distances([[0.0, 0.0]], [[3.0, 4.0], [0.0, 1.0]]).tolist()
    [[25.0, 1.0]]
    """
    A, B = _two_archetype_sets(A, B, ("A", "B"))
    diff = A[:, None, :] - B[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def robustness(H1: Any, H2: Any) -> float:
    """L(H₁, H₂) = Σ_i min_j ‖H₁_i − H₂_j‖²: how far each row of H₁ is from its nearest row
    of H₂. Not symmetric; see :func:`weak_robustness` and :func:`strong_robustness`.

    >>> robustness([[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0]])
    1.0
    >>> robustness([[0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]])
    0.0
    """
    H1, H2 = _two_archetype_sets(H1, H2, ("H1", "H2"))
    return float(pairwise_squared_distances(H1, H2).min(axis=1).sum())


def weak_robustness(H_est: Any, H_true: Any) -> float:
    """Weak robustness L(H₀, Ĥ), H₀ = ``H_true``: small when every true archetype has an
    estimated archetype close to it (extra or duplicated estimates are not penalized)."""
    H_est, H_true = _two_archetype_sets(H_est, H_true, ("H_est", "H_true"))
    return robustness(H_true, H_est)


def strong_robustness(H_est: Any, H_true: Any) -> float:
    """Strong robustness L(Ĥ, H₀), H₀ = ``H_true``: small when every estimated archetype is
    close to some true archetype."""
    H_est, H_true = _two_archetype_sets(H_est, H_true, ("H_est", "H_true"))
    return robustness(H_est, H_true)


def _match(H_est: np.ndarray, H_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of H_est and H_true paired by the Hungarian algorithm on squared distances
    (archetypes are only identified up to a permutation). With different row counts the
    extra rows stay unmatched."""
    cost = pairwise_squared_distances(H_est, H_true)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols


def support_recovery(H_est: Any, H_true: Any, *, atol: float = 0.0) -> dict[str, Any]:
    """Precision, recall and F1 of the nonzero pattern of ``H_est`` after matching its rows
    to those of ``H_true``.

    An entry is in the support when its absolute value exceeds ``atol``. True positives
    are counted over the matched row pairs; every nonzero of an unmatched estimated row is
    a false positive and every nonzero of an unmatched true row a false negative.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (floats; an empty support counts as precision or
        recall 1), ``true_positives``, ``n_est``, ``n_true`` (ints) and ``matching``: a
        list of (row of H_est, row of H_true) pairs, sorted by the H_true row.
    """
    H_est, H_true = _two_archetype_sets(H_est, H_true, ("H_est", "H_true"))
    atol = finite_float("atol", atol, minimum=0.0)
    rows, cols = _match(H_est, H_true)
    S_est = np.abs(H_est) > atol
    S_true = np.abs(H_true) > atol
    tp = int(np.count_nonzero(S_est[rows] & S_true[cols]))
    n_est = int(np.count_nonzero(S_est))
    n_true = int(np.count_nonzero(S_true))
    precision = tp / n_est if n_est else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    order = np.argsort(cols)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "n_est": n_est,
        "n_true": n_true,
        "matching": [(int(rows[i]), int(cols[i])) for i in order],
    }


def matched_error(H_est: Any, H_true: Any) -> float:
    """Relative squared error after matching rows by the Hungarian algorithm:

        Σ_pairs ‖Ĥ_a − H₀_b‖² / ‖H₀‖²_F,

    i.e. the mean squared row distance divided by the mean squared row norm of H₀. With
    different row counts an unmatched row counts with its full squared norm (it is
    compared with nothing). 0 means the archetypes are recovered exactly up to order.
    """
    H_est, H_true = _two_archetype_sets(H_est, H_true, ("H_est", "H_true"))
    rows, cols = _match(H_est, H_true)
    diff = H_est[rows] - H_true[cols]
    err = float(np.vdot(diff, diff))
    for M, used in ((H_est, rows), (H_true, cols)):
        rest = np.delete(M, used, axis=0)
        err += float(np.vdot(rest, rest))
    scale = float(np.vdot(H_true, H_true))
    if scale == 0.0:
        raise LabcoreError("H_true is all zero; the relative error is undefined")
    return err / scale
