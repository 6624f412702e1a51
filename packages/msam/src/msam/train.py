"""Training with SGD, SAM or mSAM: the configuration shared by the CLI and the Python API."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labcore import LabcoreError
from msam.data import DATASETS, Dataset, index_batch, num_examples
from msam.models import MODELS, NORMS
from msam.optim import MODES, SAM, MicroBatchSAM, apply_update

OPTIMIZERS = ("sgd", "sam", "msam")
BASES = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
AMP = ("off", "bf16", "fp16")


@dataclass
class TrainConfig:
    """One training run. ``optimizer`` is ``sgd`` (the base optimizer alone), ``sam`` or
    ``msam`` (with ``micro_batches``); ``base`` is the base optimizer all three use."""

    data: str = "fashion-mnist"
    model: str = "cnn-small"
    norm: str | None = None
    optimizer: str = "msam"
    micro_batches: int = 8
    mode: str = "sequential"
    rho: float = 0.05
    adaptive: bool = False
    base: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 5
    schedule: str = "cosine"
    amp: str = "off"
    clip_grad_norm: float | None = None
    train_subset: int | None = None
    max_length: int = 128
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None

    def __post_init__(self) -> None:
        choices = {
            "data": DATASETS,
            "model": MODELS,
            "optimizer": OPTIMIZERS,
            "mode": MODES,
            "base": BASES,
            "schedule": SCHEDULES,
            "amp": AMP,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise LabcoreError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.norm is not None and self.norm not in NORMS:
            raise LabcoreError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if (self.data == "bbc") != (self.model == "minilm"):
            raise LabcoreError("the bbc data set goes with the minilm model (and only with it)")
        if self.model == "minilm" and self.norm is not None:
            raise LabcoreError("norm applies to the image models only")
        for name in ("micro_batches", "batch_size", "epochs", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
        if self.micro_batches > self.batch_size:
            raise LabcoreError(
                f"micro_batches ({self.micro_batches}) cannot exceed batch_size ({self.batch_size})"
            )
        for name in ("rho", "lr", "weight_decay", "momentum"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise LabcoreError(f"{name} must be a finite number >= 0, got {value}")
        if self.lr == 0:
            raise LabcoreError("lr must be > 0")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise LabcoreError(f"clip_grad_norm must be > 0, got {self.clip_grad_norm}")
        if self.train_subset is not None and self.train_subset < 1:
            raise LabcoreError(f"train_subset must be >= 1, got {self.train_subset}")

    @property
    def effective_micro_batches(self) -> int:
        return self.micro_batches if self.optimizer == "msam" else 1

    def usable_batch(self, size: int) -> bool:
        """Whether a batch of ``size`` examples is trained on. A last batch smaller than k,
        or (vmap mode) not a multiple of k, is dropped."""
        k = self.effective_micro_batches
        return size >= k and (self.mode != "vmap" or size % k == 0)


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    test_accuracy: float
    test_loss: float
    train_loss: float
    steps: int
    train_time_s: float
    skipped_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def time_per_step_s(self) -> float:
        return self.train_time_s / max(self.steps, 1)


def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


def load_data(config: TrainConfig, tokenizer: Any = None) -> Dataset:
    from msam import data

    if config.data == "fashion-mnist":
        return data.load_fashion_mnist(
            config.data_root, train_subset=config.train_subset, seed=config.seed
        )
    if config.data == "digits":
        ds = data.load_digits_dataset()
    else:
        if tokenizer is None:
            raise LabcoreError("the bbc data set needs the model's tokenizer")
        ds = data.load_bbc_dataset(tokenizer, max_length=config.max_length)
    if config.train_subset is not None:
        n = min(config.train_subset, len(ds.train_y))
        keep = torch.randperm(
            len(ds.train_y), generator=torch.Generator().manual_seed(config.seed)
        )[:n]
        ds.train_x, ds.train_y = index_batch(ds.train_x, keep), ds.train_y[keep]
    return ds


def build(config: TrainConfig, data: Dataset | None = None) -> tuple[nn.Module, Dataset]:
    """The model (seeded by ``config.seed``) and the data set of a configuration."""
    from msam.models import build_model, load_minilm

    torch.manual_seed(config.seed)
    if config.model == "minilm":
        if data is not None:
            model, _ = load_minilm(data.num_classes)
        else:
            from labcore.data import load_topics

            model, tokenizer = load_minilm(len(load_topics("bbc").topics))
            data = load_data(config, tokenizer)
        return model, data
    if data is None:
        data = load_data(config)
    return build_model(
        config.model, in_channels=data.in_channels, num_classes=data.num_classes, norm=config.norm
    ), data


def make_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """The base optimizer (``sgd``), or SAM/mSAM around it."""
    if config.base == "sgd":
        base: type[torch.optim.Optimizer] = torch.optim.SGD
        kwargs: dict[str, Any] = {
            "lr": config.lr,
            "momentum": config.momentum,
            "weight_decay": config.weight_decay,
        }
    else:
        base = torch.optim.AdamW
        kwargs = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        return base(params, **kwargs)
    if config.optimizer == "sam":
        return SAM(params, base, rho=config.rho, adaptive=config.adaptive, **kwargs)
    return MicroBatchSAM(
        params,
        base,
        rho=config.rho,
        adaptive=config.adaptive,
        micro_batches=config.micro_batches,
        **kwargs,
    )


def plain_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[Any, Any],
    *,
    scaler: Any = None,
    autocast_dtype: torch.dtype | None = None,
    clip_grad_norm: float | None = None,
) -> torch.Tensor:
    """One step of the base optimizer alone, with the same AMP and clipping as ``train_step``."""
    x, y = batch
    device_type = next(model.parameters()).device.type
    optimizer.zero_grad(set_to_none=True)
    ctx = (
        torch.autocast(device_type=device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with ctx:
        loss = loss_fn(model(x), y)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    apply_update(optimizer, scaler=scaler, clip_grad_norm=clip_grad_norm)
    return loss.detach()


def _to(x: Any, device: Any) -> Any:
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Any, y: torch.Tensor, *, batch_size: int = 512, device: Any = None
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``x``, ``y`` in eval mode."""
    from msam.flatness import eval_mode

    device = device or next(model.parameters()).device
    correct, total_loss, n = 0, 0.0, num_examples(x)
    with eval_mode(model):
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            xb, yb = _to(index_batch(x, idx), device), y[idx].to(device)
            out = model(xb).float()
            total_loss += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    return correct / n, total_loss / n


def train(
    config: TrainConfig,
    *,
    data: Dataset | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``config.model`` on ``config.data``; the data set can be passed to share it
    between runs. Everything random (initialisation, batch order, dropout) follows
    ``config.seed``."""
    from labcore.device import resolve_device, synchronize
    from labcore.progress import progress_bar

    device = resolve_device(config.device)
    model, data = build(config, data)
    model.to(device)
    model.train()
    optimizer = make_optimizer(config, model.parameters())
    n = len(data.train_y)
    if n < config.effective_micro_batches:
        raise LabcoreError(
            f"the training set ({n} examples) is smaller than micro_batches ({config.micro_batches})"
        )
    starts = [
        s
        for s in range(0, n, config.batch_size)
        if config.usable_batch(min(config.batch_size, n - s))
    ]
    total_steps = len(starts) * config.epochs
    if config.schedule == "cosine":
        schedule: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        schedule = None
    autocast_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.amp]
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    history: list[dict[str, float]] = []
    steps, skipped, elapsed = 0, 0, 0.0
    train_loss = math.nan
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=gen)
        running, seen = 0.0, 0
        for start in progress_bar(starts, desc=f"epoch {epoch + 1}", enabled=progress):
            idx = order[start : start + config.batch_size]
            batch = (_to(index_batch(data.train_x, idx), device), data.train_y[idx].to(device))
            synchronize(device)
            t0 = time.perf_counter()
            scale_before = scaler.get_scale() if scaler is not None else None
            if isinstance(optimizer, MicroBatchSAM):
                loss = optimizer.train_step(
                    model,
                    loss_fn,
                    batch,
                    mode=config.mode,
                    scaler=scaler,
                    autocast_dtype=autocast_dtype,
                    clip_grad_norm=config.clip_grad_norm,
                )
            else:
                loss = plain_step(
                    model,
                    optimizer,
                    batch,
                    scaler=scaler,
                    autocast_dtype=autocast_dtype,
                    clip_grad_norm=config.clip_grad_norm,
                )
            if schedule is not None:
                schedule.step()
            synchronize(device)
            elapsed += time.perf_counter() - t0
            if scaler is not None and scaler.get_scale() < scale_before:
                skipped += 1
            steps += 1
            running += float(loss) * len(idx)
            seen += len(idx)
        train_loss = running / max(seen, 1)
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1} (loss {train_loss}); lower lr or rho"
            )
        history.append({"epoch": epoch + 1, "train_loss": train_loss})
    acc, test_loss = evaluate(model, data.test_x, data.test_y, device=device)
    return TrainResult(
        model=model,
        config=config,
        test_accuracy=acc,
        test_loss=test_loss,
        train_loss=train_loss,
        steps=steps,
        train_time_s=elapsed,
        skipped_steps=skipped,
        history=history,
    )


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: str | os.PathLike, result: TrainResult) -> Path:
    """Write the model's weights, its configuration and its test scores atomically."""
    from labcore.io import atomic_write_bytes

    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    torch.save(
        {
            "format": "msam-checkpoint-1",
            "config": asdict(result.config),
            "state_dict": state,
            "metrics": {
                "test_accuracy": result.test_accuracy,
                "test_loss": result.test_loss,
                "train_loss": result.train_loss,
            },
        },
        buffer,
    )
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | os.PathLike, *, data: Dataset | None = None
) -> tuple[nn.Module, TrainConfig, Dataset]:
    """The model, its configuration and its data set, from :func:`save_checkpoint`'s file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "checkpoint not found", str(path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LabcoreError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != "msam-checkpoint-1":
        raise LabcoreError(f"{path} is not an msam checkpoint")
    config = TrainConfig(**blob["config"])
    model, data = build(config, data)
    model.load_state_dict(blob["state_dict"])
    return model, config, data
