"""An attempt on the main task: the same bbc/MiniLM setting as ``sparta bench`` but 10 epochs
instead of 4 (SPARTA: 2 probing, 1 mask, 7 sparse), ε = 4, seed 0, the benchmark's learning
rates. It asks whether SPARTA's deficit on BBC comes from the short budget, in which the mask
epoch and the probe take half of SPARTA's epochs. Run from ``packages/sparta``:

    uv run python bench/longer_budget.py --out bench/longer-budget.json
"""

from __future__ import annotations

import argparse
import json

from sparta.bench import BBC_LR
from sparta.tasks import load_task
from sparta.train import SpartaConfig, dp_finetune, evaluate

from labcore.io import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/longer-budget.json")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--probe-epochs", type=int, default=2)
    parser.add_argument("--methods", default="sparta,random,last-layer")
    args = parser.parse_args()
    rows = []
    for method in args.methods.split(","):
        task = load_task("bbc", seed=0)
        config = SpartaConfig(
            method=method,
            epsilon=4.0,
            epochs=args.epochs,
            probe_epochs=args.probe_epochs,
            lr=BBC_LR[method],
            seed=0,
        )
        res = dp_finetune(
            task.model, task.X_train, task.y_train, config, head=task.head, frozen=task.frozen
        )
        rows.append(
            {
                "method": method,
                "epochs": args.epochs,
                "accuracy": evaluate(task.model, task.X_test, task.y_test),
                "epsilon_spent": res.epsilon,
                "time_s": res.time_s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
