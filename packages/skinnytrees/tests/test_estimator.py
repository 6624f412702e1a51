"""The estimators: feature selection that can be checked, budgets, bad input, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from skinnytrees import SkinnyTreesClassifier, SkinnyTreesRegressor, budget_count
from skinnytrees.data import synthetic_regression
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import NotFittedError

from labcore.errors import LabcoreError

FAST = dict(n_trees=6, depth=3, max_epochs=40, random_state=0)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_regression(n=200, p=256, k=8, seed=0)


def test_recovers_the_8_relevant_of_256_features_at_the_right_lambda(synthetic):
    d = synthetic
    reg = SkinnyTreesRegressor(l0=8.0, random_state=0).fit(d.X, d.y)
    selected = set(np.flatnonzero(reg.support_).tolist())
    assert set(d.relevant) <= selected
    assert len(selected) <= 12
    rmse = float(np.sqrt(np.mean((reg.predict(d.X_test) - d.y_test) ** 2)))
    assert rmse < 0.8  # noise sd 0.5; predicting the mean gives about sd(y) ≈ 4.4


def test_the_budget_path_finds_exactly_the_relevant_features(synthetic):
    d = synthetic
    reg = SkinnyTreesRegressor(max_features=8, n_trees=8, depth=3, max_epochs=80, random_state=0)
    reg.fit(d.X, d.y)
    assert np.flatnonzero(reg.support_).tolist() == list(d.relevant)
    assert reg.budget_enforced_ == "path"
    assert all(e["n_selected"] != 8 for e in reg.path_[:-1])  # stopped at the first exact hit
    # Too much λ removes everything; too little keeps everything (the path brackets both).
    counts = [e["n_selected"] for e in reg.path_]
    assert max(counts) > 8 and min(counts) <= 8


@pytest.fixture(scope="module")
def cancer():
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def budgeted(cancer):
    X, y = cancer
    return SkinnyTreesClassifier(max_features=0.25, **FAST).fit(X, y)


def test_budget_is_met_and_the_selector_api_agrees(budgeted, cancer):
    X, y = cancer
    clf = budgeted
    assert clf.budget_ == 7 and 0 < clf.n_features_selected_ <= 7
    assert clf.support_.sum() == clf.n_features_selected_
    np.testing.assert_array_equal(clf.get_support(), clf.support_)
    np.testing.assert_array_equal(clf.transform(X), X[:, clf.support_])
    imp = clf.feature_importances_
    assert imp.sum() == pytest.approx(1.0)
    assert (imp[~clf.support_] == 0).all() and (imp[clf.support_] > 0).all()
    assert clf.score(X, y) > 0.9
    # The chosen fit is the best-validated one within the budget on its path.
    within = [e for e in clf.path_ if 0 < e["n_selected"] <= 7]
    assert clf.validation_score_ == max(e["validation_score"] for e in within)


def test_unselected_columns_do_not_change_predictions(budgeted, cancer):
    X, _ = cancer
    X2 = X.copy()
    X2[:, ~budgeted.support_] = np.random.default_rng(0).normal(
        scale=1e3, size=(len(X), (~budgeted.support_).sum())
    )
    np.testing.assert_array_equal(budgeted.predict_proba(X), budgeted.predict_proba(X2))


def test_hard_budget_when_the_path_misses(cancer):
    """One fit at a small λ keeps every feature: the top rows are kept and fine-tuned."""
    X, y = cancer
    clf = SkinnyTreesClassifier(max_features=5, l0=0.01, max_path=1, **FAST).fit(X, y)
    assert clf.budget_enforced_ == "hard" and clf.n_features_selected_ == 5
    assert clf.path_[-1]["hard_budget"] and clf.score(X, y) > 0.85


def test_deterministic_and_picklable(cancer):
    X, y = cancer
    a = SkinnyTreesClassifier(l0=1.0, **FAST).fit(X[:300], y[:300])
    b = clone(a).fit(X[:300], y[:300])
    np.testing.assert_array_equal(a.support_, b.support_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict_proba(X), a.predict_proba(X))


def test_shared_path_cache_gives_the_same_model(cancer):
    X, y = cancer
    X, y = X[:200], y[:200]
    small = dict(FAST, max_epochs=15)
    cache: dict = {}
    first = SkinnyTreesClassifier(max_features=0.5, max_path=2, **small)
    first._path_cache = cache
    first.fit(X, y)
    assert len(cache) == 2
    second = SkinnyTreesClassifier(max_features=0.5, max_path=2, **small).fit(X, y)
    again = SkinnyTreesClassifier(max_features=0.5, max_path=2, **small)
    again._path_cache = cache
    again.fit(X, y)
    assert len(cache) == 2  # nothing refitted
    for other in (second, again):
        np.testing.assert_array_equal(other.support_, first.support_)
        np.testing.assert_array_equal(other.predict_proba(X), first.predict_proba(X))


def test_string_labels_and_multiclass():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 5))
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3], axis=1)]
    clf = SkinnyTreesClassifier(l0=0.05, **FAST).fit(X, y)
    assert set(clf.predict(X)) <= {"a", "b", "c"} and clf.score(X, y) > 0.8
    assert clf.decision_function(X).shape == (240, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("budget", [0, 0.0, -0.25, 1.5, float("nan"), 31, "half", True])
def test_budget_outside_0_1_is_refused(budget, cancer):
    X, y = cancer
    with pytest.raises(LabcoreError, match="max_features"):
        SkinnyTreesClassifier(max_features=budget).fit(X[:50], y[:50])


def test_budget_count():
    assert budget_count(0.25, 30) == 7 and budget_count(1.0, 30) == 30
    assert budget_count(0.01, 30) == 1 and budget_count(30, 30) == 30


def test_bad_input_is_a_clear_error(cancer):
    X, y = cancer
    with pytest.raises(LabcoreError, match="constant"):
        SkinnyTreesRegressor(**FAST).fit(X[:50], np.full(50, 3.0))
    with pytest.raises(LabcoreError, match="one class"):
        SkinnyTreesClassifier(**FAST).fit(X[:50], np.ones(50))
    bad = X[:50].copy()
    bad[3, 2] = np.nan
    with pytest.raises(LabcoreError, match="NaN"):
        SkinnyTreesClassifier(**FAST).fit(bad, y[:50])
    with pytest.raises(LabcoreError, match=r"y must have shape \(50,\)"):
        SkinnyTreesClassifier(**FAST).fit(X[:50], y[:49])
    with pytest.raises(LabcoreError, match="learning_rate"):
        SkinnyTreesClassifier(learning_rate=0).fit(X[:50], y[:50])
    with pytest.raises(LabcoreError, match="depth"):
        SkinnyTreesClassifier(depth=0).fit(X[:50], y[:50])
    with pytest.raises(LabcoreError, match="validation_fraction"):
        SkinnyTreesClassifier(validation_fraction=1.0).fit(X[:50], y[:50])
    with pytest.raises(LabcoreError, match="device"):
        SkinnyTreesClassifier(device="tpu").fit(X[:50], y[:50])
    with pytest.raises(NotFittedError):
        SkinnyTreesClassifier().predict(X)
    clf = SkinnyTreesClassifier(l0=1.0, **FAST).fit(X[:100], y[:100])
    with pytest.raises(LabcoreError, match="features"):
        clf.predict(X[:, :10])


def test_removing_every_feature_warns(cancer):
    X, y = cancer
    with pytest.warns(UserWarning, match="removed every feature"):
        clf = SkinnyTreesClassifier(l0=1e4, **FAST).fit(X, y)
    assert clf.n_features_selected_ == 0
    assert len(set(clf.predict(X))) == 1  # a constant model, said out loud
