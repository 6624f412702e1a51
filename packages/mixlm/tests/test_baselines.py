"""The encoder baselines train on the same pairs and score a candidate list."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mixlm.baselines import BiEncoder, CrossEncoder

from labcore.errors import LabcoreError

ITEMS = {
    "markets": "Markets rose on Tuesday as investors weighed new figures.",
    "goal": "The team won the match after a late goal in the second half.",
    "vote": "Parliament will vote on the bill next week, ministers said.",
    "phones": "New phones and laptops went on sale today.",
}
PAIRS = [(q, ITEMS[w], float(q == w)) for q in ITEMS for w in ITEMS]


def test_cross_encoder_learns_the_pairs(tiny_bert):
    torch.manual_seed(0)
    model = CrossEncoder(*tiny_bert)
    losses = model.fit(PAIRS, epochs=150, batch_size=16, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    scores = model.score("goal", list(ITEMS.values()))
    assert scores.shape == (4,) and int(scores.argmax()) == 1


def test_bi_encoder_trains_with_in_batch_negatives(tiny_bert):
    torch.manual_seed(0)
    model = BiEncoder(*tiny_bert)
    losses = model.fit(PAIRS, epochs=40, batch_size=4, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    scores = model.score("goal", list(ITEMS.values()))
    assert torch.all(scores.abs() <= 1 + 1e-6) and int(scores.argmax()) == 1
    with pytest.raises(LabcoreError, match="two positive pairs"):
        model.fit([("q", "x", 1.0), ("q", "y", 0.0)])


def test_the_baselines_do_not_train_the_shared_encoder(tiny_bert):
    bert, tok = tiny_bert
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    CrossEncoder(bert, tok).fit(PAIRS, epochs=1, lr=1e-2)
    for k, v in bert.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
