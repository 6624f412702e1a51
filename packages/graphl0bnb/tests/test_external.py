"""Cross-checks of the external solvers: brute force over supports (cvxpy) against SCIP's MINLP."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

pytest.importorskip("cvxpy")
pytest.importorskip("clarabel")

from graphl0bnb.external import relaxation_cvxpy, scip_solve, support_value_cvxpy
from graphl0bnb.graphs import make_precision, sample
from graphl0bnb.problem import GraphL0BnBError, covariance

L0, L2, M = 0.05, 0.5, 1.5
P = 4


@pytest.fixture(scope="module")
def S():
    S, _ = covariance(sample(make_precision("banded", P), 60, seed=1))
    return S


@pytest.fixture(scope="module")
def brute(S):
    """(optimal value, optimal support) by enumerating all 2^6 = 64 supports of p = 4."""
    pairs = list(itertools.combinations(range(P), 2))
    best = (np.inf, ())
    for k in range(len(pairs) + 1):
        for support in itertools.combinations(pairs, k):
            value = support_value_cvxpy(S, support, L2, M, l0=L0)
            if value < best[0]:
                best = (value, support)
    return best


def test_scip_matches_brute_force(S, brute):
    pytest.importorskip("pyscipopt")
    res = scip_solve(S, L0, L2, M, time_limit=30.0, gap_tol=1e-6)
    assert res.status in ("optimal", "gaplimit")
    assert res.objective == pytest.approx(brute[0], rel=1e-4)
    assert res.lower_bound <= res.objective + 1e-6
    assert res.theta.shape == (P, P)
    np.testing.assert_allclose(res.theta, res.theta.T)
    iu, ju = np.triu_indices(P, 1)
    off = np.abs(res.theta[iu, ju])
    assert off.max() < 0.9 * M  # the box does not bind: the instance tests the l0-l2 problem
    found = {(int(i), int(j)) for i, j, t in zip(iu, ju, off, strict=True) if t > 1e-6}
    assert found == set(brute[1])


def test_relaxation_bounds_and_is_exact_when_fixed(S, brute):
    value, support = brute
    assert relaxation_cvxpy(S, L0, L2, M) <= value + 1e-7
    state = np.ones((P, P), dtype=np.int8)
    for i, j in support:
        state[i, j] = state[j, i] = 2
    assert relaxation_cvxpy(S, L0, L2, M, state) == pytest.approx(value, rel=1e-5)
    # Fixing part of the optimal support keeps a valid, tighter-or-equal bound.
    partial = np.zeros((P, P), dtype=np.int8)
    i, j = support[0]
    partial[i, j] = partial[j, i] = 2
    assert relaxation_cvxpy(S, L0, L2, M, partial) <= value + 1e-7


def test_support_value_counts_l0(S):
    support = [(0, 1), (1, 2)]
    base = support_value_cvxpy(S, support, L2, M)
    assert support_value_cvxpy(S, [(1, 0), (2, 1)], L2, M, l0=L0) == pytest.approx(
        base + 2 * L0, rel=1e-6
    )


def test_bad_inputs(S):
    with pytest.raises(GraphL0BnBError, match="square"):
        relaxation_cvxpy(np.ones((3, 4)), L0, L2, M)
    with pytest.raises(GraphL0BnBError, match="square"):
        support_value_cvxpy(np.ones(4), [], L2, M)
    with pytest.raises(GraphL0BnBError, match="state"):
        relaxation_cvxpy(S, L0, L2, M, np.zeros((P + 1, P + 1), dtype=np.int8))
    with pytest.raises(GraphL0BnBError, match="support pair"):
        support_value_cvxpy(S, [(0, 0)], L2, M)
    with pytest.raises(GraphL0BnBError, match="twice"):
        support_value_cvxpy(S, [(0, 1), (1, 0)], L2, M)
    with pytest.raises(GraphL0BnBError, match="l0"):
        relaxation_cvxpy(S, -1.0, L2, M)
    with pytest.raises(GraphL0BnBError, match="square"):
        scip_solve(np.ones((2, 3)), L0, L2, M)


def test_missing_extra_is_named(S, monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r"graphl0bnb\[verify\]"):
        relaxation_cvxpy(S, L0, L2, M)
    monkeypatch.setitem(sys.modules, "pyscipopt", None)
    with pytest.raises(ImportError, match=r"graphl0bnb\[scip\]"):
        scip_solve(S, L0, L2, M)
