"""The ordinal (quantized) observation model and its stable log-likelihood.

An observed level y ∈ {1, …, L} is the bin of X + ε: y = l when ω_{l−1} < X + ε ≤ ω_l, with
ω_0 = −∞ < ω_1 < … < ω_{L−1} < ω_L = +∞ and ε logistic or Gaussian with scale σ. So

    P(y = l | x) = F((ω_l − x)/σ) − F((ω_{l−1} − x)/σ),

with F the logistic CDF (``link="logistic"``) or Φ (``link="probit"``). Both CDFs are
log-concave, so the negative log-likelihood f(x) = −log P(y | x) is convex in x, and its second
derivative is bounded by 1/(2σ²) (logistic) or 1/σ² (probit).

Differences of CDFs underflow in the tails, so everything is computed in log space:

- logistic: σ(u) − σ(v) = σ(u)·σ(−v)·(1 − e^{−(u−v)}) for u > v, hence
  log P = log σ(u) + log σ(−v) + log(1 − e^{−(u−v)}), and f' = (σ(−u) − σ(v))/σ_ε,
  f'' = (σ(u)σ(−u) + σ(v)σ(−v))/σ_ε²;
- probit: log(Φ(u) − Φ(v)) through ``log_ndtr`` on the side of zero where both tails are
  accurate, and the inverse-Mills ratios φ/P for the derivatives.

>>> import numpy as np
>>> model = OrdinalLikelihood.uniform(5)
>>> model.thresholds
array([1.5, 2.5, 3.5, 4.5])
>>> p = np.exp(model.log_prob_all(np.array([3.0])))
>>> bool(abs(p.sum() - 1) < 1e-12), int(p.argmax()) + 1
(True, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, log_ndtr

from labcore.checks import choice, finite_float
from labcore.errors import LabcoreError

LINKS = ("logistic", "probit")
_LOG_2PI_HALF = 0.5 * np.log(2 * np.pi)


def _log1mexp(d: np.ndarray) -> np.ndarray:
    """log(1 − e^{−d}) for d ≥ 0, accurate for small and large d (Mächler 2012)."""
    d = np.asarray(d, dtype=np.float64)
    out = np.empty_like(d)
    small = d <= np.log(2.0)
    with np.errstate(divide="ignore"):
        out[small] = np.log(-np.expm1(-d[small]))
        out[~small] = np.log1p(-np.exp(-d[~small]))
    return out


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def _log_phi(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = -0.5 * z * z - _LOG_2PI_HALF
    return np.where(np.isfinite(z), out, -np.inf)


def _log_ndtr_diff(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """log(Φ(u) − Φ(v)) for u > v, on whichever side of zero keeps both tails accurate."""
    flip = v > 0  # both in the upper tail: Φ(u) − Φ(v) = Φ(−v) − Φ(−u)
    hi = np.where(flip, -v, u)
    lo = np.where(flip, -u, v)
    log_hi = log_ndtr(hi)
    log_lo = log_ndtr(lo)
    with np.errstate(invalid="ignore"):
        gap = log_hi - log_lo
    gap = np.where(np.isneginf(log_lo), np.inf, gap)
    return log_hi + _log1mexp(gap)


@dataclass(frozen=True)
class OrdinalLikelihood:
    """Ordered-bin likelihood for levels 1..L.

    Parameters
    ----------
    thresholds : array of L − 1 strictly increasing finite bin edges ω_1 < … < ω_{L−1}.
    link : ``"logistic"`` or ``"probit"``: the noise distribution.
    scale : noise scale σ > 0.
    """

    thresholds: np.ndarray
    link: str = "logistic"
    scale: float = 1.0
    _edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        choice("link", self.link, LINKS)
        finite_float("scale", self.scale, minimum=0.0, strict=True)
        t = np.asarray(self.thresholds, dtype=np.float64).reshape(-1)
        if t.size < 1:
            raise LabcoreError("thresholds: at least one threshold (two levels) is needed")
        if not np.isfinite(t).all():
            raise LabcoreError("thresholds must be finite")
        if np.any(np.diff(t) <= 0):
            raise LabcoreError(f"thresholds must be strictly increasing, got {t.tolist()}")
        object.__setattr__(self, "thresholds", t)
        object.__setattr__(self, "_edges", np.concatenate([[-np.inf], t, [np.inf]]))

    @classmethod
    def uniform(cls, n_levels: int, *, link: str = "logistic", scale: float = 1.0):
        """Bins centred on the integer levels: ω_l = l + ½, so level l covers (l − ½, l + ½]
        and the latent X is on the level scale."""
        if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer):
            raise LabcoreError(f"n_levels must be an integer >= 2, got {n_levels!r}")
        if n_levels < 2:
            raise LabcoreError(f"n_levels must be >= 2, got {n_levels}")
        return cls(np.arange(1, n_levels) + 0.5, link=link, scale=scale)

    @property
    def n_levels(self) -> int:
        return self.thresholds.size + 1

    @property
    def curvature_bound(self) -> float:
        """sup_x f''(x): 1/(2σ²) for logistic, 1/σ² for probit."""
        return (0.5 if self.link == "logistic" else 1.0) / self.scale**2

    def check_levels(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.size and not np.issubdtype(y.dtype, np.integer):
            yf = np.asarray(y, dtype=np.float64)
            if not np.isfinite(yf).all():
                raise LabcoreError("levels contain NaN or infinite values at observed entries")
            if np.any(yf != np.round(yf)):
                raise LabcoreError("levels must be integers 1..L")
            y = yf.astype(np.int64)
        bad = (y < 1) | (y > self.n_levels)
        if bad.any():
            raise LabcoreError(
                f"levels must lie in 1..{self.n_levels} (the bins), found "
                f"{sorted({int(v) for v in np.unique(y[bad])[:5]})}"
            )
        return y.astype(np.int64, copy=False)

    def _uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        upper = self._edges[y]
        lower = self._edges[y - 1]
        return (upper - x) / self.scale, (lower - x) / self.scale

    def log_prob(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log P(y | x), elementwise (levels are checked: integers in 1..L)."""
        x = np.asarray(x, dtype=np.float64)
        u, v = self._uv(x, self.check_levels(y))
        if self.link == "logistic":
            return _log_sigmoid(u) + _log_sigmoid(-v) + _log1mexp(u - v)
        return _log_ndtr_diff(u, v)

    def log_prob_all(self, x: np.ndarray) -> np.ndarray:
        """log P(y = l | x) for every level: shape ``x.shape + (L,)``."""
        x = np.asarray(x, dtype=np.float64)
        levels = np.arange(1, self.n_levels + 1)
        return self.log_prob(x[..., None], levels)

    def nll_derivatives(
        self, x: np.ndarray, y: np.ndarray, *, value: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """f = −log P(y | x) and its first and second derivatives in x, elementwise
        (f is None when ``value`` is false: the Newton steps need only the derivatives).

        The solvers' hot path: ``y`` must already be integer levels in 1..L (see
        :meth:`check_levels`); they are not re-checked here."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        s = self.scale
        u, v = self._uv(x, y)
        if self.link == "logistic":
            su, sv = expit(u), expit(v)
            g = (expit(-u) - sv) / s
            h = (su * (1.0 - su) + sv * (1.0 - sv)) / s**2
            if not value:
                return None, g, h
            return -(_log_sigmoid(u) + _log_sigmoid(-v) + _log1mexp(u - v)), g, h
        log_p = _log_ndtr_diff(u, v)
        r_u = np.exp(_log_phi(u) - log_p)  # φ(u)/P: zero at u = +∞
        r_v = np.exp(_log_phi(v) - log_p)
        g = (r_u - r_v) / s
        with np.errstate(invalid="ignore"):
            ur = np.where(np.isfinite(u), u * r_u, 0.0)
            vr = np.where(np.isfinite(v), v * r_v, 0.0)
        h = (ur - vr) / s**2 + g**2
        # 1 − Var(truncated normal) lies in [0, 1]; clip the rounding of deep tails.
        h = np.clip(h, 0.0, 1.0 / s**2)
        return -log_p, g, h

    def nll(self, x: np.ndarray, y: np.ndarray) -> float:
        """Σ −log P(y | x)."""
        return float(-self.log_prob(x, y).sum())

    def level_values(self) -> np.ndarray:
        """A representative latent value per level: the bin centre for inner levels, and half
        the median bin width beyond the outer thresholds (σ beyond with a single threshold)."""
        t = self.thresholds
        width = float(np.median(np.diff(t))) if t.size > 1 else 2.0 * self.scale
        centres = 0.5 * (t[1:] + t[:-1]) if t.size > 1 else np.empty(0)
        return np.concatenate([[t[0] - 0.5 * width], centres, [t[-1] + 0.5 * width]])

    def with_thresholds(self, thresholds: np.ndarray) -> OrdinalLikelihood:
        return OrdinalLikelihood(thresholds, link=self.link, scale=self.scale)
