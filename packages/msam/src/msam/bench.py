"""``msam bench``: SGD vs SAM vs mSAM in one process, on the same data, seeds, epochs and base
optimizer; flatness at the end of training; time per step.

Presets (``--preset``; default ``quick`` with ``--quick``, else ``full``)
-----------------------------------------------------------------------
quick (under 10 minutes on 2 CPU cores)
    sklearn digits, the small CNN (GroupNorm): SGD, SAM and mSAM (k = 8) in both execution
    modes, a small ρ sweep for SAM and mSAM, and the step-time measurement.
full
    Fashion-MNIST (a stratified 20,000-image training subset, the whole 10,000-image test
    set), the small CNN, 3 epochs: SGD, SAM, mSAM k = 4, 8, 16 and a ρ sweep; MiniLM
    fine-tuned on BBC News topics (a 600-article training subset, 64 tokens, 2 epochs, AdamW;
    the whole test split): AdamW alone, SAM, mSAM k = 4, 8, 16; the step-time measurement at
    batch 128 on 28×28 images. Sized for about 45 minutes on 2 CPU cores.

Seeds (``config.seeds``; default 0,1,2, or 0 with ``--quick``): the image task's main runs
(SGD, SAM, every mSAM) run once per seed; the ρ sweep and the MiniLM task, the expensive
parts, run on the first seed only (a task's ``"seeds"`` entry: ``"all"`` or ``"first"``).
The step-time rows time one fixed random batch once (seed ``None``).

Flatness (top Hessian eigenvalue, Hutchinson trace, m-sharpness) is measured at the end of
training on a fixed, seeded subset of the training set in eval mode.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore import LabcoreError
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from msam import __version__

if TYPE_CHECKING:
    import torch

    from msam.data import Dataset

log = logging.getLogger("msam.bench")

IMAGE_FLATNESS = {"samples": 512, "batch_size": 256, "iters": 15, "probes": 8}
TEXT_FLATNESS = {"samples": 32, "batch_size": 32, "iters": 5, "probes": 2}

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "image": {
            "config": {
                "data": "digits",
                "model": "cnn-small",
                "epochs": 20,
                "batch_size": 64,
                "lr": 0.05,
            },
            "seeds": "all",
            "micro_batches": [8],
            "modes": ["sequential", "vmap"],
            "rho": 0.05,
            "rho_sweep": [0.02, 0.1],
        },
        "text": None,
        "step_time": {
            "model": "cnn-small",
            "image_shape": [1, 28, 28],
            "batch_size": 128,
            "micro_batches": [8],
            "steps": 20,
        },
    },
    "full": {
        "image": {
            "config": {
                "data": "fashion-mnist",
                "model": "cnn-small",
                "epochs": 3,
                "batch_size": 128,
                "lr": 0.05,
                "train_subset": 20000,
            },
            "seeds": "all",
            "micro_batches": [4, 8, 16],
            "modes": ["sequential"],
            "rho": 0.05,
            "rho_sweep": [0.02, 0.1],
        },
        "text": {
            "config": {
                "data": "bbc",
                "model": "minilm",
                "epochs": 2,
                "batch_size": 32,
                "base": "adamw",
                "lr": 1e-4,
                "weight_decay": 0.01,
                "max_length": 64,
                "train_subset": 600,
            },
            "seeds": "first",
            "micro_batches": [4, 8, 16],
            "modes": ["sequential"],
            "rho": 0.05,
            "rho_sweep": [],
        },
        "step_time": {
            "model": "cnn-small",
            "image_shape": [1, 28, 28],
            "batch_size": 128,
            "micro_batches": [4, 8, 16],
            "steps": 20,
        },
    },
}


# --------------------------------------------------------------------------------------------
# Pieces


def flatness_batches(
    data: Dataset,
    samples: int,
    batch_size: int,
    *,
    split: str = "train",
    seed: int = 0,
    device: Any = "cpu",
) -> list[tuple[Any, torch.Tensor]]:
    """A fixed, seeded subset of a split, in batches, on ``device``."""
    import torch

    from msam.data import index_batch
    from msam.train import _to

    x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
    n = min(samples, len(y))
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    out = []
    for start in range(0, n, batch_size):
        part = idx[start : start + batch_size]
        out.append((_to(index_batch(x, part), device), y[part].to(device)))
    return out


def flatness_metrics(
    model: Any, data: Dataset, spec: dict[str, int], device: Any
) -> dict[str, float]:
    from msam.flatness import hessian_eigenvalue, hessian_trace, m_sharpness
    from msam.train import loss_fn

    batches = flatness_batches(data, spec["samples"], spec["batch_size"], seed=1234, device=device)
    return {
        "top_eigenvalue": hessian_eigenvalue(model, loss_fn, batches, iters=spec["iters"]),
        "hessian_trace": hessian_trace(model, loss_fn, batches, probes=spec["probes"]),
        "m_sharpness": m_sharpness(model, loss_fn, batches, rho=0.05, micro_batch_size=32),
    }


def _label(method: str, micro_batches: int | None, mode: str | None) -> str:
    if method != "msam":
        return method
    return f"msam-{micro_batches}" + ("-vmap" if mode == "vmap" else "")


def _task_seeds(spec: dict[str, Any], seeds: tuple[int, ...]) -> list[int]:
    """The seeds of a task's main runs: every seed (``"all"``) or the first (``"first"``)."""
    if spec["seeds"] not in ("all", "first"):
        raise ValueError(f"a task's seeds must be 'all' or 'first', got {spec['seeds']!r}")
    return list(seeds) if spec["seeds"] == "all" else list(seeds[:1])


def _runs(spec: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """(optimizer, micro_batches, mode, rho, seeds) for a task spec; the ρ sweep runs on the
    first seed only."""
    rho = spec["rho"]
    main = _task_seeds(spec, seeds)
    runs = [
        {
            "optimizer": "sgd",
            "micro_batches": 1,
            "mode": "sequential",
            "rho": 0.0,
            "seeds": main,
        },
        {
            "optimizer": "sam",
            "micro_batches": 1,
            "mode": "sequential",
            "rho": rho,
            "seeds": main,
        },
    ]
    for k in spec["micro_batches"]:
        for mode in spec["modes"]:
            runs.append(
                {
                    "optimizer": "msam",
                    "micro_batches": k,
                    "mode": mode,
                    "rho": rho,
                    "seeds": main,
                }
            )
    sweep_k = 8 if 8 in spec["micro_batches"] else spec["micro_batches"][0]
    for r in spec["rho_sweep"]:
        runs.append(
            {
                "optimizer": "sam",
                "micro_batches": 1,
                "mode": "sequential",
                "rho": r,
                "seeds": list(seeds[:1]),
            }
        )
        runs.append(
            {
                "optimizer": "msam",
                "micro_batches": sweep_k,
                "mode": "sequential",
                "rho": r,
                "seeds": list(seeds[:1]),
            }
        )
    return runs


def _params(run: dict[str, Any], config: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"model": config.model}
    if run["optimizer"] != "sgd":
        params["rho"] = run["rho"]
    if run["optimizer"] == "msam":
        params["micro_batches"] = run["micro_batches"]
        params["mode"] = run["mode"]
    params["base"] = config.base
    params["epochs"] = config.epochs
    return params


def train_task(
    report: BenchReport,
    spec: dict[str, Any],
    seeds: tuple[int, ...],
    device: Any,
    flat_spec: dict[str, int],
    progress: bool,
) -> None:
    from labcore import LabcoreError
    from msam.train import TrainConfig, build, train

    base = TrainConfig(**spec["config"], device=str(device))
    try:
        _, data = build(base)  # loads the data once for every run
    except (LabcoreError, FileNotFoundError) as exc:  # missing data: rows kept, skipped
        for run in _runs(spec, seeds):
            method = base.base if run["optimizer"] == "sgd" else run["optimizer"]
            for seed in run["seeds"]:
                report.add(Row.skipped(method, _params(run, base), base.data, str(exc), seed=seed))
        return
    for run in _runs(spec, seeds):
        for seed in run["seeds"]:
            config = replace(
                base,
                optimizer=run["optimizer"],
                micro_batches=run["micro_batches"] if run["optimizer"] == "msam" else 8,
                mode=run["mode"],
                rho=run["rho"] if run["optimizer"] != "sgd" else base.rho,
                seed=seed,
            )
            params = _params(run, config)
            # The base optimizer alone is named after it: "sgd" or "adamw".
            method = config.base if run["optimizer"] == "sgd" else run["optimizer"]
            log.info("training %s %s seed %d", method, params, seed)
            result = train(config, data=data, progress=progress)
            flat = flatness_metrics(result.model, data, flat_spec, device)
            report.add(
                Row(
                    method,
                    params,
                    data.name,
                    seed,
                    {
                        "test_accuracy": result.test_accuracy,
                        "test_loss": result.test_loss,
                        "train_loss": result.train_loss,
                        **flat,
                        "ms_per_step": 1000 * result.time_per_step_s,
                    },
                    result.train_time_s,
                )
            )


def _time_steps(step: Any, steps: int, device: Any) -> float:
    from labcore.device import synchronize

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        synchronize(device)
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _one_step(method: str, k: int | None, mode: str | None, model: Any, batch: Any) -> Any:
    """A no-argument function that takes one training step of ``method``."""
    import torch

    from msam.optim import SAM, MicroBatchSAM
    from msam.train import loss_fn, plain_step

    kw = {"lr": 0.01, "momentum": 0.9}
    if method == "sgd":
        opt = torch.optim.SGD(model.parameters(), **kw)
        return lambda: plain_step(model, opt, batch)
    if method == "sam":
        sam = SAM(model.parameters(), torch.optim.SGD, rho=0.05, **kw)
    else:
        sam = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.05, micro_batches=k, **kw)
    return lambda: sam.train_step(model, loss_fn, batch, mode=mode or "sequential")


def step_time_rows(report: BenchReport, spec: dict[str, Any], device: Any) -> None:
    """Median time per step of SGD, SAM and mSAM (both modes) on one fixed random batch of
    ``spec["image_shape"]`` images, for ``spec["model"]`` with GroupNorm (vmap mode cannot
    run BatchNorm)."""
    import torch

    from msam.models import build_model

    b = spec["batch_size"]
    shape = tuple(spec["image_shape"])
    model_name = spec["model"]
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(b, *shape, generator=g).to(device),
        torch.randint(0, 10, (b,), generator=g).to(device),
    )
    dataset = "random-" + "x".join(str(d) for d in shape)
    variants: list[tuple[str, int | None, str | None]] = [("sgd", None, None), ("sam", None, None)]
    for k in spec["micro_batches"]:
        variants += [("msam", k, "sequential"), ("msam", k, "vmap")]
    timings: dict[tuple, float] = {}
    for method, k, mode in variants:
        torch.manual_seed(0)
        model = build_model(model_name, in_channels=shape[0], num_classes=10, norm="group").to(
            device
        )
        t0 = time.perf_counter()
        sec = _time_steps(_one_step(method, k, mode, model, batch), spec["steps"], device)
        timings[(method, k, mode)] = sec
        params: dict[str, Any] = {"measure": "step_time", "model": model_name, "batch_size": b}
        if k is not None:
            params.update(micro_batches=k, mode=mode)
        report.add(
            Row(
                method, params, dataset, None, {"ms_per_step": 1000 * sec}, time.perf_counter() - t0
            )
        )
    sam_time = timings[("sam", None, None)]
    sgd_time = timings[("sgd", None, None)]
    for row, key in zip(report.rows[-len(variants) :], variants, strict=True):
        row.metrics["vs_sam"] = timings[key] / sam_time
        row.metrics["vs_sgd"] = timings[key] / sgd_time


# --------------------------------------------------------------------------------------------
# Summary and plot


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows: list[Row]) -> list[dict[str, Any]]:
    """Training rows grouped by data set and setting: mean and std over seeds."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        if r.status != "ok" or r.params.get("measure") == "step_time":
            continue
        key = (r.dataset, r.method, tuple(sorted(r.params.items())))
        groups.setdefault(key, []).append(r)
    out = []
    for (dataset, method, _), rs in groups.items():
        p = rs[0].params
        entry: dict[str, Any] = {
            "dataset": dataset,
            "label": _label(method, p.get("micro_batches"), p.get("mode")),
            "method": method,
            "role": method if method in ("sam", "msam") else "base",
            "rho": p.get("rho"),
            "seeds": len(rs),
        }
        for m in ("test_accuracy", "top_eigenvalue", "hessian_trace", "m_sharpness", "ms_per_step"):
            entry[m] = _mean_std([float(r.metrics[m]) for r in rs])
        out.append(entry)
    return out


def main_settings(summary: list[dict[str, Any]], dataset: str, rho: float) -> list[dict[str, Any]]:
    """The base optimizer and every SAM/mSAM setting at the main ρ (not the ρ sweep)."""
    return [
        s for s in summary if s["dataset"] == dataset and (s["role"] == "base" or s["rho"] == rho)
    ]


def ordering_checks(summary: list[dict[str, Any]], rho: float) -> list[str]:
    """Whether mSAM ≥ SAM ≥ base in accuracy and mSAM ≤ SAM ≤ base in top eigenvalue."""
    lines = []
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        main = main_settings(summary, dataset, rho)
        base = next((s for s in main if s["role"] == "base"), None)
        sam = next((s for s in main if s["role"] == "sam"), None)
        if base is None or sam is None:
            continue
        name = base["label"].upper()
        for s in main:
            if s["role"] != "msam":
                continue
            label = s["label"]
            acc = s["test_accuracy"][0] >= sam["test_accuracy"][0] >= base["test_accuracy"][0]
            eig = s["top_eigenvalue"][0] <= sam["top_eigenvalue"][0] <= base["top_eigenvalue"][0]
            lines.append(
                f"{dataset}, {label}: accuracy {label} ≥ SAM ≥ {name} "
                f"({s['test_accuracy'][0]:.4f} / {sam['test_accuracy'][0]:.4f} / "
                f"{base['test_accuracy'][0]:.4f}): {'holds' if acc else 'does not hold'}; "
                f"top eigenvalue {label} ≤ SAM ≤ {name} ({s['top_eigenvalue'][0]:.3g} / "
                f"{sam['top_eigenvalue'][0]:.3g} / {base['top_eigenvalue'][0]:.3g}): "
                f"{'holds' if eig else 'does not hold'}"
            )
    return lines


def summary_markdown(summary: list[dict[str, Any]], checks: list[str], rows: list[Row]) -> str:
    head = "| data | optimizer | ρ | seeds | test accuracy | top eigenvalue | Hessian trace | m-sharpness | ms/step |"
    lines = ["## Summary (mean ± std over seeds)", "", head, "|" + "---|" * 9]
    for s in summary:

        def ms(name: str, fmt: str, s: dict[str, Any] = s) -> str:
            mean, std = s[name]
            return f"{mean:{fmt}} ± {std:{fmt}}" if s["seeds"] > 1 else f"{mean:{fmt}}"

        rho = "–" if s["rho"] is None else f"{s['rho']:g}"
        lines.append(
            f"| {s['dataset']} | {s['label']} | {rho} | {s['seeds']} | {ms('test_accuracy', '.4f')} | "
            f"{ms('top_eigenvalue', '.3g')} | {ms('hessian_trace', '.3g')} | "
            f"{ms('m_sharpness', '.3g')} | {ms('ms_per_step', '.1f')} |"
        )
    timing = [r for r in rows if r.params.get("measure") == "step_time" and r.status == "ok"]
    if timing:
        lines += [
            "",
            "## Time per step (median of repeated steps on one batch)",
            "",
            "| optimizer | k | mode | ms/step | vs SAM | vs SGD |",
            "|---|---|---|---|---|---|",
        ]
        for r in timing:
            lines.append(
                f"| {r.method} | {r.params.get('micro_batches', '–')} | {r.params.get('mode', '–')} | "
                f"{r.metrics['ms_per_step']:.1f} | {r.metrics['vs_sam']:.2f}× | {r.metrics['vs_sgd']:.2f}× |"
            )
    if checks:
        lines += ["", "## Orderings", ""] + [f"- {c}" for c in checks]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, Any]], rho: float, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no plot")
        return None
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.2 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        main = main_settings(summary, dataset, rho)
        labels = [s["label"] for s in main]
        for ax, metric, title in (
            (row[0], "test_accuracy", "test accuracy"),
            (row[1], "top_eigenvalue", "top Hessian eigenvalue"),
        ):
            means = [s[metric][0] for s in main]
            stds = [s[metric][1] for s in main]
            palette = {"base": "#888888", "sam": "#4477aa", "msam": "#ee6677"}
            colours = [palette[s["role"]] for s in main]
            ax.bar(labels, means, yerr=stds, color=colours, capsize=3)
            ax.set_title(f"{dataset}: {title} (ρ = {rho:g})")
            if metric == "test_accuracy":
                lo = min(m - s for m, s in zip(means, stds, strict=True))
                hi = max(m + s for m, s in zip(means, stds, strict=True))
                pad = max(hi - lo, 1e-3)
                ax.set_ylim(lo - pad, min(1.0, hi + pad))
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    import io

    from labcore.io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# Entry point


def run_bench(config: BenchConfig) -> BenchReport:
    """The preset's tasks (``--preset``, default by ``config.quick``) on ``config.device``:
    training rows per seed, then the step-time rows; the summary tables and orderings go to
    ``report.summary`` and the accuracy/eigenvalue plot into ``config.out``."""
    from labcore.device import resolve_device, seed_everything

    preset_name = config.option("preset", "quick" if config.quick else "full")
    preset = PRESETS[preset_name]
    device = resolve_device(config.device)
    seed_everything(config.seed)
    report = BenchReport(
        package="msam",
        version=__version__,
        config={"preset": preset_name, **{k: v for k, v in preset.items() if v is not None}},
    )
    image = dict(preset["image"])
    if config.data_root is not None and image["config"]["data"] != "fashion-mnist":
        raise LabcoreError(
            f"--data-root: the {preset_name} preset reads no external data "
            "(only the full preset's Fashion-MNIST does)"
        )
    if config.data_root is not None:
        # --data-root is a folder of data sets (holding fashion-mnist/) or the folder itself.
        root = Path(config.data_root)
        if (root / "fashion-mnist").is_dir():
            root = root / "fashion-mnist"
        image["config"] = {**image["config"], "data_root": str(root)}
    # Progress bars follow labcore.progress (the CLI turns them off with -q).
    train_task(report, image, config.seeds, device, IMAGE_FLATNESS, progress=True)
    report.save_partial(config.out)  # a long run that dies later keeps these rows
    if preset["text"] is not None:
        train_task(report, preset["text"], config.seeds, device, TEXT_FLATNESS, progress=True)
        report.save_partial(config.out)
    step_time_rows(report, preset["step_time"], device)
    summary = summarise(report.rows)
    checks = ordering_checks(summary, image["rho"])
    report.summary = summary_markdown(summary, checks, report.rows)
    if summary:
        plot(summary, image["rho"], Path(config.out) / "results_accuracy_eigenvalue.png")
    return report


def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="quick (sklearn digits) or full (Fashion-MNIST and BBC MiniLM); "
        "default quick with --quick, else full",
    )


BENCH = BenchSpec(
    package="msam",
    version=__version__,
    run=run_bench,
    help="SGD vs SAM vs mSAM on the same data and seeds; flatness; time per step",
    uses=frozenset({"seeds", "data_root", "device"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
    add_arguments=_add_arguments,
)
