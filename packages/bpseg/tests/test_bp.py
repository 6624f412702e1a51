"""Belief propagation against brute-force enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from bpseg.bp import PottsGraph, belief_propagation, mean_field

from labcore.errors import LabcoreError


def exact(theta: np.ndarray, graph: PottsGraph) -> tuple[np.ndarray, np.ndarray]:
    """Exact marginals and the MAP labelling by enumerating all k**n labellings."""
    n, k = theta.shape
    confs = np.array(list(itertools.product(range(k), repeat=n)))
    logp = theta[np.arange(n), confs].sum(axis=1)
    logp += (graph.weight * (confs[:, graph.src] == confs[:, graph.dst])).sum(axis=1)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    marginals = np.stack([np.bincount(confs[:, i], weights=p, minlength=k) for i in range(n)])
    return marginals, confs[np.argmax(logp)]


def chain(n: int, weights: np.ndarray) -> PottsGraph:
    return PottsGraph(n=n, src=np.arange(n - 1), dst=np.arange(1, n), weight=weights)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_sum_product_is_exact_on_a_chain(seed, damping):
    rng = np.random.default_rng(seed)
    n, k = 6, 3  # 729 labellings
    theta = rng.normal(size=(n, k))
    graph = chain(n, 1.5 * rng.normal(size=n - 1))  # attractive and repulsive edges
    marginals, _ = exact(theta, graph)
    res = belief_propagation(theta, graph, damping=damping, tol=1e-12, max_iter=1000)
    assert res.converged
    np.testing.assert_allclose(res.beliefs, marginals, atol=1e-8)


def test_sum_product_is_exact_on_a_tree():
    rng = np.random.default_rng(7)
    # A star plus a branch: 0-1, 0-2, 0-3, 3-4, 3-5.
    graph = PottsGraph(
        n=6, src=np.array([0, 0, 0, 3, 3]), dst=np.array([1, 2, 3, 4, 5]), weight=rng.normal(size=5)
    )
    theta = rng.normal(size=(6, 3))
    marginals, _ = exact(theta, graph)
    res = belief_propagation(theta, graph, damping=0.0, tol=1e-12)
    np.testing.assert_allclose(res.beliefs, marginals, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_max_product_finds_the_map_on_a_chain(seed):
    rng = np.random.default_rng(100 + seed)
    theta = rng.normal(size=(7, 3))
    graph = chain(7, 2.0 * rng.normal(size=6))
    _, best = exact(theta, graph)
    res = belief_propagation(theta, graph, method="max-product", damping=0.0, tol=1e-12)
    assert res.converged
    np.testing.assert_array_equal(res.labels, best)


def test_loopy_bp_is_close_on_a_small_weakly_coupled_loopy_graph():
    rng = np.random.default_rng(3)
    n, k = 7, 3
    w = np.triu(0.3 * rng.random((n, n)), 1)
    graph = PottsGraph.from_dense(w + w.T)
    theta = rng.normal(size=(n, k))
    marginals, _ = exact(theta, graph)
    res = belief_propagation(theta, graph, tol=1e-10, max_iter=500)
    assert res.converged
    assert np.abs(res.beliefs - marginals).max() < 0.03
    # The loops matter: BP is not exact here, only close.
    assert np.abs(res.beliefs - marginals).max() > 1e-6


@pytest.mark.parametrize("method", ["sum-product", "max-product", "mean-field"])
def test_zero_coupling_is_the_softmax_of_the_node_potentials(method):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(5, 4))
    w = np.zeros((5, 5))
    w[0, 1] = w[1, 0] = 0.0
    graph = PottsGraph(n=5, src=np.array([0, 1, 2]), dst=np.array([1, 2, 4]), weight=np.zeros(3))
    res = belief_propagation(theta, graph, method=method)
    softmax = np.exp(theta) / np.exp(theta).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.beliefs, softmax, atol=1e-10)


def test_strong_coupling_propagates_evidence_along_a_chain():
    theta = np.zeros((10, 2))
    theta[0] = [3.0, 0.0]
    res = belief_propagation(theta, chain(10, np.full(9, 5.0)))
    assert res.labels.tolist() == [0] * 10
    assert np.all(np.diff(res.beliefs[:, 0]) <= 1e-12)  # evidence fades with distance


def test_mean_field_fixed_point():
    rng = np.random.default_rng(1)
    w = np.triu(rng.random((6, 6)), 1)
    graph = PottsGraph.from_dense(w + w.T)
    theta = rng.normal(size=(6, 3))
    q = mean_field(theta, graph, tol=1e-12, max_iter=5000).beliefs
    field = theta + graph.to_dense() @ q
    expected = np.exp(field) / np.exp(field).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(q, expected, atol=1e-9)


def test_warm_start_from_a_fixed_point_converges_at_once():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(6, 3))
    graph = chain(6, rng.normal(size=5))
    first = belief_propagation(theta, graph, damping=0.0, tol=1e-12)
    assert first.iterations > 1
    # Re-running from the messages of the exact fixed point needs a single sweep.
    messages = _fixed_point_messages(theta, graph)
    again = belief_propagation(theta, graph, damping=0.0, tol=1e-9, init_messages=messages)
    assert again.converged and again.iterations == 1
    np.testing.assert_allclose(again.beliefs, first.beliefs, atol=1e-9)


def _fixed_point_messages(theta, graph, sweeps=50):
    tail = np.concatenate([graph.src, graph.dst])
    head = np.concatenate([graph.dst, graph.src])
    w = np.concatenate([graph.weight, graph.weight])
    e = len(tail)
    rev = np.concatenate([np.arange(e // 2, e), np.arange(e // 2)])
    log_m = np.zeros((e, theta.shape[1]))
    for _ in range(sweeps):
        total = theta.copy()
        np.add.at(total, head, log_m)
        cav = total[tail] - log_m[rev]
        p = np.exp(cav - cav.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        new = np.log1p(np.expm1(w)[:, None] * p)
        log_m = new - np.log(np.exp(new).sum(axis=1, keepdims=True))
    return log_m


@pytest.mark.parametrize("coupling", [-60.0, -800.0, 60.0, 800.0])
def test_extreme_couplings_stay_finite_and_exact_on_a_chain(coupling):
    theta = np.array([[50.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.3, 0.0]])
    graph = chain(3, np.array([coupling, 1.0]))
    for method in ("sum-product", "max-product"):
        res = belief_propagation(theta, graph, method=method, damping=0.0, tol=1e-12)
        assert np.all(np.isfinite(res.beliefs)), method
    marginals, _ = exact(
        theta,
        PottsGraph(n=3, src=graph.src, dst=graph.dst, weight=np.clip(graph.weight, -700, 700)),
    )
    res = belief_propagation(theta, graph, damping=0.0, tol=1e-12)
    np.testing.assert_allclose(res.beliefs, marginals, atol=1e-8)


def test_bad_inputs_raise_clear_errors():
    graph = chain(3, np.ones(2))
    with pytest.raises(LabcoreError, match="shape"):
        belief_propagation(np.zeros((4, 2)), graph)
    with pytest.raises(LabcoreError, match="NaN"):
        belief_propagation(np.array([[0.0, np.nan]] * 3), graph)
    with pytest.raises(LabcoreError, match="damping"):
        belief_propagation(np.zeros((3, 2)), graph, damping=1.0)
    with pytest.raises(LabcoreError, match="unknown inference"):
        belief_propagation(np.zeros((3, 2)), graph, method="tree-reweighted")
    with pytest.raises(LabcoreError, match="src < dst"):
        PottsGraph(n=3, src=np.array([1]), dst=np.array([0]), weight=np.ones(1))
    with pytest.raises(LabcoreError, match="duplicate"):
        PottsGraph(n=3, src=np.array([0, 0]), dst=np.array([1, 1]), weight=np.ones(2))
    with pytest.raises(LabcoreError, match="finite"):
        PottsGraph(n=3, src=np.array([0]), dst=np.array([1]), weight=np.array([np.inf]))


def test_scipy_softmax_and_logsumexp_match_the_former_hand_written_rows():
    # bp.py used max-shifted formulas; scipy.special's must agree to rounding for the
    # label counts and potential scales BP-Seg meets (the numbers stay the same).
    from scipy.special import logsumexp, softmax

    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 20):
        a = rng.normal(scale=30.0, size=(200, k))
        top = a.max(axis=1, keepdims=True)
        e = np.exp(a - top)
        np.testing.assert_array_equal(softmax(a, axis=1), e / e.sum(axis=1, keepdims=True))
        np.testing.assert_allclose(
            logsumexp(a, axis=1, keepdims=True),
            top + np.log(e.sum(axis=1, keepdims=True)),
            rtol=1e-14,
            atol=1e-13,
        )
