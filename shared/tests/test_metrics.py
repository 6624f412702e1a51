import math

import numpy as np
import pytest
import torch

from labcore import LabcoreError
from labcore.metrics import classification_scores, perplexity, support_recovery


def test_perplexity_equals_hand_computation(tiny_llama):
    model, tok = tiny_llama
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, len(tok), (5, 12), generator=g)
    result = perplexity(model, windows, batch_size=2)
    # By hand: every window on its own, softmax in float64, one prediction per position >= 1.
    total, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(input_ids=w[None]).logits[0].double()
            for t in range(1, len(w)):
                p = torch.softmax(logits[t - 1], dim=-1)[w[t]]
                total -= math.log(float(p))
                count += 1
    assert result.tokens == count == 5 * 11
    assert result.nll == pytest.approx(total / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


def test_perplexity_independent_of_batch_size(tiny_llama):
    model, tok = tiny_llama
    windows = torch.randint(0, len(tok), (5, 10), generator=torch.Generator().manual_seed(1))
    a = perplexity(model, windows, batch_size=1).perplexity
    b = perplexity(model, windows, batch_size=5).perplexity
    assert a == pytest.approx(b, rel=1e-5)


def test_uniform_model_has_vocab_perplexity(tiny_llama):
    model, tok = tiny_llama

    class Uniform(torch.nn.Module):
        config = model.config

        def forward(self, input_ids, use_cache=False):
            b, t = input_ids.shape
            return type("Out", (), {"logits": torch.zeros(b, t, len(tok))})()

        def parameters(self):
            yield torch.zeros(1)

    r = perplexity(Uniform(), torch.randint(0, len(tok), (3, 8)))
    assert r.perplexity == pytest.approx(len(tok), rel=1e-6)


def test_perplexity_rejects_bad_windows(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(LabcoreError, match="2-D"):
        perplexity(model, torch.zeros(8, dtype=torch.long))
    with pytest.raises(LabcoreError, match="outside the model's vocabulary"):
        perplexity(model, torch.full((1, 4), len(tok) + 5))


def test_support_recovery_against_brute_force():
    rng = np.random.default_rng(0)
    p = 12
    for _ in range(20):
        truth = np.triu(rng.random((p, p)) < 0.3, 1).astype(float)
        truth = truth + truth.T + np.eye(p)
        est = np.triu(rng.random((p, p)) < 0.3, 1).astype(float)
        est = est + est.T + np.eye(p)
        tp = fp = fn = tn = 0
        for i in range(p):
            for j in range(i + 1, p):
                t, e = truth[i, j] != 0, est[i, j] != 0
                tp += t and e
                fp += e and not t
                fn += t and not e
                tn += not t and not e
        s = support_recovery(truth, est)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = (tp * tn - fp * fn) / denom if denom else 0.0
        assert s["precision"] == pytest.approx(prec)
        assert s["recall"] == pytest.approx(rec)
        assert s["mcc"] == pytest.approx(mcc)
        assert s["true_nonzeros"] == tp + fn


def test_support_recovery_vector_and_errors():
    s = support_recovery(np.array([1.0, 0, 2, 0]), np.array([0.5, 0, 0, 0.1]))
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    with pytest.raises(LabcoreError, match="differ in shape"):
        support_recovery(np.zeros(3), np.zeros(4))
    with pytest.raises(LabcoreError, match="NaN"):
        support_recovery(np.array([np.nan, 1.0]), np.zeros(2))


def test_classification_scores_wrap_sklearn():
    s = classification_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert s["accuracy"] == 0.75
    assert s["balanced_accuracy"] == 0.75


# -- ranking ---------------------------------------------------------------------------------


def test_ndcg_equals_hand_computation():
    from labcore.metrics import ndcg_at_k

    rel = [[3, 2, 3, 0, 1, 2]]
    scores = [[6, 5, 4, 3, 2, 1]]  # ranks the items in their listed order
    dcg = 3 + 2 / math.log2(3) + 3 / 2 + 0 + 1 / math.log2(6) + 2 / math.log2(7)
    ideal = 3 + 3 / math.log2(3) + 2 / 2 + 2 / math.log2(5) + 1 / math.log2(6)
    assert ndcg_at_k(rel, scores, k=None) == pytest.approx(dcg / ideal)
    # k = 3: only the top three count, against the ideal top three.
    assert ndcg_at_k(rel, scores, k=3) == pytest.approx(
        (3 + 2 / math.log2(3) + 3 / 2) / (3 + 3 / math.log2(3) + 2 / 2)
    )
    assert ndcg_at_k(rel, [[1, 2, 3, 4, 5, 6]], k=None) < dcg / ideal  # reversed is worse
    assert ndcg_at_k(rel, [[3, 2, 3, 0, 1, 2]], k=None) == pytest.approx(1.0)


def test_ndcg_leaves_out_queries_without_relevant_items():
    from labcore.metrics import ndcg_at_k

    one = ndcg_at_k([[1, 0, 0]], [[0.1, 0.9, 0.5]], k=None)
    assert one == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k([[1, 0, 0], [0, 0, 0]], [[0.1, 0.9, 0.5], [1, 2, 3]], k=None) == one


def test_mrr_equals_hand_computation_and_counts_ties_exactly():
    from labcore.metrics import mean_reciprocal_rank

    rel = [[0, 0, 1], [1, 0, 0], [0, 1, 1]]
    scores = [[3, 2, 1], [3, 2, 1], [3, 2, 1]]
    assert mean_reciprocal_rank(rel, scores) == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)
    # One relevant and one not, tied: first with probability 1/2, second otherwise.
    assert mean_reciprocal_rank([[1, 0]], [[5, 5]]) == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    # Brute force over every order of a tie group of 4 with 2 relevant, below one better item.
    import itertools

    tie = [1, 1, 0, 0]
    expected = np.mean(
        [1 / (1 + 1 + next(i for i, r in enumerate(p) if r)) for p in itertools.permutations(tie)]
    )
    got = mean_reciprocal_rank([[0, 1, 1, 0, 0]], [[9, 4, 4, 4, 4]])
    assert got == pytest.approx(expected)


def test_roc_auc_equals_pair_counting():
    from labcore.metrics import roc_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    s = rng.integers(0, 5, 40).astype(float)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(y, s) == pytest.approx(pairs / (len(pos) * len(neg)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.ndcg_at_k([[1, 0]], [[1, 0, 2]]), "one shape"),
        (lambda m: m.ndcg_at_k([[1]], [[1]]), "at least 2 items"),
        (lambda m: m.ndcg_at_k([[1, np.nan]], [[1, 0]]), "finite"),
        (lambda m: m.ndcg_at_k([[1, -1]], [[1, 0]]), "non-negative"),
        (lambda m: m.ndcg_at_k([[1, 0]], [[1, 0]], k=0), "positive integer"),
        (lambda m: m.ndcg_at_k([[0, 0]], [[1, 0]]), "no query has a relevant item"),
        (lambda m: m.mean_reciprocal_rank([[0, 0]], [[1, 0]]), "no query has a relevant item"),
        (lambda m: m.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]), "two classes"),
        (lambda m: m.roc_auc([0, 1], [0.1, np.inf]), "finite"),
        (lambda m: m.roc_auc([0, 1], [0.1]), "one length"),
    ],
)
def test_ranking_metrics_reject_bad_input(call, match):
    import labcore.metrics

    with pytest.raises(LabcoreError, match=match):
        call(labcore.metrics)
