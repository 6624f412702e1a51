"""scikit-learn's estimator checks on both estimators (short training to keep them fast)."""

from __future__ import annotations

from skinnytrees import SkinnyTreesClassifier, SkinnyTreesRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks


@parametrize_with_checks(
    [
        # The checks' data have 2-10 features: the paper's λ = 100 / p would remove them all.
        SkinnyTreesClassifier(
            l0=0.1, n_trees=5, depth=3, max_epochs=25, batch_size=32, random_state=0
        ),
        SkinnyTreesRegressor(
            l0=0.1, n_trees=5, depth=3, max_epochs=25, batch_size=32, random_state=0
        ),
        # The λ path (a budget of all features: the checks' data have 1 to 10 features).
        SkinnyTreesClassifier(
            max_features=1.0,
            n_trees=4,
            depth=2,
            max_epochs=20,
            batch_size=32,
            max_path=3,
            random_state=0,
        ),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
