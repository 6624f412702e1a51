"""The peers the benchmark runs side by side, each returning archetypes H (k × n) and
weights W (m × k) on the same data.

- ``saa``: this package (:class:`SparseArchetypalNMF`), with SPA or MILP initialization;
  ``saa-nolam`` is the same solver with λ = 0 (sparse NMF with simplex W, no archetypal
  term).
- ``nmf-l1``: scikit-learn's NMF with an l1 penalty on H. Its factors have a free scale
  (W D, D⁻¹ H); we pick the nonnegative D that makes W's rows sum closest to one, so that
  its H is on the same scale as archetypes.
- ``aa``: archetypal analysis from the ``archetypes`` package (no sparsity).
- ``pcha``: principal convex hull analysis from ``py_pcha`` (no sparsity).
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from labcore.errors import LabcoreError


@dataclass
class Fit:
    method: str
    H: np.ndarray
    W: np.ndarray
    time_s: float
    info: dict = field(default_factory=dict)


def fit_saa(X, k, n_nonzero, *, lam=1.0, init="spa", seed=0, mask=None, **kw) -> Fit:
    from archetypal_nmf.estimator import SparseArchetypalNMF

    model = SparseArchetypalNMF(
        n_components=k, n_nonzero=n_nonzero, lam=lam, init=init, random_state=seed, **kw
    )
    start = time.perf_counter()
    W = model.fit_transform(X, mask=mask)
    elapsed = time.perf_counter() - start
    info = {"objective": model.objective_[-1], "init": model.init_info_}
    return Fit("saa", model.components_, W, elapsed, info)


def fit_nmf_l1(X, k, *, alpha=None, seed=0) -> Fit:
    from scipy.optimize import nnls
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    # alpha_H scales with the data: a small l1 weight relative to the mean squared entry.
    alpha = float(np.mean(X**2)) * 0.1 if alpha is None else float(alpha)
    model = NMF(
        n_components=k,
        init="nndsvda",
        alpha_W=0.0,
        alpha_H=alpha,
        l1_ratio=1.0,
        max_iter=1000,
        random_state=seed,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():  # it often stops at max_iter; the table shows its error
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = model.fit_transform(X)
    H = model.components_
    # Rescale only live components (nonzero in both factors); a live component that nnls
    # would zero keeps d = 1, so that W_scaled @ H_scaled = W @ H exactly.
    live = (np.abs(H).sum(1) > 0) & (np.abs(W).sum(0) > 0)
    d = np.ones(k)
    if live.any():
        d_live, _ = nnls(W[:, live], np.ones(W.shape[0]))
        d[live] = np.where(d_live > 0, d_live, 1.0)
    W_scaled = W * d[None, :]
    H_scaled = H / d[:, None]
    elapsed = time.perf_counter() - start
    return Fit("nmf-l1", H_scaled, W_scaled, elapsed, {"alpha_H": alpha})


def _quiet_import_archetypes():
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its backend on import
        import archetypes
    return archetypes


def fit_aa(X, k, *, seed=0) -> Fit:
    try:
        arch = _quiet_import_archetypes()
    except ImportError as exc:
        raise LabcoreError(
            "the aa baseline needs archetypes: pip install 'archetypal-nmf[baselines]'"
        ) from exc
    start = time.perf_counter()
    model = arch.AA(n_archetypes=k, random_state=seed, max_iter=500).fit(X)
    W = model.transform(X)
    return Fit("aa", np.asarray(model.archetypes_), np.asarray(W), time.perf_counter() - start)


def fit_pcha(X, k, *, seed=0, delta=0.0) -> Fit:
    try:
        from py_pcha import PCHA
    except ImportError as exc:
        raise LabcoreError(
            "the pcha baseline needs py_pcha: pip install 'archetypal-nmf[baselines]'"
        ) from exc
    # py_pcha 0.1.3 still calls np.mat, removed in NumPy 2; alias it for the call only.
    had_mat = hasattr(np, "mat")
    if not had_mat:
        np.mat = np.asmatrix  # type: ignore[attr-defined]
    state = np.random.get_state()  # PCHA draws its initial columns with the global generator
    try:
        start = time.perf_counter()
        retries = 0
        while True:
            # PCHA's first pick is int(ceil(N·rand)), out of range with probability 1/N:
            # its InitializationException then just means "draw again".
            np.random.seed(seed + 1000 * retries)
            try:
                with warnings.catch_warnings():  # its np.matrix use warns on every iteration
                    warnings.simplefilter("ignore", PendingDeprecationWarning)
                    XC, S, _, _, _ = PCHA(X.T, noc=k, delta=delta)
                break
            except Exception as exc:
                if type(exc).__name__ != "InitializationException" or retries >= 5:
                    raise
                retries += 1
        elapsed = time.perf_counter() - start
    finally:
        np.random.set_state(state)
        if not had_mat:
            del np.mat  # type: ignore[attr-defined]
    return Fit("pcha", np.asarray(XC).T, np.asarray(S).T, elapsed, {"init_retries": retries})
