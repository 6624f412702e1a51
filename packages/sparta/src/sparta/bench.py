"""``sparta bench``: SPARTA and its baselines in one process on the same task, at the same ε.

Per task, ε and seed, every method fine-tunes a copy of the same pretrained model on the same
private split: SPARTA (private row choice, 20% of the rows), full DP-SGD, last layer only,
BitFiT (head, biases, norms), magnitude rows (public weights), random rows, and non-private
SGD as the ceiling (it does not depend on ε: run once per seed, reported under every ε).
Reported: test accuracy, the ε actually spent (Opacus' accountant), the trainable-parameter
fraction and the time relative to full DP-SGD.

Tasks (``sparta.tasks``): MiniLM-L6 on BBC News topics (the main task: the top 2 of the 6
transformer layers train, 1,000 training articles of 64 tokens, 4 epochs, learning rates per
method chosen on held-out training articles by ``bench/tune_lr.py``), the digits MLP and the
digits GroupNorm CNN (10 epochs, one learning rate for every DP method), and Fashion-MNIST
with the CNN when ``--data-root`` (or ``$FASHION_MNIST_DIR``) holds it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, mean_std
from labcore.errors import LabcoreError
from labcore.progress import status
from sparta import __version__
from sparta.train import METHODS

#: Learning rates for bbc/MiniLM, per method: the best of the grid of ``bench/tune_lr.py`` on
#: held-out training articles at ε = 4, seed 0 (``bench/tune-lr.json``).
BBC_LR = {
    "sparta": 0.1,
    "full": 0.03,
    "last-layer": 0.3,
    "bitfit": 0.1,
    "magnitude": 0.1,  # the same parametrization as SPARTA (20% of the rows): its rate
    "random": 0.1,
    "non-private": 0.01,
}

BBC = {
    "data": "bbc",
    "model": "minilm-l6",
    "n_train": 1000,
    "trainable_layers": 2,
    "epochs": 4,
    "probe_epochs": 1,
    "lr": BBC_LR,
}
DIGITS_MLP = {"data": "digits", "model": "mlp", "epochs": 10, "probe_epochs": 3, "lr": 0.5}
DIGITS_CNN = {"data": "digits", "model": "cnn-small", "epochs": 10, "probe_epochs": 3, "lr": 0.5}
FASHION = {
    "data": "fashion-mnist",
    "model": "cnn-small",
    "n_train": 5000,
    "epochs": 6,
    "probe_epochs": 2,
    "lr": 0.5,
}

QUICK = {"tasks": [BBC | {"n_train": 400}, DIGITS_MLP, DIGITS_CNN], "epsilons": [4.0]}
FULL = {"tasks": [BBC, DIGITS_MLP, DIGITS_CNN, FASHION], "epsilons": [2.0, 4.0, 8.0]}


def _lr(task: dict[str, Any], method: str) -> float:
    lr = task["lr"]
    return lr[method] if isinstance(lr, dict) else (0.05 if method == "non-private" else lr)


def default_lr(data: str, method: str) -> float:
    """The benchmark's learning rate for a data set and method (what ``sparta train`` uses
    when no ``--lr`` is given)."""
    task = {"bbc": BBC, "digits": DIGITS_MLP, "fashion-mnist": FASHION}[data]
    return _lr(task, method)


def _name(task: dict[str, Any]) -> str:
    return f"{task['data']}-{task['model']}"


def run_bench(config: BenchConfig) -> BenchReport:
    from sparta.tasks import load_task
    from sparta.train import SpartaConfig, dp_finetune, evaluate

    cfg = QUICK if config.quick else FULL
    report = BenchReport(
        package="sparta",
        version=__version__,
        config={
            "tasks": [
                {k: v for k, v in t.items() if k != "lr"} | {"lr": str(t["lr"])}
                for t in cfg["tasks"]
            ],
            "epsilons": cfg["epsilons"],
            "trainable_fraction": 0.2,
            "batch_size": 64,
        },
    )
    t0 = time.perf_counter()
    for task_cfg in cfg["tasks"]:
        name = _name(task_cfg)
        load_kwargs = {
            k: task_cfg[k] for k in ("model", "n_train", "trainable_layers") if k in task_cfg
        }
        if task_cfg["data"] == "fashion-mnist":
            load_kwargs["data_root"] = config.data_root
        for seed in config.seeds:
            try:
                load_task(task_cfg["data"], seed=seed, **load_kwargs)
            except LabcoreError as exc:  # data not on this machine: kept as skipped rows
                for eps in cfg["epsilons"]:
                    report.extend(
                        Row.skipped(m, {}, f"{name}-eps{eps:g}", str(exc), seed) for m in METHODS
                    )
                continue
            ceiling: Row | None = None
            for eps in cfg["epsilons"]:
                rows = []
                for method in METHODS:
                    if method == "non-private" and ceiling is not None:
                        rows.append(
                            Row(method, ceiling.params, f"{name}-eps{eps:g}", seed,
                                dict(ceiling.metrics), ceiling.time_s)
                        )  # fmt: skip
                        continue
                    task = load_task(task_cfg["data"], seed=seed, **load_kwargs)
                    sc = SpartaConfig(
                        method=method,
                        epsilon=eps,
                        epochs=task_cfg["epochs"],
                        probe_epochs=task_cfg["probe_epochs"],
                        lr=_lr(task_cfg, method),
                        nonprivate_lr=_lr(task_cfg, "non-private"),
                        seed=seed,
                    )
                    res = dp_finetune(
                        task.model,
                        task.X_train,
                        task.y_train,
                        sc,
                        head=task.head,
                        frozen=task.frozen,
                    )
                    metrics = {
                        "accuracy": evaluate(task.model, task.X_test, task.y_test),
                        "epsilon_spent": res.epsilon,
                        "noise_multiplier": res.noise_multiplier,
                        "trainable_fraction": res.trainable_fraction,
                        "steps": res.steps,
                    }
                    params = {
                        "epsilon": eps if method != "non-private" else None,
                        "delta": res.delta,
                        "epochs": task_cfg["epochs"],
                        "lr": sc.lr if method != "non-private" else sc.nonprivate_lr,
                        "n_train": len(task.X_train),
                    }
                    row = Row(method, params, f"{name}-eps{eps:g}", seed, metrics, res.time_s)
                    rows.append(row)
                    if method == "non-private":
                        ceiling = row
                full = next(r for r in rows if r.method == "full").time_s
                for r in rows:
                    r.metrics["time_vs_full"] = r.time_s / full
                report.extend(rows)
                report.save_partial(config.out)
                status(f"[{time.perf_counter() - t0:7.1f}s] {name} ε={eps:g} seed {seed} done")
    report.summary = summary_tables(report.rows)
    return report


def _cell(values: list[float]) -> str:
    mean, sd, n = mean_std(values)
    if mean is None:
        return "–"
    return f"{mean:.3f}" if n < 2 else f"{mean:.3f} ± {sd:.3f}"


def summary_tables(rows: list[Row]) -> str:
    """Per task: test accuracy (mean ± sd over seeds) by ε and method, then per method the
    trainable fraction, the largest ε overshoot and the time relative to full DP-SGD."""
    ok = [r for r in rows if r.status == "ok"]
    out: list[str] = []
    for task in dict.fromkeys(r.dataset.rsplit("-eps", 1)[0] for r in ok):
        mine = [r for r in ok if r.dataset.rsplit("-eps", 1)[0] == task]
        by_method = {m: [r for r in mine if r.method == m] for m in METHODS}
        by_method = {m: rs for m, rs in by_method.items() if rs}
        epsilons = list(dict.fromkeys(r.dataset.rsplit("-eps", 1)[1] for r in mine))
        seeds = ", ".join(str(s) for s in sorted({r.seed for r in mine}))
        header = "| " + " | ".join(by_method) + " |"
        rule = "|---|" + "---|" * len(by_method)
        out += [f"### {task} (test accuracy, seeds {seeds})", "", "| ε " + header, rule]
        for eps in epsilons:
            cells = [
                _cell([r.metrics["accuracy"] for r in rs if r.dataset.endswith(f"-eps{eps}")])
                for rs in by_method.values()
            ]
            out.append(f"| {eps} | " + " | ".join(cells) + " |")
        fraction, overshoot, time_ratio = [], [], []
        for rs in by_method.values():
            fraction.append(f"{statistics.fmean(r.metrics['trainable_fraction'] for r in rs):.3f}")
            private = [r for r in rs if r.params["epsilon"] is not None]
            overshoot.append(
                f"{max(r.metrics['epsilon_spent'] - r.params['epsilon'] for r in private):+.3f}"
                if private
                else "–"
            )
            time_ratio.append(f"{statistics.fmean(r.metrics['time_vs_full'] for r in rs):.2f}")
        out += ["", "| " + header, rule]
        out.append("| trainable fraction | " + " | ".join(fraction) + " |")
        out.append("| max(ε spent − ε) | " + " | ".join(overshoot) + " |")
        out.append("| time ÷ full DP-SGD | " + " | ".join(time_ratio) + " |")
        out.append("")
    return "\n".join(out)


BENCH = BenchSpec(
    package="sparta",
    version=__version__,
    run=run_bench,
    help="SPARTA against full DP-SGD, last-layer, BitFiT, magnitude and random rows at equal ε",
    uses=frozenset({"seeds", "data_root"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
)
