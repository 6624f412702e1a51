"""The item encoder: item text → k vectors in the ranker's hidden size.

A text encoder (MiniLM by default) reads the item. Vector j of k sees the mean of the
encoder's token states over the j-th of k contiguous parts of the item, next to the mean
over the whole item; one linear map (shared by the k slots, plus a bias per slot) takes
that pair to the ranker's hidden size d. So k vectors carry k parts of the item in reading
order (a single pooled vector mapped to k × d would carry the same information k times).
Each vector is normalized
(LayerNorm without affine terms) and scaled by a learnable gain that starts at the mean
norm of the ranker's own token embeddings. Without that norm matching the ranker either
ignores the injected vectors or lets them swamp the text around them (the notes' pitfall).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from labcore.errors import LabcoreError


def token_embedding_norm(ranker_model: Any) -> float:
    """The mean L2 norm of a causal LM's input token embeddings."""
    weight = ranker_model.get_input_embeddings().weight.detach()
    return float(weight.float().norm(dim=1).mean())


class ItemEncoder(nn.Module):
    """Item texts → (batch, k, hidden) item vectors.

    Parameters
    ----------
    encoder, tokenizer
        A transformers encoder (``AutoModel``; e.g. the MiniLM inside
        :func:`labcore.models.load_sentence_encoder`) and its tokenizer.
    k
        Item vectors per item.
    hidden_size
        The ranker's hidden size.
    target_norm
        Initial norm of each item vector (:func:`token_embedding_norm` of the ranker).
    max_length
        Item tokens the encoder reads (longer items are truncated).
    """

    def __init__(
        self,
        encoder: Any,
        tokenizer: Any,
        *,
        k: int,
        hidden_size: int,
        target_norm: float,
        max_length: int = 256,
    ) -> None:
        super().__init__()
        if k < 1:
            raise LabcoreError(f"k (item vectors per item) must be >= 1, got {k}")
        if not math.isfinite(target_norm) or target_norm <= 0:
            raise LabcoreError(f"target_norm must be a positive number, got {target_norm}")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.k, self.hidden_size, self.max_length = int(k), int(hidden_size), int(max_length)
        width = int(encoder.config.hidden_size)
        self.project = nn.Linear(2 * width, self.hidden_size)
        self.slot_bias = nn.Parameter(torch.zeros(self.k, self.hidden_size))
        self.norm = nn.LayerNorm(self.hidden_size, elementwise_affine=False)
        # Pooled states of different items share a large common part; the head reads them
        # centred and scaled per feature (statistics of the training items, see
        # fit_feature_stats), else the k vectors of all items start out nearly equal.
        self.register_buffer("feature_mean", torch.zeros(2 * width))
        self.register_buffer("feature_scale", torch.ones(2 * width))
        # LayerNorm output has norm √d; the gain takes it to the token embeddings' norm.
        self.gain = nn.Parameter(torch.tensor(float(target_norm) / math.sqrt(self.hidden_size)))

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.head(self.features(texts))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Item vectors (batch, k, hidden) from :meth:`features`."""
        features = (features - self.feature_mean) / self.feature_scale
        vectors = self.project(features) + self.slot_bias
        return self.norm(vectors) * self.gain

    @torch.no_grad()
    def fit_feature_stats(self, features: torch.Tensor) -> None:
        """Set the centring and scale of the head's input from the pooled states
        (items, k, 2 × width) of training items."""
        flat = features.reshape(-1, features.shape[-1]).float()
        if flat.shape[0] < 2:
            raise LabcoreError("feature statistics need at least two item vectors")
        self.feature_mean.copy_(flat.mean(0))
        self.feature_scale.copy_(flat.std(0).clamp_min(1e-4))

    def features(self, texts: list[str]) -> torch.Tensor:
        """The encoder's pooled states (batch, k, 2 × encoder width): part means and the
        whole-item mean. With the encoder frozen they can be computed once per item."""
        if not texts:
            raise LabcoreError("no item texts to encode")
        device = self.project.weight.device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        states = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].to(states.dtype)
        parts = chunk_means(states, mask, self.k)  # (batch, k, width)
        whole = mean_pool(states, mask)
        return torch.cat([parts, whole[:, None].expand_as(parts)], dim=-1)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``states`` (batch, length, width) over each row's real tokens."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def chunk_means(states: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Means of ``states`` (batch, length, width) over k contiguous parts of each row's real
    tokens (``mask`` 1 for real, 0 for padding; real tokens first). A part with no token
    (an item shorter than k tokens) is zero."""
    length = mask.sum(1, keepdim=True).clamp_min(1.0)  # (batch, 1)
    position = torch.arange(states.shape[1], device=states.device, dtype=states.dtype)
    part = torch.floor(position[None] * k / length).clamp_max(k - 1).long()  # (batch, length)
    weights = torch.nn.functional.one_hot(part, k).to(states.dtype) * mask[..., None]
    sums = torch.einsum("btk,btw->bkw", weights, states)
    return sums / weights.sum(1)[..., None].clamp_min(1.0)
