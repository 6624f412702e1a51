"""Estimator API: outputs, certificates, model selection, bad input, scikit-learn checks."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from graphl0bnb import (
    BoxActiveWarning,
    GraphL0BnB,
    GraphL0BnBCV,
    GraphL0BnBError,
    make_precision,
    sample,
)
from graphl0bnb.baselines import concord_l1, concord_matched, neighborhood_matched
from graphl0bnb.cli import main
from graphl0bnb.graphs import GRAPHS
from graphl0bnb.problem import covariance
from sklearn.utils.estimator_checks import parametrize_with_checks

from labcore.metrics import support_recovery


@pytest.fixture(scope="module")
def banded_data():
    truth = make_precision("banded", 12)
    return truth, sample(truth, 600, seed=1)


def test_fit_outputs_are_symmetric_finite_and_certified(banded_data):
    truth, X = banded_data
    est = GraphL0BnB(l0=0.03, time_limit=60).fit(X)
    P = est.precision_
    assert np.isfinite(P).all()
    np.testing.assert_array_equal(P, P.T)
    assert (np.diag(P) > 0).all()
    assert not est.support_.diagonal().any()
    np.testing.assert_array_equal(est.support_, est.support_.T)
    assert est.n_edges_ == int(np.triu(est.support_, 1).sum())
    assert est.lower_bound_ <= est.objective_
    assert est.gap_abs_ == pytest.approx(est.objective_ - est.lower_bound_)
    assert est.gap_ == pytest.approx(est.gap_abs_ / max(abs(est.objective_), 1.0))
    assert est.gap_ <= 1e-2 and est.status_ == "optimal"
    # Off-diagonal support recovery on an easy instance.
    assert support_recovery(truth, P)["f1"] >= 0.85
    # The precision is mapped back to the data's units.
    Xs = X / X.std(0)
    est_std = GraphL0BnB(l0=0.03, time_limit=60).fit(Xs)
    s = X.std(0)
    np.testing.assert_allclose(est.precision_, est_std.precision_ / np.outer(s, s), rtol=1e-6)


def test_heuristic_mode_has_no_certificate(banded_data):
    _, X = banded_data
    est = GraphL0BnB(l0=0.03, mode="heuristic").fit(X)
    assert math.isnan(est.gap_) and est.status_ == "heuristic"
    bnb = GraphL0BnB(l0=0.03).fit(X)
    assert bnb.objective_ <= est.objective_ + 1e-9


def test_data_driven_M_does_not_bind(banded_data):
    _, X = banded_data
    est = GraphL0BnB(l0=0.03).fit(X)
    off = np.abs(est.theta_standardized_ - np.diag(np.diag(est.theta_standardized_)))
    assert off.max() < est.M_


def test_a_binding_user_M_warns(banded_data):
    _, X = banded_data
    with pytest.warns(BoxActiveWarning, match="binds"):
        GraphL0BnB(l0=0.03, M=0.05).fit(X)


def test_a_too_small_data_driven_M_is_raised(banded_data, monkeypatch):
    import graphl0bnb.estimator as E

    _, X = banded_data
    monkeypatch.setattr(E, "M_FACTOR", 0.5)  # start below the solution's largest entry
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est = GraphL0BnB(l0=0.03, mode="heuristic").fit(X)
    assert any("doubling" in str(w.message) for w in rec)
    off = np.abs(est.theta_standardized_ - np.diag(np.diag(est.theta_standardized_)))
    assert off.max() < est.M_


@pytest.mark.parametrize("criterion", ["bic", "cv"])
def test_path_selection_recovers_an_easy_graph(banded_data, criterion):
    truth, X = banded_data
    cv = GraphL0BnBCV(criterion=criterion, mode="heuristic", n_l0s=12, cv=3).fit(X)
    assert len(cv.path_scores_) == len(cv.path_n_edges_) <= 12
    assert cv.l0_ == pytest.approx(cv.l0s_[cv.best_index_])
    assert np.all(np.diff(cv.l0s_) < 0)
    # Held-out likelihood is known to pick denser graphs than (E)BIC.
    assert support_recovery(truth, cv.precision_)["f1"] >= (0.85 if criterion == "bic" else 0.6)


def test_score_prefers_the_fitted_graph_on_held_out_data():
    truth = make_precision("random", 15, seed=2)
    X, Xt = sample(truth, 300, seed=3), sample(truth, 300, seed=4)
    good = GraphL0BnB(l0=0.03, mode="heuristic").fit(X)
    empty = GraphL0BnB(l0=100.0, mode="heuristic").fit(X)
    assert empty.n_edges_ == 0
    assert good.score(Xt) > empty.score(Xt)


@pytest.mark.parametrize(
    "X,match",
    [
        (np.ones((1, 3)), "1 sample"),
        (np.random.default_rng(0).normal(size=(10, 1)), "at least 2"),
        (np.c_[np.random.default_rng(0).normal(size=(10, 2)), np.ones(10)], "constant column"),
        (np.array([[1.0, np.nan], [2.0, 1.0], [0.0, 3.0]]), "NaN"),
        (np.zeros(5), "Expected 2D array"),  # scikit-learn's message
    ],
)
def test_bad_input_is_named(X, match):
    with pytest.raises(ValueError, match=match):  # GraphL0BnBError is a ValueError
        GraphL0BnB().fit(X)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"l0": -1.0}, "l0"),
        ({"l2": float("nan")}, "l2"),
        ({"M": 0.0}, "M must be"),
        ({"mode": "fast"}, "mode"),
        ({"search": "dfs"}, "search"),
        ({"time_limit": 0}, "time_limit"),
    ],
)
def test_bad_parameters_are_named(banded_data, kwargs, match):
    with pytest.raises(GraphL0BnBError, match=match):
        GraphL0BnB(**kwargs).fit(banded_data[1])


@parametrize_with_checks(
    [
        GraphL0BnB(l0=0.1, time_limit=5.0),
        GraphL0BnB(l0=0.1, mode="heuristic"),
        GraphL0BnBCV(n_l0s=5, mode="heuristic"),
    ],
    expected_failed_checks=lambda est: {
        # Fitting on one feature has no graph to estimate: we raise a clear error instead.
        "check_fit2d_1feature": "a graph needs at least 2 variables",
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- generators and baselines ----------------------------------------------------------------


@pytest.mark.parametrize("kind", GRAPHS)
def test_generators_give_positive_definite_sparse_precisions(kind):
    T = make_precision(kind, 30, seed=1)
    ev = np.linalg.eigvalsh(T)
    assert ev[0] > 0 and ev[-1] / ev[0] == pytest.approx(10.0, rel=1e-6)
    np.testing.assert_array_equal(T, T.T)
    assert 0 < np.count_nonzero(np.triu(T, 1)) < 30 * 29 / 2 / 2
    X = sample(T, 20000, seed=0)
    np.testing.assert_allclose(np.cov(X.T, bias=True), np.linalg.inv(T), atol=0.05)


def test_concord_matches_a_convex_solver():
    cp = pytest.importorskip("cvxpy")
    S, _ = covariance(sample(make_precision("random", 6, seed=1), 40, seed=2))
    lam = 0.1
    ours = concord_l1(S, lam, tol=1e-12, max_sweeps=5000)
    W = cp.Variable((6, 6), symmetric=True)
    L = np.linalg.cholesky(S + 1e-12 * np.eye(6)).T
    off = W - cp.diag(cp.diag(W))
    obj = -cp.sum(cp.log(cp.diag(W))) + 0.5 * cp.sum_squares(L @ W) + lam * cp.sum(cp.abs(off)) / 2
    cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    np.testing.assert_allclose(ours, W.value, atol=1e-4)


def test_matched_baselines_reach_the_target_sparsity():
    truth = make_precision("banded", 20)
    X = sample(truth, 200, seed=0)
    S, _ = covariance(X)
    target = int(np.count_nonzero(np.triu(truth, 1)))
    for fit in (concord_matched(S, target), neighborhood_matched(X, target)):
        assert abs(fit.n_edges - target) <= 3
        np.testing.assert_array_equal(fit.precision != 0, (fit.precision != 0).T)


@pytest.mark.parametrize("target", [7, 25, 60])
def test_neighborhood_refines_its_grid_to_the_target(target):
    """One coarse grid jumps over edge counts; the refined grids land on the target or on a
    count no grid between the bracketing penalties can reach closer."""
    X = sample(make_precision("random", 30, seed=1), 60, seed=2)
    coarse = neighborhood_matched(X, target, n_alphas=8, refine=0)
    fine = neighborhood_matched(X, target, n_alphas=8, refine=4)
    assert abs(fine.n_edges - target) <= abs(coarse.n_edges - target)
    assert abs(fine.n_edges - target) <= 1, (coarse.n_edges, fine.n_edges)
    assert fine.n_fits >= 1 and coarse.n_fits == 1


# --- CLI -------------------------------------------------------------------------------------


def test_cli_fit_writes_edges_and_certificate(tmp_path, capsys, banded_data):
    _, X = banded_data
    path = tmp_path / "data.csv"
    names = [f"v{k}" for k in range(X.shape[1])]
    np.savetxt(path, X, delimiter=",", header=",".join(names), comments="")
    out = tmp_path / "out"
    rc = main(["fit", str(path), "--l0", "0.03", "--json", "--out", str(out)])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["status"] == "optimal" and cert["gap_relative"] <= 0.01
    assert cert["n_edges"] == len(payload["edges"])
    lines = (out / "edges.csv").read_text().splitlines()
    assert lines[0] == "i,j,partial_correlation,theta" and len(lines) == cert["n_edges"] + 1
    assert lines[1].startswith("v")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.csv")]) == 2
    assert "file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,NA\n")
    assert main(["fit", str(bad)]) == 2
    assert "missing values" in capsys.readouterr().err


def test_cli_rejects_ambiguous_or_malformed_input(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b,c\n1,2\n3,4\n")
    assert main(["fit", str(data)]) == 2
    assert "line 2 has 2 cells, expected 3" in capsys.readouterr().err
    data.write_text("1,2\n3,4\n5,7\n")
    assert main(["fit", str(data), "--l0", "0.1", "--select", "bic"]) == 2
    assert "not both" in capsys.readouterr().err
