"""Tests of the objective and the archetype-recovery measures."""

import numpy as np
import pytest
from archetypal_nmf.metrics import (
    matched_error,
    objective,
    pairwise_squared_distances,
    robustness,
    strong_robustness,
    support_recovery,
    weak_robustness,
)

from labcore import LabcoreError


def random_archetypes(seed, k=4, n=6):
    rng = np.random.default_rng(seed)
    return rng.random((k, n)) * (rng.random((k, n)) < 0.6), rng


def test_robustness_of_a_set_with_itself_is_zero():
    H, _ = random_archetypes(0)
    assert robustness(H, H) == 0.0
    assert weak_robustness(H, H) == 0.0 and strong_robustness(H, H) == 0.0


def test_robustness_asymmetry_hand_computed():
    # Truth: two archetypes; the estimate finds the first twice and misses the second.
    H_true = np.array([[0.0, 0.0], [3.0, 4.0]])
    H_est = np.array([[0.0, 0.0], [0.0, 1.0]])
    # L(H_true, H_est): (0,0) → 0; (3,4) → min(25, 9 + 9) = 18.
    assert robustness(H_true, H_est) == 18.0
    # L(H_est, H_true): (0,0) → 0; (0,1) → min(1, 9 + 9) = 1.
    assert robustness(H_est, H_true) == 1.0
    # Weak robustness is L(H0, Ĥ), strong robustness is L(Ĥ, H0).
    assert weak_robustness(H_est, H_true) == 18.0
    assert strong_robustness(H_est, H_true) == 1.0


def test_robustness_with_different_numbers_of_archetypes():
    H_true = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    H_est = np.vstack([H_true, [[0.0, 0.0, 2.0]]])  # one spurious estimate
    assert weak_robustness(H_est, H_true) == 0.0  # every truth is found
    assert strong_robustness(H_est, H_true) == 5.0  # the spurious one is 1 + 4 from both


def test_pairwise_distances_match_a_loop():
    A, rng = random_archetypes(1, k=3)
    B = rng.random((5, A.shape[1]))
    D = pairwise_squared_distances(A, B)
    ref = [[np.sum((a - b) ** 2) for b in B] for a in A]
    np.testing.assert_allclose(D, ref, rtol=1e-14)


def test_support_recovery_of_a_permuted_copy():
    H, rng = random_archetypes(2)
    perm = rng.permutation(H.shape[0])
    out = support_recovery(H[perm], H)
    assert out["precision"] == out["recall"] == out["f1"] == 1.0
    assert out["true_positives"] == np.count_nonzero(H)
    # matching[t] = (row of H_est, row of H_true t): H_est[perm⁻¹[t]] is H[t].
    assert out["matching"] == [(int(np.flatnonzero(perm == t)[0]), t) for t in range(4)]
    assert matched_error(H[perm], H) == 0.0


def test_support_recovery_counts():
    H_true = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    # Rows swapped; the first estimate has one extra and one missing entry.
    H_est = np.array([[0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.1, 0.0]])
    out = support_recovery(H_est, H_true)
    assert out["matching"] == [(1, 0), (0, 1)]
    assert out["true_positives"] == 3
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["recall"] == pytest.approx(3 / 4)
    assert out["f1"] == pytest.approx(3 / 4)
    # A threshold drops the small entry from the support.
    assert support_recovery(H_est, H_true, atol=0.5)["precision"] == 1.0


def test_matched_error_value():
    H_true = np.array([[1.0, 0.0], [0.0, 2.0]])
    H_est = np.array([[0.0, 2.5], [1.0, 0.5]])
    # Matched: est 1 ↔ true 0 (0.25), est 0 ↔ true 1 (0.25); ‖H_true‖² = 5.
    assert matched_error(H_est, H_true) == pytest.approx(0.5 / 5)
    # One estimate only: the unmatched true row counts with its full norm.
    assert matched_error(H_est[1:], H_true) == pytest.approx((0.25 + 4.0) / 5)


def test_objective_hand_computed():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    H = np.array([[1.0, 0.0], [0.0, 2.0]])
    Wt = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # ‖X − WH‖² = 0 + 1 + (0.25 + 0.25) = 1.5; ‖H − W̃X‖² = 0 + (0.25 + 2.25) = 2.5.
    assert objective(X, W, H, Wt, 0.0) == pytest.approx(1.5)
    assert objective(X, W, H, Wt, 2.0) == pytest.approx(1.5 + 2 * 2.5)
    # With a mask, the missing entry is taken from Z.
    mask = np.ones(X.shape, dtype=bool)
    mask[2, 0] = False
    Xn = X.copy()
    Xn[2, 0] = np.nan
    Z = np.zeros(X.shape)
    Z[2, 0] = 1.0  # X̂ row 2 = (1, 0.5): residual (0, 0.5); W̃X̂ row 1 = (1, 0.5)
    assert objective(Xn, W, H, Wt, 2.0, Z=Z, mask=mask) == pytest.approx(
        (0 + 1 + 0.25) + 2 * (0 + 1 + 2.25)
    )


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: robustness(np.ones((2, 3)), np.ones((2, 4))), "same number of columns"),
        (lambda: robustness([[np.nan, 1.0]], [[1.0, 1.0]]), "NaN"),
        (lambda: weak_robustness(np.ones(3), np.ones((2, 3))), "2-dimensional"),
        (lambda: support_recovery(np.ones((2, 3)), np.ones((2, 2))), "same number of columns"),
        (lambda: matched_error(np.ones((2, 3)), np.zeros((2, 3))), "all zero"),
        (lambda: matched_error(np.ones((2, 3)), [[np.inf, 0, 0]]), "NaN or infinite"),
        (lambda: support_recovery(np.ones((1, 1)), np.ones((1, 1)), atol=-1), "atol"),
    ],
)
def test_metric_errors(call, pattern):
    with pytest.raises(LabcoreError, match=pattern):
        call()


def test_objective_errors():
    X = np.ones((3, 2))
    W, H, Wt = np.full((3, 2), 0.5), np.ones((2, 2)), np.full((2, 3), 1 / 3)
    mask = np.ones(X.shape, dtype=bool)
    mask[0, 0] = False
    with pytest.raises(LabcoreError, match=r"Z .* is required with a mask"):
        objective(X, W, H, Wt, 1.0, mask=mask)
    with pytest.raises(LabcoreError, match="H must have n = 2 columns"):
        objective(X, W, np.ones((2, 3)), Wt, 1.0)
    with pytest.raises(LabcoreError, match="negative"):
        objective(-X, W, H, Wt, 1.0)
    with pytest.raises(LabcoreError, match="lam must be >= 0"):
        objective(X, W, H, Wt, -1.0)
