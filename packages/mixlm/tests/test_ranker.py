"""The ranker's scoring paths: identity with full text, prefix reuse, batch independence,
token accounting."""

from __future__ import annotations

import pytest
import torch
from mixlm.ranker import MixRanker, PromptTemplate

from labcore.errors import LabcoreError
from labcore.models import tiny_causal_lm

ITEMS = [
    "Markets rose on Tuesday as investors weighed new figures.",
    "The team won the match after a late goal.",
    "Parliament will vote on the bill next week, ministers said.",
    "New phones went on sale today.",
]


@pytest.fixture(params=["llama", "qwen2"])
def ranker(request):
    model, tok = tiny_causal_lm(request.param, seed=1)
    return MixRanker(model, tok, PromptTemplate(yes=" the", no=" a"))


def _full_text_reference(r: MixRanker, query: str, item: str) -> float:
    ids = r.prefix_ids(query) + r.ids(item) + r.ids(r.template.answer)
    logits = r.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return float(logits[r.yes_id] - logits[r.no_id])


def test_token_embeddings_as_item_vectors_reproduce_the_full_text_scores(ranker):
    query = "growth figures"
    vectors = [ranker.item_text_vectors(t) for t in ITEMS]
    scores, _ = ranker.score(query, vectors, reuse_prefix=False)
    with torch.no_grad():
        ref = torch.tensor([_full_text_reference(ranker, query, t) for t in ITEMS])
    torch.testing.assert_close(scores, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("head", ["per-row", "shared-positions", "every-position"])
def test_every_way_of_running_the_head_gives_the_same_scores(ranker, head):
    """The vocabulary head at each row's last position only (or, on older transformers, at
    the positions rows end at; or everywhere) gives the full-text reference scores."""
    ranker._keeps_per_row = head == "per-row"
    ranker._keeps_logits = head != "every-position"
    query = "growth figures"
    vectors = [ranker.item_text_vectors(t) for t in ITEMS]  # different lengths: right padding
    with torch.no_grad():
        ref = torch.tensor([_full_text_reference(ranker, query, t) for t in ITEMS])
    for reuse in (True, False):
        scores, _ = ranker.score(query, vectors, reuse_prefix=reuse, batch_size=3)
        torch.testing.assert_close(scores, ref, rtol=0, atol=1e-5)


def test_prefix_reuse_and_batching_do_not_change_scores(ranker):
    query = "a late goal"
    vectors = [ranker.item_text_vectors(t) for t in ITEMS] + [torch.randn(4, 64)]
    alone = torch.cat([ranker.score(query, [v], reuse_prefix=False)[0] for v in vectors])
    together, _ = ranker.score(query, vectors, reuse_prefix=True, batch_size=16)
    pairs, _ = ranker.score(query, vectors[::-1], reuse_prefix=True, batch_size=2)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(pairs.flip(0), alone, rtol=0, atol=1e-5)


def test_the_training_grid_equals_pairwise_scores_and_carries_gradients(ranker):
    torch.manual_seed(0)
    items = [torch.randn(n, 64, requires_grad=True) for n in (3, 1, 5)]
    queries = ["markets today", "a goal"]
    grid = ranker.score_grid(queries, items)
    pairwise = torch.stack([ranker.pair_scores([q] * len(items), items) for q in queries])
    torch.testing.assert_close(grid, pairwise, rtol=0, atol=1e-5)
    grid[1, 2].backward()
    assert items[2].grad.abs().sum() > 0
    assert items[0].grad is None or items[0].grad.abs().sum() == 0  # row 1 reads item 2 only


def test_prefill_tokens_per_item_are_the_item_vectors_and_the_answer(ranker):
    query = "phones"
    k = 4
    _, prefill = ranker.score(query, [torch.randn(k, 64)] * 3)
    answer = len(ranker.ids(ranker.template.answer))
    assert prefill.tokens_per_item == k + answer
    assert prefill.prefix_tokens == len(ranker.prefix_ids(query))
    assert prefill.without_reuse == len(ranker.prefix_ids(query)) + k + answer


def test_bad_items_and_multi_token_answers_are_clear_errors(ranker):
    with pytest.raises(LabcoreError, match="hidden size"):
        ranker.score("q", [torch.randn(3, 65)])
    with pytest.raises(LabcoreError, match="no items"):
        ranker.score("q", [])
    with pytest.raises(LabcoreError, match="single-token"):
        MixRanker(
            ranker.model, ranker.tokenizer, PromptTemplate(yes=" absolutely certain", no=" a")
        )
