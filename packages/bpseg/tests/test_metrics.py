from __future__ import annotations

import numpy as np
import pytest
from bpseg.metrics import (
    boundaries,
    clustering_scores,
    default_window,
    labels_from_boundaries,
    pk,
    runs,
    segment_scores,
    windowdiff,
)
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from labcore.errors import LabcoreError

# The worked examples use this 10-sentence reference: one boundary, before sentence 5.
# Its default window is 2 (mean segment length 5, 5 / 2 = 2.5 rounds half to even), so
# there are 10 - 2 = 8 probes/windows, i = 0..7, each looking at sentences i and i + 2,
# i.e. at the boundaries b with i < b <= i + 2. The reference has its boundary 5 inside the
# windows i = 3 and i = 4.
REF = [0] * 5 + [1] * 5


def test_runs_and_boundaries():
    labels = [4, 4, 1, 1, 1, 4, 2]
    assert runs(labels).tolist() == [0, 0, 1, 1, 1, 2, 3]
    assert boundaries(labels) == [2, 5, 6]
    assert boundaries([3]) == []
    assert boundaries([1, 1, 1]) == []
    assert labels_from_boundaries([2, 5, 6], 7).tolist() == runs(labels).tolist()
    assert labels_from_boundaries([], 3).tolist() == [0, 0, 0]
    assert labels_from_boundaries(np.array([1]), 2).tolist() == [0, 1]


def test_boundaries_roundtrip_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 3, size=rng.integers(1, 30))
        b = boundaries(labels)
        assert labels_from_boundaries(b, len(labels)).tolist() == runs(labels).tolist()


def test_default_window_rounds_half_to_even_like_segeval():
    assert default_window(REF) == 2  # 10 / 2 segments / 2 = 2.5 -> 2
    assert default_window([0] * 7 + [1] * 7) == 4  # 3.5 -> 4
    assert default_window([0] * 11 + [1] * 11) == 6  # 5.5 -> 6
    assert default_window([0] * 9 + [1] * 9) == 4  # 4.5 -> 4
    assert default_window([0] * 6 + [1] * 5) == 3  # 11 / 4 = 2.75 -> 3
    # never below 2 (segeval's floor), even for many short segments ...
    assert default_window(list(range(10))) == 2
    # ... but at most n - 1, so that one probe remains
    assert default_window([0, 1]) == 1
    # one segment: half the document
    assert default_window([0] * 10) == 5


def test_perfect_is_zero():
    assert pk(REF, REF) == 0.0
    assert windowdiff(REF, REF) == 0.0
    # relabelled but the same boundaries
    assert pk(REF, [7] * 5 + [3] * 5) == 0.0
    assert segment_scores(REF, REF) == {"pk": 0.0, "windowdiff": 0.0, "ari": 1.0, "nmi": 1.0}


def test_boundary_shifted_by_one():
    hyp = [0] * 6 + [1] * 4  # boundary 6: inside windows i = 4, 5
    # reference boundary in i = 3, 4; disagreement at i = 3 and i = 5 -> 2/8
    assert pk(REF, hyp) == pytest.approx(2 / 8)
    # counts: ref 1 at i = 3, 4; hyp 1 at i = 4, 5 -> differ at i = 3, 5 -> 2/8
    assert windowdiff(REF, hyp) == pytest.approx(2 / 8)


def test_boundary_shifted_by_three():
    hyp = [0] * 8 + [1] * 2  # boundary 8: inside windows i = 6, 7
    # disagreement at i = 3, 4 (missed) and i = 6, 7 (false alarm) -> 4/8
    assert pk(REF, hyp) == pytest.approx(4 / 8)
    assert windowdiff(REF, hyp) == pytest.approx(4 / 8)


def test_missing_boundary():
    hyp = [0] * 10
    # only the two windows around the true boundary disagree -> 2/8
    assert pk(REF, hyp) == pytest.approx(2 / 8)
    assert windowdiff(REF, hyp) == pytest.approx(2 / 8)


def test_extra_far_boundary():
    hyp = [0] * 5 + [1] * 3 + [2] * 2  # boundaries 5 (right) and 8 (extra, windows 6, 7)
    assert pk(REF, hyp) == pytest.approx(2 / 8)
    assert windowdiff(REF, hyp) == pytest.approx(2 / 8)


def test_windowdiff_above_pk_when_boundaries_crowd_a_window():
    hyp = [0] * 5 + [1] + [2] * 4  # boundaries 5 and 6
    # hyp boundary counts per window: i = 3: {5} = 1, i = 4: {5, 6} = 2, i = 5: {6} = 1.
    # Pk: hyp says "different segment" at i = 3, 4, 5, ref at i = 3, 4 -> only i = 5: 1/8.
    assert pk(REF, hyp) == pytest.approx(1 / 8)
    # WindowDiff also sees 1 vs 2 boundaries at i = 4 -> i = 4, 5: 2/8.
    assert windowdiff(REF, hyp) == pytest.approx(2 / 8)
    assert windowdiff(REF, hyp) > pk(REF, hyp)


def test_every_sentence_its_own_segment():
    hyp = list(range(10))
    # every probe straddles a hyp boundary; ref agrees only at i = 3, 4 -> 6/8
    assert pk(REF, hyp) == pytest.approx(6 / 8)
    # hyp has 2 boundaries in every window, ref at most 1 -> 8/8
    assert windowdiff(REF, hyp) == 1.0


def test_explicit_window():
    hyp = [0] * 6 + [1] * 4
    # window 3: 7 probes i = 0..6; ref boundary 5 in i = 2, 3, 4; hyp boundary 6 in
    # i = 3, 4, 5 -> disagreement at i = 2, 5 -> 2/7
    assert pk(REF, hyp, window=3) == pytest.approx(2 / 7)
    assert windowdiff(REF, hyp, window=3) == pytest.approx(2 / 7)
    # window 1 compares neighbours: one miss (i = 4) and one false alarm (i = 5) of 9
    assert pk(REF, hyp, window=1) == pytest.approx(2 / 9)


def test_non_contiguous_labels_are_scored_by_their_runs():
    labels = [0, 0, 1, 1, 0, 0, 1, 1]
    contiguous = [0, 0, 1, 1, 2, 2, 3, 3]
    other = [0, 0, 0, 1, 1, 1, 0, 0]
    assert pk(labels, other) == pk(contiguous, other)
    assert windowdiff(labels, other) == windowdiff(contiguous, other)
    # clustering scores, on the other hand, use the labels as clusters
    assert clustering_scores(labels, [9, 9, 4, 4, 9, 9, 4, 4]) == {"ari": 1.0, "nmi": 1.0}
    assert clustering_scores(contiguous, [9, 9, 4, 4, 9, 9, 4, 4])["ari"] < 1.0


def test_properties_on_random_segmentations():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        ref = rng.integers(0, rng.integers(1, 5), size=n)
        hyp = rng.integers(0, rng.integers(1, 5), size=n)
        k = int(rng.integers(1, n))
        p, w = pk(ref, hyp, window=k), windowdiff(ref, hyp, window=k)
        assert 0.0 <= p <= w <= 1.0
        # symmetric for a fixed window (the default window depends on the reference)
        assert pk(hyp, ref, window=k) == p
        assert windowdiff(hyp, ref, window=k) == w
        # only boundaries matter
        assert pk(runs(ref), 10 - hyp, window=k) == p


def test_default_window_makes_pk_asymmetric():
    one_segment = [0] * 10
    # window 5 from the one-segment reference: all 5 probes straddle the hyp boundary
    assert pk(one_segment, REF) == 1.0
    # window 2 from REF: 2 of 8 probes disagree
    assert pk(REF, one_segment) == pytest.approx(2 / 8)


def test_clustering_scores_match_sklearn():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 4, size=50)
    hyp = rng.integers(0, 3, size=50)
    scores = clustering_scores(ref, hyp)
    assert scores["ari"] == pytest.approx(adjusted_rand_score(ref, hyp))
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(ref, hyp))
    assert set(segment_scores(ref, hyp)) == {"pk", "windowdiff", "ari", "nmi"}


def test_accepts_integer_valued_floats_and_tuples():
    assert pk(tuple(REF), np.array(REF, dtype=float)) == 0.0
    assert boundaries(np.array([1.0, 1.0, 2.0])) == [2]


def test_matches_segeval():
    segeval = pytest.importorskip("segeval")
    rng = np.random.default_rng(3)

    def random_masses(n):
        cuts = np.flatnonzero(rng.random(n - 1) < rng.uniform(0.05, 0.6)) + 1
        return np.diff(np.concatenate([[0], cuts, [n]])).tolist()

    def labels(masses):
        return np.repeat(np.arange(len(masses)), masses)

    for _ in range(50):
        # n >= 3: with n = 2 segeval's window of 2 leaves no probe (see default_window)
        n = int(rng.integers(3, 120))
        ref_m, hyp_m = random_masses(n), random_masses(n)
        ref, hyp = labels(ref_m), labels(hyp_m)
        # segeval takes (hypothesis, reference) and derives its window from the reference
        assert default_window(ref) == segeval.compute_window_size(ref_m)
        assert pk(ref, hyp) == pytest.approx(float(segeval.pk(hyp_m, ref_m)), abs=1e-12)
        assert windowdiff(ref, hyp) == pytest.approx(
            float(segeval.window_diff(hyp_m, ref_m)), abs=1e-12
        )
        k = int(rng.integers(1, n))
        assert pk(ref, hyp, window=k) == pytest.approx(
            float(segeval.pk(hyp_m, ref_m, window_size=k)), abs=1e-12
        )
        assert windowdiff(ref, hyp, window=k) == pytest.approx(
            float(segeval.window_diff(hyp_m, ref_m, window_size=k)), abs=1e-12
        )


def test_matches_segeval_on_rounding_ties():
    segeval = pytest.importorskip("segeval")
    for masses in ([5, 5], [3, 3, 3], [7, 7], [9, 9], [4, 6], [1, 1, 1, 1]):
        ref = np.repeat(np.arange(len(masses)), masses)
        assert default_window(ref) == segeval.compute_window_size(masses)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "window", "message"),
    [
        (REF, REF[:-1], None, "differ in length"),
        ([], [], None, "empty"),
        ([0, 1, np.nan], [0, 1, 1], None, "NaN"),
        ([0, 1.5, 2], [0, 1, 1], None, "non-integer"),
        (["a", "b"], [0, 1], None, "integer labels"),
        ([[0, 1], [1, 1]], [[0, 1], [1, 1]], None, "1-D"),
        ([0, 0, 1], [0, 1, 1], 0, "window must lie in 1..2"),
        ([0, 0, 1], [0, 1, 1], 3, "window must lie in 1..2"),
        ([0, 0, 1], [0, 1, 1], 1.5, "window must be an integer"),
        ([0], [0], None, "at least 2 sentences"),
        ([0], [0], 1, "at least 2 sentences"),
    ],
)
def test_errors(reference, hypothesis, window, message):
    for fn in (pk, windowdiff, segment_scores):
        with pytest.raises(LabcoreError, match=message):
            fn(reference, hypothesis, window=window)


def test_more_errors():
    with pytest.raises(LabcoreError, match="differ in length"):
        clustering_scores([0, 1], [0, 1, 1])
    with pytest.raises(LabcoreError, match="empty"):
        runs([])
    with pytest.raises(LabcoreError, match="out of range"):
        labels_from_boundaries([0, 2], 4)
    with pytest.raises(LabcoreError, match="out of range"):
        labels_from_boundaries([4], 4)
    with pytest.raises(LabcoreError, match="strictly increasing"):
        labels_from_boundaries([2, 2], 4)
    with pytest.raises(LabcoreError, match="positive integer"):
        labels_from_boundaries([], 0)
    with pytest.raises(LabcoreError, match="at least 2 sentences"):
        default_window([3])
