"""The support costs of best subset selection and their gradients in the relaxed support.

For a support S (z ∈ {0,1}^p, Σz = s) the least-squares cost is the perspective ridge

    c(z) = min_{‖β‖₂ ≤ r}  (1/2n)‖y − Xβ‖² + (λ/2n) Σ_i β_i²/z_i      (β_i = 0 where z_i = 0),

and the hinge cost (labels y ∈ {−1, 1})

    c(z) = min_{‖β‖₂ ≤ r}  (1/n)Σ_k max(0, 1 − y_k x_kᵀβ) + (λ/n) Σ_i β_i²/z_i,

both convex in z ∈ [0,1]^p (partial minima of jointly convex functions over a convex set),
so each evaluation gives an outer-approximation cut. Their gradients (Danskin) are
∂c/∂z_i = −w(β_i/z_i)² with w = λ/2n (squared) or λ/n (hinge): on the support −w·β_i², and
off it the limit z_i → 0 of the optimality condition, which ties β_i/z_i to the data-fit
gradient g_i = ∂(fit term)/∂β_i at the optimum: −n·g_i²/(2λ) (squared, g = −Xᵀ(y − Xβ)/n)
and −n·g_i²/(4λ) (hinge, g = −Xᵀ(π∘y) with π the optimal dual weights).

The squared cost's inner problem is an s × s ridge system solved exactly (eigendecomposition;
the ball enters through a one-dimensional secular equation), from the Gram matrix XᵀX when p
is moderate; the hinge cost's is a second-order-cone program solved by Clarabel, whose dual
gives π. The official code solves both by projected (sub)gradient steps, so its cuts are
approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Up to this many features :class:`SquaredCost` keeps XᵀX (p² floats: 800 MB at p = 10⁴)
#: and works from it; the branch and bound of :mod:`dpbss.mistakes` needs it.
GRAM_MAX_P = 10_000


@dataclass
class SupportFit:
    value: float  # c(z) at the support
    beta: np.ndarray  # coefficients on the support (in support order)
    grad: np.ndarray  # ∂c/∂z for all p coordinates


def _ridge_in_ball(G: np.ndarray, b: np.ndarray, lam: float, r: float) -> np.ndarray:
    """argmin_{‖β‖ ≤ r} ½βᵀ(G + λI)β − bᵀβ (G PSD)."""
    evals, Q = np.linalg.eigh(G + lam * np.eye(len(b)))
    c = Q.T @ b
    beta = Q @ (c / evals)
    if np.linalg.norm(beta) <= r:
        return beta
    # ‖β(t)‖ = ‖c / (evals + t)‖ decreases in t ≥ 0: bracket the root, then bisect.
    lo, hi = 0.0, max(np.linalg.norm(c) / r, 1e-12)
    for _ in range(200):
        t = 0.5 * (lo + hi)
        if np.linalg.norm(c / (evals + t)) > r:
            lo = t
        else:
            hi = t
        if hi - lo <= 1e-15 * max(hi, 1.0):
            break
    return Q @ (c / (evals + hi))


class SquaredCost:
    """The least-squares support cost (see the module notes) of one data set.

    Parameters
    ----------
    X, y
        Data (n × p, n).
    lam, r
        The ridge weight λ and the radius r of the ball ‖β‖₂ ≤ r.
    """

    loss = "squared"

    def __init__(self, X: np.ndarray, y: np.ndarray, lam: float, r: float) -> None:
        self.X, self.y, self.lam, self.r = X, y, float(lam), float(r)
        self.n, self.p = X.shape
        self.Xty = X.T @ y
        self.yy = float(y @ y)
        self.gram = X.T @ X if self.p <= GRAM_MAX_P else None

    def _block(self, support: np.ndarray) -> np.ndarray:
        if self.gram is not None:
            return self.gram[np.ix_(support, support)]
        XS = self.X[:, support]
        return XS.T @ XS

    def fit(self, support) -> SupportFit:
        """c and ∂c/∂z at a support (indices)."""
        support = np.asarray(support, dtype=np.int64)
        G = self._block(support)
        b = self.Xty[support]
        beta = _ridge_in_ball(G, b, self.lam, self.r)
        if self.gram is not None:
            rho = self.Xty - self.gram[:, support] @ beta  # Xᵀ(y − X_Sβ) = n·(−g)
            rss = self.yy - 2 * b @ beta + beta @ G @ beta
        else:
            resid = self.y - self.X[:, support] @ beta
            rho = self.X.T @ resid
            rss = resid @ resid
        value = (max(rss, 0.0) + self.lam * beta @ beta) / (2 * self.n)
        grad = -(rho**2) / (2 * self.n * self.lam)
        grad[support] = -self.lam * beta**2 / (2 * self.n)
        return SupportFit(float(value), beta, grad)

    def value(self, support: np.ndarray) -> float:
        """c at one support (no gradient): the fast path of a Markov chain's step."""
        G = self._block(support)
        b = self.Xty[support]
        beta = np.linalg.solve(G + self.lam * np.eye(len(b)), b)
        if beta @ beta > self.r**2:
            beta = _ridge_in_ball(G, b, self.lam, self.r)
        rss = self.yy - 2 * b @ beta + beta @ G @ beta
        return float((max(rss, 0.0) + self.lam * beta @ beta) / (2 * self.n))

    def losses(self, supports: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """c for many supports (rows of ``supports``, each of size s), batched."""
        supports = np.asarray(supports, dtype=np.int64)
        s = supports.shape[1] if supports.ndim == 2 else 0
        out = np.empty(len(supports))
        eye = np.eye(s)
        if self.gram is None:  # an (m, n, s) gather per chunk: keep it near 160 MB
            chunk = max(1, min(chunk, 20_000_000 // max(self.n * s, 1)))
        for start in range(0, len(supports), chunk):
            block = supports[start : start + chunk]
            if self.gram is not None:
                G = self.gram[block[:, :, None], block[:, None, :]]
            else:
                XS = self.X[:, block].transpose(1, 0, 2)  # (m, n, s)
                G = np.einsum("mni,mnj->mij", XS, XS)
            b = self.Xty[block]
            beta = np.linalg.solve(G + self.lam * eye, b[..., None])[..., 0]
            for k in np.flatnonzero(np.linalg.norm(beta, axis=1) > self.r):  # ball binds: rare
                beta[k] = _ridge_in_ball(G[k], b[k], self.lam, self.r)
            rss = (
                self.yy
                - 2 * np.einsum("mi,mi->m", b, beta)
                + np.einsum("mi,mij,mj->m", beta, G, beta)
            )
            out[start : start + len(block)] = (
                np.maximum(rss, 0.0) + self.lam * np.einsum("mi,mi->m", beta, beta)
            ) / (2 * self.n)
        return out


class HingeCost:
    """The hinge support cost (see the module notes); labels must be ±1.

    ``fit`` also takes a fractional ``z`` (entries in (0, 1] on the support) so that the
    gradient can be checked against finite differences.
    """

    loss = "hinge"

    def __init__(self, X: np.ndarray, y: np.ndarray, lam: float, r: float) -> None:
        self.X, self.y, self.lam, self.r = X, y, float(lam), float(r)
        self.n, self.p = X.shape
        self.Xty = X.T @ y

    def _solve(self, support: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(value, β, π): min (1/n)Σξ + (λ/n)Σβ_i²/z_i, ξ ≥ 0, ξ_k ≥ 1 − y_k x_kᵀβ, ‖β‖ ≤ r."""
        import clarabel
        from scipy import sparse

        n, s = self.n, len(support)
        YX = self.y[:, None] * self.X[:, support]
        # variables (β, ξ); P = diag(2λ/(n z_i)) on β; q = (0, 1/n).
        P = sparse.diags(np.concatenate([2 * self.lam / (n * z), np.zeros(n)])).tocsc()
        P = sparse.triu(P, format="csc")
        q = np.concatenate([np.zeros(s), np.full(n, 1.0 / n)])
        # Ax + slack = b: −(YX β + ξ) + t = −1 with t ≥ 0; −ξ + t = 0 with t ≥ 0;
        # (r, β) in the second-order cone: [0; −I]x + t = [r; 0].
        A = sparse.vstack(
            [
                sparse.hstack([sparse.csc_matrix(-YX), -sparse.identity(n)]),
                sparse.hstack([sparse.csc_matrix((n, s)), -sparse.identity(n)]),
                sparse.hstack([sparse.csc_matrix((1, s)), sparse.csc_matrix((1, n))]),
                sparse.hstack([-sparse.identity(s), sparse.csc_matrix((s, n))]),
            ],
            format="csc",
        )
        b = np.concatenate([-np.ones(n), np.zeros(n), [self.r], np.zeros(s)])
        cones = [clarabel.NonnegativeConeT(2 * n), clarabel.SecondOrderConeT(s + 1)]
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
        settings.tol_feas = 1e-10
        sol = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
        if str(sol.status) not in ("Solved", "AlmostSolved"):
            raise RuntimeError(
                f"the hinge subproblem on support {support.tolist()} was not solved "
                f"(Clarabel: {sol.status}); its cost would be wrong"
            )
        x = np.asarray(sol.x)
        beta, xi = x[:s], np.maximum(x[s:], 0.0)
        value = xi.sum() / n + self.lam / n * np.sum(beta**2 / z)
        pi = np.clip(np.asarray(sol.z)[:n], 0.0, 1.0 / n)  # the margin rows' duals
        return float(value), beta, pi

    def fit(self, support, z: np.ndarray | None = None) -> SupportFit:
        support = np.asarray(support, dtype=np.int64)
        z = np.ones(len(support)) if z is None else np.asarray(z, dtype=float)
        value, beta, pi = self._solve(support, z)
        g = -(self.X.T @ (pi * self.y))  # gradient of the mean hinge at β
        grad = -self.n * g**2 / (4 * self.lam)
        grad[support] = -self.lam / self.n * (beta / z) ** 2
        return SupportFit(value, beta, grad)

    def losses(self, supports: np.ndarray) -> np.ndarray:
        return np.array([self._solve(np.asarray(S), np.ones(len(S)))[0] for S in supports])


def make_cost(X, y, *, loss: str, lam: float, r: float) -> SquaredCost | HingeCost:
    if loss == "squared":
        return SquaredCost(X, y, lam, r)
    if loss == "hinge":
        return HingeCost(X, y, lam, r)
    raise ValueError(f"unknown loss {loss!r}; expected 'squared' or 'hinge'")


def least_squares_fit(
    X: np.ndarray, y: np.ndarray, support: np.ndarray, lam: float, r: float
) -> SupportFit:
    """c(z) and ∂c/∂z for one support (indices) of the least-squares cost."""
    return SquaredCost(X, y, lam, r).fit(support)


def least_squares_losses(
    X: np.ndarray, y: np.ndarray, supports: np.ndarray, lam: float, r: float
) -> np.ndarray:
    """The least-squares cost of many supports (rows of ``supports``)."""
    return SquaredCost(X, y, lam, r).losses(supports)
