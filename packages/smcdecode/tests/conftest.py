"""Shared test helpers: tiny random transformers models."""

from __future__ import annotations

import pytest
import torch


def tiny_llama(*, vocab: int, eos: int, layers: int, context: int, logit_scale: float = 1.0):
    """A random Llama small enough to run thousands of particles on a CPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=context,
        tie_word_embeddings=False,
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=0,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(logit_scale)
    return model


@pytest.fixture(scope="session")
def make_tiny_llama():
    return tiny_llama
