"""Rewards that guide decoding.

The target over whole completions y is ``pi(y) ∝ p(y)^alpha * exp(lam * r(y))``. A
:class:`Potential` gives the reward of a finished completion (:meth:`Potential.final`) and of
a prefix (:meth:`Potential.prefix`): prefix-only SMC weights particles by the change of
``lam * r(prefix)`` from block to block. A terminal-only potential (unit tests, exact answers)
scores every prefix 0; then prefix-only SMC reduces to importance sampling with resampling
only at the end, close to best-of-N (the lookahead variant estimates the terminal reward
ahead by rollouts).

Both methods take the decoded texts and the token ids of the particles (completions only,
without the prompt) and return one float per particle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from labcore.errors import LabcoreError
from labcore.tasks import answers_match, boxed_answer, last_number, normalize_answer

__all__ = [
    "CallablePotential",
    "ExactAnswerPotential",
    "KeywordPotential",
    "LengthPotential",
    "Potential",
    "RegexPotential",
    "SumPotential",
    "TokenPotential",
    "boxed_answer",  # re-exported from labcore.tasks
    "last_number",  # re-exported from labcore.tasks
    "normalize_answer",  # re-exported from labcore.tasks
    "parse_reward",
]


class Potential:
    """Base class: override :meth:`final` and, for prefix guidance, :meth:`prefix`."""

    #: True when :meth:`prefix` is identically 0 (the reward is only known at the end).
    terminal_only: bool = True

    def prefix(self, texts: Sequence[str], ids: Sequence[Sequence[int]]) -> np.ndarray:
        return np.zeros(len(texts))

    def final(self, texts: Sequence[str], ids: Sequence[Sequence[int]]) -> np.ndarray:
        raise NotImplementedError

    def __add__(self, other: Potential) -> Potential:
        return SumPotential([(1.0, self), (1.0, other)])


class SumPotential(Potential):
    """Weighted sum of potentials."""

    def __init__(self, parts: Sequence[tuple[float, Potential]]):
        if not parts:
            raise LabcoreError("SumPotential needs at least one part")
        self.parts = list(parts)
        self.terminal_only = all(p.terminal_only for _, p in self.parts)

    def prefix(self, texts, ids):
        return sum(w * np.asarray(p.prefix(texts, ids), float) for w, p in self.parts)

    def final(self, texts, ids):
        return sum(w * np.asarray(p.final(texts, ids), float) for w, p in self.parts)


class KeywordPotential(Potential):
    """Fraction of required words present (whole words, case-insensitive by default).

    Defined on prefixes too (coverage only grows), so prefix-only SMC can favour particles
    that have already used more of the words.
    """

    terminal_only = False

    def __init__(self, words: Sequence[str], *, case_sensitive: bool = False):
        words = [w.strip() for w in words if w.strip()]
        if not words:
            raise LabcoreError("KeywordPotential needs at least one non-empty word")
        flags = 0 if case_sensitive else re.IGNORECASE
        self.words = words
        self._patterns = [re.compile(rf"\b{re.escape(w)}\b", flags) for w in words]

    def coverage(self, text: str) -> float:
        return sum(bool(p.search(text)) for p in self._patterns) / len(self._patterns)

    def prefix(self, texts, ids):
        return np.array([self.coverage(t) for t in texts])

    final = prefix


class RegexPotential(Potential):
    """1 if the completion matches ``pattern`` (``re.search``, or whole text with
    ``fullmatch=True``), else 0. Terminal only."""

    def __init__(self, pattern: str, *, fullmatch: bool = False):
        try:
            self.pattern = re.compile(pattern, re.DOTALL)
        except re.error as e:
            raise LabcoreError(f"bad regular expression {pattern!r}: {e}") from None
        self.fullmatch = fullmatch

    def final(self, texts, ids):
        f = self.pattern.fullmatch if self.fullmatch else self.pattern.search
        return np.array([1.0 if f(t.strip() if self.fullmatch else t) else 0.0 for t in texts])


class LengthPotential(Potential):
    """Penalty ``-(words over max_words) / max_words`` (0 within the limit); applies to
    prefixes as soon as they run over."""

    terminal_only = False

    def __init__(self, max_words: int):
        if max_words < 1:
            raise LabcoreError("max_words must be >= 1")
        self.max_words = int(max_words)

    def prefix(self, texts, ids):
        n = np.array([len(t.split()) for t in texts], dtype=float)
        return -np.maximum(n - self.max_words, 0.0) / self.max_words

    final = prefix


class CallablePotential(Potential):
    """Any scorer: ``final(texts) -> rewards`` and optionally ``prefix(texts) -> rewards``
    (a learned reward model, a PRM, a classifier...)."""

    def __init__(
        self,
        final: Callable[[list[str]], Sequence[float]],
        prefix: Callable[[list[str]], Sequence[float]] | None = None,
    ):
        self._final = final
        self._prefix = prefix
        self.terminal_only = prefix is None

    def _call(self, fn, texts):
        out = np.asarray(fn(list(texts)), dtype=float).reshape(-1)
        if out.shape != (len(texts),):
            raise LabcoreError(f"the scorer returned {out.shape[0]} values for {len(texts)} texts")
        if np.isnan(out).any():
            raise LabcoreError("the scorer returned NaN")
        return out

    def prefix(self, texts, ids):
        return np.zeros(len(texts)) if self._prefix is None else self._call(self._prefix, texts)

    def final(self, texts, ids):
        return self._call(self._final, texts)


class TokenPotential(Potential):
    """A reward on token ids (for models without a tokenizer, and exact tests)."""

    def __init__(
        self,
        final: Callable[[Sequence[int]], float],
        prefix: Callable[[Sequence[int]], float] | None = None,
    ):
        self._final = final
        self._prefix = prefix
        self.terminal_only = prefix is None

    def prefix(self, texts, ids):
        if self._prefix is None:
            return np.zeros(len(ids))
        return np.array([float(self._prefix(list(s))) for s in ids])

    def final(self, texts, ids):
        return np.array([float(self._final(list(s))) for s in ids])


class ExactAnswerPotential(Potential):
    """1 if the extracted final answer matches ``answer``, else 0.

    Matching is :func:`labcore.tasks.answers_match` (normalised strings, or equal rational
    values); ``extract`` takes the answer out of a completion (default: the last number).
    """

    def __init__(self, answer: str, *, extract: Callable[[str], str | None] = last_number):
        self.reference = str(answer)
        self.answer = normalize_answer(self.reference)
        self.extract = extract

    def final(self, texts, ids):
        return np.array(
            [1.0 if answers_match(self.extract(t), self.reference) else 0.0 for t in texts]
        )


def parse_reward(spec: str) -> Potential:
    """A potential from a CLI spec: ``keywords:a,b,c``, ``regex:PATTERN``,
    ``maxwords:N``, ``answer:42`` (last number) or ``boxed:ANSWER``."""
    kind, _, arg = spec.partition(":")
    if kind == "keywords":
        return KeywordPotential(arg.split(","))
    if kind == "regex":
        return RegexPotential(arg)
    if kind == "maxwords":
        try:
            return LengthPotential(int(arg))
        except ValueError:
            raise LabcoreError(f"maxwords needs an integer, got {arg!r}") from None
    if kind == "answer":
        return ExactAnswerPotential(arg)
    if kind == "boxed":
        return ExactAnswerPotential(arg, extract=boxed_answer)
    raise LabcoreError(
        f"unknown reward {spec!r}: use keywords:a,b | regex:P | maxwords:N | answer:X | boxed:X"
    )
