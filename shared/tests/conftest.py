from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_llama():
    from labcore.models import tiny_causal_lm

    return tiny_causal_lm("llama", seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_llama):
    """The tiny Llama saved as a local transformers checkpoint directory."""
    model, tok = tiny_llama
    path = tmp_path_factory.mktemp("ckpt") / "tiny-llama"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
