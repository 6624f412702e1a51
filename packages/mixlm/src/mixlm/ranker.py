"""The ranker: a causal LM that reads [instruction + query] ⊕ [item] ⊕ [answer prompt] and
scores relevance as logit(yes) − logit(no) at the last position.

The item part is either the item's text tokens (the full-text ranker, the teacher) or k
item vectors in the ranker's hidden size (MixLM), fed through ``inputs_embeds``. Both paths
build the same embedding sequence from separately tokenized segments, so feeding the
ranker's own token embeddings of the item text as "item vectors" reproduces the full-text
score exactly (the identity check in the tests).

Scoring many items for one query computes the query prefix once and reuses its key/value
cache for every item (:meth:`MixRanker.score`); sequences are right-padded, so a real token
never attends to padding and positions do not depend on the batch.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from labcore.errors import LabcoreError


@dataclass(frozen=True)
class PromptTemplate:
    """The text around the query and the item; ``yes``/``no`` must be single tokens."""

    instruction: str = "Does the document answer the query?\nQuery: "
    before_item: str = "\nDocument: "
    answer: str = "\nAnswer (yes or no):"
    yes: str = " yes"
    no: str = " no"


@dataclass
class Prefill:
    """Token accounting of one scoring call."""

    prefix_tokens: int  # instruction + query + the text before the item: computed once
    tokens_per_item: float  # item part + answer prompt, mean over the items
    items: int

    @property
    def without_reuse(self) -> float:
        """Tokens per item when every item recomputes the prefix (no KV reuse)."""
        return self.prefix_tokens + self.tokens_per_item


def _per_row_logits_to_keep() -> bool:
    """Whether transformers takes a [batch, k] ``logits_to_keep`` (one position per row)."""
    import transformers.modeling_utils as mu

    return hasattr(mu, "slice_logits_to_keep")


class MixRanker:
    """Relevance scores from a causal LM, from item text or from item vectors.

    Parameters
    ----------
    model, tokenizer
        A transformers causal LM and its tokenizer (e.g. :func:`labcore.models.load_causal_lm`).
    template
        The prompt around query and item.
    """

    def __init__(self, model: Any, tokenizer: Any, template: PromptTemplate | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.template = template or PromptTemplate()
        self.yes_id = self._single_token(self.template.yes)
        self.no_id = self._single_token(self.template.no)
        self.embedding = model.get_input_embeddings()
        self.hidden_size = int(self.embedding.weight.shape[1])
        # transformers 5 names the key/value cache argument ``cache``; 4.x ``past_key_values``.
        params = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in params else "past_key_values"
        # Prefill-only scoring needs the vocabulary head at each row's last position only.
        self._keeps_logits = "logits_to_keep" in params
        self._keeps_per_row = _per_row_logits_to_keep()

    # -- text -----------------------------------------------------------------------------
    def _single_token(self, text: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise LabcoreError(
                f"the answer word {text!r} is {len(ids)} tokens for this tokenizer; the score "
                "reads one logit each for yes and no: choose single-token words in the template"
            )
        return int(ids[0])

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prefix_ids(self, query: str) -> list[int]:
        """BOS (when the tokenizer has one) + instruction + query + the text before the item."""
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        t = self.template
        return bos + self.ids(t.instruction) + self.ids(query) + self.ids(t.before_item)

    def embed_ids(self, ids: list[int]) -> torch.Tensor:
        device = self.embedding.weight.device
        return self.embedding(torch.tensor(ids, dtype=torch.long, device=device))

    def item_text_vectors(self, item: str) -> torch.Tensor:
        """The ranker's own token embeddings of an item text: the full-text item part."""
        return self.embed_ids(self.ids(item))

    # -- scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def score(
        self,
        query: str,
        items: list[torch.Tensor],
        *,
        batch_size: int = 16,
        reuse_prefix: bool = True,
    ) -> tuple[torch.Tensor, Prefill]:
        """Scores of the items for one query; each item is a (length, hidden) tensor: item
        vectors (MixLM) or :meth:`item_text_vectors` (full text).

        With ``reuse_prefix`` the prefix's key/value cache is computed once and shared by
        every item; without it each item runs the whole sequence (the reference)."""
        if not items:
            raise LabcoreError("no items to score")
        for k, item in enumerate(items):
            if item.ndim != 2 or item.shape[1] != self.hidden_size or item.shape[0] < 1:
                raise LabcoreError(
                    f"item {k} has shape {tuple(item.shape)}; expected (length >= 1, "
                    f"{self.hidden_size}) vectors in the ranker's hidden size"
                )
        prefix = self.embed_ids(self.prefix_ids(query))
        answer = self.embed_ids(self.ids(self.template.answer))
        suffixes = [torch.cat([item.to(prefix), answer]) for item in items]
        scores = []
        cache = self._prefix_cache(prefix) if reuse_prefix else None
        for start in range(0, len(suffixes), batch_size):
            chunk = suffixes[start : start + batch_size]
            if reuse_prefix:
                scores.append(self._score_after_prefix(cache, len(prefix), chunk))
            else:
                scores.append(self._score_sequences([torch.cat([prefix, s]) for s in chunk]))
        prefill = Prefill(
            prefix_tokens=len(prefix),
            tokens_per_item=sum(len(s) for s in suffixes) / len(suffixes),
            items=len(items),
        )
        return torch.cat(scores), prefill

    def pair_scores(self, queries: list[str], items: list[torch.Tensor]) -> torch.Tensor:
        """Scores of (query, item) pairs, each run in full, with gradients (training)."""
        if len(queries) != len(items):
            raise LabcoreError(f"{len(queries)} queries but {len(items)} items")
        answer = self.embed_ids(self.ids(self.template.answer))
        seqs = [
            torch.cat([self.embed_ids(self.prefix_ids(q)), item.to(answer), answer])
            for q, item in zip(queries, items, strict=True)
        ]
        return self._score_sequences(seqs)

    def score_grid(self, queries: list[str], items: list[torch.Tensor]) -> torch.Tensor:
        """Scores of every query against every item, (queries, items), with gradients
        (in-batch training): each query's prefix runs once and its key/value cache serves
        all the items, so a grid costs about queries × (prefix + items × suffix) tokens."""
        if not queries or not items:
            raise LabcoreError("score_grid needs at least one query and one item")
        answer = self.embed_ids(self.ids(self.template.answer))
        padded = self._pad([torch.cat([item.to(answer), answer]) for item in items])
        rows = []
        for query in queries:
            prefix = self.embed_ids(self.prefix_ids(query))
            cache = self._prefix_cache(prefix)  # used once: extended in place, no copy
            rows.append(self._forward_after_prefix(cache, len(prefix), *padded))
        return torch.stack(rows)

    def _logit_gap(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, self.yes_id] - logits[:, self.no_id]).float()

    def _pad(self, seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded (batch, length, hidden), its mask, and each row's last real index."""
        lengths = torch.tensor([len(s) for s in seqs])
        width = int(lengths.max())
        ref = seqs[0]
        out = ref.new_zeros((len(seqs), width, ref.shape[1]))
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=ref.device)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return out, mask, lengths - 1

    def _score_sequences(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        embeds, mask, last = self._pad(seqs)
        return self._last_logit_gap(last, inputs_embeds=embeds, attention_mask=mask)

    def _last_logit_gap(self, last: torch.Tensor, **forward: Any) -> torch.Tensor:
        """logit(yes) − logit(no) at each row's ``last`` position. The vocabulary head runs
        at that one position per row (``logits_to_keep`` as a [batch, 1] index), not at
        every token: on SmolLM2-135M the head is about a quarter of a full forward."""
        rows = torch.arange(len(last))
        if not self._keeps_logits:
            return self._logit_gap(self.model(**forward).logits[rows, last])
        if self._keeps_per_row:
            index = last[:, None].to(self.embedding.weight.device)
            return self._logit_gap(self.model(**forward, logits_to_keep=index).logits[:, 0])
        keep = torch.unique(last)  # older transformers: positions shared by every row
        logits = self.model(**forward, logits_to_keep=keep.to(self.embedding.weight.device)).logits
        return self._logit_gap(logits[rows, torch.searchsorted(keep, last)])

    def _prefix_cache(self, prefix: torch.Tensor):
        out = self.model(inputs_embeds=prefix[None], use_cache=True)
        return out.cache if "cache" in out else out.past_key_values

    def _score_after_prefix(self, cache, prefix_len: int, suffixes: list[torch.Tensor]):
        past = copy.deepcopy(cache)  # the forward appends to it
        return self._forward_after_prefix(past, prefix_len, *self._pad(suffixes))

    def _forward_after_prefix(self, past, prefix_len: int, embeds, mask, last) -> torch.Tensor:
        """Scores of right-padded suffixes that continue a one-row prefix cache ``past``
        (repeated over the batch and extended in place)."""
        batch, width = mask.shape
        past.batch_repeat_interleave(batch)
        full_mask = torch.cat([mask.new_ones((batch, prefix_len)), mask], dim=1)
        positions = torch.arange(prefix_len, prefix_len + width, device=mask.device)
        return self._last_logit_gap(
            last,
            inputs_embeds=embeds,
            attention_mask=full_mask,
            **{self._cache_argument: past},
            position_ids=positions[None].expand(batch, -1),
            use_cache=True,
        )
