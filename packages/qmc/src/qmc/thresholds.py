"""Maximum-likelihood bin edges for a fixed latent X (the "learn" option).

For log-concave noise the ordinal log-likelihood is jointly concave in (x, ω) (Pratt 1981), so
with X fixed the thresholds solve a smooth concave problem. It is parametrized by ω₁ and the
logarithms of the gaps, which keeps the edges ordered, and solved with L-BFGS."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from qmc.likelihood import OrdinalLikelihood


def fit_thresholds(x: np.ndarray, levels: np.ndarray, model: OrdinalLikelihood) -> np.ndarray:
    """The thresholds maximizing Σ log P(levels | x) with link and scale of ``model``."""
    t0 = model.thresholds
    theta0 = t0.copy() if t0.size == 1 else np.concatenate([t0[:1], np.log(np.diff(t0))])

    def unpack(theta: np.ndarray) -> np.ndarray:
        if theta.size == 1:
            return theta
        return theta[0] + np.concatenate([[0.0], np.cumsum(np.exp(theta[1:]))])

    def loss(theta: np.ndarray) -> float:
        candidate = model.with_thresholds(unpack(theta))
        value = candidate.nll(x, levels) / max(x.size, 1)
        return value if np.isfinite(value) else 1e300

    # Bound the log-gaps so a level absent from the data cannot collapse or blow up a gap
    # (ω₁ itself is free: with the bottom level absent it drifts down, harmlessly).
    bounds = [(None, None)] + [(-12.0, 8.0)] * (theta0.size - 1)
    result = minimize(loss, theta0, method="L-BFGS-B", bounds=bounds)
    return unpack(result.x)
