"""Context compression: budgets that hold, verbatim sentences, the lead kept."""

from __future__ import annotations

import math

import pytest
from slm.compress import ContextCompressor, fit_idf, split_sentences

from labcore.errors import LabcoreError


def words(text: str) -> int:  # a whitespace "tokenizer": easy to check by hand
    return len(text.split())


def cut(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


TEXT = (
    "The match ended in a draw. Fans sang for an hour. "
    "Zidane praised the goalkeeper's extraordinary reflexes! Rain fell. "
    "The league table is unchanged after tonight."
)
IDF = fit_idf(["the match was a draw", "fans sang", "rain fell on the league", TEXT])


def make(method: str, ratio: float) -> ContextCompressor:
    return ContextCompressor(method, ratio, words, cut, IDF if method == "tfidf" else {})


def test_split_sentences():
    assert split_sentences(TEXT)[:2] == ["The match ended in a draw.", "Fans sang for an hour."]
    assert len(split_sentences(TEXT)) == 5


@pytest.mark.parametrize("method", ["lead", "tfidf"])
@pytest.mark.parametrize("ratio", [1.5, 2.0, 3.0, 5.0, 100.0])
def test_budget_holds_and_sentences_are_verbatim(method, ratio):
    out = make(method, ratio)(TEXT)
    assert words(out) <= math.ceil(words(TEXT) / ratio)
    sentences = split_sentences(TEXT)
    if words(sentences[0]) <= math.ceil(words(TEXT) / ratio):
        kept = split_sentences(out)
        assert kept[0] == sentences[0]  # the required field: the lead sentence
        assert all(s in sentences for s in kept)
        assert [sentences.index(s) for s in kept] == sorted(sentences.index(s) for s in kept)
    else:  # not even the lead fits: its first tokens, exactly the budget
        assert out == cut(sentences[0], math.ceil(words(TEXT) / ratio))


def test_lead_is_a_prefix_of_sentences():
    out = make("lead", 2.0)(TEXT)  # budget 13 words
    assert out == "The match ended in a draw. Fans sang for an hour."


def test_tfidf_prefers_rare_words():
    out = make("tfidf", 1.5)(TEXT)  # 18 of 26 words
    # After the lead, the sentence of rare words beats the common ones; then what fits.
    assert (
        out == "The match ended in a draw. Zidane praised the goalkeeper's extraordinary "
        "reflexes! Rain fell."
    )


def test_ratio_one_keeps_the_text():
    assert make("lead", 1.0)(TEXT) == TEXT


def test_errors():
    with pytest.raises(LabcoreError, match="needs an idf table"):
        ContextCompressor("tfidf", 2.0, words, cut)
    with pytest.raises(LabcoreError, match="non-empty string"):
        make("lead", 2.0)("   ")
    with pytest.raises(LabcoreError):
        ContextCompressor("summary", 2.0, words, cut)
    with pytest.raises(LabcoreError, match="at least one text"):
        fit_idf([])


def test_with_a_real_tokenizer():
    from labcore.models import tiny_tokenizer

    tok = tiny_tokenizer()
    c = ContextCompressor.for_tokenizer(tok, "tfidf", 3.0, IDF)
    n = len(tok(TEXT, add_special_tokens=False)["input_ids"])
    out = c(TEXT)
    assert len(tok(out, add_special_tokens=False)["input_ids"]) <= math.ceil(n / 3)
