import pytest

from labcore.models import tiny_causal_lm


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A tiny random llama and its tokenizer saved as a transformers checkpoint."""
    model, tok = tiny_causal_lm("llama")
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
