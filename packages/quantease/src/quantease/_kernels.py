"""The in-block coordinate-descent loop compiled with numba (CPU).

Rows are independent (f separates over output rows), so they run in parallel; inside a row
the columns of the block are visited in order and the block's part of G = (Ŵ - T) Σ is kept
exact by rank-1 updates. Columns outside the block are updated afterwards by one matrix
product in :mod:`quantease.core`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def sweep_block(Q, G, S, d, dead, scale, zero, maxq, i1, i2, relaxed, delta_block):
    rows = Q.shape[0]
    for r in prange(rows):
        for c in range(i1, i2):
            if dead[c]:
                continue
            old = Q[r, c]
            beta = old - G[r, c] / d[c]
            if relaxed:
                Q[r, c] = beta
            else:
                s = scale[r, c]
                z = zero[r, c]
                q = np.round(beta / s) + z
                if q < 0.0:
                    q = 0.0
                elif q > maxq:
                    q = maxq
                Q[r, c] = s * (q - z)
            # the change as stored (float32): float64 intermediates must not leak in as
            # phantom updates of G when the stored value did not move
            delta = Q[r, c] - old
            if delta != 0.0:
                delta_block[r, c - i1] = delta
                for k in range(i1, i2):
                    G[r, k] += delta * S[c, k]


@njit(parallel=True, cache=True)
def apply_sparse_delta(G, S, delta_block, i1, i2):
    """G[r, k] += Σ_j delta[r, j] S[i1 + j, k] for k outside [i1, i2), skipping zero deltas.

    Once the sweeps settle only a few entries change (typically under 1% after ten sweeps),
    so this row-wise update beats the dense matrix product it replaces.
    """
    rows, cols = G.shape
    width = i2 - i1
    for r in prange(rows):
        for j in range(width):
            delta = delta_block[r, j]
            if delta != 0.0:
                c = i1 + j
                for k in range(i1):
                    G[r, k] += delta * S[c, k]
                for k in range(i2, cols):
                    G[r, k] += delta * S[c, k]


@njit(parallel=True, cache=True)
def add_sparse_product(G, D, S):
    """G += D S for a mostly-zero D [rows, n] (dense storage), skipping its zero entries.

    The outlier step changes H on about twice its support (1% of the entries), so this costs
    about 2% of the dense product it replaces.
    """
    rows, n = D.shape
    cols = G.shape[1]
    for r in prange(rows):
        for j in range(n):
            v = D[r, j]
            if v != 0.0:
                for k in range(cols):
                    G[r, k] += v * S[j, k]
