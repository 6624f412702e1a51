"""Training lowers the losses of both stages; checkpoints reload to identical scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mixlm.encoder import ItemEncoder, token_embedding_norm
from mixlm.ranker import MixRanker, PromptTemplate
from mixlm.train import (
    TrainConfig,
    align_encoder,
    load_weights,
    save_weights,
    teacher_scores,
    train_full_text,
    train_mixlm,
)

from labcore.errors import LabcoreError
from labcore.models import tiny_causal_lm

# A toy task the tiny models learn in a few steps: two of the four items are relevant to
# every query (a constant predictor stays at log 2 ≈ 0.69).
WORDS = ["markets", "goal", "vote", "phones"]
SENTENCES = {
    "markets": "Markets rose on Tuesday as investors weighed new figures.",
    "goal": "The team won the match after a late goal in the second half.",
    "vote": "Parliament will vote on the bill next week, ministers said.",
    "phones": "New phones and laptops went on sale today.",
}
PAIRS = [(q, SENTENCES[w], float(w in ("goal", "vote"))) for q in WORDS for w in WORDS]


def _ranker(seed=3):
    model, tok = tiny_causal_lm("llama", seed=seed)
    return MixRanker(model, tok, PromptTemplate(yes=" the", no=" a"))


def test_both_stages_lower_their_loss_and_checkpoints_reload(tiny_bert, tmp_path):
    torch.manual_seed(0)
    teacher = _ranker()
    cfg = TrainConfig(epochs=30, batch_size=16, lr=3e-3, encoder_lr=3e-3)
    losses = train_full_text(teacher, PAIRS, cfg)
    assert np.mean(losses[-5:]) < 0.3
    targets = teacher_scores(teacher, PAIRS)

    student = _ranker(seed=4)
    bert, btok = tiny_bert
    enc = ItemEncoder(
        bert, btok, k=2, hidden_size=64, target_norm=token_embedding_norm(student.model)
    )
    losses = train_mixlm(student, enc, PAIRS, cfg, teacher=targets)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    with torch.no_grad():  # the student alone now separates the items
        scores = student.pair_scores([p[0] for p in PAIRS], list(enc([p[1] for p in PAIRS])))
    labels = torch.tensor([p[2] for p in PAIRS])
    assert float(torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)) < 0.3

    save_weights(enc, tmp_path / "encoder.safetensors")
    save_weights(student.model, tmp_path / "ranker.safetensors")
    bert2, _ = tiny_bert
    enc2 = ItemEncoder(bert2, btok, k=2, hidden_size=64, target_norm=1.0)
    load_weights(enc2, tmp_path / "encoder.safetensors").eval()
    student2 = _ranker(seed=9)
    load_weights(student2.model, tmp_path / "ranker.safetensors")
    with torch.no_grad():
        a, _ = student.score("goal", list(enc(list(SENTENCES.values()))))
        b, _ = student2.score("goal", list(enc2(list(SENTENCES.values()))))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_alignment_trains_only_the_encoder_and_lowers_its_loss(tiny_bert):
    torch.manual_seed(0)
    ranker = _ranker()
    bert, btok = tiny_bert
    enc = ItemEncoder(
        bert, btok, k=2, hidden_size=64, target_norm=token_embedding_norm(ranker.model)
    )
    before = {n: p.detach().clone() for n, p in ranker.model.named_parameters()}
    cfg = TrainConfig(align_epochs=40, batch_size=4, head_lr=1e-2, align_tokens=8)
    losses = align_encoder(ranker, enc, list(SENTENCES.values()), cfg)
    # A random tiny LM cannot be steered far by two vectors; the loss must still fall (it
    # stays flat when no gradient reaches the projection).
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1
    for name, p in ranker.model.named_parameters():
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)
        assert p.requires_grad  # unfrozen again for the next stage


def test_bad_training_input_is_a_clear_error(tmp_path):
    with pytest.raises(LabcoreError, match="labels must be 0 or 1"):
        train_full_text(_ranker(), [("q", "item", 2.0)], TrainConfig())
    with pytest.raises(LabcoreError, match="no training pairs"):
        train_full_text(_ranker(), [], TrainConfig())
    with pytest.raises(LabcoreError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(LabcoreError, match="align_epochs"):
        TrainConfig(align_epochs=-1)
    with pytest.raises(LabcoreError, match="no item texts"):
        align_encoder(_ranker(), None, ["  "], TrainConfig())
    with pytest.raises(LabcoreError, match="no checkpoint"):
        load_weights(_ranker().model, tmp_path / "missing.safetensors")
