"""The soft tree ensemble and the group-l0 proximal step: properties that can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skinnytrees.model import SoftTreeEnsemble, annealing, prox_group_l0_, prox_threshold
from skinnytrees.train import TrainSettings, train_soft_trees


def _model(p=6, out=3, trees=4, depth=3, seed=0) -> SoftTreeEnsemble:
    return SoftTreeEnsemble(
        p, out, n_trees=trees, depth=depth, generator=torch.Generator().manual_seed(seed)
    ).double()


def test_leaf_probabilities_are_a_distribution_per_tree():
    m = _model()
    with torch.no_grad():
        m.kernel.mul_(5.0)  # sharp routing too
        P = m.leaf_probabilities(torch.randn(50, 6, dtype=torch.float64))
    assert P.shape == (50, 4, 8)
    assert (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P.sum(dim=-1).numpy(), 1.0, atol=1e-12)


def test_leaf_probability_is_the_product_along_the_path():
    """Brute force: walk every root-to-leaf path of every tree."""
    m = _model(p=3, out=1, trees=2, depth=3)
    x = torch.randn(7, 3, dtype=torch.float64)
    with torch.no_grad():
        s = torch.sigmoid(x @ m.kernel + m.bias).reshape(7, 2, 7)
        P = m.leaf_probabilities(x)
    for leaf in range(8):
        prob = torch.ones(7, 2, dtype=torch.float64)
        node = 0
        for level in reversed(range(3)):
            left = (leaf >> level) & 1 == 0
            prob = prob * (s[:, :, node] if left else 1 - s[:, :, node])
            node = 2 * node + (1 if left else 2)
        np.testing.assert_allclose(P[:, :, leaf].numpy(), prob.numpy(), atol=1e-12)


def test_depth_one_tree_is_logistic_in_one_hyperplane():
    m = _model(p=4, out=1, trees=1, depth=1)
    x = torch.randn(20, 4, dtype=torch.float64)
    with torch.no_grad():
        out = m(x)[:, 0]
        left, right = m.leaves[0, 0, 0], m.leaves[0, 1, 0]
        expected = right + (left - right) * torch.sigmoid(x @ m.kernel[:, 0] + m.bias[0])
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-12)


def test_prox_zeroes_exactly_the_rows_at_or_below_the_threshold():
    rng = np.random.default_rng(0)
    W0 = rng.normal(size=(40, 9)) * rng.uniform(0.1, 2.0, size=(40, 1))
    W0[3] = 0.0
    threshold = float(np.median(np.linalg.norm(W0, axis=1)))
    W = torch.tensor(W0)
    keep = prox_group_l0_(W, threshold).numpy()
    norms = np.linalg.norm(W0, axis=1)
    np.testing.assert_array_equal(keep, norms > threshold)
    np.testing.assert_array_equal(W.numpy()[~keep], 0.0)  # exact zeros
    np.testing.assert_array_equal(W.numpy()[keep], W0[keep])  # the rest untouched
    assert 0 < keep.sum() < 40


def test_schedule_and_threshold():
    assert annealing(0, 0.01) == 0.0
    assert annealing(10**6, 0.01) == pytest.approx(1.0)
    assert annealing(100, 0.01) == pytest.approx(1 - math.exp(-1))
    assert annealing(3, None) == 1.0
    # ½‖w‖² > lr·λ·s  ⇔  ‖w‖ > sqrt(2·lr·λ·s)
    assert prox_threshold(learning_rate=0.1, l0=5.0, schedule=0.5) == pytest.approx(math.sqrt(0.5))


def test_a_zero_row_does_not_change_predictions_and_the_compact_model_agrees():
    m = _model(p=8, out=2)
    with torch.no_grad():
        m.kernel[[1, 4, 6]] = 0.0
    x = torch.randn(30, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, [1, 4, 6]] = 1e3 * torch.randn(30, 3, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_array_equal(m(x).numpy(), m(x2).numpy())
        keep = torch.tensor([0, 2, 3, 5, 7])
        np.testing.assert_allclose(m.restricted(keep)(x[:, keep]).numpy(), m(x).numpy(), atol=1e-12)


def _toy(n=200, p=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def test_without_l0_no_row_is_removed():
    X, y = _toy()
    r = train_soft_trees(
        TrainSettings("classification", 2, n_trees=3, depth=2, max_epochs=15, l0=0.0), X, y
    )
    assert r.n_selected == 10
    assert (r.model.feature_norms() > 0).all()


def test_after_training_every_kept_row_is_above_the_last_threshold():
    X, y = _toy()
    s = TrainSettings("classification", 2, n_trees=3, depth=2, max_epochs=30, l0=4.0, tau=0.01)
    r = train_soft_trees(s, X, y)  # no validation set: the last step's weights are returned
    steps = 30 * math.ceil(len(X) / s.batch_size)
    last = prox_threshold(learning_rate=0.1, l0=4.0, schedule=annealing(steps, 0.01))
    norms = r.model.feature_norms().numpy()
    assert ((norms == 0) | (norms > last)).all()
    assert 0 < r.n_selected < 10
    assert norms[0] > 0 and norms[1] > 0  # the two informative features survive


def test_early_stopping_restores_the_best_validation_epoch():
    X, y = _toy(n=300)
    s = TrainSettings("classification", 2, n_trees=3, depth=2, max_epochs=60, patience=3, tau=None)
    r = train_soft_trees(s, X[:200], y[:200], X[200:], y[200:])
    losses = [h["validation_loss"] for h in r.history]
    assert r.validation_loss == pytest.approx(min(losses))
    assert r.history[r.best_epoch - 1]["validation_loss"] == pytest.approx(min(losses))
    if r.stopped_early:
        assert r.epochs == r.best_epoch + 3


def test_fixed_support_keeps_other_rows_at_zero():
    X, y = _toy()
    keep = np.zeros(10, dtype=bool)
    keep[[0, 5]] = True
    s = TrainSettings("classification", 2, n_trees=2, depth=2, max_epochs=5)
    r = train_soft_trees(s, X, y, fixed_support=keep)
    np.testing.assert_array_equal(r.model.feature_norms().numpy() > 0, keep)


def test_divergence_is_reported():
    X, y = _toy()
    s = TrainSettings("regression", 1, n_trees=2, depth=2, max_epochs=5, learning_rate=1e6)
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        train_soft_trees(s, X * 1e3, y.astype(float) * 1e3)
