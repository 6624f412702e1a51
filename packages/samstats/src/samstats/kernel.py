"""Kernel regression: GD and SAM as spectral filters, with exact population risk.

The estimator is a function f in the kernel's RKHS, trained on L(f) = ‖f(X) − y‖²/(2n) by
functional gradient descent from f = 0. Written in the eigenbasis of K/n = U diag(s) Uᵀ,
with f̃ = Uᵀ f(X) and ỹ = Uᵀ y, every method is a map of f̃ (our derivation; the paper gives
no code):

- GD:                       f̃ ← f̃ − η s ⊙ (f̃ − ỹ)
- SAM (un-normalized, USAM): f̃ ← f̃ − η s(1 + ρs) ⊙ (f̃ − ỹ), since the gradient at the
  ascent point f + ρ∇L is (K/n)(I + ρK/n)(f − y)
- SAM (normalized, Foret):  f̃ ← f̃ − η s ⊙ r̃(1 + ρ s/‖∇L‖), with r̃ = f̃ − ỹ and the RKHS
  gradient norm ‖∇L‖² = Σ s r̃²/n

The un-normalized path has the closed form f̃_t = (1 − (1 − ηs(1 + ρs))^t) ỹ
(:func:`closed_form_path`): early-stopped SAM is GD with the eigenvalues s replaced by
s(1 + ρs), a filter that fits the top of the spectrum faster than the tail.

Population risk. :class:`MercerProblem` draws data on the circle with a kernel whose Mercer
expansion is known (Fourier features, orthonormal in L²[0, 1)), so the excess risk
E(f̂ − f*)² of any iterate is an exact finite sum (:meth:`MercerProblem.risk_path`); for other
kernels :class:`SpectralKernelRegression` evaluates the path on a test sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.checks import choice, finite_array, finite_float, positive_int
from labcore.errors import LabcoreError

METHODS = ("gd", "sam", "sam-normalized")
SPECTRA = ("polynomial", "exponential", "gaussian")


def checkpoint_steps(
    n_steps: int, *, every: int | None = None, dense_until: int = 100, per_decade: int = 100
) -> np.ndarray:
    """The iterations at which a path is recorded, always including 0 and ``n_steps``.

    With ``every``: 0, every, 2·every, …. Without: every step up to ``dense_until``, then
    ``per_decade`` log-spaced steps per decade, so that the best stopping time is resolved
    to a few percent however early or late it falls.

    >>> checkpoint_steps(10, every=4).tolist()
    [0, 4, 8, 10]
    >>> steps = checkpoint_steps(20000)
    >>> int(steps[100]), int(steps[-1]), bool(np.all(np.diff(steps) > 0)), len(steps) < 400
    (100, 20000, True, True)
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    if every is not None:
        steps = np.arange(0, n_steps + 1, positive_int("every", every))
    else:
        dense = np.arange(0, min(dense_until, n_steps) + 1)
        if n_steps > dense_until:
            decades = np.log10(n_steps / dense_until)
            count = max(int(np.ceil(decades * per_decade)), 1)
            sparse = np.round(dense_until * np.logspace(0, decades, count + 1)).astype(int)
            dense = np.concatenate([dense, sparse])
        steps = dense
    return np.unique(np.append(steps, n_steps))


# --------------------------------------------------------------------------------------------
# Problems with a known Mercer expansion


@dataclass(frozen=True)
class MercerProblem:
    """Kernel regression on the circle x ~ U[0, 1) with an exactly known population risk.

    The features are φ₀ = 1, φ₂ₖ₋₁ = √2 cos(2πkx), φ₂ₖ = √2 sin(2πkx) for frequencies
    k = 1..``frequencies`` (orthonormal in L²[0, 1)); the kernel is k(x, x') =
    Σ_j μ_j φ_j(x) φ_j(x') with eigenvalue μ = g(k + 1) at frequency k, and the target is
    f* = Σ_j θ_j φ_j with |θ_j| ∝ (k + 1)^(−smoothness), random signs and ‖f*‖ = 1.

    Parameters
    ----------
    n
        Training sample size.
    spectrum, decay
        The kernel's eigen-decay g: ``"polynomial"`` g(m) = m^(−decay) (a periodic Sobolev
        kernel when decay = 2s), ``"exponential"`` g(m) = exp(−decay·(m − 1)),
        ``"gaussian"`` g(m) = exp(−decay·(m − 1)²).
    smoothness
        Decay exponent of the target's coefficients: larger is smoother.
    noise
        Standard deviation σ of the Gaussian label noise.
    frequencies
        Truncation: the kernel has rank 2·frequencies + 1.

    Examples
    --------
    >>> problem = MercerProblem(n=50, noise=0.1)
    >>> data = problem.sample(seed=0)
    >>> data.x.shape, data.y.shape, round(float(np.sum(data.theta**2)), 6)
    ((50,), (50,), 1.0)
    """

    n: int = 200
    spectrum: str = "polynomial"
    decay: float = 2.0
    smoothness: float = 1.5
    noise: float = 0.5
    frequencies: int = 200

    def __post_init__(self) -> None:
        positive_int("n", self.n, minimum=2)
        choice("spectrum", self.spectrum, SPECTRA)
        finite_float("decay", self.decay, minimum=0.0, strict=True)
        finite_float("smoothness", self.smoothness, minimum=0.0)
        finite_float("noise", self.noise, minimum=0.0)
        positive_int("frequencies", self.frequencies)

    @property
    def dim(self) -> int:
        return 2 * self.frequencies + 1

    def _frequency(self) -> np.ndarray:
        """The frequency k of each feature (0 for the constant)."""
        return np.concatenate([[0], np.repeat(np.arange(1, self.frequencies + 1), 2)])

    def eigenvalues(self) -> np.ndarray:
        """μ_j, the kernel's Mercer eigenvalues (the largest is 1)."""
        m = self._frequency() + 1.0
        if self.spectrum == "polynomial":
            return m ** (-self.decay)
        if self.spectrum == "exponential":
            return np.exp(-self.decay * (m - 1))
        return np.exp(-self.decay * (m - 1) ** 2)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Φ (len(x) × dim): the orthonormal eigenfunctions at the points ``x``."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        k = np.arange(1, self.frequencies + 1)
        angle = 2 * np.pi * x[:, None] * k[None, :]
        out = np.empty((x.size, self.dim))
        out[:, 0] = 1.0
        out[:, 1::2] = np.sqrt(2) * np.cos(angle)
        out[:, 2::2] = np.sqrt(2) * np.sin(angle)
        return out

    def kernel(self, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """The kernel matrix k(x1_i, x2_j)."""
        return (self.features(x1) * self.eigenvalues()) @ self.features(x2).T

    def target(self, seed: int = 0) -> np.ndarray:
        """θ*, the target's coefficients (unit L² norm)."""
        rng = np.random.default_rng([seed, 1])
        theta = (self._frequency() + 1.0) ** (-self.smoothness)
        theta = theta * rng.choice([-1.0, 1.0], size=self.dim)
        return theta / np.linalg.norm(theta)

    def sample(self, seed: int = 0, *, n: int | None = None) -> MercerData:
        """A training sample: design, noisy labels, the noiseless values and θ*."""
        n = self.n if n is None else positive_int("n", n)
        rng = np.random.default_rng([seed, 2])
        theta = self.target(seed)
        x = rng.random(n)
        f = self.features(x) @ theta
        y = f + self.noise * rng.standard_normal(n)
        return MercerData(problem=self, x=x, y=y, f=f, theta=theta)


@dataclass(frozen=True)
class MercerData:
    """A sample from a :class:`MercerProblem` (``f`` holds the noiseless f*(x))."""

    problem: MercerProblem
    x: np.ndarray
    y: np.ndarray
    f: np.ndarray
    theta: np.ndarray

    def regression(self) -> SpectralKernelRegression:
        """The eigen-decomposed training problem, evaluating the exact population risk."""
        p = self.problem
        fit = SpectralKernelRegression(p.kernel(self.x, self.x), self.y)
        # Coefficients of f̂ on φ: μ ⊙ Φᵀα with α = U diag(1/(n s)) f̃.
        coef_map = (p.eigenvalues()[:, None] * p.features(self.x).T) @ (
            fit.U / (fit.n * fit.s)[None, :]
        )
        fit.attach_population(coef_map, self.theta)
        return fit


# --------------------------------------------------------------------------------------------
# The training problem in the eigenbasis


@dataclass
class KernelPath:
    """A training path: ``coefs[t]`` is f̃ after ``steps[t]`` iterations."""

    method: str
    rho: float
    eta: float
    steps: np.ndarray
    coefs: np.ndarray
    train_loss: np.ndarray


class SpectralKernelRegression:
    """Kernel least squares L(f) = ‖f(X) − y‖²/(2n) diagonalized once, for fast paths.

    Parameters
    ----------
    K
        The n × n training kernel matrix (symmetric positive semidefinite).
    y
        The n labels.
    rank_tol
        Eigenvalues of K/n below ``rank_tol`` times the largest are treated as zero (the
        paths never move along them).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(30, 2))
    >>> K = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1))
    >>> fit = SpectralKernelRegression(K, x[:, 0])
    >>> path = fit.path("sam", rho=0.5, n_steps=100)
    >>> path.coefs.shape == (101, fit.rank)
    True
    """

    def __init__(self, K, y, *, rank_tol: float = 1e-13) -> None:
        K = finite_array("K", K, ndim=2)
        y = finite_array("y", y, ndim=1)
        n = K.shape[0]
        if K.shape != (n, n):
            raise LabcoreError(f"K must be square, got shape {K.shape}")
        if y.shape[0] != n:
            raise LabcoreError(f"y has {y.shape[0]} labels but K is {n} × {n}")
        if not np.allclose(K, K.T, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(K).max())):
            raise LabcoreError("K must be symmetric")
        s, U = np.linalg.eigh((K + K.T) / (2 * n))
        if s[0] < -1e-8 * max(s[-1], 1e-300):
            raise LabcoreError(f"K is not positive semidefinite (eigenvalue {s[0] * n:.3g})")
        if s[-1] <= 0:
            raise LabcoreError("K is zero: nothing can be learned")
        keep = s > rank_tol * s[-1]
        order = np.argsort(s[keep])[::-1]
        self.n = n
        self.s = s[keep][order]
        self.U = U[:, keep][:, order]
        self.y = y
        self.y_tilde = self.U.T @ y
        self._outside = max(float(y @ y - self.y_tilde @ self.y_tilde), 0.0)
        self._coef_map: np.ndarray | None = None
        self._theta: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return self.s.size

    @property
    def s_max(self) -> float:
        """λ_max of the Hessian of L in the RKHS (= the largest eigenvalue of K/n)."""
        return float(self.s[0])

    # ---- paths ---------------------------------------------------------------------------

    def path(
        self,
        method: str = "gd",
        *,
        rho: float = 0.0,
        eta: float | None = None,
        n_steps: int = 1000,
        record_every: int | None = 1,
    ) -> KernelPath:
        """Run ``n_steps`` iterations of GD or SAM from f = 0 and record f̃ along the way
        (every ``record_every`` steps; ``None`` for :func:`checkpoint_steps`' log grid).

        ``eta`` defaults to 1/λ_max. Un-normalized SAM (``"sam"``) and GD diverge when
        η·s(1 + ρs) ≥ 2 for the top eigenvalue; that is refused up front. Normalized SAM
        cannot be checked up front: its effective step η·s(1 + ρs/‖∇L‖) grows as the
        gradient shrinks, so late in a run the top directions oscillate (its risk and loss
        can rise again; compare at the best stopping time).
        """
        choice("method", method, METHODS)
        rho = finite_float("rho", rho, minimum=0.0)
        eta = 1.0 / self.s_max if eta is None else finite_float("eta", eta, minimum=0, strict=True)
        n_steps = positive_int("n_steps", n_steps, minimum=0)
        s, yt = self.s, self.y_tilde
        if method in ("gd", "sam"):
            r = 0.0 if method == "gd" else rho
            top = eta * s[0] * (1 + r * s[0])
            if top >= 2:
                raise LabcoreError(
                    f"{method} with eta={eta:.4g}, rho={r:.4g} diverges: η·λ(1 + ρλ) = {top:.3g}"
                    f" ≥ 2 at λ_max = {s[0]:.4g}; lower eta or rho"
                )
            gain = eta * s * (1 + r * s)
        recorded = checkpoint_steps(n_steps, every=record_every).tolist()
        coefs = np.empty((len(recorded), self.rank))
        # Iterate on the residual r = f̃ − ỹ (the same map): converged directions then stay
        # at r = 0 by the dynamics, not by f̃ − ỹ rounding to zero.
        residual = -yt.copy()
        row = 0
        for t in range(n_steps + 1):
            if t == recorded[row]:
                coefs[row] = yt + residual
                row += 1
                if row == len(recorded):
                    break
            if method == "sam-normalized":
                grad_norm = np.sqrt(np.sum(s * residual**2) / self.n)
                scale = 1.0 + (rho * s / grad_norm if grad_norm > 0 else 0.0)
                residual = residual * (1.0 - eta * s * scale)
            else:
                residual = residual * (1.0 - gain)
        return KernelPath(
            method=method,
            rho=rho if method != "gd" else 0.0,
            eta=eta,
            steps=np.asarray(recorded),
            coefs=coefs,
            train_loss=self.train_loss(coefs),
        )

    def closed_form_path(self, steps, *, rho: float = 0.0, eta: float | None = None) -> np.ndarray:
        """f̃_t = (1 − (1 − ηs(1 + ρs))^t) ỹ: the exact un-normalized SAM (GD at ρ = 0) path."""
        eta = 1.0 / self.s_max if eta is None else float(eta)
        steps = np.asarray(steps, dtype=np.float64)
        q = 1.0 - eta * self.s * (1.0 + rho * self.s)
        return (1.0 - q[None, :] ** steps[:, None]) * self.y_tilde[None, :]

    def ridge_path(self, lams) -> np.ndarray:
        """Kernel ridge regression's f̃ = s/(s + λ) ỹ for each λ (explicit regularization)."""
        lams = np.asarray(lams, dtype=np.float64).reshape(-1)
        if not (np.isfinite(lams).all() and (lams >= 0).all()):
            raise LabcoreError("ridge penalties must be finite and >= 0")
        return self.s[None, :] / (self.s[None, :] + lams[:, None]) * self.y_tilde[None, :]

    # ---- evaluation ----------------------------------------------------------------------

    def train_loss(self, coefs: np.ndarray) -> np.ndarray:
        """L = ‖f(X) − y‖²/(2n) for each row of f̃."""
        coefs = np.atleast_2d(coefs)
        return (np.sum((coefs - self.y_tilde) ** 2, axis=1) + self._outside) / (2 * self.n)

    def dual_coefs(self, coefs: np.ndarray) -> np.ndarray:
        """α with f = Σ α_i k(·, x_i), one row per row of f̃."""
        return np.atleast_2d(coefs) / (self.n * self.s) @ self.U.T

    def predict(self, coefs: np.ndarray, K_test: np.ndarray) -> np.ndarray:
        """f̂ at test points from the test-by-train kernel matrix (one row per f̃)."""
        K_test = finite_array("K_test", K_test, ndim=2)
        if K_test.shape[1] != self.n:
            raise LabcoreError(f"K_test must have {self.n} columns, got shape {K_test.shape}")
        return self.dual_coefs(coefs) @ K_test.T

    def attach_population(self, coef_map: np.ndarray, theta: np.ndarray) -> None:
        """Let :meth:`risk_path` compute the exact excess risk ‖coef_map f̃ − θ‖²."""
        self._coef_map, self._theta = coef_map, theta

    def risk_path(self, coefs: np.ndarray) -> np.ndarray:
        """The excess population risk E(f̂ − f*)² of each row of f̃ (Mercer problems only)."""
        if self._coef_map is None:
            raise LabcoreError(
                "no population risk for this problem: build it with MercerData.regression(), "
                "or evaluate on a test sample with predict()"
            )
        diff = np.atleast_2d(coefs) @ self._coef_map.T - self._theta[None, :]
        return np.sum(diff**2, axis=1)

    def gradient_norm(self, coefs: np.ndarray) -> np.ndarray:
        """‖∇L‖ in the RKHS for each row of f̃."""
        residual = np.atleast_2d(coefs) - self.y_tilde
        return np.sqrt(np.sum(self.s * residual**2, axis=1) / self.n)

    def sharpness(self, coefs: np.ndarray, radius: float) -> np.ndarray:
        """SAM's sharpness max_{‖ε‖ ≤ radius} L(f + ε) − L(f), exactly, for each row of f̃.

        L is quadratic, so its Hessian (and λ_max) is the same everywhere; this worst-case
        increase, the quantity SAM penalizes, does depend on the point. It is a trust-region
        problem solved by its secular equation (bisection on the multiplier ν > λ_max).
        """
        radius = finite_float("radius", radius, minimum=0, strict=True)
        residual = np.atleast_2d(coefs) - self.y_tilde
        g = np.sqrt(self.s / self.n) * residual  # ∇L in the orthonormal eigenbasis
        s = self.s
        top = s >= s[0] * (1 - 1e-12)
        rest = ~top
        out = np.empty(g.shape[0])
        for row, gi in enumerate(g):
            gnorm = float(np.linalg.norm(gi))
            hard = gi[rest] / (s[0] - s[rest])
            if gnorm == 0.0 or (
                float(np.linalg.norm(gi[top])) <= 1e-300 and np.sum(hard**2) <= radius**2
            ):
                # Hard case: ν = λ_max exactly.
                e = np.zeros_like(gi)
                e[rest] = hard
            else:
                # hi must sit strictly above λ_max even when ‖g‖/r is below its ulp.
                lo = s[0]
                hi = max(s[0] + gnorm / radius, np.nextafter(s[0], np.inf))
                for _ in range(200):
                    mid = 0.5 * (lo + hi)
                    if mid in (lo, hi):
                        break
                    if np.sum((gi / (mid - s)) ** 2) > radius**2:
                        lo = mid
                    else:
                        hi = mid
                e = gi / (hi - s)
            # Near (or at) the hard case ν sits on λ_max to machine precision and e falls
            # short of the sphere; the rest of the length goes along the top eigenvector,
            # which only adds to the value.
            i = int(np.argmax(top))
            deficit = radius**2 - float(np.sum(e**2))
            if deficit > 0:
                sign = 1.0 if gi[i] >= 0 else -1.0
                e[i] = sign * np.sqrt(e[i] ** 2 + deficit)
            out[row] = float(gi @ e + 0.5 * np.sum(s * e**2))
        return out
