"""Swap local search on the support of the archetypes H.

Notation as in :mod:`archetypal_nmf.bcd`: Ψ = ‖X̂ − W H‖²_F + λ ‖H − W̃ X̂‖²_F with H (k × n)
limited to ℓ nonzeros in total. Proximal BCD moves the support of H only through hard
thresholding, which can stall at a wrong support; a swap (one support entry leaves, one
off-support entry enters) with W, W̃ and Z fixed can escape such points.

With everything else fixed, Ψ is a quadratic in a single entry h = H_ij:

    Ψ(h) = Ψ(h₀) + G_ij (h − h₀) + A_i (h − h₀)²,   A_i = ‖W[:, i]‖² + λ,

where G = ∇_H Ψ = −2Wᵀ(X̂ − WH) + 2λ(H − W̃X̂). So zeroing a support entry changes Ψ by
A_i h₀² − G_ij h₀, and an entering entry's best value is max(0, −G'/(2A)) with G' its
gradient after the leave (which differs from G only when both entries are in the same
column j, by −2 W[:, i']ᵀW[:, i] h₀). Every swap's change of Ψ is thus exact in closed form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archetypal_nmf.bcd import BCDResult, BCDState, _prepare, _psi, _run
from labcore.checks import positive_int

__all__ = ["local_search"]


def _best_swap(
    W: np.ndarray, H: np.ndarray, G: np.ndarray, lam: float, n_nonzero: int, size: int
) -> tuple[float, tuple[int, int] | None, tuple[int, int], float]:
    """The swap with the smallest exact change of Ψ among the ``size`` × ``size``
    candidates (plus pure entries when H has fewer than ℓ nonzeros).

    Returns (ΔΨ, leave entry or None, enter entry, new value of the enter entry).
    """
    n = H.shape[1]
    A = np.einsum("mi,mi->i", W, W) + lam  # curvature of Ψ in any entry of row i of H
    support = np.flatnonzero(H > 0)
    off = np.flatnonzero(H <= 0)

    # Leave candidates: the support entries whose removal costs least.
    h0 = H.flat[support]
    li, lj = np.divmod(support, n)
    leave_cost = A[li] * h0**2 - G.flat[support] * h0
    pick = np.argsort(leave_cost, kind="stable")[:size]
    li, lj, h0, leave_cost = li[pick], lj[pick], h0[pick], leave_cost[pick]
    if support.size < n_nonzero:
        # Budget left: "leave nothing" is a candidate too (row −1 with h₀ = 0 contributes
        # no interaction term below, and column −1 matches no column).
        li = np.append(li, -1)
        lj = np.append(lj, -1)
        h0 = np.append(h0, 0.0)
        leave_cost = np.append(leave_cost, 0.0)

    # Enter candidates: the off-support entries with the most negative gradient.
    pick = np.argsort(G.flat[off], kind="stable")[:size]
    enter = off[pick]
    ei, ej = np.divmod(enter, n)

    # Gradient at each enter entry after the leave entry is zeroed (pairs × enters).
    cross = W.T @ W
    same_col = lj[:, None] == ej[None, :]
    Gp = G.flat[enter][None, :] - 2.0 * cross[li[:, None], ei[None, :]] * h0[:, None] * same_col
    Ae = A[ei][None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        h_new = np.where(Ae > 0, np.maximum(-Gp / (2.0 * Ae), 0.0), 0.0)
    delta = leave_cost[:, None] + Ae * h_new**2 + Gp * h_new

    a, b = np.unravel_index(int(np.argmin(delta)), delta.shape)
    leave = None if li[a] < 0 else (int(li[a]), int(lj[a]))
    return float(delta[a, b]), leave, (int(ei[b]), int(ej[b])), float(h_new[a, b])


def local_search(
    X: Any,
    W: Any,
    H: Any,
    Wt: Any,
    *,
    lam: float,
    n_nonzero: int,
    mask: Any = None,
    Z: Any = None,
    size: int = 2,
    max_iter: int = 4,
    polish_iter: int = 20,
) -> BCDResult:
    """Improve the support of H by exact swaps, each followed by a short proximal BCD polish.

    Each round computes G = ∇_H Ψ, takes as leave candidates the ``size`` support entries
    whose zeroing increases Ψ least and as enter candidates the ``size`` off-support
    entries with the most negative G, and evaluates every (leave, enter) pair exactly: the
    leave entry set to 0, the enter entry set to its exact one-dimensional minimizer, W,
    W̃ and Z fixed. The best pair is accepted if Ψ, recomputed from scratch, decreases; then
    ``polish_iter`` iterations of :func:`~archetypal_nmf.bcd.prox_bcd` follow. The search
    stops when no candidate pair improves Ψ or after ``max_iter`` rounds. Ψ never increases.

    Parameters
    ----------
    X, W, H, Wt, lam, n_nonzero, mask, Z
        As for :func:`~archetypal_nmf.bcd.prox_bcd` (the start is projected onto the
        feasible set first).
    size : int
        Number of leave and of enter candidates per round (``size``² pairs are tried).
    max_iter : int
        Maximum number of rounds (accepted swaps).
    polish_iter : int
        Proximal BCD iterations after each accepted swap (0: none).

    Returns
    -------
    BCDResult
        ``objective`` holds Ψ at the start, after each accepted swap and after each polish
        iteration; ``n_iter`` counts accepted swaps; ``converged`` is True when the search
        stopped because no swap improved Ψ.
    """
    data, state, lam, n_nonzero = _prepare(
        X, W, H, Wt, lam=lam, n_nonzero=n_nonzero, mask=mask, Z=Z
    )
    size = positive_int("size", size)
    max_iter = positive_int("max_iter", max_iter, minimum=0)
    polish_iter = positive_int("polish_iter", polish_iter, minimum=0)

    W, H, Wt, Z = state.W, state.H, state.Wt, state.Z
    Xh = data.X if Z is None else Z
    WtX = Wt @ Xh
    R = Xh - W @ H
    D = H - WtX
    psi = _psi(R, D, lam)
    history = [psi]
    converged = False
    n_swaps = 0

    for _ in range(max_iter):
        if np.all(H > 0):
            converged = True  # nothing to swap
            break
        G = -2.0 * (W.T @ R) + 2.0 * lam * D
        delta, leave, enter, value = _best_swap(W, H, G, lam, n_nonzero, size)
        if not delta < 0.0:
            converged = True
            break
        Hn = H.copy()
        if leave is not None:
            Hn[leave] = 0.0
        Hn[enter] = value
        # Accept on the exactly recomputed Ψ, not the closed-form prediction, so rounding
        # cannot let Ψ increase.
        Rn = Xh - W @ Hn
        Dn = Hn - WtX
        psi_new = _psi(Rn, Dn, lam)
        if not psi_new < psi:
            converged = True
            break
        H, R, D, psi = Hn, Rn, Dn, psi_new
        history.append(psi)
        n_swaps += 1
        if polish_iter > 0:
            polished = _run(data, BCDState(W, H, Wt, Z), lam, n_nonzero, polish_iter, 0.0, True)
            W, H, Wt, Z = polished.W, polished.H, polished.Wt, polished.Z
            history.extend(polished.objective[1:])
            Xh = data.X if Z is None else Z
            WtX = Wt @ Xh
            R = Xh - W @ H
            D = H - WtX
            # Ψ as the polish recorded it, so the history stays exactly monotone.
            psi = polished.objective[-1]

    return BCDResult(W=W, H=H, Wt=Wt, Z=Z, objective=history, n_iter=n_swaps, converged=converged)
