import json

import numpy as np
import pytest
from archetypal_nmf import SparseArchetypalNMF
from archetypal_nmf.cli import main, read_matrix
from archetypal_nmf.data import planted
from archetypal_nmf.metrics import strong_robustness, weak_robustness
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from labcore import LabcoreError


def _feasible(model, W, ell):
    H, Wt = model.components_, model.W_tilde_
    assert np.count_nonzero(H) <= ell
    assert (H >= 0).all()
    for M in (W, Wt):
        assert M.min() >= -1e-12
        assert np.allclose(M.sum(1), 1.0, atol=1e-9)


@pytest.mark.parametrize("init", ["spa", "furthest", "random"])
def test_fit_is_feasible_and_the_objective_falls_along_each_stage(init):
    data = planted(m=30, k=4, n=15, density=0.5, noise=0.05, seed=1)
    model = SparseArchetypalNMF(
        n_components=4, n_nonzero=data.n_nonzero, init=init, n_lams=3, random_state=0
    )
    W = model.fit_transform(data.X)
    _feasible(model, W, data.n_nonzero)
    assert W.shape == (30, 4) and model.components_.shape == (4, 15)
    assert model.reconstruction_err_ == pytest.approx(
        np.linalg.norm(data.X - W @ model.components_)
    )
    # The last stage (final λ, then local search) never increases the objective.
    assert model.objective_[-1] <= model.objective_[-2] + 1e-12


def test_noiseless_planted_archetypes_are_recovered():
    data = planted(
        m=60, k=4, n=12, density=0.5, noise=0.0, mixing="dirichlet", pure_points=True, seed=3
    )
    model = SparseArchetypalNMF(n_components=4, n_nonzero=data.n_nonzero, lam=1.0, random_state=0)
    model.fit(data.X)
    scale = float(np.sum(data.H**2))
    assert strong_robustness(model.components_, data.H) / scale < 1e-3
    assert weak_robustness(model.components_, data.H) / scale < 1e-3
    # The baseline: the mean of the data as every archetype is far off.
    centre = np.tile(data.X.mean(0), (4, 1))
    assert weak_robustness(centre, data.H) / scale > 0.1


def test_mask_estimates_missing_entries():
    data = planted(
        m=50, k=3, n=10, density=1.0, noise=0.0, mixing="dirichlet", pure_points=True, seed=0
    )
    rng = np.random.default_rng(0)
    mask = rng.random(data.X.shape) > 0.15
    mask[:3] = True  # keep the pure points whole
    X = np.where(mask, data.X, np.nan)
    model = SparseArchetypalNMF(n_components=3, lam=1.0, random_state=0)
    W = model.fit_transform(X, mask=mask)
    hidden = ~mask
    filled = model.X_imputed_[hidden]
    means = np.nanmean(X, axis=0)[np.nonzero(hidden)[1]]
    err = np.abs(filled - data.X[hidden]).mean()
    assert err < 0.5 * np.abs(means - data.X[hidden]).mean()
    assert np.array_equal(model.X_imputed_[mask], data.X[mask])
    _feasible(model, W, 3 * 10)


def test_transform_and_inverse_transform():
    data = planted(
        m=40, k=3, n=8, density=1.0, noise=0.0, mixing="dirichlet", pure_points=True, seed=2
    )
    model = SparseArchetypalNMF(n_components=3, random_state=0).fit(data.X)
    W_new = model.transform(data.X[:5])
    assert np.allclose(W_new.sum(1), 1)
    assert np.allclose(model.inverse_transform(W_new), data.X[:5], atol=1e-3)


@pytest.mark.parametrize(
    "X,kwargs,match",
    [
        (-np.ones((5, 3)), {}, "negative"),
        (np.ones((3, 4)), {"n_components": 4}, "larger than the number of points"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), {"n_components": 1}, "mask="),
        (np.ones((3, 4)), {"init": "kmeans"}, "init must be"),
        (np.ones((3, 4)), {"n_nonzero": 100}, "exceeds"),
        (np.ones(4), {}, "Expected 2D array"),  # scikit-learn's message
    ],
)
def test_bad_input(X, kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        SparseArchetypalNMF(**{"n_components": 2, **kwargs}).fit(X)


def test_nan_at_an_observed_entry_is_refused():
    X = np.array([[1.0, np.nan], [1.0, 2.0], [0.5, 0.5]])
    with pytest.raises(LabcoreError, match="observed"):
        SparseArchetypalNMF(n_components=1).fit(X, mask=np.ones_like(X, dtype=bool))
    with pytest.raises(NotFittedError, match="not fitted"):
        SparseArchetypalNMF(n_components=1).transform(X)


def test_cli_fit_with_missing_cells(tmp_path, capsys):
    data = planted(m=20, k=2, n=5, density=1.0, noise=0.0, seed=0)
    lines = ["a,b,c,d,e"] + [",".join(f"{v:.6f}" for v in row) for row in data.X]
    lines[3] = ",".join(["", *lines[3].split(",")[1:]])  # one empty cell
    path = tmp_path / "x.csv"
    path.write_text("\n".join(lines) + "\n")
    X, header = read_matrix(path)
    assert header == ["a", "b", "c", "d", "e"] and np.isnan(X[2, 0])
    rc = main(
        ["fit", str(path), "-k", "2", "--density", "0.8", "--json", "--out", str(tmp_path / "out")]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["missing_entries"] == 1 and out["n_nonzero"] <= 8
    assert (tmp_path / "out" / "archetypes.csv").read_text().startswith("a,b,c,d,e")
    assert (tmp_path / "out" / "imputed.csv").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "neg.csv"
    path.write_text("1,2\n-1,3\n")
    assert main(["fit", str(path), "-k", "1"]) == 2
    assert "negative" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.csv"), "-k", "1"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(5))
def test_swap_change_is_exact_when_leave_and_enter_share_a_column(seed):
    from archetypal_nmf.local_search import _best_swap
    from archetypal_nmf.metrics import objective

    # One feature column: every (leave, enter) pair shares it, so the interaction term
    # −2 W_iᵀW_i' h₀ of the closed form is exercised.
    rng = np.random.default_rng(seed)
    m, k, lam = 12, 3, 0.7
    X = rng.random((m, 1))
    W = rng.dirichlet(np.ones(k), size=m)
    Wt = rng.dirichlet(np.ones(m), size=k)
    H = np.zeros((k, 1))
    H[0, 0] = 0.8
    G = -2 * W.T @ (X - W @ H) + 2 * lam * (H - Wt @ X)
    delta, leave, enter, value = _best_swap(W, H, G, lam, n_nonzero=1, size=3)
    assert leave == (0, 0) and enter[1] == 0 and enter[0] != 0
    H2 = H.copy()
    H2[leave] = 0.0
    H2[enter] = value
    change = objective(X, W, H2, Wt, lam) - objective(X, W, H, Wt, lam)
    assert change == pytest.approx(delta, rel=1e-10, abs=1e-12)


def test_sklearn_conventions():
    from sklearn.base import clone

    model = SparseArchetypalNMF(n_components=3, n_nonzero=10, lam=0.5, init="furthest")
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert model.__sklearn_tags__().input_tags.positive_only
    data = planted(m=20, k=3, n=6, seed=0)
    assert model.fit(data.X) is model
    with pytest.raises(LabcoreError, match="random_state"):
        SparseArchetypalNMF(n_components=2, random_state=np.random.default_rng(0)).fit(data.X)
    with pytest.raises(LabcoreError, match="sparse"):
        import scipy.sparse

        model.fit(scipy.sparse.csr_matrix(data.X))


def test_csv_reader_handles_bom_headers_and_refuses_text(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeff1,2\n3,4\n5,\n".encode())
    X, header = read_matrix(bom)
    assert header is None and X.shape == (3, 2) and np.isnan(X[2, 1]) and X[0, 0] == 1.0
    named = tmp_path / "named.csv"
    named.write_text("g1,g2\n1,NA\n2,3\n")
    X, header = read_matrix(named)
    assert header == ["g1", "g2"] and X.shape == (2, 2) and np.isnan(X[0, 1])
    ids = tmp_path / "ids.csv"
    ids.write_text("id,g1\ns1,1\ns2,2\n")
    with pytest.raises(LabcoreError, match=r"line 2, column 1: 's1' is not a number"):
        read_matrix(ids)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(LabcoreError, match="line 2 has 1 cells"):
        read_matrix(ragged)


def test_cli_n_nonzero(tmp_path, capsys):
    data = planted(m=15, k=2, n=4, density=1.0, seed=1)
    path = tmp_path / "x.csv"
    path.write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in data.X) + "\n")
    assert main(["fit", str(path), "-k", "2", "--n-nonzero", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_nonzero"] <= 3 and np.array(out["W"]).shape == (15, 2)


def test_mask_is_a_fit_argument_and_transform_checks_the_feature_count():
    data = planted(m=20, k=2, n=5, density=1.0, seed=0)
    assert "mask" not in SparseArchetypalNMF().get_params()
    model = SparseArchetypalNMF(n_components=2, random_state=0)
    mask = np.ones(data.X.shape, dtype=bool)
    mask[0, 0] = False
    model.fit(data.X, mask=mask)
    assert model.n_features_in_ == 5 and model.X_imputed_ is not None
    with pytest.raises(LabcoreError, match="X has 4 features"):
        model.transform(data.X[:, :4])
    with pytest.raises(LabcoreError, match="transform needs complete rows"):
        model.transform(np.where(mask, data.X, np.nan))


@parametrize_with_checks(
    [SparseArchetypalNMF(n_components=2, n_lams=2, max_iter=20, ls_iter=1, random_state=0)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
