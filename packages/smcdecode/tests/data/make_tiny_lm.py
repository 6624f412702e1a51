"""Build ``tiny-lm/``: a random two-layer Llama with a character tokenizer (a few kB).

It makes ``smcdecode generate --model tests/data/tiny-lm`` run offline in seconds, for the CLI
tests; its text is noise. Rebuild with ``uv run python tests/data/make_tiny_lm.py`` from
``packages/smcdecode``.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

OUT = Path(__file__).with_name("tiny-lm")
CHARS = string.ascii_lowercase + string.digits + " .,!?'\n"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def main() -> None:
    vocab = {"</s>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
    )
    model = LlamaForCausalLM(cfg).eval()
    OUT.mkdir(exist_ok=True)
    model.save_pretrained(OUT)
    fast.save_pretrained(OUT)


if __name__ == "__main__":
    main()
