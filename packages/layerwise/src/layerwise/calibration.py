"""Calibration data: token windows with an attention mask and optional per-token weights.

Where it comes from is a *source*: ``corpus:NAME`` (random windows of a text corpus, the
default ``corpus:bbc``), ``file:PATH`` (token ids, mask and weights from a file, see
:meth:`Calibration.from_file`), or a source another package registers under the
``layerwise.calibration_sources`` entry-point group (e.g. ``rac:traces.jsonl``). A source is a
callable ``source(argument, *, tokenizer, n, seqlen, seed) -> Calibration``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from labcore import LabcoreError


@dataclass
class Calibration:
    """Calibration sequences for the engine.

    input_ids       LongTensor [n, L]
    attention_mask  LongTensor [n, L]: 1 for real tokens, 0 for padding (never in statistics)
    token_weights   FloatTensor [n, L] or None: per-token weights in the statistics
                    (e.g. RAC weights prompt and reasoning tokens differently)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        ids = self.input_ids
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] == 0:
            raise LabcoreError("calibration input_ids must be a non-empty 2-D tensor [n, seqlen]")
        if self.attention_mask is None:
            self.attention_mask = torch.ones_like(ids)
        if self.attention_mask.shape != ids.shape:
            raise LabcoreError(
                f"attention_mask shape {tuple(self.attention_mask.shape)} != input_ids {tuple(ids.shape)}"
            )
        if self.token_weights is not None:
            if self.token_weights.shape != ids.shape:
                raise LabcoreError(
                    f"token_weights shape {tuple(self.token_weights.shape)} != input_ids {tuple(ids.shape)}"
                )
            if not torch.isfinite(self.token_weights).all() or (self.token_weights < 0).any():
                raise LabcoreError("token_weights must be finite and non-negative")
        if int(self.attention_mask.sum()) == 0:
            raise LabcoreError("calibration data has no unmasked token")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def weights(self) -> torch.Tensor:
        """Per-token weight in the statistics: the mask times the optional token weights."""
        w = self.attention_mask.float()
        return w if self.token_weights is None else w * self.token_weights.float()

    @classmethod
    def from_corpus(
        cls, tokenizer: Any, corpus: Any = "bbc", *, n: int = 128, seqlen: int = 2048, seed: int = 0
    ) -> Calibration:
        """``n`` random windows of ``seqlen`` tokens from the corpus's train split."""
        from labcore.data import Corpus, calibration_windows, load_corpus

        c = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
        ids = calibration_windows(tokenizer, c.train, n=n, seqlen=seqlen, seed=seed)
        return cls(ids, torch.ones_like(ids))

    @classmethod
    def from_texts(
        cls,
        tokenizer: Any,
        texts: list[str],
        *,
        max_length: int = 2048,
        weights: list[list[float]] | None = None,
    ) -> Calibration:
        """One sequence per text, right-padded to the longest; padding is masked out."""
        if not texts:
            raise LabcoreError("no calibration texts given")
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        seqs = [tokenizer(t, add_special_tokens=True)["input_ids"][:max_length] for t in texts]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), int(pad if pad is not None else 0), dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        tw = None if weights is None else torch.zeros((len(seqs), L))
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            if tw is not None:
                if len(weights[i]) < len(s):
                    raise LabcoreError(f"text {i}: {len(weights[i])} weights for {len(s)} tokens")
                tw[i, : len(s)] = torch.tensor(weights[i][: len(s)], dtype=torch.float32)
        return cls(ids, mask, tw)

    @classmethod
    def from_file(cls, path: str | Path) -> Calibration:
        """Token ids, attention mask and token weights from a file.

        ``.safetensors``: tensors ``input_ids`` [n, L] (integers), optional ``attention_mask``
        [n, L] (0/1) and optional ``weights`` (or ``token_weights``) [n, L].
        ``.jsonl``: one sequence per line, ``{"input_ids": [...], "weights": [...]}``
        (``weights`` optional, one per token); sequences are right-padded to the longest and
        the padding is masked out.
        """
        path = Path(path)
        if not path.is_file():
            raise LabcoreError(f"calibration file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            return cls._from_safetensors(path)
        if suffix in (".jsonl", ".json"):
            return cls._from_jsonl(path)
        raise LabcoreError(f"{path}: calibration files are .safetensors or .jsonl, got {suffix!r}")

    @classmethod
    def _from_safetensors(cls, path: Path) -> Calibration:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise LabcoreError(f"{path}: not a readable safetensors file ({exc})") from None
        if "input_ids" not in tensors:
            raise LabcoreError(f"{path}: no 'input_ids' tensor (found {sorted(tensors)})")
        ids = tensors["input_ids"]
        if ids.is_floating_point() or ids.is_complex():
            raise LabcoreError(f"{path}: input_ids must be integers, got {ids.dtype}")
        mask = tensors.get("attention_mask")
        weights = tensors.get("weights", tensors.get("token_weights"))
        return cls(
            ids.long(),
            None if mask is None else mask.long(),
            None if weights is None else weights.float(),
        )

    @classmethod
    def _from_jsonl(cls, path: Path) -> Calibration:
        from labcore.io import iter_jsonl

        seqs: list[list[int]] = []
        weights: list[list[float] | None] = []
        for line, row in iter_jsonl(path):
            ids = row.get("input_ids") if isinstance(row, dict) else None
            if not isinstance(ids, list) or not ids or not all(isinstance(t, int) for t in ids):
                raise LabcoreError(
                    f"{path}, line {line}: 'input_ids' must be a non-empty list of integers"
                )
            w = row.get("weights")
            if w is not None and (not isinstance(w, list) or len(w) != len(ids)):
                raise LabcoreError(
                    f"{path}, line {line}: 'weights' must be a list of {len(ids)} numbers (one per token)"
                )
            seqs.append(ids)
            weights.append(w)
        if not seqs:
            raise LabcoreError(f"{path}: no sequences")
        L = max(len(s) for s in seqs)
        ids_t = torch.zeros((len(seqs), L), dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        any_weights = any(w is not None for w in weights)
        tw = torch.zeros((len(seqs), L)) if any_weights else None
        for i, (seq, w) in enumerate(zip(seqs, weights, strict=True)):
            ids_t[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            if tw is not None:
                try:
                    tw[i, : len(seq)] = torch.tensor(
                        [1.0] * len(seq) if w is None else w, dtype=torch.float32
                    )
                except (TypeError, ValueError):
                    raise LabcoreError(f"{path}: sequence {i}: weights must be numbers") from None
        return cls(ids_t, mask, tw)

    def save(self, path: str | Path) -> Path:
        """Write ``input_ids``, ``attention_mask`` and ``weights`` (when set) as safetensors
        (atomically); :meth:`from_file` reads it back."""
        from safetensors.torch import save as save_bytes

        from labcore.io import atomic_write_bytes

        tensors = {
            "input_ids": self.input_ids.long().contiguous(),
            "attention_mask": self.attention_mask.long().contiguous(),
        }
        if self.token_weights is not None:
            tensors["weights"] = self.token_weights.float().contiguous()
        return atomic_write_bytes(path, save_bytes(tensors))


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

#: ``source(argument, *, tokenizer, n, seqlen, seed) -> Calibration``
CalibrationSource = Callable[..., Calibration]

_SOURCES: dict[str, CalibrationSource] = {}
_SOURCE_ENTRY_POINTS_LOADED = False


def register_calibration_source(name: str, source: CalibrationSource) -> CalibrationSource:
    """Make ``source`` available as ``--calib NAME:ARGUMENT``."""
    if not name or ":" in name:
        raise LabcoreError(f"a calibration source needs a name without ':', got {name!r}")
    _SOURCES[name] = source
    return source


def _load_source_entry_points() -> None:
    global _SOURCE_ENTRY_POINTS_LOADED
    if _SOURCE_ENTRY_POINTS_LOADED:
        return
    _SOURCE_ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="layerwise.calibration_sources"):
        if ep.name not in _SOURCES:
            _SOURCES[ep.name] = ep.load()


def calibration_sources() -> list[str]:
    """Names of the registered calibration sources."""
    _load_source_entry_points()
    return sorted(_SOURCES)


def calibration_from_source(
    spec: str, *, tokenizer: Any, n: int = 128, seqlen: int = 2048, seed: int = 0
) -> Calibration:
    """The calibration of ``NAME:ARGUMENT`` (``corpus:bbc``, ``file:cal.safetensors``, ...).

    ``n``, ``seqlen`` and ``seed`` are passed to the source; those that read fixed sequences
    (``file``) ignore them.
    """
    name, sep, argument = str(spec).partition(":")
    _load_source_entry_points()
    if not sep or name not in _SOURCES:
        raise LabcoreError(
            f"calibration {spec!r}: expected NAME:ARGUMENT with NAME one of "
            f"{', '.join(sorted(_SOURCES))} (e.g. corpus:bbc, file:calibration.safetensors)"
        )
    cal = _SOURCES[name](argument, tokenizer=tokenizer, n=n, seqlen=seqlen, seed=seed)
    if not isinstance(cal, Calibration):
        raise LabcoreError(
            f"calibration source {name!r} returned {type(cal).__name__}, not Calibration"
        )
    return cal


def _corpus_source(argument: str, *, tokenizer: Any, n: int, seqlen: int, seed: int) -> Calibration:
    return Calibration.from_corpus(tokenizer, argument or "bbc", n=n, seqlen=seqlen, seed=seed)


def _file_source(argument: str, **_: Any) -> Calibration:
    return Calibration.from_file(argument)


register_calibration_source("corpus", _corpus_source)
register_calibration_source("file", _file_source)
