"""scikit-learn conformance of the SRF estimators, and the transductive predict they share."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from srf import SRFCompletion, SRFTransductiveClassifier, SRFTransductiveRegressor

from labcore.errors import LabcoreError

TRANSDUCTIVE = "transductive: predict covers the fitted items only, not held-out rows"


@parametrize_with_checks(
    [
        SRFCompletion(max_levels=30, random_state=0),
        SRFTransductiveClassifier(max_levels=30, random_state=0),
        SRFTransductiveRegressor(max_levels=30, random_state=0),
    ],
    expected_failed_checks=lambda est: (
        {} if isinstance(est, SRFCompletion) else {"check_fit_idempotent": TRANSDUCTIVE}
    ),
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nansum(X, axis=1) > 0).astype(float)
    y[::3] = np.nan
    return X, y


def test_predict_matches_rows_of_the_fitted_items_by_value():
    X, y = _data()
    model = SRFTransductiveClassifier(max_levels=30).fit(X, y)
    assert model.n_features_in_ == 6
    full = model.predict()
    np.testing.assert_array_equal(model.predict(X), full)
    order = np.random.default_rng(1).permutation(30)[:10]
    np.testing.assert_array_equal(model.predict(X[order]), full[order])  # NaN rows included
    np.testing.assert_array_equal(model.decision_function(X[order]), model.label_scores_[order])
    with pytest.raises(LabcoreError, match="row 1 of X is not one of the fitted items"):
        model.predict(np.vstack([X[0], X[1] + 1.0]))
    with pytest.raises(LabcoreError, match="X has 5 features"):
        model.predict(X[:, :5])


def test_input_checks_name_the_problem():
    X, y = _data()
    with pytest.raises(LabcoreError, match=r"infinity.*use NaN for missing"):
        SRFTransductiveRegressor().fit(np.where(np.isnan(X), np.inf, X), np.nan_to_num(y))
    with pytest.raises(LabcoreError, match="target y is None"):
        SRFTransductiveClassifier().fit(X, None)
    with pytest.raises(LabcoreError, match="Unknown label type"):
        SRFTransductiveClassifier().fit(X, np.linspace(0, 1, 30))
    reg = SRFTransductiveRegressor(max_levels=30).fit(X, y)
    with pytest.warns(UserWarning, match="column-vector"):
        col = SRFTransductiveRegressor(max_levels=30).fit(X, y[:, None])
    np.testing.assert_array_equal(col.predict(), reg.predict())
