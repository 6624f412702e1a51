"""On-policy reasoning traces: the dense model's own completions of a prompt set.

RAC calibrates compression on the prompt plus the chain of thought the *dense* model itself
generates, so traces are sampled from the model that will be compressed, with its chat
template, before compression. They are stored as JSON lines:

* line 1, the header: ``{"rac_traces": 1, "model": ..., "vocab_size": ..., "config": {...},
  "problems": [ids]}``;
* one line per completion: ``problem_id``, ``sample``, ``batch``, ``prompt`` (the templated
  text), ``completion``, ``prompt_ids``, ``completion_ids``, ``finished`` (ended with an end
  token before ``max_new_tokens``), ``answer`` (the reference, when the problem has one) and
  ``correct`` (whether the completion gets it).

Generation runs in batches of ``batch_size`` problems × ``samples`` completions, each batch
seeded by (``seed``, batch index), and each batch is appended to the file in one write. A
run that stops part-way resumes where it stopped: complete batches are kept, a partial last
batch is dropped and regenerated, so the file equals that of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labcore import LabcoreError

FORMAT = 1
DEFAULT_INSTRUCTION = "Think step by step, then give the final answer as: The answer is <number>."


@dataclass(frozen=True)
class TraceConfig:
    """How traces are sampled.

    Parameters
    ----------
    samples
        Completions per prompt (the official code samples 2).
    temperature, top_p
        Sampling; ``temperature=0`` is greedy (then ``samples`` must be 1).
    max_new_tokens
        Cap of each completion; the share of completions that hit it is reported.
    batch_size
        Problems per generation batch (``batch_size × samples`` sequences at once).
    instruction
        Text put before each problem in the user message.
    seed
        Seeds every batch (with the batch index): the same seed gives the same file.
    """

    samples: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    batch_size: int = 8
    instruction: str = DEFAULT_INSTRUCTION
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
        if not self.temperature >= 0:
            raise LabcoreError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.temperature == 0 and self.samples != 1:
            raise LabcoreError("greedy decoding (temperature 0) gives one completion per prompt")
        if not 0 < self.top_p <= 1:
            raise LabcoreError(f"top_p must lie in (0, 1], got {self.top_p!r}")


def format_prompt(tokenizer: Any, text: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The user message (instruction and problem) in the model's chat template (plain text
    for a model without one)."""
    message = f"{instruction}\n\n{text}" if instruction else text
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return message


def _header(model_name: str, tokenizer: Any, config: TraceConfig, problems: Sequence) -> dict:
    return {
        "rac_traces": FORMAT,
        "model": model_name,
        "vocab_size": len(tokenizer),
        "config": asdict(config),
        "problems": [p.id for p in problems],
    }


def read_traces(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records) of a trace file; a damaged last line (an interrupted write) is
    ignored."""
    path = Path(path)
    if not path.is_file():
        raise LabcoreError(f"trace file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise LabcoreError(f"{path} is empty, not a RAC trace file")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("rac_traces") != FORMAT:
        raise LabcoreError(f"{path} is not a RAC trace file (no rac_traces header on line 1)")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # the last line of an interrupted write
                break
            raise LabcoreError(f"{path}:{number}: not a JSON line") from None
    return header, records


def _complete_batches(records: list[dict], per_batch: list[int]) -> int:
    """How many leading batches are complete in ``records`` (in order)."""
    done = 0
    position = 0
    for batch, expected in enumerate(per_batch):
        chunk = records[position : position + expected]
        if len(chunk) < expected or any(r.get("batch") != batch for r in chunk):
            break
        position += expected
        done += 1
    return done


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


def generate_traces(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    out: str | Path,
    config: TraceConfig | None = None,
    *,
    model_name: str = "",
    stop_after: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    replace_other: bool = False,
) -> dict[str, Any]:
    """Sample ``config.samples`` completions of every problem and append them to ``out``.

    ``problems`` are :class:`labcore.tasks.Problem` objects (``id``, ``prompt``,
    ``answer``). An existing ``out`` made with the same model, config and problems is
    resumed; one made otherwise is refused, or started afresh with ``replace_other=True`` (for
    files a program owns, such as the bench's). ``stop_after`` ends the run after that many new
    batches (for tests of resumption). Returns a summary: completions, batches, the share
    that hit ``max_new_tokens`` (``truncated``), mean completion tokens and, where answers
    exist, the dense model's accuracy on its own traces.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from labcore.models import tiny_causal_lm
    >>> from labcore.tasks import arithmetic_problems
    >>> from rac.traces import TraceConfig, generate_traces, read_traces
    >>> model, tok = tiny_causal_lm("llama")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "traces.jsonl"
    >>> cfg = TraceConfig(samples=2, max_new_tokens=8, batch_size=2)
    >>> summary = generate_traces(model, tok, arithmetic_problems(3), path, cfg)
    >>> summary["completions"], len(read_traces(path)[1])
    (6, 6)
    """

    config = config or TraceConfig()
    if not problems:
        raise LabcoreError("no problems to generate traces for")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise LabcoreError("problem ids must be unique (a trace file is keyed by them)")
    path = Path(out)
    header = _header(
        model_name or str(getattr(model, "name_or_path", "")), tokenizer, config, problems
    )
    batches = [
        problems[i : i + config.batch_size] for i in range(0, len(problems), config.batch_size)
    ]
    per_batch = [len(b) * config.samples for b in batches]
    done = 0
    keys = ("config", "problems", "vocab_size")
    if path.exists() and replace_other:
        old_header = read_traces(path)[0]
        if {k: old_header.get(k) for k in keys} != {k: header[k] for k in keys}:
            path.unlink()
    if path.exists():
        old_header, records = read_traces(path)
        if {k: old_header.get(k) for k in keys} != {k: header[k] for k in keys}:
            raise LabcoreError(
                f"{path} holds traces of another config, problem set or tokenizer; choose "
                "another --out or delete it"
            )
        done = _complete_batches(records, per_batch)
        kept = records[: sum(per_batch[:done])]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(x) + "\n" for x in [old_header, *kept]), encoding="utf-8")
        os.replace(tmp, path)  # drop a partial last batch
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(header) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    for new_batches, index in enumerate(range(done, len(batches))):
        if stop_after is not None and new_batches >= stop_after:
            break
        batch = batches[index]
        texts = [format_prompt(tokenizer, p.prompt, config.instruction) for p in batch]
        outputs = generate_completions(
            model,
            tokenizer,
            texts,
            samples=config.samples,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed * 1_000_003 + index,
        )
        lines = []
        for row, (prompt_ids, completion, finished) in enumerate(outputs):
            problem = batch[row // config.samples]
            text = tokenizer.decode(completion, skip_special_tokens=True)
            record = {
                "problem_id": problem.id,
                "sample": row % config.samples,
                "batch": index,
                "prompt": texts[row // config.samples],
                "completion": text,
                "prompt_ids": prompt_ids,
                "completion_ids": completion,
                "finished": finished,
                "answer": problem.answer,
                "correct": problem.score(text) if problem.answer is not None else None,
            }
            lines.append(json.dumps(record))
        _append(path, lines)
        if on_batch is not None:
            on_batch(index + 1, len(batches))
    return summarize(path)


def generate_completions(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    samples: int = 1,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[tuple[list[int], list[int], bool]]:
    """Complete each text ``samples`` times in one batch (left padding, KV cache); returns
    per completion (prompt ids, completion ids up to and including the end token, whether an
    end token came before ``max_new_tokens``), the samples of one text together.
    ``temperature=0``: greedy."""
    import torch

    if tokenizer.pad_token_id is None:
        raise LabcoreError("the tokenizer has no padding token; set tokenizer.pad_token first")
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    eos_ids.add(tokenizer.eos_token_id)
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    sampling = temperature > 0
    torch.manual_seed(seed)
    with torch.no_grad():
        generated = model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=top_p if sampling else None,
            top_k=None,
            num_return_sequences=samples,
            pad_token_id=tokenizer.pad_token_id,
        )
    width = enc["input_ids"].shape[1]
    out = []
    for row, sequence in enumerate(generated.cpu()):
        source = row // samples
        prompt_ids = enc["input_ids"][source][enc["attention_mask"][source] == 1].tolist()
        completion = sequence[width:].tolist()
        finished = False
        for k, token in enumerate(completion):
            if token in eos_ids:
                completion, finished = completion[: k + 1], True
                break
        out.append((prompt_ids, completion, finished))
    return out


def summarize(path: str | Path) -> dict[str, Any]:
    """Counts of a trace file: completions, batches, truncated share, mean completion tokens,
    accuracy of the dense model's own traces (where answers exist)."""
    header, records = read_traces(path)
    n = len(records)
    scored = [r["correct"] for r in records if r.get("correct") is not None]
    return {
        "path": str(path),
        "model": header.get("model"),
        "completions": n,
        "problems": len({r["problem_id"] for r in records}),
        "batches": len({r["batch"] for r in records}),
        "truncated": round(sum(not r["finished"] for r in records) / n, 4) if n else None,
        "mean_completion_tokens": (
            round(sum(len(r["completion_ids"]) for r in records) / n, 1) if n else None
        ),
        "accuracy": round(sum(scored) / len(scored), 4) if scored else None,
    }
