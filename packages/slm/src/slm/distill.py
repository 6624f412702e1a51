"""Score-level distillation: the student learns the teacher's yes/no judgement.

Teacher and student each read a (query, item) pair and give a logit gap
s = logit(yes) − logit(no), i.e. the log-odds of a two-way distribution over their own
"yes" and "no" tokens. Distilling that distribution needs no shared vocabulary, so a
Gemma teacher can teach a SmolLM2 student (a vocabulary-level KL across tokenizers cannot).

With p = σ(s / T), the loss of a batch is

    α · T² · KL(p_teacher ‖ p_student) + (1 − α) · BCE(σ(s_student), label),

and KL(p_t ‖ p_s) = BCE(s_s / T, p_t) − BCE(s_t / T, p_t): exactly 0 when the student's
scores equal the teacher's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mixlm.data import Pair
from mixlm.ranker import MixRanker
from mixlm.train import check_pairs, iterate_batches, optimizer_step

from labcore.errors import LabcoreError


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float = 0.5,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The loss above, averaged over the batch (all three tensors of shape [batch]).

    >>> s = torch.tensor([2.0, -1.0])
    >>> float(distillation_loss(s, s, torch.tensor([1.0, 0.0]), alpha=1.0))
    0.0
    """
    if not student.shape == teacher.shape == labels.shape or student.ndim != 1:
        raise LabcoreError(
            f"student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and labels "
            f"{tuple(labels.shape)} must be the same 1-D shape"
        )
    t = float(temperature)
    target = torch.sigmoid(teacher / t)
    kl = F.binary_cross_entropy_with_logits(
        student / t, target, reduction="none"
    ) - F.binary_cross_entropy_with_logits(teacher / t, target, reduction="none")
    bce = F.binary_cross_entropy_with_logits(student, labels, reduction="none")
    return (alpha * t * t * kl + (1 - alpha) * bce).mean()


def distill(
    student: MixRanker,
    pairs: Sequence[Pair],
    teacher_scores: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 8,
    alpha: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Train the student on :func:`distillation_loss` against the teacher's scores of the
    same pairs (full item text); returns the loss per step."""
    check_pairs(pairs)
    if teacher_scores.shape != (len(pairs),):
        raise LabcoreError(f"{len(pairs)} pairs but {tuple(teacher_scores.shape)} teacher scores")
    model = student.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for idx in iterate_batches(len(pairs), batch_size, epochs, seed):
        scores = student.pair_scores(
            [pairs[i][0] for i in idx], [student.item_text_vectors(pairs[i][1]) for i in idx]
        )
        labels = torch.tensor([float(pairs[i][2]) for i in idx])
        loss = distillation_loss(
            scores, teacher_scores[idx].to(scores), labels, alpha=alpha, temperature=temperature
        )
        losses.append(optimizer_step(opt, loss))
    model.eval()
    return losses
