"""Calibration from RAC traces: ``--calib rac:traces.jsonl[,mode=...,...]``.

Each trace becomes one calibration sequence, the prompt tokens then the completion tokens,
cut at ``seqlen`` and padded (padding never reaches the statistics). What enters the layer
statistics is set per token by ``token_weights``:

* ``mode=prompt+trace`` (default, RAC): prompt tokens weigh ``prompt_weight``, completion
  tokens ``trace_weight`` (both 1 by default);
* ``mode=trace``: the prompt stays as context (the completion's activations depend on it)
  but weighs 0;
* ``mode=prompt``: the prompt alone (the "prompts only" ablation).

``mix=r`` replaces a share r of the sequences by random windows of a text corpus
(``mix_corpus``, default bbc), weight 1. Options follow the path, comma-separated:
``rac:traces.jsonl,mode=trace,mix=0.25``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from labcore import LabcoreError

MODES = ("prompt+trace", "trace", "prompt")


@dataclass(frozen=True)
class TraceCalibration:
    """Options of the ``rac`` calibration source (see the module docstring)."""

    mode: str = "prompt+trace"
    prompt_weight: float = 1.0
    trace_weight: float = 1.0
    mix: float = 0.0
    mix_corpus: str = "bbc"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LabcoreError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("prompt_weight", "trace_weight"):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):
                raise LabcoreError(f"{name} must be finite and >= 0, got {value!r}")
        if not 0.0 <= self.mix < 1.0:
            raise LabcoreError(f"mix must lie in [0, 1), got {self.mix!r}")

    @classmethod
    def parse(cls, text: str) -> tuple[str, TraceCalibration]:
        """``path,key=value,...`` into the path and the options."""
        path, *items = [part.strip() for part in text.split(",")]
        if not path:
            raise LabcoreError("rac calibration needs a trace file: rac:traces.jsonl[,key=value]")
        kinds = {f.name: f.type for f in fields(cls)}
        options: dict[str, Any] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or key not in kinds:
                raise LabcoreError(
                    f"rac calibration option {item!r}: expected key=value with key one of "
                    f"{', '.join(kinds)}"
                )
            if key in ("mode", "mix_corpus"):
                options[key] = value
            else:
                try:
                    options[key] = float(value)
                except ValueError:
                    raise LabcoreError(
                        f"rac calibration option {key} needs a number, got {value!r}"
                    ) from None
        return path, cls(**options)


def calibration_from_traces(
    path: str,
    *,
    tokenizer: Any,
    n: int,
    seqlen: int,
    seed: int = 0,
    options: TraceCalibration | None = None,
):
    """A :class:`layerwise.calibration.Calibration` of ``n`` sequences from a trace file.

    Traces are drawn without replacement by ``seed`` (all of them when there are fewer than
    ``n``). The trace file must come from a tokenizer of the same vocabulary.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from labcore.models import tiny_causal_lm
    >>> from labcore.tasks import arithmetic_problems
    >>> from rac.traces import TraceConfig, generate_traces
    >>> from rac.calibration import TraceCalibration, calibration_from_traces
    >>> model, tok = tiny_causal_lm("llama")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = generate_traces(model, tok, arithmetic_problems(4), path, TraceConfig(max_new_tokens=6))
    >>> cal = calibration_from_traces(str(path), tokenizer=tok, n=8, seqlen=128,
    ...                               options=TraceCalibration(mode="trace"))
    >>> tuple(cal.input_ids.shape), bool((cal.token_weights <= cal.attention_mask).all())
    ((8, 128), True)
    """
    import torch
    from layerwise.calibration import Calibration

    from rac.traces import read_traces

    options = options or TraceCalibration()
    if n < 1 or seqlen < 2:
        raise LabcoreError(f"need n >= 1 and seqlen >= 2, got n={n}, seqlen={seqlen}")
    header, records = read_traces(path)
    if not records:
        raise LabcoreError(f"{path} holds no traces yet")
    if header.get("vocab_size") != len(tokenizer):
        raise LabcoreError(
            f"{path} was made with a tokenizer of {header.get('vocab_size')} tokens, this one "
            f"has {len(tokenizer)}: traces must come from the model being compressed"
        )
    rng = random.Random(seed)
    n_mix = round(options.mix * n)
    order = list(range(len(records)))
    rng.shuffle(order)
    chosen = [records[i] for i in order[: n - n_mix]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(chosen), seqlen), pad, dtype=torch.long)
    mask = torch.zeros((len(chosen), seqlen), dtype=torch.long)
    weights = torch.zeros((len(chosen), seqlen), dtype=torch.float32)
    for row, record in enumerate(chosen):
        prompt = record["prompt_ids"]
        completion = [] if options.mode == "prompt" else record["completion_ids"]
        tokens = (prompt + completion)[:seqlen]
        length = len(tokens)
        ids[row, :length] = torch.tensor(tokens, dtype=torch.long)
        mask[row, :length] = 1
        cut = min(len(prompt), length)
        weights[row, :cut] = 0.0 if options.mode == "trace" else options.prompt_weight
        weights[row, cut:length] = options.trace_weight
    if int((weights > 0).sum()) == 0:
        raise LabcoreError("these options give every token weight 0: nothing to calibrate on")
    cal = Calibration(ids, mask, weights)
    if n_mix:
        generic = Calibration.from_corpus(
            tokenizer, options.mix_corpus, n=n_mix, seqlen=seqlen, seed=seed
        )
        cal = Calibration(
            torch.cat([cal.input_ids, generic.input_ids]),
            torch.cat([cal.attention_mask, generic.attention_mask]),
            torch.cat([cal.token_weights, generic.attention_mask.float()]),
        )
    return cal


def rac_source(argument: str, *, tokenizer: Any, n: int, seqlen: int, seed: int):
    """The ``rac`` calibration source of the layerwise engine (``--calib rac:PATH[,...]``)."""
    path, options = TraceCalibration.parse(argument)
    return calibration_from_traces(
        path, tokenizer=tokenizer, n=n, seqlen=seqlen, seed=seed, options=options
    )
