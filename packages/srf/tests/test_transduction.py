import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from srf import SRFCompletion, SRFTransductiveClassifier, SRFTransductiveRegressor
from srf.data import label_mask, missing_mask, planted
from srf.transduction import one_vs_rest, projection, stack
from threadpoolctl import threadpool_limits

from labcore.errors import LabcoreError


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def planted_classification(n=150, d=20, seed=0, n_classes=2):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, 3))
    X = A @ rng.standard_normal((3, d)) + 0.01 * rng.standard_normal((n, d))
    scores = A @ rng.standard_normal((3, n_classes))
    y = scores.argmax(axis=1) if n_classes > 2 else (scores[:, 0] > 0).astype(int)
    return X, y


def test_completion_recovers_low_rank_and_keeps_observed_entries():
    M = planted(60, 50, 3, seed=1)
    mask = missing_mask(M.shape, observed=0.5, seed=1)
    X = np.where(mask, M, np.nan)
    Z = SRFCompletion().fit_transform(X)
    np.testing.assert_array_equal(Z[mask], M[mask])
    assert np.linalg.norm(Z[~mask] - M[~mask]) / np.linalg.norm(M[~mask]) < 1e-3
    model = SRFCompletion(standardize=False).fit(X)
    assert model.rank_ == 3 and model.converged_


def test_completion_with_block_loss():
    M = planted(120, 60, 3, seed=2)
    mask = missing_mask(M.shape, observed=0.7, block_loss=0.15, seed=2)
    assert (~mask).mean() > 0.4
    Z = SRFCompletion().fit_transform(np.where(mask, M, np.nan))
    assert np.all(np.isfinite(Z))
    assert np.linalg.norm(Z[~mask] - M[~mask]) / np.linalg.norm(M[~mask]) < 1e-2


@pytest.mark.parametrize("algorithm", ["equality", "margin"])
def test_classifier_predicts_hidden_labels(algorithm):
    X, y = planted_classification()
    rng = np.random.default_rng(0)
    X_missing = np.where(rng.random(X.shape) < 0.6, X, np.nan)
    labelled = label_mask(y, observed=0.3, seed=0)
    model = SRFTransductiveClassifier(algorithm=algorithm, unlabeled=-1).fit(
        X_missing, np.where(labelled, y, -1)
    )
    hidden = ~labelled
    accuracy = np.mean(model.transduction_[hidden] == y[hidden])
    majority = max(np.mean(y[hidden]), 1 - np.mean(y[hidden]))
    assert accuracy > 0.85 and accuracy > majority + 0.2
    np.testing.assert_array_equal(model.predict()[labelled], y[labelled])
    assert model.decision_function().shape == (X.shape[0],)
    observed = ~np.isnan(X_missing)
    err = np.linalg.norm(model.X_imputed_[~observed] - X[~observed]) / np.linalg.norm(X[~observed])
    assert err < 0.1


def test_margin_projection_enforces_signs_only():
    X, y = planted_classification(n=20, d=4)
    labelled = np.arange(20) % 2 == 0
    _, T = one_vs_rest(y, labelled)
    problem = stack(
        X, np.ones_like(X, dtype=bool), T, labelled[:, None], label_weight=2.0, bias=True
    )
    project = projection(problem, "margin")
    Z = np.random.default_rng(0).standard_normal(problem.Z0.shape) * 5
    P = project(Z)
    label = P[:, problem.labels][:, 0]
    signs = T[:, 0]
    assert np.all(signs[labelled] * label[labelled] >= 2.0 - 1e-12)
    np.testing.assert_array_equal(label[~labelled], Z[~labelled, problem.n_features])
    # A point already satisfying the margin is not moved.
    inside = np.abs(signs * Z[:, problem.n_features]) >= 2.0
    same = labelled & inside & (np.sign(Z[:, problem.n_features]) == signs)
    np.testing.assert_array_equal(label[same], Z[same, problem.n_features])
    np.testing.assert_array_equal(P[:, -1], 1.0)  # the bias column
    np.testing.assert_allclose(project(P), P)  # idempotent


def test_multiclass_and_string_free_labels():
    X, y = planted_classification(n=200, d=15, n_classes=4, seed=3)
    labelled = label_mask(y, observed=0.4, seed=3)
    model = SRFTransductiveClassifier(algorithm="margin", unlabeled=-1).fit(
        X, np.where(labelled, y, -1)
    )
    assert model.label_scores_.shape == (200, 4)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2, 3])
    hidden = ~labelled
    # Measured 0.838 (chance 0.25). Not a claim of superiority: a logistic regression fitted
    # on the labelled rows alone scores 0.892 on these hidden rows (0.90 at seeds 4 and 5,
    # where this model has 0.81 and 0.85).
    assert np.mean(model.transduction_[hidden] == y[hidden]) > 0.8


def test_regressor_predicts_a_linear_target():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((120, 3))
    X = A @ rng.standard_normal((3, 10))
    target = 5.0 + 2.0 * (A @ rng.standard_normal(3))
    known = rng.random(120) < 0.4
    model = SRFTransductiveRegressor().fit(X, np.where(known, target, np.nan))
    np.testing.assert_array_equal(model.predict()[known], target[known])
    resid = model.transduction_[~known] - target[~known]
    assert np.sqrt(np.mean(resid**2)) < 0.05 * np.std(target)


def test_clone_and_bad_input():
    X, y = planted_classification(n=40, d=5)
    model = SRFTransductiveClassifier(label_weight=0.5, unlabeled=-1)
    assert clone(model).get_params()["label_weight"] == 0.5
    with pytest.raises(LabcoreError, match="all entries"):
        SRFCompletion().fit_transform(np.full((4, 3), np.nan))
    with pytest.raises(LabcoreError, match="every label is missing"):
        model.fit(X, np.full(40, -1))
    with pytest.raises(LabcoreError, match="at least 2"):
        model.fit(X, np.where(np.arange(40) < 5, 0, -1))
    with pytest.raises(LabcoreError, match="labels for"):
        model.fit(X, y[:10])
    with pytest.raises(LabcoreError, match="Expected 2D array"):  # scikit-learn's message
        SRFCompletion().fit_transform(np.ones(5))
    with pytest.raises(NotFittedError, match="not fitted"):
        SRFTransductiveClassifier().predict()
    with pytest.raises(LabcoreError, match="algorithm"):
        SRFTransductiveClassifier(algorithm="hinge").fit(X, y)
    with pytest.raises(LabcoreError, match="no observed labels"):
        stack(X, np.ones_like(X, dtype=bool), np.zeros((40, 1)), np.zeros((40, 1), bool))
    fitted = SRFTransductiveClassifier(unlabeled=-1).fit(X, np.where(np.arange(40) % 2 == 0, y, -1))
    with pytest.raises(LabcoreError, match="transductive"):
        fitted.predict(np.ones((3, 5)))


def test_plus_minus_one_labels_with_nan_and_object_labels():
    X, y01 = planted_classification(n=80, d=6, seed=5)
    y = np.where(y01 == 1, 1.0, -1.0)
    known = np.arange(80) % 3 != 0
    model = SRFTransductiveClassifier(algorithm="margin").fit(X, np.where(known, y, np.nan))
    np.testing.assert_array_equal(model.classes_, [-1.0, 1.0])  # -1 is a class, not missing
    assert np.mean(model.transduction_[~known] == y[~known]) > 0.8
    names = np.array(["cat" if v > 0 else "dog" for v in y], dtype=object)
    names[~known] = None
    model = SRFTransductiveClassifier().fit(X, names)
    assert set(model.classes_) == {"cat", "dog"}
    with pytest.raises(LabcoreError, match="'nan'"):
        SRFTransductiveClassifier().fit(X, ["cat", "dog", np.nan] + ["cat"] * 77)
    with pytest.raises(LabcoreError, match="non-integer"):
        SRFTransductiveClassifier().fit(X, np.linspace(0, 1, 80))
    with pytest.raises(LabcoreError, match="infinite"):
        SRFTransductiveClassifier().fit(X, np.r_[np.inf, y[1:]])
