"""Private coefficients on a selected support by objective perturbation (Kifer, Smith and
Thakurta 2012, as used by the paper after selection).

On the support S (s features, rows with |x_ij| ≤ b_x, |y_i| ≤ b_y), the per-example loss
ℓ(θ) = ½(y − xᵀθ)² over ‖θ‖ ≤ r is ζ-Lipschitz with ζ = b_x√s·(b_y + b_x√s·r) and
λ_H-smooth with λ_H = s·b_x². Objective perturbation minimises

    (1/n)Σℓ(θ) + ((γ + Δ')/2n)‖θ‖² + bᵀθ/n,   ‖θ‖ ≤ r,

with Δ' = 2λ_H/ε and b of density ∝ exp(−ε‖b‖/(4ζ)) (radius ~ Gamma(s, 4ζ/ε), uniform
direction). Neighbouring data sets here differ by the *replacement* of one row, as in the
selection's sensitivity: the data term's gradient then moves by up to 2ζ, which this noise
turns into a factor e^{ε/2}, and the Jacobian of the map from b to θ changes by at most
1 + λ_H/Δ' = 1 + ε/2 ≤ e^{ε/2}: ε-DP in all. (The official code draws the radius from
Gamma(s, 2ζ/ε), the scale for adding or removing a row, and plugs in ζ = 2s^{3/2} and
λ_H = s, bounds for b_x, b_y ≤ 1 and r ≤ 1; we use the bounds of the data at hand.)
"""

from __future__ import annotations

import math

import numpy as np

from dpbss.loss import _ridge_in_ball


def objective_perturbation(
    X: np.ndarray,
    y: np.ndarray,
    support: np.ndarray,
    *,
    epsilon: float,
    x_bound: float,
    y_bound: float,
    radius: float,
    ridge: float = 0.0,
    rng: np.random.Generator,
) -> np.ndarray:
    """ε-DP coefficients (length p, zero off the support)."""
    _n, p = X.shape
    support = np.asarray(support, dtype=np.int64)
    s = len(support)
    zeta = x_bound * math.sqrt(s) * (y_bound + x_bound * math.sqrt(s) * radius)
    smooth = s * x_bound**2
    delta_reg = 2.0 * smooth / epsilon
    direction = rng.normal(size=s)
    direction /= np.linalg.norm(direction)
    noise = rng.gamma(shape=s, scale=4.0 * zeta / epsilon) * direction
    XS = X[:, support]
    theta = _ridge_in_ball(XS.T @ XS, XS.T @ y - noise, ridge + delta_reg, radius)
    coef = np.zeros(p)
    coef[support] = theta
    return coef
