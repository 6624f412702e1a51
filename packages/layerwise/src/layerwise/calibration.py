"""Calibration data: token windows with an attention mask and optional per-token weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labcore import LabcoreError


@dataclass
class Calibration:
    """Calibration sequences for the engine.

    input_ids       LongTensor [n, L]
    attention_mask  LongTensor [n, L]: 1 for real tokens, 0 for padding (never in statistics)
    token_weights   FloatTensor [n, L] or None: per-token weights in the statistics
                    (e.g. RAC weights prompt and reasoning tokens differently)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        ids = self.input_ids
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] == 0:
            raise LabcoreError("calibration input_ids must be a non-empty 2-D tensor [n, seqlen]")
        if self.attention_mask is None:
            self.attention_mask = torch.ones_like(ids)
        if self.attention_mask.shape != ids.shape:
            raise LabcoreError(
                f"attention_mask shape {tuple(self.attention_mask.shape)} != input_ids {tuple(ids.shape)}"
            )
        if self.token_weights is not None:
            if self.token_weights.shape != ids.shape:
                raise LabcoreError(
                    f"token_weights shape {tuple(self.token_weights.shape)} != input_ids {tuple(ids.shape)}"
                )
            if not torch.isfinite(self.token_weights).all() or (self.token_weights < 0).any():
                raise LabcoreError("token_weights must be finite and non-negative")
        if int(self.attention_mask.sum()) == 0:
            raise LabcoreError("calibration data has no unmasked token")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def weights(self) -> torch.Tensor:
        """Per-token weight in the statistics: the mask times the optional token weights."""
        w = self.attention_mask.float()
        return w if self.token_weights is None else w * self.token_weights.float()

    @classmethod
    def from_corpus(
        cls, tokenizer: Any, corpus: Any = "bbc", *, n: int = 128, seqlen: int = 2048, seed: int = 0
    ) -> Calibration:
        """``n`` random windows of ``seqlen`` tokens from the corpus's train split."""
        from labcore.data import Corpus, calibration_windows, load_corpus

        c = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
        ids = calibration_windows(tokenizer, c.train, n=n, seqlen=seqlen, seed=seed)
        return cls(ids, torch.ones_like(ids))

    @classmethod
    def from_texts(
        cls,
        tokenizer: Any,
        texts: list[str],
        *,
        max_length: int = 2048,
        weights: list[list[float]] | None = None,
    ) -> Calibration:
        """One sequence per text, right-padded to the longest; padding is masked out."""
        if not texts:
            raise LabcoreError("no calibration texts given")
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        seqs = [tokenizer(t, add_special_tokens=True)["input_ids"][:max_length] for t in texts]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), int(pad if pad is not None else 0), dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        tw = None if weights is None else torch.zeros((len(seqs), L))
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            if tw is not None:
                if len(weights[i]) < len(s):
                    raise LabcoreError(f"text {i}: {len(weights[i])} weights for {len(s)} tokens")
                tw[i, : len(s)] = torch.tensor(weights[i][: len(s)], dtype=torch.float32)
        return cls(ids, mask, tw)
