"""The encoder baselines, trained on the same pairs as MixLM.

- :class:`BiEncoder`: query and item embedded separately (mean-pooled encoder states),
  scored by cosine; fine-tuned with in-batch negatives (InfoNCE over the positive pairs),
  the standard bi-encoder recipe. The cheapest ranker: items are precomputed like MixLM's.
- :class:`CrossEncoder`: "query [SEP] item" through the encoder, a linear head on the first
  token, trained with binary cross-entropy: full interaction, every item recomputed.

Both start from the same encoder (MiniLM-L6 from ``labcore.models.load_sentence_encoder``
in the benchmark); :func:`minilm` returns its transformers model and tokenizer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from labcore.errors import LabcoreError
from mixlm.encoder import mean_pool
from mixlm.train import Pair, check_pairs, iterate_batches, optimizer_step


def minilm(device: str = "cpu") -> tuple[Any, Any]:
    """The MiniLM-L6 transformers encoder and tokenizer (offline, via labcore)."""
    from labcore.models import load_sentence_encoder

    st = load_sentence_encoder("minilm-l6", device=device)
    return st[0].auto_model, st.tokenizer


class _FineTuned(nn.Module):
    """The fine-tuning loop both baselines share: AdamW over every parameter, batches of
    the records :meth:`_records` keeps, the loss of :meth:`_loss` (None: skip the batch)."""

    def _records(self, pairs: Sequence[Pair]) -> list[Pair]:
        return list(pairs)

    def _loss(self, batch: list[Pair]) -> torch.Tensor | None:
        raise NotImplementedError

    def fit(
        self,
        pairs: Sequence[Pair],
        *,
        epochs: int = 1,
        batch_size: int = 8,
        lr: float = 2e-5,
        seed: int = 0,
    ) -> list[float]:
        """Fine-tune on ``pairs`` (query, item, 0/1); the loss per step."""
        check_pairs(pairs)
        records = self._records(pairs)
        opt = torch.optim.AdamW(self.parameters(), lr=lr)
        self.train()
        losses = []
        for idx in iterate_batches(len(records), batch_size, epochs, seed):
            loss = self._loss([records[i] for i in idx])
            if loss is not None:
                losses.append(optimizer_step(opt, loss))
        self.eval()
        return losses


class BiEncoder(_FineTuned):
    """Cosine similarity of mean-pooled encoder embeddings."""

    def __init__(self, encoder: Any, tokenizer: Any, *, max_length: int = 256, temperature=0.05):
        super().__init__()
        self.encoder, self.tokenizer = copy.deepcopy(encoder), tokenizer
        self.max_length, self.temperature = int(max_length), float(temperature)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt",
        ).to(next(self.encoder.parameters()).device)  # fmt: skip
        pooled = mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])
        return nn.functional.normalize(pooled, dim=-1)

    def _records(self, pairs: Sequence[Pair]) -> list[Pair]:
        positives = [p for p in pairs if p[2] == 1]
        if len(positives) < 2:
            raise LabcoreError("the bi-encoder needs at least two positive pairs")
        return positives

    def _loss(self, batch: list[Pair]) -> torch.Tensor | None:
        if len(batch) < 2:
            return None  # no in-batch negative
        q = self.embed([p[0] for p in batch])
        d = self.embed([p[1] for p in batch])
        logits = q @ d.T / self.temperature  # the other items of the batch: negatives
        return nn.functional.cross_entropy(logits, torch.arange(len(batch)))

    @torch.no_grad()
    def score(self, query: str, items: Sequence[str], *, item_vectors=None) -> torch.Tensor:
        q = self.embed([query])[0]
        d = item_vectors if item_vectors is not None else self.embed(items)
        return d @ q


class CrossEncoder(_FineTuned):
    """A linear head on the first token of "query [SEP] item"."""

    def __init__(self, encoder: Any, tokenizer: Any, *, max_length: int = 256):
        super().__init__()
        self.encoder, self.tokenizer = copy.deepcopy(encoder), tokenizer
        self.max_length = int(max_length)
        self.head = nn.Linear(int(encoder.config.hidden_size), 1)

    def forward(self, queries: Sequence[str], items: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(queries), list(items), padding=True, truncation="only_second",
            max_length=self.max_length, return_tensors="pt",
        ).to(self.head.weight.device)  # fmt: skip
        return self.head(self.encoder(**batch).last_hidden_state[:, 0]).squeeze(-1)

    def _loss(self, batch: list[Pair]) -> torch.Tensor:
        scores = self([p[0] for p in batch], [p[1] for p in batch])
        labels = torch.tensor([float(p[2]) for p in batch])
        return nn.functional.binary_cross_entropy_with_logits(scores, labels)

    @torch.no_grad()
    def score(self, query: str, items: Sequence[str], *, batch_size: int = 16) -> torch.Tensor:
        out = [
            self([query] * len(items[s : s + batch_size]), items[s : s + batch_size])
            for s in range(0, len(items), batch_size)
        ]
        return torch.cat(out)
