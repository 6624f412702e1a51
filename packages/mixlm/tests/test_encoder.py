"""The item encoder: shapes, norm matching to the ranker's token embeddings, and the
vectors feeding the ranker; the cache gives the same scores as recomputed vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mixlm.cache import ItemCache, fingerprint, text_hash
from mixlm.encoder import ItemEncoder, token_embedding_norm
from mixlm.ranker import MixRanker, PromptTemplate

from labcore.errors import LabcoreError
from labcore.models import tiny_causal_lm

TEXTS = ["Markets rose on Tuesday.", "The team won the match after a late goal."]


@pytest.fixture
def parts(tiny_bert):
    model, tok = tiny_causal_lm("llama", seed=2)
    ranker = MixRanker(model, tok, PromptTemplate(yes=" the", no=" a"))
    bert, btok = tiny_bert
    enc = ItemEncoder(
        bert, btok, k=4, hidden_size=64, target_norm=token_embedding_norm(model)
    ).eval()
    return ranker, enc


def test_item_vectors_have_the_ranker_token_norm(parts):
    ranker, enc = parts
    with torch.no_grad():
        vectors = enc(TEXTS)
    assert vectors.shape == (2, 4, 64)
    target = token_embedding_norm(ranker.model)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.full((2, 4), target), rtol=1e-3, atol=0)


def test_cached_and_recomputed_vectors_give_identical_scores(parts, tmp_path):
    ranker, enc = parts
    with torch.no_grad():
        vectors = enc(TEXTS)
    fresh, _ = ranker.score("goal", list(vectors))
    with ItemCache(tmp_path / "c.db", encoder_version=fingerprint(enc), k=4, dim=64) as cache:
        cache.put_many(
            (str(i), text_hash(t), v.numpy())
            for i, (t, v) in enumerate(zip(TEXTS, vectors, strict=True))
        )
        stored = cache.get_many(["0", "1"])
    cached, _ = ranker.score("goal", [torch.from_numpy(np.array(v)) for v in stored])
    torch.testing.assert_close(cached, fresh, rtol=0, atol=0)


def test_the_fingerprint_changes_with_the_weights(parts):
    _, enc = parts
    before = fingerprint(enc)
    with torch.no_grad():
        enc.project.bias.add_(1.0)
    assert fingerprint(enc) != before


def test_bad_encoder_settings_are_clear_errors(tiny_bert):
    bert, btok = tiny_bert
    with pytest.raises(LabcoreError, match="k"):
        ItemEncoder(bert, btok, k=0, hidden_size=64, target_norm=1.0)
    with pytest.raises(LabcoreError, match="target_norm"):
        ItemEncoder(bert, btok, k=2, hidden_size=64, target_norm=float("nan"))
