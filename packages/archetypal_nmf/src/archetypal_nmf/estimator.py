"""The scikit-learn style estimator :class:`SparseArchetypalNMF`.

Mapping to scikit-learn's NMF: ``fit_transform(X)`` returns W (n_samples × k, each row on the
simplex: a point is a convex combination of archetypes) and ``components_`` is H (k ×
n_features, nonnegative, at most ``n_nonzero`` nonzeros in total): X ≈ W @ components_, as
in ``sklearn.decomposition.NMF``. The paper's W̃ (k × n_samples, row-stochastic, keeping each
archetype near conv(data)) is ``W_tilde_``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from labcore.checks import boolean_mask, choice, finite_float, positive_int
from labcore.errors import LabcoreError

INITS = ("spa", "mip", "furthest", "random")


def check_data(
    estimator: BaseEstimator,
    X: Any,
    mask: Any = None,
    *,
    reset: bool = True,
    masks_allowed: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate X (and its mask) for ``estimator``.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator the data is for: scikit-learn's ``validate_data`` records (``reset=True``)
        or checks (``reset=False``) its ``n_features_in_``.
    X : array-like of shape (n_samples, n_features)
        The data, nonnegative at the observed entries.
    mask : array-like of bool, optional
        True where X is observed; other entries of X may hold anything (NaN included).
    reset : bool, default=True
        True in ``fit``, False in ``transform``.
    masks_allowed : bool, default=True
        Whether NaN could be allowed by a mask (only changes the error message).

    Returns
    -------
    X : ndarray of float64
        X with its unobserved entries set to 0.
    mask : ndarray of bool or None
        The mask, or None when every entry is observed.

    Raises
    ------
    LabcoreError
        Sparse, complex, non-2-D or empty input, a feature count that differs from the fit,
        NaN or infinite values at observed entries, negative entries, a bad mask, or a
        column with no observed entry.
    """
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise LabcoreError("sparse input is not supported: pass a dense array (X.toarray())")
    try:
        X = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
    except LabcoreError:
        raise
    except ValueError as exc:  # scikit-learn's messages (shape, complex, feature count)
        raise LabcoreError(str(exc)) from None
    name = type(estimator).__name__
    if mask is not None:
        mask = boolean_mask(mask, X.shape, of="X")
        if not mask.any():
            raise LabcoreError("mask hides every entry of X: nothing is observed")
        if (empty := ~mask.any(axis=0)).any():
            raise LabcoreError(
                f"column(s) {np.flatnonzero(empty)[:10].tolist()} of X have no observed entry: "
                "nothing to estimate them from; drop them first"
            )
        observed = X[mask]
        if not np.isfinite(observed).all():
            raise LabcoreError("X has NaN or infinite values at observed entries (mask True)")
        if (observed < 0).any():
            raise LabcoreError(
                f"Negative values in data passed to {name}: X has negative entries "
                f"(min {observed.min():.4g}); NMF needs X >= 0"
            )
        if mask.all():
            mask = None
        X = np.where(mask, X, 0.0) if mask is not None else X
        return X, mask
    if np.isnan(X).any():
        if not masks_allowed:
            raise LabcoreError("X has NaN values; transform needs complete rows")
        raise LabcoreError(
            "X has NaN values; for missing entries pass mask=~np.isnan(X) (True = observed)"
        )
    if not np.isfinite(X).all():
        raise LabcoreError("X has infinite values")
    if (X < 0).any():
        raise LabcoreError(
            f"Negative values in data passed to {name}: X has negative entries "
            f"(min {X.min():.4g}); NMF needs X >= 0"
        )
    return X, None


class SparseArchetypalNMF(TransformerMixin, BaseEstimator):
    """Sparse NMF with archetypal regularization (Behdin and Mazumder, JMLR 2024).

    Solves min ‖X − W H‖² + λ‖H − W̃ X‖² over H ≥ 0 with at most ``n_nonzero`` nonzeros in
    total, and row-stochastic W and W̃, by proximal block coordinate descent with a
    continuation in λ (from ``lam_max`` down to ``lam``), after an initialization, followed
    by a local search over support swaps.

    Parameters
    ----------
    n_components
        k, the number of archetypes.
    n_nonzero
        ℓ, the total number of nonzeros allowed in H (default: no sparsity, k·n_features).
    lam
        λ, the weight of the archetypal term (0 gives sparse NMF with simplex W).
    init
        ``"spa"`` (successive projection: k extreme data points; cheap), ``"mip"`` (the
        outer-approximation MILP on the archetypal term, solved by HiGHS; seconds to
        minutes), ``"furthest"`` (furthest-point sampling) or ``"random"``.
    lam_max, n_lams
        The continuation path: ``n_lams`` log-spaced values from ``lam_max`` to ``lam``.
    max_iter, tol
        Per λ: at most ``max_iter`` BCD sweeps, stopping when the decrease falls below
        ``tol`` relative to the starting objective.
    local_search, ls_size, ls_iter
        Support-swap local search after the path: ``ls_size``² (leave, enter) pairs per
        round, at most ``ls_iter`` rounds.
    mip_options
        Passed to the MILP initialization (``max_cuts``, ``gap``, ``time_limit``, ``big_m``).
    random_state
        Integer seed for the random parts (``init="random"``, the furthest-point tie
        breaks); None means 0, so fits are reproducible by default.

    Attributes
    ----------
    components_ : ndarray (k, n_features)
        H, the archetypes.
    W_tilde_ : ndarray (k, n_samples)
        W̃: each archetype's weights on the data points.
    objective_ : list of float
        Ψ after each sweep, along the whole path and local search.
    reconstruction_err_ : float
        ‖M ⊙ (X − W H)‖_F (observed entries).
    n_iter_ : int
    init_info_ : dict
        What the initialization reported (the MILP's bounds and gap for ``init="mip"``).
    X_imputed_ : ndarray or None
        X with its missing entries estimated (only with a mask).

    Examples
    --------
    >>> from archetypal_nmf import SparseArchetypalNMF
    >>> from archetypal_nmf.data import planted
    >>> data = planted(m=30, k=3, n=12, density=0.5, noise=0.0, seed=0)
    >>> model = SparseArchetypalNMF(n_components=3, n_nonzero=18, lam=1.0, random_state=0)
    >>> W = model.fit_transform(data.X)
    >>> W.shape, model.components_.shape, int(np.count_nonzero(model.components_)) <= 18
    ((30, 3), (3, 12), True)
    >>> bool(np.allclose(W.sum(1), 1))
    True
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        n_nonzero: int | None = None,
        lam: float = 1.0,
        init: str = "spa",
        lam_max: float = 30.0,
        n_lams: int = 8,
        max_iter: int = 150,
        tol: float = 1e-4,
        local_search: bool = True,
        ls_size: int = 2,
        ls_iter: int = 4,
        mip_options: dict | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_nonzero = n_nonzero
        self.lam = lam
        self.init = init
        self.lam_max = lam_max
        self.n_lams = n_lams
        self.max_iter = max_iter
        self.tol = tol
        self.local_search = local_search
        self.ls_size = ls_size
        self.ls_iter = ls_iter
        self.mip_options = mip_options
        self.random_state = random_state

    def _validate(self, X: np.ndarray) -> tuple[int, int]:
        m, n = X.shape
        k = positive_int("n_components", self.n_components)
        if k > m:
            raise LabcoreError(
                f"n_components={k} is larger than the number of points ({m}): archetypes are "
                "combinations of points, so k must be at most n_samples"
            )
        ell = k * n if self.n_nonzero is None else positive_int("n_nonzero", self.n_nonzero)
        if ell > k * n:
            raise LabcoreError(f"n_nonzero={ell} exceeds the size of H ({k} × {n} = {k * n})")
        finite_float("lam", self.lam, minimum=0.0)
        finite_float("lam_max", self.lam_max, minimum=0.0, strict=True)
        positive_int("n_lams", self.n_lams)
        positive_int("max_iter", self.max_iter)
        finite_float("tol", self.tol, minimum=0.0)
        choice("init", self.init, INITS)
        positive_int("ls_size", self.ls_size)
        positive_int("ls_iter", self.ls_iter, minimum=0)
        if self.mip_options is not None and not isinstance(self.mip_options, dict):
            raise LabcoreError(f"mip_options must be a dict, got {type(self.mip_options).__name__}")
        if self.random_state is not None:
            positive_int("random_state", self.random_state, minimum=0)
        return k, ell

    def fit(self, X: Any, y: Any = None, *, mask: Any = None) -> SparseArchetypalNMF:
        """Fit the archetypes to X (n_samples × n_features, nonnegative)."""
        self.fit_transform(X, mask=mask)
        return self

    def fit_transform(self, X: Any, y: Any = None, *, mask: Any = None) -> np.ndarray:
        """Fit and return W (n_samples × k, rows on the simplex)."""
        from archetypal_nmf.bcd import continuation
        from archetypal_nmf.init import initialize
        from archetypal_nmf.local_search import local_search

        X, mask = check_data(self, X, mask)
        k, ell = self._validate(X)
        seed = 0 if self.random_state is None else int(self.random_state)
        started = time.perf_counter()
        # The initializations need a complete matrix: missing entries start at the column
        # means of the observed ones (the BCD then estimates them as a block).
        X_init = X if mask is None else _fill_column_means(X, mask)
        start = initialize(X_init, k, ell, method=self.init, seed=seed, **(self.mip_options or {}))
        Z = None if mask is None else X_init.copy()
        result = continuation(
            X,
            start.W,
            start.H,
            start.Wt,
            lam=float(self.lam),
            n_nonzero=ell,
            lam_max=float(self.lam_max),
            n_lams=int(self.n_lams),
            mask=mask,
            Z=Z,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
        )
        history = list(result.objective)
        n_iter = result.n_iter
        if self.local_search and self.ls_iter > 0:
            result = local_search(
                X,
                result.W,
                result.H,
                result.Wt,
                lam=float(self.lam),
                n_nonzero=ell,
                mask=mask,
                Z=result.Z,
                size=int(self.ls_size),
                max_iter=int(self.ls_iter),
            )
            history += list(result.objective)
            n_iter += result.n_iter
        self.components_ = result.H
        self.W_tilde_ = result.Wt
        self.objective_ = history
        self.n_iter_ = n_iter
        self.init_info_ = dict(start.info)
        self.fit_time_ = time.perf_counter() - started
        W = result.W
        if mask is None:
            self.X_imputed_ = None
            residual = X - W @ result.H
        else:
            self.X_imputed_ = np.where(mask, X, result.Z)
            residual = np.where(mask, X - W @ result.H, 0.0)
        self.reconstruction_err_ = float(np.linalg.norm(residual))
        return W

    def transform(self, X: Any) -> np.ndarray:
        """W for new points: each row of X projected onto the convex hull of the archetypes."""
        from archetypal_nmf.init import convex_hull_projection

        self._check_fitted()
        X, _ = check_data(self, X, reset=False, masks_allowed=False)
        return convex_hull_projection(X, self.components_)

    def inverse_transform(self, W: Any) -> np.ndarray:
        """W @ H: the points rebuilt from their archetype weights."""
        self._check_fitted()
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[1] != self.components_.shape[0]:
            raise LabcoreError(f"W must have {self.components_.shape[0]} columns, got {W.shape}")
        return W @ self.components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        # Missing entries need an explicit ``mask`` passed to fit; NaN without one is refused.
        tags.input_tags.allow_nan = False
        return tags

    def _check_fitted(self) -> None:
        check_is_fitted(
            self, "components_", msg="this %(name)s is not fitted yet: call fit(X) first"
        )


def _fill_column_means(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    counts = mask.sum(0)
    sums = np.where(mask, X, 0.0).sum(0)
    overall = sums.sum() / max(counts.sum(), 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
    return np.where(mask, X, means[None, :])
