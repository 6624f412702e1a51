"""A batched, KV-cached view of a transformers causal LM for particle methods.

All particles share one prompt: it is encoded once (batch 1) and its cache repeated to the
particle count, never re-encoded per particle. Particles advance in lock-step, one token
each per forward pass, so every particle's sequence has the same length and no padding or
attention mask is needed (a finished particle is fed its EOS token and its outputs are
ignored). Resampling reorders the cache rows; rejuvenation crops it and merges accepted rows
back. The cache is manipulated through its layers' key/value tensors directly.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch

from labcore.errors import LabcoreError


@dataclass
class Budget:
    """Compute spent: tokens sampled (all particles, rollouts and MH proposals), forward
    calls (a batched call counts once) and token positions processed by the model."""

    tokens_generated: int = 0
    forward_calls: int = 0
    token_forwards: int = 0

    def add(self, other: Budget) -> None:
        self.tokens_generated += other.tokens_generated
        self.forward_calls += other.forward_calls
        self.token_forwards += other.token_forwards


def _cache_layers(cache) -> list:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise LabcoreError(
            "unsupported KV cache type (need a transformers DynamicCache with .layers; "
            "transformers >= 4.56)"
        )
    return layers


def cache_select(cache, index: torch.Tensor) -> None:
    """Keep (and repeat) batch rows ``index`` of every layer, in place."""
    for layer in _cache_layers(cache):
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)


def cache_crop(cache, length: int) -> None:
    """Keep the first ``length`` positions, in place."""
    for layer in _cache_layers(cache):
        layer.keys = layer.keys[..., :length, :]
        layer.values = layer.values[..., :length, :]


def cache_pad(cache, length: int) -> None:
    """Append zero positions up to ``length``, in place."""
    for layer in _cache_layers(cache):
        extra = length - layer.keys.shape[-2]
        if extra > 0:
            shape = (*layer.keys.shape[:-2], extra, layer.keys.shape[-1])
            layer.keys = torch.cat([layer.keys, layer.keys.new_zeros(shape)], dim=-2)
            layer.values = torch.cat([layer.values, layer.values.new_zeros(shape)], dim=-2)


def cache_merge(cache, other, take_other: torch.Tensor) -> None:
    """Rows where ``take_other`` is True come from ``other`` (same shapes), in place."""
    m = take_other.view(-1, 1, 1, 1)
    for a, b in zip(_cache_layers(cache), _cache_layers(other), strict=True):
        a.keys = torch.where(m, b.keys, a.keys)
        a.values = torch.where(m, b.values, a.values)


def cache_length(cache) -> int:
    layers = _cache_layers(cache)
    return int(layers[0].keys.shape[-2]) if layers else 0


class ModelRunner:
    """Runs a causal LM over a batch of particles with a shared, cached prompt.

    Parameters
    ----------
    model
        A transformers causal LM (``model(input_ids, ...)`` returning ``.logits``).
    eos_token_ids
        Tokens that end a sequence.
    """

    def __init__(self, model, *, eos_token_ids: list[int] | int):
        self.model = model
        self.eos = sorted({eos_token_ids} if isinstance(eos_token_ids, int) else set(eos_token_ids))
        if not self.eos:
            raise LabcoreError("the model needs at least one EOS token id")
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.device = next(model.parameters()).device
        self.budget = Budget()

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @torch.no_grad()
    def prefill(self, prompt_ids: torch.Tensor, n: int):
        """Encode the prompt once; return ``(logits [n, V], cache)`` for ``n`` particles."""
        if prompt_ids.ndim != 1 or len(prompt_ids) == 0:
            raise LabcoreError("the prompt must be a non-empty 1-D tensor of token ids")
        ids = prompt_ids.to(self.device)[None, :]
        out = self.model(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        kinds = {type(layer).__name__ for layer in _cache_layers(cache)}
        if kinds - {"DynamicLayer"}:
            raise LabcoreError(
                f"unsupported KV cache layers {sorted(kinds)}: smcdecode crops and merges the "
                "cache tensors itself, which is only correct for plain (full-attention) "
                "layers; sliding-window and linear-attention models are not supported"
            )
        self.budget.forward_calls += 1
        self.budget.token_forwards += ids.shape[1]
        cache_select(cache, torch.zeros(n, dtype=torch.long, device=self.device))
        logits = out.logits[0, -1].float()
        return logits.expand(n, -1).clone(), cache

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, cache) -> torch.Tensor:
        """Feed one token per particle; return the next-token logits ``[n, V]``."""
        out = self.model(
            input_ids=tokens.to(self.device)[:, None], use_cache=True, **{self._cache_kw: cache}
        )
        self.budget.forward_calls += 1
        self.budget.token_forwards += tokens.shape[0]
        return out.logits[:, -1].float()

    @torch.no_grad()
    def sequence_logprobs(self, prompt_ids: torch.Tensor, completions: list[list[int]]):
        """Per-token log p of each completion after the prompt, with no cache (a reference
        for tests). Returns a list of 1-D tensors."""
        res = []
        for comp in completions:
            ids = torch.cat([prompt_ids, torch.tensor(comp, dtype=torch.long)]).to(self.device)
            logits = self.model(input_ids=ids[None, :]).logits[0].float()
            lp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
            res.append(lp[torch.arange(len(comp)), torch.tensor(comp, dtype=torch.long)].cpu())
        return res


def clone_cache(cache):
    return copy.deepcopy(cache)
