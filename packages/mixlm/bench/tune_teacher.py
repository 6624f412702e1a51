"""Development: does the full-text teacher learn? Trained on BBC training pairs, measured on
held-out training-split articles (``bbc_ranking(validation=True)``), never the test split.

    uv run python bench/tune_teacher.py --lr 1e-4 --pairs 128 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from mixlm.bench import _evaluate, _truncate
from mixlm.data import bbc_ranking
from mixlm.ranker import MixRanker
from mixlm.train import TrainConfig, train_full_text

from labcore.models import load_causal_lm

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--pairs", type=int, default=128)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--item-tokens", type=int, default=128)
ap.add_argument("--queries", type=int, default=10)
args = ap.parse_args()
torch.manual_seed(0)
task = bbc_ranking(
    n_train_pairs=args.pairs, n_queries=args.queries, n_candidates=10, validation=True
)
model, tok = load_causal_lm("smollm2-135m")
r = MixRanker(model, tok)
items = {k: _truncate(r, v, args.item_tokens) for k, v in task.items.items()}
pairs = [(q, _truncate(r, t, args.item_tokens), y) for q, t, y in task.train_pairs]


def full_text(query, cands):
    s, p = r.score(query, [r.item_text_vectors(items[c]) for c in cands])
    return s.numpy(), p.without_reuse


before, _, _ = _evaluate(task, full_text)
t0 = time.perf_counter()
losses = train_full_text(r, pairs, TrainConfig(epochs=args.epochs, batch_size=8, lr=args.lr))
after, _, _ = _evaluate(task, full_text)
print(
    json.dumps(
        {
            **vars(args),
            "before": before,
            "after": after,
            "loss_first": float(np.mean(losses[:3])),
            "loss_last": float(np.mean(losses[-3:])),
            "train_s": time.perf_counter() - t0,
        }
    )
)
