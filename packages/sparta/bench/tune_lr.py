"""Learning rates for the bbc/MiniLM benchmark, chosen on held-out training articles.

For each method, a grid of learning rates at ε = 4, seed 0 (every tuned DP method gets the
same grid and budget); the score is accuracy on up to 500 articles of the BBC train split that
are not among the 1,000 training articles (the test split is never read). When a method's
best rate is at an end of the grid, the grid grows by one factor of 3 (or 5 for the
non-private grid) past that end, until the best is inside (at most 3 extensions). ``magnitude`` and
``random`` train the same parametrization as SPARTA (20% of the rows) and take its rate. The
chosen rates go into ``sparta.bench.BBC_LR``. Run from ``packages/sparta``:

    uv run python bench/tune_lr.py --out bench/tune-lr.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from sparta.tasks import load_task
from sparta.train import SpartaConfig, dp_finetune, evaluate

from labcore.io import atomic_write_text

GRID = (0.03, 0.1, 0.3)
NONPRIVATE_GRID = (0.01, 0.05)
TUNED = ("sparta", "full", "last-layer", "bitfit", "non-private")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/tune-lr.json")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--trainable-layers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []  # resumes a run

    def score(method: str, lr: float) -> float:
        for r in rows:
            if r["method"] == method and math.isclose(r["lr"], lr):
                return r["val_accuracy"]
        task = load_task("bbc", seed=0, trainable_layers=args.trainable_layers)
        config = SpartaConfig(
            method=method,
            epsilon=4.0,
            epochs=args.epochs,
            probe_epochs=1,
            lr=lr,
            nonprivate_lr=lr,
            seed=0,
        )
        res = dp_finetune(
            task.model, task.X_train, task.y_train, config, head=task.head, frozen=task.frozen
        )
        acc = evaluate(task.model, task.X_val, task.y_val)
        rows.append({"method": method, "lr": lr, "val_accuracy": acc, "time_s": res.time_s})
        print(json.dumps(rows[-1]), flush=True)
        atomic_write_text(out, json.dumps(rows, indent=1) + "\n")
        return acc

    for method in TUNED:
        grid = list(NONPRIVATE_GRID if method == "non-private" else GRID)
        step = 5.0 if method == "non-private" else 3.0
        for _ in range(4):
            accs = [score(method, lr) for lr in grid]
            best = max(range(len(grid)), key=lambda i: accs[i])
            if best == 0:
                grid.insert(0, round(grid[0] / step, 6))
            elif best == len(grid) - 1:
                grid.append(round(grid[-1] * step, 6))
            else:
                break
    best: dict = {}
    for r in rows:
        if r["method"] not in best or r["val_accuracy"] > best[r["method"]]["val_accuracy"]:
            best[r["method"]] = r
    print({m: r["lr"] for m, r in best.items()})


if __name__ == "__main__":
    main()
