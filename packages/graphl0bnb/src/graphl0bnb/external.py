"""Independent solvers for the l0-l2 pseudolikelihood problem, for cross-checks and comparison.

The problem, on the (standardized) covariance ``S``::

    minimise over symmetric Θ (θ_ii > 0) and z ∈ {0, 1}^{p(p-1)/2}
        Σ_i [ −log θ_ii + θ_iᵀ S θ_i / θ_ii ] + Σ_{i<j} ( λ0 z_ij + λ2 θ_ij² ),
        |θ_ij| ≤ M z_ij,

with θ_i the i-th column of Θ. Three functions solve pieces of it with off-the-shelf solvers:

* :func:`relaxation_cvxpy` — the perspective relaxation at a branch-and-bound node (cvxpy with a
  conic solver, Clarabel by default), to check the package's own relaxation bounds;
* :func:`support_value_cvxpy` — the optimum with the support fixed, so that enumerating supports
  gives the exact optimum of small problems;
* :func:`scip_solve` — the full mixed-integer nonlinear program with SCIP (PySCIPOpt), the
  external baseline of the benchmark.

cvxpy/Clarabel come with the ``graphl0bnb[verify]`` extra and PySCIPOpt with ``graphl0bnb[scip]``;
both are imported only when these functions are called.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from graphl0bnb.problem import GraphL0BnBError, check_penalties

# Node fixings, as in graphl0bnb._kernels (kept literal so this module does not need numba).
FREE, ZERO, ONE = 0, 1, 2

D_MIN = 1e-6  # lower bound on the diagonal θ_ii in the SCIP model (keeps log θ_ii defined)


# --- optional dependencies ------------------------------------------------------------------------


def _import_cvxpy():
    try:
        import cvxpy as cp
    except ImportError as exc:
        raise ImportError(
            "this function needs cvxpy and Clarabel; install them with the extra "
            "`graphl0bnb[verify]` (pip install 'graphl0bnb[verify]')"
        ) from exc
    return cp


def _import_scip():
    try:
        import pyscipopt
    except ImportError as exc:
        raise ImportError(
            "scip_solve needs PySCIPOpt; install it with the extra "
            "`graphl0bnb[scip]` (pip install 'graphl0bnb[scip]')"
        ) from exc
    return pyscipopt


# --- input checks ---------------------------------------------------------------------------------


def _check_cov(S) -> np.ndarray:
    """A finite, symmetric, positive-semidefinite p × p matrix (p ≥ 2) with a positive diagonal."""
    try:
        S = np.asarray(S, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphL0BnBError(f"S must be a numeric array: {exc}") from None
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise GraphL0BnBError(f"S must be a square 2-D matrix, got shape {S.shape}")
    if S.shape[0] < 2:
        raise GraphL0BnBError(f"S is {S.shape[0]} × {S.shape[0]}; a graph needs at least 2 nodes")
    if not np.isfinite(S).all():
        raise GraphL0BnBError("S contains NaN or infinite values")
    scale = max(1.0, float(np.abs(S).max()))
    if not np.allclose(S, S.T, rtol=0.0, atol=1e-8 * scale):
        raise GraphL0BnBError("S must be symmetric")
    if (np.diag(S) <= 0).any():
        raise GraphL0BnBError(
            "S must have a positive diagonal (a zero variance makes the objective unbounded)"
        )
    S = (S + S.T) / 2.0
    if np.linalg.eigvalsh(S)[0] < -1e-8 * scale:
        raise GraphL0BnBError("S must be positive semidefinite")
    return S


def _check_penalties(l0, l2, M) -> tuple[float, float, float]:
    if M is None:
        raise GraphL0BnBError("M must be given (a number > 0, or math.inf for no box)")
    # M = inf (no box) is allowed here, unlike in the estimator.
    check_penalties(l0, l2, None if math.inf == M else M)
    return float(l0), float(l2), float(M)


def _check_state(state, p: int) -> np.ndarray:
    if state is None:
        return np.zeros((p, p), dtype=np.int8)
    state = np.asarray(state)
    if state.shape != (p, p):
        raise GraphL0BnBError(f"state must have shape {(p, p)} like S, got {state.shape}")
    if not np.isin(state, (FREE, ZERO, ONE)).all():
        raise GraphL0BnBError("state entries must be 0 (free), 1 (z = 0) or 2 (z = 1)")
    if not (state == state.T).all():
        raise GraphL0BnBError("state must be symmetric")
    return state.astype(np.int8)


def _square_root(S: np.ndarray) -> np.ndarray:
    """L with LᵀL = S: diag(√w) Uᵀ from the eigendecomposition, zero-eigenvalue rows dropped."""
    w, U = np.linalg.eigh(S)
    keep = w > 1e-14 * max(1.0, float(w[-1]))
    return np.sqrt(w[keep])[:, None] * U[:, keep].T


# --- cvxpy: perspective relaxation and fixed-support values ----------------------------------------


def relaxation_cvxpy(
    S: np.ndarray,
    l0: float,
    l2: float,
    M: float,
    state: np.ndarray | None = None,
    solver: str = "CLARABEL",
) -> float:
    """Optimal value of the perspective relaxation at a node, solved with cvxpy.

    Free pairs relax z_ij to [0, 1] and pay ``l0·z_ij + l2·s_ij`` with the perspective constraint
    θ_ij² ≤ s_ij z_ij and the box |θ_ij| ≤ M z_ij. Pairs fixed to z = 0 have θ_ij = 0 and no
    cost; pairs fixed to z = 1 pay ``l0 + l2·θ_ij²`` with |θ_ij| ≤ M. The smooth part is
    Σ_i −log θ_ii + ‖L θ_i‖² / θ_ii with LᵀL = S.

    Parameters
    ----------
    S : ndarray of shape (p, p)
        Symmetric positive-semidefinite covariance with a positive diagonal.
    l0, l2 : float
        The l0 (per edge) and l2 penalties, both ≥ 0.
    M : float
        The big-M bound on |θ_ij| (``math.inf`` drops the box).
    state : ndarray of shape (p, p), optional
        Node fixings, symmetric int8: 0 free, 1 z fixed to 0, 2 z fixed to 1 (the package's
        encoding). ``None`` (the root) leaves every pair free.
    solver : str, default "CLARABEL"
        The cvxpy solver name.

    Returns
    -------
    float
        The relaxation's optimal value, a lower bound on the node's optimum (and equal to it
        when no pair is free).

    Raises
    ------
    GraphL0BnBError
        On a bad S, state or penalty.
    ImportError
        When cvxpy is missing (the ``graphl0bnb[verify]`` extra).
    RuntimeError
        When the solver does not report an optimal solution.
    """
    S = _check_cov(S)
    l0, l2, M = _check_penalties(l0, l2, M)
    state = _check_state(state, S.shape[0])
    cp = _import_cvxpy()
    return _relaxation_value(cp, S, l0, l2, M, state, solver)


def _relaxation_value(cp, S, l0, l2, M, state, solver) -> float:
    p = S.shape[0]
    L = _square_root(S)
    Theta = cp.Variable((p, p), symmetric=True)
    d = cp.diag(Theta)
    LT = L @ Theta  # column i is L θ_i
    smooth = sum(-cp.log(d[i]) + cp.quad_over_lin(LT[:, i], d[i]) for i in range(p))
    terms = [smooth]
    cons = []

    iu, ju = np.triu_indices(p, 1)
    st = state[iu, ju]
    free, zero, one = (st == FREE), (st == ZERO), (st == ONE)

    if zero.any():
        cons.append(Theta[iu[zero], ju[zero]] == 0)
    if one.any():
        t1 = Theta[iu[one], ju[one]]
        terms.append(l0 * int(one.sum()))
        if l2 > 0:
            terms.append(l2 * cp.sum_squares(t1))
        if math.isfinite(M):
            cons.append(cp.abs(t1) <= M)
    if free.any():
        k = int(free.sum())
        t = Theta[iu[free], ju[free]]
        z = cp.Variable(k)
        cons += [z >= 0, z <= 1]
        terms.append(l0 * cp.sum(z))
        if math.isfinite(M):
            cons.append(cp.abs(t) <= M * z)
        if l2 > 0:
            s = cp.Variable(k)
            # Rotated cone θ² ≤ s z, elementwise: ‖(2θ, s − z)‖ ≤ s + z.
            cons.append(cp.SOC(s + z, cp.vstack([2 * t, s - z]), axis=0))
            terms.append(l2 * cp.sum(s))

    prob = cp.Problem(cp.Minimize(cp.sum(cp.hstack(terms))), cons)
    prob.solve(solver=solver)
    if prob.status == cp.OPTIMAL_INACCURATE:
        warnings.warn(
            f"{solver} reports an inaccurate optimum ({prob.value})", RuntimeWarning, stacklevel=3
        )
    elif prob.status != cp.OPTIMAL:
        raise RuntimeError(f"{solver} did not solve the relaxation: status {prob.status}")
    return float(prob.value)


def support_value_cvxpy(
    S: np.ndarray,
    support: Iterable[tuple[int, int]],
    l2: float,
    M: float,
    l0: float = 0.0,
    solver: str = "CLARABEL",
) -> float:
    """Optimal objective with the support fixed: z_ij = 1 on ``support`` and 0 elsewhere.

    This is ``l0·len(support)`` plus the minimum of the smooth part and the ridge term over Θ with
    θ_ij = 0 off the support and |θ_ij| ≤ M on it. Minimising it over every support gives the
    exact optimum of a small problem.

    Parameters
    ----------
    S : ndarray of shape (p, p)
        Symmetric positive-semidefinite covariance with a positive diagonal.
    support : iterable of (i, j)
        Distinct pairs with i ≠ j (the order within a pair does not matter).
    l2 : float
        The l2 penalty, ≥ 0.
    M : float
        The big-M bound on |θ_ij| (``math.inf`` drops the box).
    l0 : float, default 0.0
        The l0 penalty per support pair.
    solver : str, default "CLARABEL"
        The cvxpy solver name.

    Returns
    -------
    float
        The optimal objective with that support.

    Raises
    ------
    GraphL0BnBError
        On a bad S, pair or penalty.
    ImportError
        When cvxpy is missing (the ``graphl0bnb[verify]`` extra).
    RuntimeError
        When the solver does not report an optimal solution.
    """
    S = _check_cov(S)
    l0, l2, M = _check_penalties(l0, l2, M)
    p = S.shape[0]
    state = np.full((p, p), ZERO, dtype=np.int8)
    seen = set()
    for pair in support:
        try:
            i, j = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise GraphL0BnBError(f"support entries must be pairs of ints, got {pair!r}") from None
        if not (0 <= i < p and 0 <= j < p) or i == j:
            raise GraphL0BnBError(
                f"support pair {(i, j)} is not an off-diagonal pair of 0..{p - 1}"
            )
        key = (min(i, j), max(i, j))
        if key in seen:
            raise GraphL0BnBError(f"support pair {key} appears twice")
        seen.add(key)
        state[i, j] = state[j, i] = ONE
    cp = _import_cvxpy()
    return _relaxation_value(cp, S, l0, l2, M, state, solver)


# --- SCIP: the full MINLP --------------------------------------------------------------------------


@dataclass
class ScipResult:
    """Outcome of :func:`scip_solve`.

    ``objective`` is SCIP's best primal value (``inf`` without a solution, and ``theta`` then
    ``None``), ``lower_bound`` its dual bound, ``gap`` SCIP's relative gap, ``time_s`` its
    solving time and ``status`` its status string ("optimal", "timelimit", "gaplimit", ...).
    """

    objective: float
    lower_bound: float
    theta: np.ndarray | None
    time_s: float
    status: str
    gap: float


def _scip_bounds(S: np.ndarray, M: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds on θ_ii and on q_i = θ_iᵀSθ_i/θ_ii that hold at every optimum (for SCIP's branching).

    θ_ii enters only column i's term, −log d + S_ii d + 2 Σ_k S_ki θ_ki + c/d with
    c = θ_{-i}ᵀ S_{-i,-i} θ_{-i}, so at an optimum d = (1 + √(1 + 4 S_ii c)) / (2 S_ii). With
    0 ≤ c ≤ c_max = λ_max(S_{-i,-i}) (p − 1) M², d lies in [1/S_ii, d(c_max)], and
    q_i ≤ S_ii d + 2 M Σ_{k≠i} |S_ki| + c_max / d.
    """
    p = S.shape[0]
    sii = np.diag(S)
    c_max = np.empty(p)
    for i in range(p):
        rest = np.delete(np.arange(p), i)
        lam = max(float(np.linalg.eigvalsh(S[np.ix_(rest, rest)])[-1]), 0.0)
        c_max[i] = lam * (p - 1) * M * M
    d_lo = np.maximum(1.0 / sii, D_MIN)
    d_hi = (1.0 + np.sqrt(1.0 + 4.0 * sii * c_max)) / (2.0 * sii)
    off = np.abs(S).sum(axis=1) - np.abs(sii)
    q_hi = sii * d_hi + 2.0 * M * off + c_max / d_lo
    # A little slack so that SCIP's tolerances never cut off an optimum sitting on a bound.
    return d_lo * (1.0 - 1e-6), d_hi * (1.0 + 1e-6) + 1e-6, q_hi * (1.0 + 1e-6) + 1e-6


def scip_solve(
    S: np.ndarray,
    l0: float,
    l2: float,
    M: float,
    *,
    time_limit: float = 60.0,
    gap_tol: float = 1e-4,
    verbose: bool = False,
) -> ScipResult:
    """Solve the full l0-l2 problem as a mixed-integer nonlinear program with SCIP.

    The objective is made linear with epigraph variables: e_i with e_i + log θ_ii ≥ 0,
    q_i with q_i θ_ii ≥ ‖y_i‖² and y_i = L θ_i (LᵀL = S, so ‖y_i‖² = θ_iᵀ S θ_i), and
    r ≥ Σ_{i<j} θ_ij². Binary z_ij switch the pairs with −M z_ij ≤ θ_ij ≤ M z_ij, and SCIP
    minimises Σ e_i + Σ q_i + l0 Σ z_ij + l2 r. θ_ii, q_i and e_i get the bounds that every
    optimum satisfies (θ_ii ∈ [1/S_ii, d_max] from the first-order condition in θ_ii; see
    ``_scip_bounds``), which SCIP needs to bound the bilinear term q_i θ_ii.

    Parameters
    ----------
    S : ndarray of shape (p, p)
        Symmetric positive-semidefinite covariance with a positive diagonal.
    l0, l2 : float
        The l0 (per edge) and l2 penalties, both ≥ 0.
    M : float
        The big-M bound on |θ_ij|; must be finite.
    time_limit : float, default 60.0
        SCIP's time limit in seconds (``limits/time``).
    gap_tol : float, default 1e-4
        SCIP's relative gap limit (``limits/gap``).
    verbose : bool, default False
        Show SCIP's log.

    Returns
    -------
    ScipResult
        Primal objective, dual bound, Θ, solving time, status and gap.

    Raises
    ------
    GraphL0BnBError
        On a bad S or penalty, or an infinite M.
    ImportError
        When PySCIPOpt is missing (the ``graphl0bnb[scip]`` extra).
    """
    S = _check_cov(S)
    l0, l2, M = _check_penalties(l0, l2, M)
    if not math.isfinite(M):
        raise GraphL0BnBError("scip_solve needs a finite M for its big-M constraints")
    if not (time_limit > 0 and gap_tol >= 0):
        raise GraphL0BnBError(f"need time_limit > 0 and gap_tol ≥ 0, got {time_limit}, {gap_tol}")
    scip = _import_scip()

    p = S.shape[0]
    model = scip.Model("graphl0bnb")
    if not verbose:
        model.hideOutput()
    model.setParam("limits/time", float(time_limit))
    model.setParam("limits/gap", float(gap_tol))

    d_lo, d_hi, q_hi = _scip_bounds(S, M)
    d = [model.addVar(f"d{i}", lb=d_lo[i], ub=d_hi[i]) for i in range(p)]
    e = [model.addVar(f"e{i}", lb=-math.log(d_hi[i]), ub=-math.log(d_lo[i])) for i in range(p)]
    q = [model.addVar(f"q{i}", lb=0.0, ub=q_hi[i]) for i in range(p)]
    r = model.addVar("r", lb=0.0, ub=None)
    theta: dict[tuple[int, int], object] = {}
    z: dict[tuple[int, int], object] = {}
    for i in range(p):
        for j in range(i + 1, p):
            theta[i, j] = model.addVar(f"t{i}_{j}", lb=-M, ub=M)
            z[i, j] = model.addVar(f"z{i}_{j}", vtype="B")
            model.addCons(theta[i, j] <= M * z[i, j])
            model.addCons(theta[i, j] >= -M * z[i, j])

    def entry(k: int, i: int):  # θ_ki as a SCIP variable
        if k == i:
            return d[i]
        return theta[min(k, i), max(k, i)]

    L = _square_root(S)
    for i in range(p):
        model.addCons(e[i] + scip.log(d[i]) >= 0)
        col = [entry(k, i) for k in range(p)]
        # y = L θ_i, so that q_i θ_ii ≥ ‖y‖² = θ_iᵀ S θ_i is a rotated second-order cone, which
        # SCIP recognises (written as q_i θ_ii ≥ Σ S_km θ_ki θ_mi it is treated as a nonconvex
        # bilinear constraint and the dual bound stalls).
        y = [model.addVar(f"y{i}_{k}", lb=None, ub=None) for k in range(L.shape[0])]
        for k, yk in enumerate(y):
            model.addCons(yk == scip.quicksum(L[k, m] * col[m] for m in range(p) if L[k, m] != 0))
        model.addCons(q[i] * d[i] >= scip.quicksum(yk * yk for yk in y))
    model.addCons(r >= scip.quicksum(t * t for t in theta.values()))
    model.setObjective(
        scip.quicksum(e) + scip.quicksum(q) + l0 * scip.quicksum(z.values()) + l2 * r,
        "minimize",
    )
    model.optimize()

    status = str(model.getStatus())
    if model.getNSols() > 0:
        sol = model.getBestSol()
        Theta = np.zeros((p, p))
        for i in range(p):
            Theta[i, i] = model.getSolVal(sol, d[i])
        for (i, j), v in theta.items():
            Theta[i, j] = Theta[j, i] = model.getSolVal(sol, v)
        objective = float(model.getSolObjVal(sol))
    else:
        Theta, objective = None, math.inf
    return ScipResult(
        objective=objective,
        lower_bound=float(model.getDualbound()),
        theta=Theta,
        time_s=float(model.getSolvingTime()),
        status=status,
        gap=float(model.getGap()),
    )
