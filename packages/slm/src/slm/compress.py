"""Context compression: shorter item text for the ranker, chosen without the query, so it
is done once per item at indexing time.

The token budget of an item is ``ceil(n / ratio)`` tokens of the ranker's tokenizer, with n
the item's own token count. Sentences are kept verbatim:

``lead``
    The first sentences that fit the budget (lead-k, k set by the budget per item).
``tfidf``
    The first sentence (the lead of a news article, or the first step of a solution: the
    required field), then the sentences of highest mean TF-IDF weight that still fit, put
    back in their original order. The idf is fitted on the training items.

When not even the first sentence fits, it is cut to the budget in tokens. The compressor
never exceeds the budget.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from labcore.checks import choice, finite_float
from labcore.errors import LabcoreError
from slm.config import COMPRESS_METHODS

# A sentence ends at . ! or ?, optionally followed by one closing quote or bracket, which
# stays with its sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]\u201d\u2019])\s+")
_WORD = re.compile(r"[a-z0-9]+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after ., ! or ? and closing quotes, at whitespace).

    >>> split_sentences('One. He said "Two!" Three?')
    ['One.', 'He said "Two!"', 'Three?']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def fit_idf(texts: Sequence[str]) -> dict[str, float]:
    """Smoothed inverse document frequency log((1 + N) / (1 + df)) + 1 of every word."""
    if not texts:
        raise LabcoreError("fit_idf needs at least one text")
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(_words(t)))
    n = len(texts)
    return {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}


@dataclass
class ContextCompressor:
    """Shortens item texts to 1/``ratio`` of their tokens (see the module notes).

    Parameters
    ----------
    method
        ``lead`` or ``tfidf``.
    ratio
        Target compression (``1`` keeps the text as is).
    count_tokens
        Token count of a text for the ranker's tokenizer.
    cut_tokens
        ``(text, n)`` → the text of its first n tokens.
    idf
        Word → idf (``tfidf``; from :func:`fit_idf` on training items).
    """

    method: str
    ratio: float
    count_tokens: Callable[[str], int]
    cut_tokens: Callable[[str, int], str]
    idf: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        choice("method", self.method, COMPRESS_METHODS)
        finite_float("ratio", self.ratio, minimum=1.0)
        if self.method == "tfidf" and not self.idf:
            raise LabcoreError(
                "the tfidf compressor needs an idf table (fit_idf on training items)"
            )

    @classmethod
    def for_tokenizer(cls, tokenizer, method: str, ratio: float, idf=None) -> ContextCompressor:
        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        def cut(text: str, n: int) -> str:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            # Decoding a cut inside a multi-byte character and encoding again can give more
            # tokens than were kept: shorten until the text fits.
            while n > 0:
                out = tokenizer.decode(ids[:n])
                if count(out) <= n:
                    return out
                n -= 1
            return ""

        return cls(method, ratio, count, cut, dict(idf or {}))

    def budget(self, n_tokens: int) -> int:
        return max(1, math.ceil(n_tokens / self.ratio))

    def _salience(self, sentence: str) -> float:
        words = _words(sentence)
        if not words:
            return 0.0
        tf = Counter(words)
        # Unknown words get the largest idf: rare in the training items.
        top = max(self.idf.values())
        return sum(c * self.idf.get(w, top) for w, c in tf.items()) / len(words)

    def __call__(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise LabcoreError("an item text to compress must be a non-empty string")
        if self.ratio == 1:
            return text
        sentences = split_sentences(text)
        lengths = [self.count_tokens(s) for s in sentences]
        budget = self.budget(self.count_tokens(text))
        if lengths[0] > budget:
            return self._cut(sentences[0], budget)
        if self.method == "lead":
            order = range(len(sentences))
        else:
            rest = sorted(range(1, len(sentences)), key=lambda i: -self._salience(sentences[i]))
            order = [0, *rest]
        kept, used = [], 0
        for i in order:
            # Joining with a space may merge or add a token at the seam: count the result.
            if used + lengths[i] + 1 <= budget or not kept:
                kept.append(i)
                used += lengths[i] + 1
            elif self.method == "lead":
                break
        out = " ".join(sentences[i] for i in sorted(kept))
        while self.count_tokens(out) > budget and len(kept) > 1:
            kept.pop()  # the last one added (never the first sentence)
            out = " ".join(sentences[i] for i in sorted(kept))
        return out if self.count_tokens(out) <= budget else self._cut(out, budget)

    def _cut(self, text: str, budget: int) -> str:
        out = self.cut_tokens(text, budget)
        if self.count_tokens(out) > budget:
            raise LabcoreError(
                f"cut_tokens gave more than {budget} tokens for a budget of {budget}"
            )
        return out
