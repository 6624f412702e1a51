"""``sparta bench``: SPARTA and its baselines in one process on the same task, at the same ε.

Per task, ε and seed, every method fine-tunes a copy of the same pretrained model on the same
private split: SPARTA (private row choice, 20% of the rows), full DP-SGD, last layer only,
BitFiT (head, biases, norms), magnitude rows (public weights), random rows, and non-private
SGD as the ceiling. Reported: test accuracy, the ε actually spent (Opacus' accountant),
the trainable-parameter fraction and the time relative to full DP-SGD.
"""

from __future__ import annotations

import time

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, wide_table
from labcore.progress import status
from sparta import __version__
from sparta.train import METHODS

QUICK = {"tasks": ["digits"], "epsilons": [4.0], "epochs": 10, "probe_epochs": 3}
FULL = {"tasks": ["digits"], "epsilons": [2.0, 4.0, 8.0], "epochs": 10, "probe_epochs": 3}


def run_bench(config: BenchConfig) -> BenchReport:
    from sparta.tasks import load_task
    from sparta.train import SpartaConfig, dp_finetune, evaluate

    cfg = QUICK if config.quick else FULL
    report = BenchReport(
        package="sparta",
        version=__version__,
        config={k: str(v) for k, v in cfg.items()} | {"trainable_fraction": 0.2},
    )
    t0 = time.perf_counter()
    for name in cfg["tasks"]:
        for eps in cfg["epsilons"]:
            for seed in config.seeds:
                rows = []
                for method in METHODS:
                    task = load_task(name, seed=seed)
                    sc = SpartaConfig(
                        method=method,
                        epsilon=eps,
                        epochs=cfg["epochs"],
                        probe_epochs=cfg["probe_epochs"],
                        seed=seed,
                    )
                    res = dp_finetune(task.model, task.X_train, task.y_train, sc, head=task.head)
                    acc = evaluate(task.model, task.X_test, task.y_test)
                    metrics = {
                        "accuracy": acc,
                        "epsilon_spent": res.epsilon,
                        "noise_multiplier": res.noise_multiplier,
                        "trainable_fraction": res.trainable_fraction,
                        "steps": res.steps,
                    }
                    params = {
                        "epsilon": eps if method != "non-private" else None,
                        "delta": res.delta,
                        "epochs": cfg["epochs"],
                    }
                    rows.append(
                        Row(method, params, f"{name}-eps{eps:g}", seed, metrics, res.time_s)
                    )
                full = next(r for r in rows if r.method == "full").time_s
                for r in rows:
                    r.metrics["time_vs_full"] = r.time_s / full
                report.extend(rows)
                report.save_partial(config.out)
                status(f"[{time.perf_counter() - t0:7.1f}s] {name} ε={eps:g} seed {seed} done")
    report.summary = wide_table(
        report.rows,
        methods=list(METHODS),
        metrics={"accuracy": ".3f", "epsilon_spent": ".2f", "trainable_fraction": ".3f"},
    )
    return report


BENCH = BenchSpec(
    package="sparta",
    version=__version__,
    run=run_bench,
    help="SPARTA against full DP-SGD, last-layer, BitFiT, magnitude and random rows at equal ε",
    uses=frozenset({"seeds"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
)
