"""Training: the full-text ranker first (the teacher), then MixLM's encoder, projection and
ranker on the relevance labels plus distillation to the teacher's scores.

Both stages minimise binary cross-entropy of the score (a logit) against 0/1 labels; the
MixLM stage adds ``distill_weight`` × the mean squared difference to the teacher's scores
of the same pairs (computed once, before the stage). Checkpoints are safetensors files
written atomically.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError
from mixlm.ranker import MixRanker


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both stages."""

    epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-5  # the ranker's weights
    encoder_lr: float = 1e-4  # the item encoder and projection
    distill_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        finite_float("lr", self.lr, minimum=0.0, strict=True)
        finite_float("encoder_lr", self.encoder_lr, minimum=0.0, strict=True)
        finite_float("distill_weight", self.distill_weight, minimum=0.0)


Pair = tuple[str, str, float]  # query, item text, label in {0, 1}


def check_pairs(pairs: Sequence[Pair]) -> None:
    if not pairs:
        raise LabcoreError("no training pairs")
    bad = [p for p in pairs if p[2] not in (0, 1, 0.0, 1.0)]
    if bad:
        raise LabcoreError(f"labels must be 0 or 1, got {bad[0][2]!r}")


def iterate_batches(n: int, size: int, epochs: int, seed: int):
    order = list(range(n))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, n, size):
            yield order[start : start + size]


def train_full_text(ranker: MixRanker, pairs: Sequence[Pair], config: TrainConfig) -> list[float]:
    """Fine-tune the ranker on full item text (the teacher); returns the loss per step."""
    check_pairs(pairs)
    model = ranker.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    losses = []
    for idx in iterate_batches(len(pairs), config.batch_size, config.epochs, config.seed):
        queries = [pairs[i][0] for i in idx]
        items = [ranker.item_text_vectors(pairs[i][1]) for i in idx]
        labels = torch.tensor([float(pairs[i][2]) for i in idx])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            ranker.pair_scores(queries, items), labels
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def teacher_scores(ranker: MixRanker, pairs: Sequence[Pair], batch_size: int = 16) -> torch.Tensor:
    """The full-text ranker's scores of the pairs (the distillation targets)."""
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        out.append(
            ranker.pair_scores(
                [p[0] for p in chunk], [ranker.item_text_vectors(p[1]) for p in chunk]
            )
        )
    return torch.cat(out)


def train_mixlm(
    ranker: MixRanker,
    encoder: Any,
    pairs: Sequence[Pair],
    config: TrainConfig,
    *,
    teacher: torch.Tensor | None = None,
) -> list[float]:
    """Train the item encoder, its projection and the ranker on labels (+ distillation to
    ``teacher``, one score per pair); returns the loss per step."""
    check_pairs(pairs)
    if teacher is not None and len(teacher) != len(pairs):
        raise LabcoreError(f"{len(teacher)} teacher scores for {len(pairs)} pairs")
    ranker.model.train()
    encoder.train()
    opt = torch.optim.AdamW(
        [
            {"params": ranker.model.parameters(), "lr": config.lr},
            {"params": encoder.parameters(), "lr": config.encoder_lr},
        ]
    )
    losses = []
    for idx in iterate_batches(len(pairs), config.batch_size, config.epochs, config.seed):
        vectors = encoder([pairs[i][1] for i in idx])
        scores = ranker.pair_scores([pairs[i][0] for i in idx], list(vectors))
        labels = torch.tensor([float(pairs[i][2]) for i in idx])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)
        if teacher is not None and config.distill_weight > 0:
            loss = loss + config.distill_weight * torch.mean((scores - teacher[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    ranker.model.eval()
    encoder.eval()
    return losses


def save_weights(module: Any, path: str | Path) -> Path:
    """The module's state dict as a safetensors file, written atomically."""
    from safetensors.torch import save

    from labcore.io import atomic_write_bytes

    # Cloned: tied weights (input and output embeddings) share memory, which safetensors
    # refuses; each name gets its own copy and loading fills the tied parameter twice.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}
    return atomic_write_bytes(path, save(state))


def load_weights(module: Any, path: str | Path) -> Any:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LabcoreError(f"no checkpoint at {path}")
    missing, unexpected = module.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise LabcoreError(
            f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return module
