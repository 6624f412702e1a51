"""A trained MixLM run on disk: the ranker, the item encoder and how to rebuild them.

Layout of a run folder::

    config.json           base model names, k, item tokens, prompt template, encoder version
    ranker.safetensors    the MixLM ranker's weights
    encoder.safetensors   the item encoder's weights (encoder + projection + gain)

Base models are named: ``smollm2-135m`` (or any :func:`labcore.models.load_causal_lm` name
or path) for the ranker and ``minilm-l6`` for the encoder; ``tiny-llama`` and ``tiny-bert``
are seeded random models for tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError
from mixlm.encoder import ItemEncoder, token_embedding_norm
from mixlm.ranker import MixRanker, PromptTemplate

CONFIG = "config.json"
RANKER = "ranker.safetensors"
ENCODER = "encoder.safetensors"


def tiny_bert() -> tuple[Any, Any]:
    """A one-layer random BERT and the tiny tokenizer (seeded): the encoder of fast tests."""
    import torch
    from transformers import BertConfig, BertModel

    from labcore.models import tiny_tokenizer

    tok = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config)
    return model.eval(), tok


def load_ranker_base(name: str) -> tuple[Any, Any]:
    from labcore.models import load_causal_lm, tiny_causal_lm

    if name == "tiny-llama":
        return tiny_causal_lm("llama", seed=0)
    return load_causal_lm(name)


def load_encoder_base(name: str) -> tuple[Any, Any]:
    if name == "tiny-bert":
        return tiny_bert()
    if name == "minilm-l6":
        from mixlm.baselines import minilm

        return minilm()
    raise LabcoreError(f"unknown item encoder {name!r}; known: minilm-l6, tiny-bert")


@dataclass(frozen=True)
class RunConfig:
    ranker: str = "smollm2-135m"
    encoder: str = "minilm-l6"
    k: int = 4
    item_tokens: int = 256
    template: PromptTemplate = dataclasses.field(default_factory=PromptTemplate)
    encoder_version: str = ""

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "template": dataclasses.asdict(self.template)}

    @classmethod
    def from_json(cls, obj: dict) -> RunConfig:
        return cls(**{**obj, "template": PromptTemplate(**obj["template"])})


def build(config: RunConfig) -> tuple[MixRanker, ItemEncoder]:
    """Fresh (untrained) ranker and item encoder from the base models."""
    model, tok = load_ranker_base(config.ranker)
    ranker = MixRanker(model, tok, config.template)
    enc, enc_tok = load_encoder_base(config.encoder)
    encoder = ItemEncoder(
        enc,
        enc_tok,
        k=config.k,
        hidden_size=ranker.hidden_size,
        target_norm=token_embedding_norm(model),
        max_length=config.item_tokens,
    )
    return ranker, encoder


def save_run(
    folder: str | Path,
    config: RunConfig,
    ranker: MixRanker,
    encoder: ItemEncoder,
    *,
    overwrite: bool = False,
) -> RunConfig:
    """Write the run folder atomically (an existing one only with ``overwrite``)."""
    from labcore.io import atomic_directory, atomic_write_json
    from mixlm.cache import fingerprint
    from mixlm.train import save_weights

    config = dataclasses.replace(config, encoder_version=fingerprint(encoder))
    with atomic_directory(Path(folder), overwrite=overwrite) as tmp:
        save_weights(ranker.model, tmp / RANKER)
        save_weights(encoder, tmp / ENCODER)
        atomic_write_json(tmp / CONFIG, config.to_json())
    return config


def load_run(folder: str | Path) -> tuple[RunConfig, MixRanker, ItemEncoder]:
    from mixlm.cache import fingerprint
    from mixlm.train import load_weights

    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise LabcoreError(f"{folder} is not a mixlm run (no {CONFIG}); make one with mixlm train")
    try:
        config = RunConfig.from_json(json.loads((folder / CONFIG).read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise LabcoreError(f"{folder / CONFIG} is not a valid mixlm run config: {exc}") from None
    ranker, encoder = build(config)
    load_weights(ranker.model, folder / RANKER)
    load_weights(encoder, folder / ENCODER)
    ranker.model.eval()
    encoder.eval()
    if fingerprint(encoder) != config.encoder_version:
        raise LabcoreError(f"{folder}: the encoder weights do not match the recorded version")
    return config, ranker, encoder
