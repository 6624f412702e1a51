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


def test_closing_quotes_stay_with_their_sentence():
    text = 'He said "It is over." Then he left. (It rained.) ‘Fine,’ she said.'
    assert split_sentences(text) == [
        'He said "It is over."',
        "Then he left.",
        "(It rained.)",
        "‘Fine,’ she said.",
    ]


def test_a_cut_that_overflows_is_refused():
    bad = ContextCompressor("lead", 4.0, words, lambda text, n: text)  # ignores the budget
    with pytest.raises(LabcoreError, match="more than"):
        bad("averyveryverylongfirstsentence with many words in it that will not fit. Two.")


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


@pytest.mark.parametrize("ratio", [3.0, 40.0])  # 40: only a cut of the lead fits
def test_with_a_real_tokenizer(ratio):
    from labcore.models import tiny_tokenizer

    tok = tiny_tokenizer()
    c = ContextCompressor.for_tokenizer(tok, "tfidf", ratio, IDF)
    text = TEXT + " Prices rose 5% (to £3.2bn) — a record."
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    out = c(text)
    assert 0 < len(tok(out, add_special_tokens=False)["input_ids"]) <= math.ceil(n / ratio)
