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
from mixlm.data import Pair
from mixlm.ranker import MixRanker


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of both stages.

    The full-text stage trains the ranker at ``lr`` for ``epochs``. The alignment stage
    (:func:`align_encoder`) trains the item encoder for ``align_epochs`` to make the frozen
    ranker continue each item's first ``align_tokens`` tokens from its vectors; the MixLM
    stage then trains encoder and ranker for ``epochs``.
    ``encoder_lr`` is the text encoder's body (0 freezes it: its pooled states are then
    computed once per item, which makes many cheap epochs possible); ``head_lr`` the
    projection, slot biases and gain. ``listwise_weight`` weighs the in-batch softmax loss
    of the MixLM stage (see :func:`train_mixlm`).
    """

    epochs: int = 1
    batch_size: int = 8
    lr: float = 2e-5  # the ranker's weights
    encoder_lr: float = 0.0  # the item encoder's body
    head_lr: float = 1e-3  # the projection to the ranker's hidden size
    align_epochs: int = 1
    align_tokens: int = 32
    distill_weight: float = 1.0
    listwise_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        finite_float("lr", self.lr, minimum=0.0, strict=True)
        finite_float("encoder_lr", self.encoder_lr, minimum=0.0)
        finite_float("head_lr", self.head_lr, minimum=0.0, strict=True)
        if isinstance(self.align_epochs, bool) or not isinstance(self.align_epochs, int):
            raise LabcoreError(f"align_epochs must be an integer, got {self.align_epochs!r}")
        if self.align_epochs < 0:
            raise LabcoreError(f"align_epochs must be >= 0, got {self.align_epochs}")
        positive_int("align_tokens", self.align_tokens)
        finite_float("distill_weight", self.distill_weight, minimum=0.0)
        finite_float("listwise_weight", self.listwise_weight, minimum=0.0)


def check_pairs(pairs: Sequence[Pair]) -> None:
    if not pairs:
        raise LabcoreError("no training pairs")
    bad = [p for p in pairs if p[2] not in (0, 1, 0.0, 1.0)]
    if bad:
        raise LabcoreError(f"labels must be 0 or 1, got {bad[0][2]!r}")


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


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
        losses.append(optimizer_step(opt, loss))
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
    """Train the item encoder (and then the ranker) on labels plus distillation to
    ``teacher`` (the full-text ranker's score of each pair); returns the loss per step.

    The loss is ``listwise_weight`` × an in-batch softmax loss (each query against every
    item of its batch, computed with one prefix pass per query: :meth:`MixRanker.score_grid`)
    plus binary cross-entropy on the labels plus ``distill_weight`` × the squared
    error to the teacher's scores, divided by their variance (the raw logit gaps of a
    fine-tuned ranker span tens of units and would swamp the label term). Start ``ranker``
    from the teacher's weights: the encoder then learns vectors that a ranker which
    already ranks reads like the item's text."""
    check_pairs(pairs)
    if teacher is not None and len(teacher) != len(pairs):
        raise LabcoreError(f"{len(teacher)} teacher scores for {len(pairs)} pairs")
    distill = teacher is not None and config.distill_weight > 0
    if distill:
        teacher = teacher.detach().float()
        spread = float(teacher.var()) if len(teacher) > 1 else 1.0
        scale = config.distill_weight / max(spread, 1e-6)
    frozen_body = config.encoder_lr == 0
    head = [p for n, p in encoder.named_parameters() if not n.startswith("encoder.")]
    vectors = item_vectors(encoder, [p[1] for p in pairs], frozen_body=frozen_body)
    saved = _requires_grad(encoder.encoder)
    for p in encoder.encoder.parameters():
        p.requires_grad_(not frozen_body)

    losses = []
    groups = [
        {"params": head, "lr": config.head_lr},
        {"params": list(ranker.model.parameters()), "lr": config.lr},
    ]
    if not frozen_body:
        groups.append({"params": list(encoder.encoder.parameters()), "lr": config.encoder_lr})
    opt = torch.optim.AdamW(groups)
    ranker.model.train()
    encoder.train(not frozen_body)
    for idx in iterate_batches(len(pairs), config.batch_size, config.epochs, config.seed):
        batch = [pairs[i] for i in idx]
        labels = torch.tensor([float(p[2]) for p in batch])
        if config.listwise_weight > 0:
            grid, rows, cols = _grid(ranker, batch, vectors)
            scores = grid[rows, cols]
            loss = config.listwise_weight * _in_batch_softmax(grid, rows, cols, labels)
        else:
            scores = ranker.pair_scores([p[0] for p in batch], list(vectors([p[1] for p in batch])))
            loss = scores.new_zeros(())
        loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)
        if distill:
            loss = loss + scale * torch.mean((scores - teacher[idx]) ** 2)
        losses.append(optimizer_step(opt, loss))
    _restore_requires_grad(saved)
    ranker.model.eval()
    encoder.eval()
    return losses


def align_encoder(
    ranker: MixRanker, encoder: Any, texts: Sequence[str], config: TrainConfig
) -> list[float]:
    """The alignment stage (before :func:`train_mixlm`): the ranker, frozen, reads an
    item's k vectors and must continue with the item's first ``align_tokens`` tokens
    (next-token cross-entropy). Only the encoder learns, so its vectors move into what the
    language model can read, from unlabelled items (any catalogue text will do); returns
    the loss per step, ``align_epochs`` epochs over ``texts``."""
    texts = list(dict.fromkeys(t for t in texts if t.strip()))
    if not texts:
        raise LabcoreError("no item texts to align the encoder on")
    frozen_body = config.encoder_lr == 0
    head = [p for n, p in encoder.named_parameters() if not n.startswith("encoder.")]
    vectors_of = item_vectors(encoder, texts, frozen_body=frozen_body)
    groups = [{"params": head, "lr": config.head_lr}]
    if not frozen_body:
        groups.append({"params": list(encoder.encoder.parameters()), "lr": config.encoder_lr})
    opt = torch.optim.AdamW(groups)
    saved = _requires_grad(ranker.model, encoder.encoder)
    for p in ranker.model.parameters():
        p.requires_grad_(False)
    for p in encoder.encoder.parameters():
        p.requires_grad_(not frozen_body)
    encoder.train(not frozen_body)
    losses = []
    try:
        for idx in iterate_batches(len(texts), config.batch_size, config.align_epochs, config.seed):
            batch = [texts[i] for i in idx]
            vectors = vectors_of(batch)
            targets = [ranker.ids(t)[: config.align_tokens] for t in batch]
            seqs = [
                torch.cat([v, ranker.embed_ids(ids[:-1])]) if len(ids) > 1 else v
                for v, ids in zip(vectors, targets, strict=True)
            ]
            embeds, mask, _ = ranker._pad(seqs)
            logits = ranker.model(inputs_embeds=embeds, attention_mask=mask).logits
            k = vectors.shape[1]
            labels = torch.full(mask.shape, -100, dtype=torch.long, device=mask.device)
            for row, ids in enumerate(targets):  # the last vector predicts the first token
                labels[row, k - 1 : k - 1 + len(ids)] = torch.tensor(ids)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100
            )
            losses.append(optimizer_step(opt, loss))
    finally:
        _restore_requires_grad(saved)
        encoder.eval()
    return losses


def _requires_grad(*modules: Any) -> list[tuple[torch.nn.Parameter, bool]]:
    return [(p, p.requires_grad) for m in modules for p in m.parameters()]


def _restore_requires_grad(saved: list[tuple[torch.nn.Parameter, bool]]) -> None:
    for p, flag in saved:
        p.requires_grad_(flag)


def item_vectors(encoder: Any, texts: Sequence[str], *, frozen_body: bool):
    """A function texts → item vectors for training. With the encoder's body frozen its
    pooled states are computed once per text (and set the head's feature statistics);
    otherwise every call runs the encoder."""
    if not frozen_body:
        return encoder
    unique = list(dict.fromkeys(texts))
    with torch.no_grad():
        encoder.eval()
        pooled = torch.cat(
            [encoder.features(unique[i : i + 32]) for i in range(0, len(unique), 32)]
        )
    if len(unique) >= 2 and bool((encoder.feature_scale == 1).all()):
        encoder.fit_feature_stats(pooled)
    features = dict(zip(unique, pooled, strict=True))
    return lambda batch: encoder.head(torch.stack([features[t] for t in batch]))


def _grid(ranker: MixRanker, batch: Sequence[Pair], vectors):
    """Every query of the batch against every item of the batch; the row and column of each
    labelled pair."""
    queries = list(dict.fromkeys(p[0] for p in batch))
    texts = list(dict.fromkeys(p[1] for p in batch))
    grid = ranker.score_grid(queries, list(vectors(texts)))
    rows = torch.tensor([queries.index(p[0]) for p in batch])
    cols = torch.tensor([texts.index(p[1]) for p in batch])
    return grid, rows, cols


def _in_batch_softmax(grid, rows, cols, labels) -> torch.Tensor:
    """Softmax cross-entropy of each positive pair against the other items of the batch
    (the query's other labelled positives left out): every item is a negative for the
    batch's other queries, so the loss rewards matching the query, not recognising items
    that were positives in training."""
    positive = labels > 0.5
    if not bool(positive.any()):
        return grid.new_zeros(())
    other_positive = torch.zeros_like(grid, dtype=torch.bool)
    other_positive[rows[positive], cols[positive]] = True
    losses = []
    for r, c in zip(rows[positive].tolist(), cols[positive].tolist(), strict=True):
        keep = ~other_positive[r]
        keep[c] = True
        row = grid[r][keep]
        target = int(keep[:c].sum())
        losses.append(torch.logsumexp(row, 0) - row[target])
    return torch.stack(losses).mean()


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
