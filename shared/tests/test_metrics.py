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
