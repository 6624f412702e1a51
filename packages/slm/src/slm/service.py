"""Serving a finished pipeline over HTTP, through mixlm's scoring service.

The service is :mod:`mixlm.server` (``POST /score`` with a query and item ids, ``/health``,
``/stats``, the same limits and errors): slm gives it the served model and a
:class:`TextItems` source, which holds every item's compressed text as token ids (compressed
and tokenized once, at start-up) and hands the ranker their token embeddings. The query
prefix is computed once per request and shared by all its items.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError
from slm.pipeline import MODEL_STAGES, SERVE, STAGE, STAGES, _on_disk, stage_dir


class TextItems:
    """Item texts as token ids for a ranker (the service's item source).

    >>> # TextItems(ranker, {"a": "Some text."}, compressor=None).item_vectors(["a"])
    """

    def __init__(self, ranker: Any, items: dict[str, str], compressor: Any = None) -> None:
        if not items:
            raise LabcoreError("no items to serve")
        self.ranker = ranker
        self.dim = ranker.hidden_size
        self.token_ids = {
            str(k): ranker.ids(compressor(v) if compressor is not None else v)
            for k, v in items.items()
        }

    def __len__(self) -> int:
        return len(self.token_ids)

    def item_vectors(self, item_ids: list[str]) -> list:
        missing = [i for i in item_ids if i not in self.token_ids]
        if missing:
            raise LabcoreError(
                f"{len(missing)} item(s) are not in the served catalogue (e.g. {missing[:3]})"
            )
        import torch

        with torch.inference_mode():
            return [self.ranker.embed_ids(self.token_ids[i]) for i in item_ids]


def served_model(out: str | Path) -> dict[str, Any]:
    """What ``slm serve`` serves from a run folder: the serve stage's settings when it ran,
    else the last model stage in float32 with the compress stage's compressor (if any)."""
    from slm.pipeline import load_stage_model, make_compressor, ranker_for

    out = Path(out)
    if not out.is_dir():
        raise LabcoreError(f"no run folder at {out}")
    serve_dir = stage_dir(out, "serve")
    if _on_disk(serve_dir):
        try:
            settings = json.loads((serve_dir / SERVE).read_text())
            model_dir = out / settings["model_stage"]
            compress_dir = out / settings["compress_stage"] if settings["compress_stage"] else None
            dtype, batch_size = settings["dtype"], int(settings["batch_size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabcoreError(f"{serve_dir / SERVE} is unreadable or incomplete ({exc})") from None
        for folder in (model_dir, compress_dir):
            if folder is not None and not _on_disk(folder):
                raise LabcoreError(
                    f"{serve_dir.name} serves {folder.name}, which is not a finished stage "
                    f"under {out}: rerun the pipeline from that stage"
                )
    else:
        done = [m for m in MODEL_STAGES if _on_disk(stage_dir(out, m))]
        if not done:
            raise LabcoreError(f"{out} holds no finished model stage: run `slm run` first")
        model_dir = stage_dir(out, done[-1])
        c = stage_dir(out, "compress")
        compress_dir = c if _on_disk(c) else None
        dtype, batch_size = "float32", 16
    words = json.loads((model_dir / STAGE).read_text()).get("answer_words", ["yes", "no"])
    model, tok, _ = load_stage_model(model_dir, dtype=dtype)
    ranker = ranker_for(model, tok, words)
    return {
        "ranker": ranker,
        "compressor": make_compressor(compress_dir, tok),
        "batch_size": batch_size,
        "model_stage": model_dir.name,
        "dtype": dtype,
    }


__all__ = ["STAGES", "TextItems", "served_model"]
