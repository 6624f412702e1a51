"""Score-level distillation: exact values, zero at agreement, training moves the student."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from slm.distill import distillation_loss

from labcore.errors import LabcoreError


def test_zero_when_the_student_is_the_teacher():
    s = torch.tensor([3.0, -2.0, 0.5])
    y = torch.tensor([1.0, 0.0, 1.0])
    assert float(distillation_loss(s, s, y, alpha=1.0, temperature=2.0)) == pytest.approx(
        0.0, abs=1e-7
    )
    s.requires_grad_(True)
    distillation_loss(s, s.detach(), y, alpha=1.0).backward()
    assert torch.allclose(s.grad, torch.zeros(3), atol=1e-7)  # a minimum, not just a zero


def test_matches_the_two_way_kl_by_hand():
    s, t = torch.tensor([0.3]), torch.tensor([1.7])
    p, q = torch.sigmoid(t / 2), torch.sigmoid(s / 2)
    kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    got = distillation_loss(s, t, torch.tensor([1.0]), alpha=1.0, temperature=2.0)
    assert float(got) == pytest.approx(float(4 * kl), rel=1e-5)  # T² · KL


def test_alpha_zero_is_the_label_loss():
    s, t, y = torch.tensor([0.3, -1.0]), torch.tensor([5.0, 5.0]), torch.tensor([1.0, 0.0])
    got = distillation_loss(s, t, y, alpha=0.0)
    assert float(got) == pytest.approx(float(F.binary_cross_entropy_with_logits(s, y)))


def test_kl_is_never_negative():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(200, generator=g) * 4, torch.randn(200, generator=g) * 4
    per = [
        float(distillation_loss(s[i : i + 1], t[i : i + 1], torch.zeros(1), alpha=1.0))
        for i in range(200)
    ]
    assert min(per) >= -1e-6


def test_shape_errors():
    with pytest.raises(LabcoreError, match="same 1-D shape"):
        distillation_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2))


def test_training_moves_the_student_to_the_teacher():
    from mixlm.ranker import MixRanker, PromptTemplate
    from mixlm.train import teacher_scores as pair_scores
    from slm.distill import distill

    from labcore.models import tiny_causal_lm

    model, tok = tiny_causal_lm("llama", seed=1)
    student = MixRanker(model, tok, PromptTemplate(yes=" the", no=" a"))
    pairs = [(q, t, 1.0) for q, t in [("goal", "a late goal"), ("vote", "a vote soon")]]
    pairs += [("goal", "phones on sale", 0.0), ("vote", "a late goal", 0.0)]
    target = torch.tensor([3.0, 3.0, -3.0, -3.0])
    before = float(((pair_scores(student, pairs) - target) ** 2).mean())
    distill(student, pairs, target, epochs=30, lr=3e-3, batch_size=4, alpha=1.0)
    after = float(((pair_scores(student, pairs) - target) ** 2).mean())
    assert after < 0.5 * before
    with pytest.raises(LabcoreError, match="teacher scores"):
        distill(student, pairs, target[:2], epochs=1, lr=1e-3)
