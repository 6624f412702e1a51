"""Reasoning problems with exact answers: GSM8K, MATH500 and seeded arithmetic word problems.

One record type, :class:`Problem` (``id``, ``prompt``, ``answer``, ``source``, ``metadata``),
for every task with a checkable answer; packages may subclass it (smcdecode adds a guidance
potential and keeps HumanEval, with its sandbox, to itself).

Loaders read the shared data layout under a data root (``--data-root DIR``):

- ``DIR/reasoning/gsm8k/test.jsonl``: ``question`` and ``answer`` (the worked solution; the
  final answer follows the last ``####``).
- ``DIR/reasoning/math500/test.jsonl``: ``problem``, ``solution`` (ending in
  ``\\boxed{...}``), ``answer``, ``subject`` and ``level``.

Scoring is exact-answer: :func:`extract_answer` takes the last ``\\boxed{...}`` of a
completion, or else its last number; :func:`normalize_answer` puts an answer string in a
canonical form (dollar signs, spacing, ``\\left``/``\\right``, ``\\text{...}``, ``\\dfrac``,
integer fractions as ``a/b``, thousands commas, trailing zeros, percent and degree signs);
:func:`answers_match` compares two answers after normalisation and, when both are rational
numbers, by value (``0.5`` equals ``1/2``). :func:`score_answer` puts the two together.

:func:`arithmetic_problems` makes easy word problems (one or two operations on small whole
numbers) with known answers, for models too small for GSM8K; the same seed gives the same
problems.

Nothing here imports torch.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError
from labcore.io import iter_jsonl

__all__ = [
    "REASONING_SETS",
    "Problem",
    "answers_match",
    "arithmetic_problems",
    "boxed_answer",
    "extract_answer",
    "last_number",
    "load_gsm8k",
    "load_math500",
    "load_reasoning",
    "normalize_answer",
    "read_gsm8k",
    "read_math500",
    "reasoning_path",
    "score_answer",
]

#: Reasoning sets under a data root: name -> path relative to the root.
REASONING_SETS = {
    "gsm8k": Path("reasoning") / "gsm8k" / "test.jsonl",
    "math500": Path("reasoning") / "math500" / "test.jsonl",
}


@dataclass(frozen=True)
class Problem:
    """One problem with a checkable answer.

    Attributes
    ----------
    id : str
        Identifier, unique within its source (``gsm0``, ``math12``, ``arith3``...).
    prompt : str
        The text given to the model (without any instruction or chat template).
    answer : str or None
        The reference final answer (None where the answer is checked another way, e.g. by
        unit tests).
    source : str
        Where the problem comes from (``"gsm8k"``, ``"math500"``, ``"arithmetic"``...).
    metadata : dict
        Anything else (the worked solution, subject, level, the expression...).
    """

    id: str
    prompt: str
    answer: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def score(self, text: str) -> bool:
        """Whether ``text`` (a completion) gets this problem's answer; see :func:`score_answer`.

        Raises
        ------
        LabcoreError
            If the problem has no reference answer.
        """
        if self.answer is None:
            raise LabcoreError(f"problem {self.id!r} has no reference answer to score against")
        return score_answer(text, self.answer)


# --------------------------------------------------------------------------- loading
def reasoning_path(name: str, data_root: str | Path) -> Path:
    """The file of reasoning set ``name`` (``"gsm8k"`` or ``"math500"``) under ``data_root``.

    Raises
    ------
    LabcoreError
        For an unknown name.
    """
    if name not in REASONING_SETS:
        raise LabcoreError(
            f"unknown reasoning set {name!r}: use one of {', '.join(sorted(REASONING_SETS))}"
        )
    return Path(data_root) / REASONING_SETS[name]


def _read_jsonl(path: Path, what: str, fields: tuple[str, ...], n: int | None) -> list[dict]:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise LabcoreError(f"n must be a non-negative integer or None, got {n!r}")
    if not path.is_file():
        raise LabcoreError(f"no such {what} file: {path}")
    rows: list[dict] = []
    if n == 0:
        return rows
    for lineno, row in iter_jsonl(path):
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        if missing:
            raise LabcoreError(
                f"{path}, line {lineno}: missing field(s) {', '.join(missing)} "
                f"(a {what} row needs {', '.join(fields)})"
            )
        rows.append(row)
        if n is not None and len(rows) >= n:
            break  # before reading further lines: a bad line after the first n is not read
    return rows


def read_gsm8k(path: str | Path, n: int | None = None) -> list[Problem]:
    """GSM8K problems from a JSON Lines file (fields ``question`` and ``answer``).

    Parameters
    ----------
    path : str or Path
        The ``test.jsonl`` file.
    n : int or None
        Read only the first ``n`` problems (all when None).

    Returns
    -------
    list of Problem
        Ids ``gsm0``, ``gsm1``...; ``answer`` is the text after the last ``####`` of the
        solution; ``metadata["solution"]`` is the worked solution.

    Raises
    ------
    LabcoreError
        If the file is missing, a line is not JSON or lacks a field.
    """
    rows = _read_jsonl(Path(path), "GSM8K", ("question", "answer"), n)
    return [
        Problem(
            f"gsm{k}",
            row["question"],
            row["answer"].split("####")[-1].strip(),
            "gsm8k",
            {"solution": row["answer"]},
        )
        for k, row in enumerate(rows)
    ]


def read_math500(path: str | Path, n: int | None = None) -> list[Problem]:
    """MATH500 problems from a JSON Lines file (``problem``, ``solution``, ``answer``...).

    Parameters
    ----------
    path : str or Path
        The ``test.jsonl`` file.
    n : int or None
        Read only the first ``n`` problems (all when None).

    Returns
    -------
    list of Problem
        Ids ``math0``, ``math1``...; ``metadata`` holds ``solution`` and, where present,
        ``subject`` and ``level``.

    Raises
    ------
    LabcoreError
        If the file is missing, a line is not JSON or lacks a field.
    """
    rows = _read_jsonl(Path(path), "MATH500", ("problem", "answer"), n)
    out = []
    for k, row in enumerate(rows):
        meta = {key: row[key] for key in ("solution", "subject", "level") if key in row}
        out.append(Problem(f"math{k}", row["problem"], str(row["answer"]), "math500", meta))
    return out


def load_gsm8k(data_root: str | Path, n: int | None = None) -> list[Problem]:
    """GSM8K from ``data_root/reasoning/gsm8k/test.jsonl``; see :func:`read_gsm8k`."""
    return read_gsm8k(reasoning_path("gsm8k", data_root), n)


def load_math500(data_root: str | Path, n: int | None = None) -> list[Problem]:
    """MATH500 from ``data_root/reasoning/math500/test.jsonl``; see :func:`read_math500`."""
    return read_math500(reasoning_path("math500", data_root), n)


def load_reasoning(name: str, data_root: str | Path, n: int | None = None) -> list[Problem]:
    """Reasoning set ``name`` (``"gsm8k"`` or ``"math500"``) from ``data_root``.

    Raises
    ------
    LabcoreError
        For an unknown name or a missing or malformed file.
    """
    path = reasoning_path(name, data_root)
    return read_gsm8k(path, n) if name == "gsm8k" else read_math500(path, n)


# ------------------------------------------------------------------------ answers
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> str | None:
    """The last number in ``text`` (commas removed, trailing ``.0`` dropped), or None.

    Examples
    --------
    >>> last_number("so 1,234.50 apples")
    '1234.5'
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    s = found[-1].replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def boxed_answer(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None.

    Examples
    --------
    >>> boxed_answer(r"so \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    depth, j = 0, i + len("\\boxed{")
    start = j
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return text[start:j].strip()
            depth -= 1
        j += 1
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a completion: the last ``\\boxed{...}``, else the last number.

    Not normalised (see :func:`normalize_answer`); None when there is neither.
    """
    return boxed_answer(text) or last_number(text)


def _braced(s: str, i: int) -> tuple[str, int] | None:
    """The group starting at ``s[i]``: ``({...} content, end)`` or one character."""
    if i >= len(s):
        return None
    if s[i] != "{":
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    return None


def _unwrap(s: str, command: str) -> str:
    """Replace every ``\\command{X}`` by ``X``."""
    key = "\\" + command + "{"
    while (i := s.find(key)) >= 0:
        group = _braced(s, i + len(key) - 1)
        if group is None:
            break
        s = s[:i] + group[0] + s[group[1] :]
    return s


_INT = re.compile(r"-?\d+")


def _fractions(s: str) -> str:
    """``\\frac{a}{b}`` (and ``\\frac ab``) with integer ``a``, ``b`` -> ``a/b``."""
    out, i = [], 0
    while (j := s.find("\\frac", i)) >= 0:
        num = _braced(s, j + 5)
        den = _braced(s, num[1]) if num else None
        if num and den and _INT.fullmatch(num[0]) and _INT.fullmatch(den[0]):
            out.append(s[i:j] + f"{num[0]}/{den[0]}")
            i = den[1]
        else:
            out.append(s[i : j + 5])
            i = j + 5
    out.append(s[i:])
    return "".join(out)


_VARIABLE = re.compile(r"^[a-zA-Z](?:=|\\in)(?=.)")
_MIXED = re.compile(r"(-?)(\d+)\\frac(?:\{(\d+)\}|(\d))(?:\{(\d+)\}|(\d))")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def normalize_answer(s: str | None) -> str | None:
    r"""A canonical form of an answer string, for exact comparison.

    Removes dollar signs (``$`` and ``\$``), spaces and LaTeX spacing (``\!``, ``\,``...),
    ``\left`` and ``\right``, a final period, percent signs (``50\%`` -> ``50``) and degree
    marks (``^\circ``); unwraps ``\text{...}``, ``\textbf{...}``, ``\mathrm{...}``,
    ``\mbox{...}`` and ``\boxed{...}``; reads ``\dfrac`` and ``\tfrac`` as ``\frac``
    and writes integer fractions as ``a/b`` (``\frac{3}{4}``, ``\frac34`` -> ``3/4``) and a
    mixed number as an improper fraction (``2\frac{1}{2}`` -> ``5/2``); writes ``\sqrt2`` as
    ``\sqrt{2}``; drops a leading ``x=`` or ``x\in`` (one letter); drops thousands commas
    (only in a number grouped by threes, so a list ``1,2`` keeps its comma) and a number's
    trailing zeros after the point (``18.50`` -> ``18.5``, ``7.0`` -> ``7``). Leading
    zeros stay (:func:`answers_match` compares numbers by value).

    Parameters
    ----------
    s : str or None
        The answer (None passes through).

    Returns
    -------
    str or None

    Examples
    --------
    >>> normalize_answer(r"$\dfrac{3}{4}$")
    '3/4'
    >>> normalize_answer("1,234.50")
    '1234.5'
    """
    if s is None:
        return None
    s = str(s).strip()
    for cmd in ("boxed", "text", "textbf", "mathrm", "mbox", "textrm"):
        s = _unwrap(s, cmd)
    s = s.replace("\\$", "").replace("$", "")
    for sp in ("\\!", "\\,", "\\;", "\\:", "\\ ", "~"):
        s = s.replace(sp, "")
    s = re.sub(r"\s+", "", s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "")
    s = s.rstrip(".")
    if s.endswith("\\%"):
        s = s[:-2]
    elif s.endswith("%"):
        s = s[:-1]
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = _VARIABLE.sub("", s, count=1)
    mixed = _MIXED.fullmatch(s)
    if mixed:
        sign, whole = mixed.group(1), int(mixed.group(2))
        num, den = int(mixed.group(3) or mixed.group(4)), int(mixed.group(5) or mixed.group(6))
        s = f"{sign}{whole * den + num}/{den}"
    s = _fractions(s)
    if _GROUPED_NUMBER.fullmatch(s):
        s = s.replace(",", "")
    if _PLAIN_NUMBER.fullmatch(s) and "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


_RATIONAL = re.compile(r"(-?\d+(?:\.\d+)?)(?:/(\d+))?")


def _as_fraction(s: str) -> Fraction | None:
    m = _RATIONAL.fullmatch(s)
    if m is None or (m.group(2) is not None and "." in m.group(1)):
        return None
    if m.group(2) is not None and int(m.group(2)) == 0:
        return None
    return Fraction(m.group(1)) / (int(m.group(2)) if m.group(2) else 1)


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Whether two answers are the same after :func:`normalize_answer`.

    Equal strings match; two rational numbers (integers, decimals, ``a/b``) match when equal
    in value (``0.5`` and ``1/2``, ``007`` and ``7``). A missing answer (None) matches nothing.
    """
    p, r = normalize_answer(predicted), normalize_answer(reference)
    if p is None or r is None:
        return False
    if p == r:
        return True
    fp, fr = _as_fraction(p), _as_fraction(r)
    return fp is not None and fr is not None and fp == fr


def score_answer(text: str, reference: str) -> bool:
    """Whether the final answer of ``text`` (see :func:`extract_answer`) matches ``reference``."""
    return answers_match(extract_answer(text), reference)


# ---------------------------------------------------------------------- generator
_NAMES = (
    "Ana",
    "Ben",
    "Carla",
    "Dev",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jun",
    "Kofi",
    "Lea",
)
_ITEMS = (
    "apples",
    "marbles",
    "pencils",
    "stickers",
    "books",
    "cookies",
    "shells",
    "coins",
    "stamps",
    "cards",
)


def _one_step(rng: random.Random, max_value: int) -> tuple[str, str, int, str, str, str]:
    """(setup, question, answer, expression, name, item) of a one-operation problem."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    op = rng.choice("+-*/")
    if op == "+":
        a, b = rng.randint(1, max_value), rng.randint(1, max_value)
        text = f"{name} has {a} {item}. {name} gets {b} more {item}."
        return text, f"How many {item} does {name} have now?", a + b, f"{a} + {b}", name, item
    if op == "-":
        a = rng.randint(2, max_value)
        b = rng.randint(1, a - 1)
        text = f"{name} has {a} {item}. {name} gives away {b} {item}."
        return text, f"How many {item} does {name} have left?", a - b, f"{a} - {b}", name, item
    if op == "*":
        a, b = rng.randint(2, 9), rng.randint(2, max(2, min(12, max_value)))
        text = f"{name} has {a} boxes with {b} {item} in each box."
        return text, f"How many {item} does {name} have in all?", a * b, f"{a} * {b}", name, item
    b = rng.randint(2, 9)
    q = rng.randint(1, max(1, max_value // b))
    a = b * q
    text = f"{name} shares {a} {item} equally among {b} friends."
    return text, f"How many {item} does each friend get?", q, f"{a} / {b}", name, item


def arithmetic_problems(
    n: int, *, seed: int = 0, max_value: int = 20, two_step: float = 0.0
) -> list[Problem]:
    """Easy arithmetic word problems with known whole-number answers.

    Each problem is one operation (``+``, ``-``, ``*``, exact ``/``) on small whole
    numbers; with probability ``two_step`` a second step adds or takes away some items.
    Answers are never negative.

    Parameters
    ----------
    n : int
        Number of problems.
    seed : int
        The same seed gives the same problems (Python's ``random.Random(seed)``).
    max_value : int
        Largest operand of an addition or subtraction (at least 2).
    two_step : float
        Probability in [0, 1] of a second step.

    Returns
    -------
    list of Problem
        Ids ``arith0``...; source ``"arithmetic"``; ``metadata["expression"]`` is the
        computation (Python syntax) whose value is ``answer``, and ``metadata["steps"]``
        is 1 or 2.

    Raises
    ------
    LabcoreError
        For a bad ``n``, ``max_value`` or ``two_step``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise LabcoreError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 2:
        raise LabcoreError(f"max_value must be an integer >= 2, got {max_value!r}")
    if not 0.0 <= float(two_step) <= 1.0:
        raise LabcoreError(f"two_step must be a probability in [0, 1], got {two_step!r}")
    rng = random.Random(seed)
    out = []
    for k in range(n):
        setup, question, value, expr, name, item = _one_step(rng, max_value)
        steps = 1
        if rng.random() < two_step:
            steps = 2
            who = "each friend" if "/" in expr else name
            has = "does each friend have" if "/" in expr else f"does {name} have"
            if rng.random() < 0.5 or value < 2:
                c = rng.randint(1, max_value)
                setup += f" Then {who} gets {c} more {item}."
                value, expr = value + c, f"({expr}) + {c}"
            else:
                c = rng.randint(1, value - 1)
                setup += f" Then {who} loses {c} {item}."
                value, expr = value - c, f"({expr}) - {c}"
            question = f"How many {item} {has} now?"
        out.append(
            Problem(
                f"arith{k}",
                f"{setup} {question}",
                str(value),
                "arithmetic",
                {"expression": expr, "steps": steps},
            )
        )
    return out
