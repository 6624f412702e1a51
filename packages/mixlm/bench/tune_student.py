"""Development: MixLM students of one full-text teacher, measured on held-out training
articles (``bbc_ranking(validation=True)``), never the test split. The teacher is trained
once and kept in ``--teacher`` (a safetensors file) for the following runs.

    uv run python bench/tune_student.py --teacher /tmp/teacher.safetensors --align-epochs 8
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from mixlm.baselines import minilm
from mixlm.bench import _evaluate, _truncate
from mixlm.data import bbc_ranking
from mixlm.encoder import ItemEncoder, token_embedding_norm
from mixlm.ranker import MixRanker
from mixlm.run import load_ranker_base
from mixlm.train import (
    TrainConfig,
    align_encoder,
    load_weights,
    save_weights,
    teacher_scores,
    train_full_text,
    train_mixlm,
)

ap = argparse.ArgumentParser()
ap.add_argument("--teacher", type=Path, required=True)
ap.add_argument("--lr", type=float, default=1e-5)
ap.add_argument("--encoder-lr", type=float, default=0.0)
ap.add_argument("--head-lr", type=float, default=1e-3)
ap.add_argument("--pairs", type=int, default=128)
ap.add_argument("--align-epochs", type=int, default=1)
ap.add_argument("--align-items", type=int, default=500)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--distill-weight", type=float, default=1.0)
ap.add_argument("--listwise-weight", type=float, default=1.0)
ap.add_argument("--k", type=int, default=4)
ap.add_argument("--item-tokens", type=int, default=128)
ap.add_argument("--queries", type=int, default=30)
ap.add_argument("--out", type=Path, default=Path(__file__).with_name("tune-student.jsonl"))
args = ap.parse_args()
torch.manual_seed(0)
task = bbc_ranking(
    n_train_pairs=args.pairs, n_queries=args.queries, n_candidates=10, validation=True
)
teacher = MixRanker(*load_ranker_base("smollm2-135m"))
items = {k: _truncate(teacher, v, args.item_tokens) for k, v in task.items.items()}
pairs = [(q, _truncate(teacher, t, args.item_tokens), y) for q, t, y in task.train_pairs]
if args.teacher.exists():
    load_weights(teacher.model, args.teacher)
else:
    train_full_text(teacher, pairs, TrainConfig(epochs=2, lr=1e-4))
    save_weights(teacher.model, args.teacher)
t0 = time.perf_counter()
targets = teacher_scores(teacher, pairs)
student = MixRanker(copy.deepcopy(teacher.model), teacher.tokenizer)
enc, tok = minilm()
encoder = ItemEncoder(copy.deepcopy(enc), tok, k=args.k, hidden_size=student.hidden_size,
                      target_norm=token_embedding_norm(student.model))  # fmt: skip
cfg = TrainConfig(
    epochs=args.epochs, lr=args.lr, encoder_lr=args.encoder_lr, head_lr=args.head_lr,
    align_epochs=args.align_epochs, distill_weight=args.distill_weight,
    listwise_weight=args.listwise_weight,
)  # fmt: skip
align = [_truncate(teacher, t, args.item_tokens) for t in task.unlabelled[: args.align_items]]
align_losses = align_encoder(student, encoder, align, cfg) if args.align_epochs else [0.0]
print("align loss", align_losses[:3], align_losses[-3:], flush=True)
losses = train_mixlm(student, encoder, pairs, cfg, teacher=targets)
train_s = time.perf_counter() - t0
with torch.no_grad():
    vec = {i: encoder([t])[0] for i, t in items.items()}
student_m, _, _ = _evaluate(
    task, lambda q, c: (student.score(q, [vec[i] for i in c])[0].numpy(), 0)
)
steps = max(1, len(losses) // args.epochs)
line = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "student": student_m, "loss_first_epoch": sum(losses[:steps]) / steps,
        "loss_last_epoch": sum(losses[-steps:]) / steps,
        "align_loss_first": align_losses[0], "align_loss_last": sum(align_losses[-5:]) / 5, "train_s": train_s}  # fmt: skip
print(json.dumps(line))
with args.out.open("a") as f:
    f.write(json.dumps(line) + "\n")
