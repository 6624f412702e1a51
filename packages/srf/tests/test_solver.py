from itertools import pairwise

import numpy as np
import pytest
from srf.solver import SRFResult, observed_projection, smoothed_rank, srf_complete, srf_solve
from threadpoolctl import threadpool_limits

from labcore.errors import LabcoreError


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Hundreds of small SVDs: multi-threaded BLAS only adds overhead here, and on a busy
    # machine its spinning threads make these tests many times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def low_rank(m, n, r, rng):
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) / np.sqrt(r)


def problem(m, n, r, frac, seed):
    rng = np.random.default_rng(seed)
    M = low_rank(m, n, r, rng)
    mask = rng.random(M.shape) < frac
    return M, mask, np.where(mask, M, np.nan)


def rel_err(Z, M, where):
    return np.linalg.norm((Z - M)[where]) / np.linalg.norm(M[where])


@pytest.fixture(scope="module")
def rank3():
    M, mask, Y = problem(60, 50, 3, 0.5, seed=0)
    with threadpool_limits(limits=1, user_api="blas"):
        res = srf_complete(Y, mask)
    return M, mask, Y, res


def test_exact_recovery_of_a_rank3_matrix_with_default_settings(rank3):
    M, mask, _, res = rank3
    assert isinstance(res, SRFResult)
    assert res.converged
    assert rel_err(res.Z, M, ~mask) < 1e-5
    assert np.linalg.matrix_rank(res.Z, tol=1e-4 * np.linalg.norm(res.Z, 2)) == 3


def test_observed_entries_are_kept_exactly(rank3):
    M, mask, _, res = rank3
    assert np.array_equal(res.Z[mask], M[mask])


def test_records_are_consistent(rank3):
    _, _, _, res = rank3
    n = res.n_levels
    assert res.deltas.shape == res.effective_ranks.shape == (n,)
    assert res.smoothed_ranks.shape == res.changes.shape == (n,)
    assert res.effective_ranks.dtype.kind == "i"
    np.testing.assert_allclose(res.deltas[1:] / res.deltas[:-1], 0.9)
    # Full SVD path (min(m, n) <= 200): one SVD of project(Z0), then `inner` per level.
    assert res.n_svd == 1 + 8 * n
    assert res.changes[-1] < 1e-7 <= res.changes[:-1].min()


def test_effective_rank_climbs_to_the_true_rank_and_stays(rank3):
    # δ0 = σ_max: at first no singular value exceeds δ; as δ falls the rank-3 structure
    # appears one component at a time and never goes beyond it.
    _, _, _, res = rank3
    ranks = res.effective_ranks
    assert ranks[-1] == 3
    assert ranks.max() == 3
    assert np.all(np.diff(ranks) >= 0)
    # At the end R_δ is the rank: the three components are far above δ, the rest far below.
    assert abs(res.smoothed_ranks[-1] - 3) < 1e-3


def test_fully_observed_input_is_returned_unchanged():
    M = np.random.default_rng(3).standard_normal((20, 15))
    res = srf_complete(M, np.ones(M.shape, bool))
    assert np.array_equal(res.Z, M)
    assert res.converged and res.n_levels == 1 and res.changes[0] == 0.0


def test_zero_observations_give_the_zero_matrix_without_iterating():
    mask = np.zeros((6, 5), bool)
    mask[0, 0] = True
    res = srf_complete(np.zeros((6, 5)), mask)
    assert np.array_equal(res.Z, np.zeros((6, 5)))
    assert res.converged and res.n_levels == 0


def test_smoothed_rank_tends_to_the_rank():
    rng = np.random.default_rng(4)
    Z = low_rank(30, 20, 4, rng)
    s = np.linalg.svd(Z, compute_uv=False)
    deltas = np.geomspace(s[0], 1e-2 * s[3], 40)
    gaps = np.array([abs(smoothed_rank(Z, d) - 4) for d in deltas])
    assert np.all(np.diff(gaps) <= 1e-12)
    assert gaps[0] > 1.0  # far from the rank at δ = σ_max
    assert gaps[-1] < 1e-6
    # Same values from the singular values themselves.
    assert smoothed_rank(s, deltas[5]) == pytest.approx(smoothed_rank(Z, deltas[5]), rel=1e-12)
    assert smoothed_rank(np.zeros((5, 3)), 0.1) == 0.0
    assert smoothed_rank(np.array([1.0, 0.0]), 1.0) == pytest.approx(1 - np.exp(-0.5))


@pytest.mark.parametrize("kind", ["identity", "observed"])
def test_smoothed_rank_does_not_increase_within_a_level(kind):
    M, mask, _ = problem(40, 30, 3, 0.5, seed=5)
    Z0 = np.where(mask, M, 0.0)
    project = (lambda Z: Z.copy()) if kind == "identity" else observed_projection(M, mask)
    s0 = np.linalg.svd(Z0, compute_uv=False)
    for delta in (s0[0], s0[2], 0.3):
        values = [smoothed_rank(Z0, delta)]
        for inner in range(1, 9):
            res = srf_solve(
                Z0, project=project, inner=inner, max_levels=1, delta0=delta, svd="full"
            )
            assert res.n_levels == 1
            values.append(smoothed_rank(res.Z, delta))
        assert np.all(np.diff(values) <= 1e-12), values
        assert values[-1] < values[0]


def test_truncated_and_full_svd_paths_agree():
    M, mask, Y = problem(300, 250, 5, 0.4, seed=1)
    full = srf_complete(Y, mask, svd="full")
    trunc = srf_complete(Y, mask, svd="truncated", random_state=0)
    for res in (full, trunc):
        assert res.converged
        assert rel_err(res.Z, M, ~mask) < 1e-5
        assert res.effective_ranks[-1] == 5
    assert np.linalg.norm(trunc.Z - full.Z) / np.linalg.norm(full.Z) < 1e-6
    # The truncated path mostly needs one small randomized SVD per step.
    assert trunc.n_svd < 1.2 * full.n_svd


def test_auto_uses_the_full_svd_on_small_problems(rank3):
    _, mask, Y, _ = rank3
    auto = srf_complete(Y, mask, svd="auto", max_levels=3)
    full = srf_complete(Y, mask, svd="full", max_levels=3)
    assert np.array_equal(auto.Z, full.Z)


def test_truncated_path_is_seeded_and_leaves_numpy_random_state_alone():
    _, mask, Y = problem(60, 50, 3, 0.5, seed=0)
    state = np.random.get_state()[1].copy()
    a = srf_complete(Y, mask, svd="truncated", random_state=7, max_levels=5)
    b = srf_complete(Y, mask, svd="truncated", random_state=7, max_levels=5)
    srf_complete(Y, mask, svd="truncated", max_levels=2)
    assert np.array_equal(a.Z, b.Z)
    assert np.array_equal(np.random.get_state()[1], state)


def test_truncated_step_error_is_within_its_bound():
    # One step from the zero-filled matrix, whose spectrum is flat (the hard case for a
    # truncated SVD): the neglected part has spectral norm ≤ μ·r·δ·(1 − e^{−r²/2}).
    M, mask, _ = problem(300, 250, 5, 0.4, seed=1)
    Z0 = np.where(mask, M, 0.0)
    delta, mu, r = np.linalg.norm(Z0, 2), 0.5, 0.3
    seen = []
    kwargs = dict(project=np.copy, max_levels=1, inner=1, delta0=delta, trunc_ratio=r)
    full = srf_solve(Z0, svd="full", **kwargs)
    trunc = srf_solve(
        Z0, svd="truncated", random_state=0, callback=lambda *a: seen.append(a[2]), **kwargs
    )
    gap = np.linalg.norm(trunc.Z - full.Z, 2)
    assert 0 < gap <= mu * r * delta * -np.expm1(-(r**2) / 2)
    # The recorded R_δ bounds the exact one from above (tail estimated from ‖Z‖_F).
    exact = smoothed_rank(seen[0], delta)
    assert exact <= trunc.smoothed_ranks[0] <= exact + 0.01


def test_callback_sees_every_level_and_the_records_match_it():
    _, mask, Y = problem(30, 20, 2, 0.6, seed=6)
    seen = []
    res = srf_complete(Y, mask, callback=lambda lv, d, Z: seen.append((lv, d, Z.copy())))
    assert [lv for lv, _, _ in seen] == list(range(res.n_levels))
    np.testing.assert_array_equal([d for _, d, _ in seen], res.deltas)
    assert np.array_equal(seen[-1][2], res.Z)
    for i, (_, d, Z) in enumerate(seen):
        s = np.linalg.svd(Z, compute_uv=False)
        assert res.effective_ranks[i] == np.count_nonzero(s > d)
        assert res.smoothed_ranks[i] == pytest.approx(smoothed_rank(s, d), rel=1e-9, abs=1e-12)
    changes = [np.linalg.norm(b[2] - a[2]) / np.linalg.norm(b[2]) for a, b in pairwise(seen)]
    np.testing.assert_allclose(res.changes[1:], changes, rtol=1e-9)


def test_schedule_stops_at_delta_min_without_convergence():
    _, mask, Y = problem(30, 20, 2, 0.6, seed=6)
    res = srf_complete(Y, mask, c=0.5, delta_min_ratio=0.1, tol=0.0)
    # δ0, δ0/2, δ0/4, δ0/8 > δ0/10; δ0/16 is not run.
    assert res.n_levels == 4 and not res.converged
    res = srf_complete(Y, mask, tol=0.0, delta_min_ratio=0.0, max_levels=3)
    assert res.n_levels == 3 and not res.converged


def test_block_missing_rows():
    # Ten items have no observed feature at all; elsewhere 40% of the entries are missing.
    rng = np.random.default_rng(2)
    M = low_rank(120, 40, 3, rng)
    mask = rng.random(M.shape) < 0.6
    rows = rng.choice(120, 10, replace=False)
    mask[rows] = False
    res = srf_complete(np.where(mask, M, np.nan), mask)
    assert np.isfinite(res.Z).all()
    partial = np.ones(120, bool)
    partial[rows] = False
    assert rel_err(res.Z, M, ~mask & partial[:, None]) < 1e-5
    # A row with nothing observed is unconstrained by the data, and the low-rank assumption
    # alone cannot place it in the row space: its start (zeros) is never moved.
    assert np.abs(res.Z[rows]).max() < 1e-10 * np.abs(M).max()
    assert np.array_equal(res.Z[mask], M[mask])


def test_observed_projection_returns_a_new_array():
    values = np.array([[1.0, np.nan], [np.nan, 4.0]])
    mask = ~np.isnan(values)
    project = observed_projection(values, mask)
    Z = np.zeros((2, 2))
    out = project(Z)
    assert out.tolist() == [[1.0, 0.0], [0.0, 4.0]]
    assert Z.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # 0/1 masks are accepted too.
    assert observed_projection(values, mask.astype(int))(Z).tolist() == out.tolist()


def _bad_project(Z):
    return Z[:-1]


M_SMALL = np.arange(12.0).reshape(4, 3)
MASK_SMALL = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], bool)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: srf_complete(np.arange(5.0), np.ones(5, bool)), "Y must be 2-dimensional"),
        (
            lambda: srf_complete(np.where(MASK_SMALL, np.nan, M_SMALL), np.ones((4, 3), bool)),
            r"NaN or infinite value\(s\) at observed entries",
        ),
        (lambda: srf_complete(M_SMALL, np.ones((3, 4), bool)), "same shape"),
        (lambda: srf_complete(M_SMALL, np.zeros((4, 3), bool)), "all entries are missing"),
        (lambda: srf_complete(M_SMALL, np.full((4, 3), 2)), "values other than 0 and 1"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, mu=0.0), r"mu must be in \(0, 1\]"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, mu=1.5), r"mu must be in \(0, 1\]"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, c=1.0), r"c must be in \(0, 1\)"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, c=0.0), r"c must be in \(0, 1\)"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, inner=0), "inner must be an integer >= 1"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, delta0=0.0), "delta0 must be > 0"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, delta0=-1.0), "delta0 must be > 0"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, svd="lanczos"), "svd must be one of"),
        (lambda: srf_complete(M_SMALL, MASK_SMALL, project=_bad_project), "builds project"),
        (
            lambda: srf_solve(M_SMALL, project=_bad_project),
            r"project must return an array of shape \(4, 3\)",
        ),
        (
            lambda: srf_solve(M_SMALL, project=lambda Z: Z * np.nan),
            "project returned NaN",
        ),
        (lambda: srf_solve(np.array([[np.inf]]), project=np.copy), "Z0 contains NaN"),
        (lambda: srf_solve(np.ones(3), project=np.copy), "Z0 must be 2-dimensional"),
        (lambda: observed_projection(M_SMALL, MASK_SMALL)(np.ones((2, 2))), "expects shape"),
        (lambda: smoothed_rank(np.ones((2, 2, 2)), 1.0), "2-D matrix or a 1-D array"),
        (lambda: smoothed_rank(np.ones((2, 2)), 0.0), "delta must be > 0"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(LabcoreError, match=message):
        call()


def test_observed_projection_handles_fortran_order():
    Y = np.arange(6.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    project = observed_projection(Y, mask)
    out = project(np.asfortranarray(np.full((2, 3), 9.0)))
    np.testing.assert_array_equal(out[mask], Y[mask])
    np.testing.assert_array_equal(out[~mask], 9.0)
