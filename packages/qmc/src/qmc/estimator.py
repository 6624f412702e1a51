"""``QuantizedMatrixCompletion``: the scikit-learn style estimator around the ALM solver."""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from labcore.checks import choice, finite_float, positive_int
from labcore.errors import LabcoreError
from qmc.alm import (
    ALMConfig,
    ALMResult,
    ALMState,
    ObservedLevels,
    entries,
    lambda_max,
    optimality_certificate,
    solve_alm,
)
from qmc.likelihood import LINKS, OrdinalLikelihood
from qmc.thresholds import fit_thresholds


# auto_wrap_output_keys=None: transform(X=None) keeps its optional X (set_output's wrapper
# would require it); the output is always an ndarray.
class QuantizedMatrixCompletion(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Complete a low-rank matrix observed only as ordered levels (QMC-BIF).

    Minimizes −Σ_Ω log P(Y_ij | X_ij) + λ‖X‖_* over X = UVᵀ by the augmented Lagrangian
    method (see :mod:`qmc.alm`).

    The scikit-learn API treats the level matrix as the data: rows are samples (e.g. users),
    columns are features (items), NaN marks a missing entry (or pass ``mask`` to
    :meth:`fit`). It is transductive: :meth:`transform` and :meth:`predict` answer for rows
    of the fitted matrix (matched by value; ``None`` means all of them). Entrywise answers
    at coordinates (i, j) are :meth:`latent`, :meth:`predict_entries`,
    :meth:`predict_proba_entries` and :meth:`predict_expected_entries`.

    Parameters
    ----------
    rank : int
        Cap on the rank of X (the number of columns of U and V). Take it generously, above the
        rank you expect: the trace norm picks the rank, and a cap below the optimum's rank
        breaks the global-optimality guarantee (``certificate_`` then reports a spectral ratio
        above 1).
    lam : float or "auto"
        Trace-norm weight λ. ``"auto"`` fits a warm-started path of ``n_lambdas`` values from
        λ_max down to λ_max·``lambda_min_ratio`` on all but ``validation_fraction`` of each row's
        entries (stopping once two λ in a row validate worse than the best), picks the λ with
        the best held-out log-likelihood and refits on everything from that solution.
    link : "logistic" or "probit"
        The noise distribution.
    scale : float
        Noise scale σ, in the units of the thresholds.
    thresholds : "uniform", "learn" or array of L − 1 increasing values
        "uniform": ω_l = l + ½, so level l is the bin (l − ½, l + ½] and X is on the level
        scale. "learn": start from "uniform", then alternate the X fit with the maximum
        likelihood thresholds given X (``n_threshold_rounds`` times).
    n_levels : int or None
        Number of levels L; None takes the largest observed level (at least 2).

    Attributes
    ----------
    U_, V_, offset_ : X̂ = offset_ + U_ V_ᵀ; the offset is the mean over the observed entries
        of their levels' representative values (``likelihood.level_values()``: the bin
        centres), fixed and not penalized, so the trace norm does not shrink the mean.
    likelihood_ : the fitted :class:`~qmc.likelihood.OrdinalLikelihood` (on the scale of X̂).
    lam_ : the λ used for the final fit.
    path_ : list of dicts (λ, validation log-likelihood, rank, iterations) when lam="auto".
    objective_, n_iter_, converged_, certificate_, fit_time_.

    Examples
    --------
    >>> import numpy as np
    >>> from qmc import QuantizedMatrixCompletion
    >>> from qmc.data import synthetic
    >>> data = synthetic(m=40, n=30, rank=2, n_levels=5, observed=0.5, seed=0)
    >>> model = QuantizedMatrixCompletion(rank=6, lam=1.0).fit(data.Y, mask=data.mask)
    >>> model.predict_entries([0, 1], [2, 3]).shape
    (2,)
    >>> model.transform().shape, model.predict(data.Y[:5]).shape
    ((40, 30), (5, 30))
    >>> bool(model.converged_)
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks a missing level
        tags.input_tags.positive_only = True  # levels are 1..L
        return tags

    def __init__(
        self,
        rank: int = 30,
        lam: float | str = "auto",
        link: str = "logistic",
        scale: float = 1.0,
        thresholds="uniform",
        n_levels: int | None = None,
        n_lambdas: int = 8,
        lambda_min_ratio: float = 1e-2,
        validation_fraction: float = 0.1,
        n_threshold_rounds: int = 3,
        max_iter: int = 1000,
        tol: float = 1e-5,
        random_state=None,
    ):
        self.rank = rank
        self.lam = lam
        self.link = link
        self.scale = scale
        self.thresholds = thresholds
        self.n_levels = n_levels
        self.n_lambdas = n_lambdas
        self.lambda_min_ratio = lambda_min_ratio
        self.validation_fraction = validation_fraction
        self.n_threshold_rounds = n_threshold_rounds
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------
    def _validate(self) -> None:
        positive_int("rank", self.rank)
        if isinstance(self.lam, str):
            if self.lam != "auto":
                raise LabcoreError(f"lam must be a positive number or 'auto', got {self.lam!r}")
        else:
            finite_float("lam", self.lam, minimum=0.0, strict=True)
        choice("link", self.link, LINKS)
        finite_float("scale", self.scale, minimum=0.0, strict=True)
        positive_int("n_lambdas", self.n_lambdas, minimum=2)
        ratio = finite_float("lambda_min_ratio", self.lambda_min_ratio, minimum=0.0, strict=True)
        if ratio >= 1:
            raise LabcoreError(f"lambda_min_ratio must be < 1, got {ratio}")
        frac = finite_float("validation_fraction", self.validation_fraction, minimum=0.0)
        if not 0 < frac < 1:
            raise LabcoreError(f"validation_fraction must be in (0, 1), got {frac}")
        positive_int("n_threshold_rounds", self.n_threshold_rounds)

    def _likelihood(self, data: ObservedLevels) -> OrdinalLikelihood:
        top = int(data.levels.max())
        n_levels = self.n_levels
        if n_levels is None:
            n_levels = max(top, 2)
        n_levels = positive_int("n_levels", n_levels, minimum=2)
        if isinstance(self.thresholds, str):
            choice("thresholds", self.thresholds, ("uniform", "learn"))
            model = OrdinalLikelihood.uniform(n_levels, link=self.link, scale=self.scale)
        else:
            t = np.asarray(self.thresholds, dtype=np.float64).reshape(-1)
            if self.n_levels is not None and t.size != n_levels - 1:
                raise LabcoreError(
                    f"{t.size} thresholds give {t.size + 1} levels but n_levels={n_levels}"
                )
            model = OrdinalLikelihood(t, link=self.link, scale=self.scale)
        model.check_levels(data.levels)
        return model

    def fit(self, X, y=None, *, mask=None):
        """Fit to the levels of ``X`` (integers 1..L) at the entries where ``mask`` is true.

        Parameters
        ----------
        X : array-like of shape (m, n)
            The level matrix; NaN marks a missing entry.
        y : None
            Ignored (scikit-learn's signature).
        mask : array-like of bool of shape (m, n), optional
            True where X is observed; other entries may hold anything. None takes the
            non-NaN entries of X as observed.

        Returns
        -------
        self : QuantizedMatrixCompletion
        """
        self._validate()
        _refuse_positional_mask(y, X)
        t0 = time.perf_counter()
        Y = self._check_X(X, reset=True)
        if mask is None:
            mask = ~np.isnan(Y)
            if (Y[mask] < 0).any():
                raise LabcoreError(
                    f"Negative values in data passed to {type(self).__name__}: levels must be "
                    f"integers 1..L, found {Y[mask].min():g}"
                )
        data = ObservedLevels.from_matrix(Y, mask)
        self._X_fit = Y
        scale_model = self._likelihood(data)
        # The trace norm would also shrink the mean level (a rank-one matrix with a large
        # nuclear norm), so the latent matrix is centred at the mean observed level first,
        # as is usual before Soft-Impute; X̂ = offset_ + UVᵀ.
        offset = float(scale_model.level_values()[data.levels - 1].mean())
        model = scale_model.with_thresholds(scale_model.thresholds - offset)
        config = ALMConfig(max_iter=self.max_iter, tol=self.tol)
        rank = min(self.rank, *data.shape)
        self.path_ = []
        if self.lam == "auto":
            lam, state = self._select_lambda(data, model, rank, config)
        else:
            lam, state = float(self.lam), None
        result = solve_alm(
            data, model, lam, rank=rank, state=state, config=config, random_state=self.random_state
        )
        if isinstance(self.thresholds, str) and self.thresholds == "learn":
            for _ in range(self.n_threshold_rounds):
                z = entries(result.state.U, result.state.V, data.rows, data.cols)
                model = model.with_thresholds(fit_thresholds(z, data.levels, model))
                result = solve_alm(data, model, lam, rank=rank, state=result.state, config=config)
        self.offset_ = offset
        self._store(data, model, lam, result)
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _select_lambda(self, data, model, rank, config) -> tuple[float, object]:
        from labcore.lowrank import holdout_split

        mask = np.zeros(data.shape, dtype=bool)
        mask[data.rows, data.cols] = True
        train_mask, _ = holdout_split(
            mask, fraction=self.validation_fraction, random_state=self.random_state
        )
        keep = train_mask[data.rows, data.cols]
        train, valid = data.subset(keep), data.subset(~keep)
        if valid.n_observed == 0:
            raise LabcoreError("too few observed entries per row to hold out a validation set")
        # The path only ranks λ values, so its solves stop earlier than the final refit.
        path_config = replace(
            config, tol=max(10 * config.tol, 1e-4), max_iter=min(config.max_iter, 300)
        )
        top = lambda_max(train, model)
        lams = top * np.geomspace(1.0, self.lambda_min_ratio, self.n_lambdas + 1)[1:]
        state = None
        best = (-np.inf, lams[0], None)
        for lam in lams:
            res = solve_alm(
                train,
                model,
                lam,
                rank=rank,
                state=state,
                config=path_config,
                random_state=self.random_state,
            )
            state = res.state
            z = entries(state.U, state.V, valid.rows, valid.cols)
            score = float(model.log_prob(z, valid.levels).mean())
            self.path_.append(
                {
                    "lam": float(lam),
                    "validation_loglik": score,
                    "rank": _numerical_rank(state.U, state.V),
                    "n_iter": res.n_iter,
                }
            )
            if score > best[0] or best[2] is None:
                best = (score, lam, state)
            elif len(self.path_) - 1 - _argmax_path(self.path_) >= 2:
                break  # two smaller λ in a row validate worse: the path has turned
        return float(best[1]), ALMState.from_factors(best[2].U, best[2].V, data)

    def _store(self, data, model, lam, result: ALMResult) -> None:
        self.U_ = result.state.U
        self.V_ = result.state.V
        self.likelihood_ = model.with_thresholds(model.thresholds + self.offset_)
        self.thresholds_ = self.likelihood_.thresholds
        self.n_levels_ = model.n_levels
        self.lam_ = lam
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.objective_ = result.objective
        self.objective_history_ = result.objective_history
        self.primal_residual_ = result.primal_residual
        self.dual_residual_ = result.dual_residual
        self.rank_ = _numerical_rank(self.U_, self.V_)
        self.shape_ = data.shape
        self.certificate_ = optimality_certificate(self.U_, self.V_, data, model, lam)
        if self.certificate_["spectral_ratio"] > 1.01 and self.rank_ >= self.U_.shape[1]:
            warnings.warn(
                f"the rank cap {self.U_.shape[1]} binds: ‖∇f‖₂/λ = "
                f"{self.certificate_['spectral_ratio']:.3f} > 1, so this is not the trace-norm "
                "optimum; raise rank",
                RuntimeWarning,
                stacklevel=3,
            )
        if not result.converged:
            warnings.warn(
                f"ALM did not converge in {result.n_iter} iterations (primal residual "
                f"{result.primal_residual:.2e}, dual {result.dual_residual:.2e}); raise max_iter",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- prediction ----------------------------------------------------------------------
    def _check_X(self, X, *, reset: bool) -> np.ndarray:
        """X as floats through scikit-learn's ``validate_data`` (its errors as LabcoreError);
        the levels themselves are checked by :meth:`ObservedLevels.from_matrix`."""
        if hasattr(X, "toarray"):
            raise LabcoreError(
                "sparse input is not supported: pass a dense matrix with NaN for missing levels"
            )
        try:
            return validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        except LabcoreError:
            raise
        except ValueError as exc:
            if "convert" in str(exc):
                raise LabcoreError(f"X must be a numeric matrix of levels: {exc}") from None
            raise LabcoreError(str(exc)) from None
        except TypeError as exc:
            raise TypeError(
                f"X must be a numeric matrix of levels (NaN = missing): {exc}"
            ) from None

    def _check_fitted(self) -> None:
        check_is_fitted(self, "U_", msg="this %(name)s is not fitted yet; call fit")

    def _rows(self, X) -> np.ndarray:
        """Indices of the fitted rows that the rows of X are (all of them for X=None)."""
        self._check_fitted()
        if X is None:
            return np.arange(self.shape_[0])
        X = self._check_X(X, reset=False)
        if X.shape == self._X_fit.shape and np.array_equal(X, self._X_fit, equal_nan=True):
            return np.arange(X.shape[0])
        index: dict[bytes, int] = {}
        for i, key in enumerate(_row_keys(self._X_fit)):
            index.setdefault(key, i)
        rows = []
        for i, key in enumerate(_row_keys(X)):
            if key not in index:
                raise LabcoreError(
                    f"row {i} of X is not a row of the fitted matrix: the completion is "
                    "transductive, so refit with the new rows included"
                )
            rows.append(index[key])
        return np.asarray(rows, dtype=int)

    def _coords(self, i, j) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        i = np.asarray(i)
        j = np.asarray(j)
        if i.shape != j.shape:
            raise LabcoreError(f"row and column indices differ in shape: {i.shape} vs {j.shape}")
        if not (np.issubdtype(i.dtype, np.integer) and np.issubdtype(j.dtype, np.integer)):
            raise LabcoreError("row and column indices must be integers")
        m, n = self.shape_
        if i.size and (i.min() < 0 or i.max() >= m or j.min() < 0 or j.max() >= n):
            raise LabcoreError(f"indices out of range for a {m}×{n} matrix")
        return i, j

    def latent(self, i, j) -> np.ndarray:
        """X̂_ij at the given coordinates."""
        i, j = self._coords(i, j)
        return self.offset_ + entries(self.U_, self.V_, i.ravel(), j.ravel()).reshape(i.shape)

    def transform(self, X=None) -> np.ndarray:
        """Rows of the completed latent matrix X̂ = offset + UVᵀ.

        Parameters
        ----------
        X : array-like of shape (k, n), optional
            Rows of the matrix passed to :meth:`fit` (matched by value, NaN matching NaN; a
            row equal to several fitted rows gets the first). None means the whole matrix.

        Returns
        -------
        ndarray of shape (k, n), or (m, n) for X=None

        Raises
        ------
        LabcoreError
            A row of X is not a fitted row (transductive: refit with it).
        """
        rows = self._rows(X)
        return self.offset_ + self.U_[rows] @ self.V_.T

    def predict(self, X=None) -> np.ndarray:
        """The most likely level (1..L) at every entry of rows of the fitted matrix.

        Parameters
        ----------
        X : array-like of shape (k, n), optional
            Rows of the fitted matrix, as in :meth:`transform`; None means all of them.

        Returns
        -------
        ndarray of int, shape (k, n)
        """
        Z = self.transform(X)
        return self.likelihood_.log_prob_all(Z).argmax(axis=-1) + 1

    def predict_proba_entries(self, i, j) -> np.ndarray:
        """P(level = l | X̂_ij) at the coordinates (i, j), shape ``i.shape + (L,)``."""
        self._check_fitted()
        return np.exp(self.likelihood_.log_prob_all(self.latent(i, j)))

    def predict_entries(self, i, j) -> np.ndarray:
        """The most likely level (1..L) at each coordinate (i, j)."""
        self._check_fitted()
        return self.likelihood_.log_prob_all(self.latent(i, j)).argmax(axis=-1) + 1

    def predict_expected_entries(self, i, j) -> np.ndarray:
        """The expected level E[Y_ij | X̂_ij] at each coordinate (i, j) (minimizes the squared
        error on levels)."""
        p = self.predict_proba_entries(i, j)
        return p @ np.arange(1, self.n_levels_ + 1)

    def score(self, X, y=None, *, mask=None) -> float:
        """Mean log-likelihood of the levels of ``X`` at ``mask`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (m, n)
            Levels on the fitted matrix's shape (NaN = missing).
        y : None
            Ignored.
        mask : array-like of bool, optional
            True at the entries to score; None takes the non-NaN entries of X.

        Returns
        -------
        float
        """
        self._check_fitted()
        _refuse_positional_mask(y, X)
        Y = _numeric(X)
        if mask is None:
            mask = ~np.isnan(Y)
        data = ObservedLevels.from_matrix(Y, mask)
        if data.shape != self.shape_:
            raise LabcoreError(f"Y has shape {data.shape}, the model was fitted on {self.shape_}")
        levels = self.likelihood_.check_levels(data.levels)
        z = self.offset_ + entries(self.U_, self.V_, data.rows, data.cols)
        return float(self.likelihood_.log_prob(z, levels).mean())


def _numeric(Y) -> np.ndarray:
    try:
        return np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise LabcoreError("Y must be a numeric matrix of levels (NaN = missing)") from None


def _refuse_positional_mask(y, X) -> None:
    """y is ignored, but a y shaped like X is the old positional mask: say so."""
    if y is not None and np.ndim(y) == 2 and np.shape(y) == np.shape(X):
        raise LabcoreError(
            "the mask is a keyword argument: call fit(X, mask=mask) / score(X, mask=mask) "
            "(the second positional argument is scikit-learn's ignored y)"
        )


def _row_keys(X: np.ndarray) -> list[bytes]:
    """One hashable key per row: its bytes, with every NaN (and -0.0) made canonical."""
    Xc = np.where(np.isnan(X), np.nan, X + 0.0)
    return [row.tobytes() for row in np.ascontiguousarray(Xc)]


def _argmax_path(path: list[dict]) -> int:
    return int(np.argmax([p["validation_loglik"] for p in path]))


def _numerical_rank(U: np.ndarray, V: np.ndarray, rtol: float = 1e-6) -> int:
    r_u = np.linalg.qr(U, mode="r")
    r_v = np.linalg.qr(V, mode="r")
    s = np.linalg.svd(r_u @ r_v.T, compute_uv=False)
    return int((s > rtol * max(s[0], 1e-300)).sum()) if s.size else 0
