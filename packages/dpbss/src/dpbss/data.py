"""The paper's synthetic design and the bounded-data checks.

Rows x ~ N(0, Σ) with Σ_ij = ρ^|i−j|; β* = 1/√s on the features 0, 2, …, 2s − 2 (the
official code's 1, 3, …, 2s − 1 counted from one); y = Xβ* + noise at a signal-to-noise
ratio SNR = Var(xᵀβ*)/σ². Both are then clipped to [−b_x, b_x] and [−b_y, b_y], the bounds
the sensitivity is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.checks import finite_array, finite_float, positive_int
from labcore.errors import LabcoreError


@dataclass
class Synthetic:
    X: np.ndarray
    y: np.ndarray
    support: np.ndarray  # the true features
    beta: np.ndarray


def make_synthetic(
    n: int,
    p: int,
    s: int,
    *,
    rho: float = 0.1,
    snr: float = 5.0,
    x_bound: float = 0.5,
    y_bound: float = 0.5,
    seed: int = 0,
) -> Synthetic:
    """The paper's design, clipped to the bounds (see the module notes)."""
    n, p, s = positive_int("n", n), positive_int("p", p), positive_int("s", s)
    if 2 * s - 1 > p:
        raise LabcoreError(f"the design puts s features 2 apart: needs p >= 2s - 1, got p={p}")
    rng = np.random.default_rng(seed)
    # AR(1) rows: x_j = ρ x_{j−1} + √(1−ρ²) e_j has covariance ρ^|i−j| exactly.
    E = rng.normal(size=(n, p))
    X = np.empty((n, p))
    X[:, 0] = E[:, 0]
    c = np.sqrt(1 - rho**2)
    for j in range(1, p):
        X[:, j] = rho * X[:, j - 1] + c * E[:, j]
    support = np.arange(0, 2 * s, 2)
    beta = np.zeros(p)
    beta[support] = 1 / np.sqrt(s)
    b = beta[support]
    signal_var = float(b @ rho ** np.abs(support[:, None] - support[None, :]) @ b)
    sigma = np.sqrt(signal_var / snr)
    y = X @ beta + sigma * rng.normal(size=n)
    return Synthetic(np.clip(X, -x_bound, x_bound), np.clip(y, -y_bound, y_bound), support, beta)


def check_bounded(
    X, y, *, x_bound: float, y_bound: float, clip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Finite arrays of matching length within the bounds (clipped when ``clip``), else a
    clear error: the privacy guarantee is only as good as the bounds."""
    X = finite_array("X", X, ndim=2)
    y = finite_array("y", y, ndim=1)
    if len(X) != len(y):
        raise LabcoreError(f"X has {len(X)} rows but y has {len(y)} entries")
    x_bound = finite_float("x_bound", x_bound, minimum=0.0, strict=True)
    y_bound = finite_float("y_bound", y_bound, minimum=0.0, strict=True)
    if clip:
        return np.clip(X, -x_bound, x_bound), np.clip(y, -y_bound, y_bound)
    if np.abs(X).max() > x_bound:
        i, j = np.unravel_index(np.argmax(np.abs(X)), X.shape)
        raise LabcoreError(
            f"X[{i}, {j}] = {X[i, j]:g} is outside [-x_bound, x_bound] = ±{x_bound:g}: the "
            "privacy guarantee needs bounded data; rescale it, raise x_bound, or pass clip=True"
        )
    if np.abs(y).max() > y_bound:
        i = int(np.argmax(np.abs(y)))
        raise LabcoreError(
            f"y[{i}] = {y[i]:g} is outside [-y_bound, y_bound] = ±{y_bound:g}: the privacy "
            "guarantee needs bounded data; rescale it, raise y_bound, or pass clip=True"
        )
    return X, y
