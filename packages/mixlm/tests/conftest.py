from __future__ import annotations

import pytest
import torch

from labcore.models import tiny_tokenizer


def make_tiny_bert():
    """A one-layer random BERT and the tiny tokenizer: the item encoder of fast tests."""
    from transformers import BertConfig, BertModel

    tok = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config)
    return model.eval(), tok


@pytest.fixture
def tiny_bert():
    return make_tiny_bert()
