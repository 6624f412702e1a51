"""numba kernels: coordinate descent, local search, relaxation and dual bound.

Notation (see ``docs`` in the README): ``S`` is the p×p sample covariance of the centred (and by
default standardized) data, ``Theta`` the symmetric precision estimate and ``V = Theta @ S``,
kept up to date after every coordinate move, so that ``V[i] = (S θ_i)ᵀ``. The smooth part of the
objective is

    f(Θ) = Σ_i [ −log θ_ii + θ_iᵀ S θ_i / θ_ii ].

For an off-diagonal pair (i, j) with θ_ij = θ_ji = t, f restricted to t is ``a t² + b t + const``
with ``a = S_jj/θ_ii + S_ii/θ_jj`` and ``b = 2 (c_ij/θ_ii + c_ji/θ_jj)``, where
``c_ij = V[i, j] − S_jj t`` is (S θ_i)_j without t's own term. Moving t by δ changes rows i and j
of V by δ S[j] and δ S[i] (O(p)); evaluating a pair is O(1). The diagonal update is closed form:
θ_ii = R(S_ii, q_i) with R(a, b) = argmin_x −log x + a x + b/x = (1 + √(1 + 4ab)) / (2a) and q_i
the quadratic form of θ_i without its diagonal entry.

``state`` (int8, p×p, symmetric) fixes pairs in branch-and-bound: 0 free, 1 z = 0 (θ = 0),
2 z = 1 (penalty λ0 paid, θ free in [−M, M]).
"""

from __future__ import annotations

import math

import numba as nb

FREE = 0
ZERO = 1
ONE = 2

_jit = nb.njit(cache=True, nogil=True)


# --- one-dimensional operators -----------------------------------------------------------------


@_jit
def diag_argmin(a, b):
    """argmin over x > 0 of −log x + a x + b/x (a > 0, b ≥ 0)."""
    return (1.0 + math.sqrt(1.0 + 4.0 * a * b)) / (2.0 * a)


@_jit
def _clip(t, m):
    if t > m:
        return m
    if t < -m:
        return -m
    return t


@_jit
def l0l2_step(a, b, l0, l2, big_m, st):
    """Exact minimiser of (a + λ2) t² + b t + λ0·[t ≠ 0] over |t| ≤ M, respecting ``st``."""
    if st == ZERO:
        return 0.0
    t = _clip(-b / (2.0 * (a + l2)), big_m)
    if st == ONE:
        return t
    if (a + l2) * t * t + b * t + l0 < 0.0:
        return t
    return 0.0


@_jit
def perspective_constants(l0, l2, big_m):
    """(ratio, slope, quadratic_regime) of the perspective relaxation ψ of λ0 z + λ2 θ²/z.

    With ratio = √(λ0/λ2) ≤ M, ψ(t) = 2√(λ0λ2)|t| for |t| ≤ ratio and λ0 + λ2 t² beyond it
    (a reverse Huber). With ratio > M (or λ2 = 0) the box binds first and ψ(t) = (λ0/M + λ2 M)|t|.
    """
    if l2 > 0.0 and math.sqrt(l0 / l2) <= big_m:
        return math.sqrt(l0 / l2), 2.0 * math.sqrt(l0 * l2), True
    return math.inf, l0 / big_m + l2 * big_m, False


@_jit
def relax_step(a, b, l0, l2, big_m, st, ratio, slope, quad):
    """Exact minimiser of a t² + b t + pen(t) over |t| ≤ M: pen = ψ (free), λ0 + λ2t² (z=1)."""
    if st == ZERO:
        return 0.0
    if st == ONE:
        return _clip(-b / (2.0 * (a + l2)), big_m)
    mag = abs(b) - slope
    if mag <= 0.0:
        return 0.0
    t = -math.copysign(mag, b) / (2.0 * a)
    if quad and abs(t) > ratio:
        t = -b / (2.0 * (a + l2))
    return _clip(t, big_m)


@_jit
def relax_penalty(t, l0, l2, st, ratio, slope, quad):
    if st == ZERO:
        return 0.0
    if st == ONE:
        return l0 + l2 * t * t
    at = abs(t)
    if quad and at > ratio:
        return l0 + l2 * t * t
    return slope * at


@_jit
def relax_z(t, big_m, st, ratio, quad):
    """The z that attains ψ(t) (the relaxation's implied indicator)."""
    if st == ZERO:
        return 0.0
    if st == ONE:
        return 1.0
    at = abs(t)
    if quad:
        if ratio == 0.0:  # λ0 = 0: no l0 price, any nonzero is z = 1
            return 1.0 if at > 0.0 else 0.0
        return min(at / ratio, 1.0)
    return min(at / big_m, 1.0)


@_jit
def one_conjugate(y, l0, l2, big_m):
    """sup over |t| ≤ M of y t − λ0 − λ2 t² (y ≥ 0): the conjugate of the z = 1 penalty."""
    if l2 > 0.0 and y <= 2.0 * l2 * big_m:
        return y * y / (4.0 * l2) - l0
    return y * big_m - l2 * big_m * big_m - l0


# --- shared pieces -------------------------------------------------------------------------------


@_jit
def _pair_ab(S, Theta, V, i, j):
    t = Theta[i, j]
    di = Theta[i, i]
    dj = Theta[j, j]
    a = S[j, j] / di + S[i, i] / dj
    b = 2.0 * ((V[i, j] - S[j, j] * t) / di + (V[j, i] - S[i, i] * t) / dj)
    return a, b


@_jit
def _move_pair(S, Theta, V, i, j, t_new):
    delta = t_new - Theta[i, j]
    if delta != 0.0:
        Theta[i, j] = t_new
        Theta[j, i] = t_new
        p = S.shape[0]
        for k in range(p):
            V[i, k] += delta * S[j, k]
            V[j, k] += delta * S[i, k]
    return delta


@_jit
def _row_quad(Theta, V, i):
    """θ_iᵀ S θ_i."""
    s = 0.0
    for k in range(Theta.shape[0]):
        tk = Theta[i, k]
        if tk != 0.0:
            s += tk * V[i, k]
    return s


@_jit
def _update_diagonals(S, Theta, V):
    p = S.shape[0]
    for i in range(p):
        d = Theta[i, i]
        q = _row_quad(Theta, V, i) - 2.0 * d * V[i, i] + S[i, i] * d * d
        if q < 0.0:
            q = 0.0
        d_new = diag_argmin(S[i, i], q)
        delta = d_new - d
        if delta != 0.0:
            Theta[i, i] = d_new
            for k in range(p):
                V[i, k] += delta * S[i, k]


@_jit
def smooth_value(Theta, V):
    """Σ_i −log θ_ii + θ_iᵀ S θ_i / θ_ii."""
    p = Theta.shape[0]
    s = 0.0
    for i in range(p):
        d = Theta[i, i]
        s += -math.log(d) + _row_quad(Theta, V, i) / d
    return s


@_jit
def l0_penalty(Theta, l0, l2, state):
    """λ0·#(edges or z = 1 pairs) + λ2 Σ_{i<j} θ_ij²."""
    p = Theta.shape[0]
    s = 0.0
    for i in range(p):
        for j in range(i + 1, p):
            t = Theta[i, j]
            if t != 0.0 or state[i, j] == ONE:
                s += l0 + l2 * t * t
    return s


# --- coordinate descent on the l0-l2 objective (primal heuristic) --------------------------------


@_jit
def cd_l0l2_pairs(S, Theta, V, rows, cols, l0, l2, big_m, state):
    """One sweep over the listed pairs; returns how many pairs changed support."""
    changed = 0
    for k in range(rows.shape[0]):
        i = rows[k]
        j = cols[k]
        a, b = _pair_ab(S, Theta, V, i, j)
        t_old = Theta[i, j]
        t_new = l0l2_step(a, b, l0, l2, big_m, state[i, j])
        if (t_old == 0.0) != (t_new == 0.0):
            changed += 1
        _move_pair(S, Theta, V, i, j, t_new)
    return changed


@_jit
def cd_l0l2_full(S, Theta, V, l0, l2, big_m, state):
    """One sweep over every pair i < j (O(1) per untouched pair); returns support changes."""
    p = S.shape[0]
    changed = 0
    for i in range(p):
        for j in range(i + 1, p):
            a, b = _pair_ab(S, Theta, V, i, j)
            t_old = Theta[i, j]
            t_new = l0l2_step(a, b, l0, l2, big_m, state[i, j])
            if t_new != t_old:
                if (t_old == 0.0) != (t_new == 0.0):
                    changed += 1
                _move_pair(S, Theta, V, i, j, t_new)
    return changed


@_jit
def diagonal_sweep(S, Theta, V):
    _update_diagonals(S, Theta, V)


@_jit
def swap_search_row(S, Theta, V, i, l0, l2, big_m, state, tol):
    """Partial swap inversion on row i: drop one edge (i, j), add the best (i, k); keep if better.

    Returns the number of accepted swaps. Every candidate k is scored exactly in O(1) from V,
    so one row costs O(p · nnz(row)).
    """
    p = S.shape[0]
    accepted = 0
    for j in range(p):
        if j == i:
            continue
        t = Theta[i, j]
        if t == 0.0 or state[i, j] != FREE:
            continue
        a, b = _pair_ab(S, Theta, V, i, j)
        gain_remove = -((a + l2) * t * t + b * t + l0)  # objective change of setting t = 0
        _move_pair(S, Theta, V, i, j, 0.0)
        best_val = 0.0
        best_k = -1
        best_t = 0.0
        for k in range(p):
            if k in (i, j) or Theta[i, k] != 0.0 or state[i, k] != FREE:
                continue
            ak, bk = _pair_ab(S, Theta, V, i, k)
            tk = _clip(-bk / (2.0 * (ak + l2)), big_m)
            val = (ak + l2) * tk * tk + bk * tk + l0
            if val < best_val:
                best_val = val
                best_k = k
                best_t = tk
        if best_k >= 0 and gain_remove + best_val < -tol:
            _move_pair(S, Theta, V, i, best_k, best_t)
            accepted += 1
        else:
            _move_pair(S, Theta, V, i, j, t)
    return accepted


@_jit
def max_entry_gain(S, Theta, V, l2, big_m, state):
    """max over free zero pairs of the decrease a single l0-free move would give (λ0 = 0)."""
    p = S.shape[0]
    best = 0.0
    for i in range(p):
        for j in range(i + 1, p):
            if Theta[i, j] != 0.0 or state[i, j] != FREE:
                continue
            a, b = _pair_ab(S, Theta, V, i, j)
            t = _clip(-b / (2.0 * (a + l2)), big_m)
            g = -((a + l2) * t * t + b * t)
            if g > best:
                best = g
    return best


# --- perspective relaxation ----------------------------------------------------------------------


@_jit
def cd_relax_pairs(S, Theta, V, rows, cols, l0, l2, big_m, state):
    """One relaxation sweep over the listed pairs; returns the largest |move|."""
    ratio, slope, quad = perspective_constants(l0, l2, big_m)
    biggest = 0.0
    for k in range(rows.shape[0]):
        i = rows[k]
        j = cols[k]
        a, b = _pair_ab(S, Theta, V, i, j)
        t_new = relax_step(a, b, l0, l2, big_m, state[i, j], ratio, slope, quad)
        d = abs(_move_pair(S, Theta, V, i, j, t_new))
        if d > biggest:
            biggest = d
    return biggest


@_jit
def relax_value(Theta, V, l0, l2, big_m, state):
    """The relaxation's primal objective at Θ (feasible: |θ| ≤ M, zeros where z = 0)."""
    ratio, slope, quad = perspective_constants(l0, l2, big_m)
    p = Theta.shape[0]
    s = smooth_value(Theta, V)
    for i in range(p):
        for j in range(i + 1, p):
            s += relax_penalty(Theta[i, j], l0, l2, state[i, j], ratio, slope, quad)
    return s


@_jit
def relax_dual(S, Theta, V, l0, l2, big_m, state, viol_I, viol_J, viol_score):
    """Fenchel dual bound at the dual point implied by Θ, and the KKT violators.

    With ν_i = 2 X̃θ_i/θ_ii the dual function is Σ_i (1 + log α_i) − Σ_{i<j} ψ*_ij(|G_ij|),
    α_i = 2 V_ii/θ_ii − θ_iᵀSθ_i/θ_ii², G_ij = 2 (V_ij/θ_ii + V_ji/θ_jj) (the gradient of the
    smooth part in θ_ij), ψ* = 0 for z = 0, the z = 1 conjugate, or max(0, that) for free pairs.
    It is a valid lower bound on the node's relaxation (hence on its MIP) for any Θ with all
    α_i > 0, converged or not; returns −inf otherwise. Free zero pairs whose |G| exceeds the
    relaxation's threshold violate the optimality conditions and are written to ``viol_*``
    (up to their capacity, the largest first is not guaranteed); the count is returned.
    """
    p = S.shape[0]
    _, slope, _ = perspective_constants(l0, l2, big_m)
    total = 0.0
    valid = True
    for i in range(p):
        d = Theta[i, i]
        alpha = 2.0 * V[i, i] / d - _row_quad(Theta, V, i) / (d * d)
        if alpha <= 0.0:
            valid = False
        else:
            total += 1.0 + math.log(alpha)
    n_viol = 0
    cap = viol_I.shape[0]
    for i in range(p):
        di = Theta[i, i]
        for j in range(i + 1, p):
            st = state[i, j]
            if st == ZERO:
                continue
            g = abs(2.0 * (V[i, j] / di + V[j, i] / Theta[j, j]))
            c = one_conjugate(g, l0, l2, big_m)
            if st == FREE:
                if c > 0.0:
                    total -= c
                if Theta[i, j] == 0.0 and g > slope * (1.0 + 1e-9):
                    if n_viol < cap:
                        viol_I[n_viol] = i
                        viol_J[n_viol] = j
                        viol_score[n_viol] = g - slope
                    n_viol += 1
            else:
                total -= c
    if not valid:
        return -math.inf, n_viol
    return total, n_viol


@_jit
def implied_z(Theta, rows, cols, l0, l2, big_m, state, out):
    ratio, _, quad = perspective_constants(l0, l2, big_m)
    for k in range(rows.shape[0]):
        out[k] = relax_z(Theta[rows[k], cols[k]], big_m, state[rows[k], cols[k]], ratio, quad)


# --- CONCORD with an l1 penalty (baseline) -------------------------------------------------------


@_jit
def _concord_pair(S, Omega, V, i, j, lam):
    t = Omega[i, j]
    a = 0.5 * (S[i, i] + S[j, j])
    b = (V[i, j] - S[j, j] * t) + (V[j, i] - S[i, i] * t)
    mag = abs(b) - lam
    t_new = 0.0 if mag <= 0.0 else -math.copysign(mag, b) / (2.0 * a)
    return abs(_move_pair(S, Omega, V, i, j, t_new))


@_jit
def _concord_diagonals(S, Omega, V):
    p = S.shape[0]
    biggest = 0.0
    for i in range(p):
        d = Omega[i, i]
        c = V[i, i] - S[i, i] * d  # (S ω_{-i})_i
        d_new = (-c + math.sqrt(c * c + 4.0 * S[i, i])) / (2.0 * S[i, i])
        delta = d_new - d
        if delta != 0.0:
            Omega[i, i] = d_new
            for k in range(p):
                V[i, k] += delta * S[i, k]
            biggest = max(biggest, abs(delta))
    return biggest


@_jit
def concord_l1_sweep(S, Omega, V, lam, rows, cols, full):
    """One CD sweep of CONCORD: −Σ log ω_ii + ½ Σ_i ω_iᵀSω_i + λ Σ_{i<j} |ω_ij| (V = ΩS).

    Over every pair when ``full``, else over the listed pairs; returns the largest move.
    """
    p = S.shape[0]
    biggest = 0.0
    if full:
        for i in range(p):
            for j in range(i + 1, p):
                biggest = max(biggest, _concord_pair(S, Omega, V, i, j, lam))
    else:
        for k in range(rows.shape[0]):
            biggest = max(biggest, _concord_pair(S, Omega, V, rows[k], cols[k], lam))
    return max(biggest, _concord_diagonals(S, Omega, V))
