"""Development: teacher then MixLM student (k vectors), both measured on held-out training
articles (``bbc_ranking(validation=True)``), never the test split.

    uv run python bench/tune_student.py --lr 1e-4 --pairs 128 --k 4
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from mixlm.baselines import minilm
from mixlm.bench import _evaluate, _truncate
from mixlm.data import bbc_ranking
from mixlm.encoder import ItemEncoder, token_embedding_norm
from mixlm.ranker import MixRanker
from mixlm.run import load_ranker_base
from mixlm.train import TrainConfig, teacher_scores, train_full_text, train_mixlm

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--encoder-lr", type=float, default=1e-4)
ap.add_argument("--pairs", type=int, default=128)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--k", type=int, default=4)
ap.add_argument("--item-tokens", type=int, default=128)
ap.add_argument("--queries", type=int, default=20)
args = ap.parse_args()
torch.manual_seed(0)
task = bbc_ranking(n_train_pairs=args.pairs, n_queries=args.queries, n_candidates=10, validation=True)
teacher = MixRanker(*load_ranker_base("smollm2-135m"))
items = {k: _truncate(teacher, v, args.item_tokens) for k, v in task.items.items()}
pairs = [(q, _truncate(teacher, t, args.item_tokens), y) for q, t, y in task.train_pairs]
cfg = TrainConfig(epochs=args.epochs, batch_size=8, lr=args.lr, encoder_lr=args.encoder_lr)
t0 = time.perf_counter()
train_full_text(teacher, pairs, cfg)
teacher_m, _, _ = _evaluate(
    task, lambda q, c: (teacher.score(q, [teacher.item_text_vectors(items[i]) for i in c])[0].numpy(), 0)
)
targets = teacher_scores(teacher, pairs)
student = MixRanker(*load_ranker_base("smollm2-135m"))
enc, tok = minilm()
encoder = ItemEncoder(copy.deepcopy(enc), tok, k=args.k, hidden_size=student.hidden_size,
                      target_norm=token_embedding_norm(student.model))
losses = train_mixlm(student, encoder, pairs, cfg, teacher=targets)
with torch.no_grad():
    vec = {i: encoder([t])[0] for i, t in items.items()}
student_m, _, _ = _evaluate(task, lambda q, c: (student.score(q, [vec[i] for i in c])[0].numpy(), 0))
print(json.dumps({**vars(args), "teacher": teacher_m, "student": student_m,
                  "loss_last": sum(losses[-3:]) / 3, "s": time.perf_counter() - t0}))
