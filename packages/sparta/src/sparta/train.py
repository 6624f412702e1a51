"""Private fine-tuning with DP-SGD (Opacus): SPARTA and the baselines it is compared with.

SPARTA (Makni, Behdin et al. 2025) in three phases of one DP-SGD run, all accounted:

1. **Private linear probing** (``probe_epochs``): the row masks of every re-parametrized layer
   are 0, so only the head and the other small parameters (biases, norms) move.
2. **The mask epoch**: masks set to 1, W_Δ = 0 and no update at all (learning rate 0): one
   epoch of Poisson batches whose clipped per-example gradients are summed by Opacus; each
   layer's score accumulates |Σ_i clip(g_i)| + N(0, σ²C²) per weight (the official code's
   ``row_pruning_noisy_grads``: the absolute value of the sum, then noise), divided by the
   expected batch size and the number of steps. Data reach the scores only through that
   noisy release, which is accounted as one more DP-SGD step per batch.
3. **Sparse DP-SGD**: per layer, the rows (output neurons) with the largest summed score, a
   ``trainable_fraction`` of them, become trainable (W = W_init + m ⊙ W_Δ with W_Δ restarted
   at zero, momentum cleared); DP-SGD continues to ``epochs``.

σ is chosen up front for the whole run (``opacus.accountants.utils.get_noise_multiplier``
over all steps, mask epoch included); the ε reported is the accountant's after the steps
actually taken (Opacus can overshoot its target: it is reported, never hidden).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from labcore.checks import positive_int
from labcore.errors import LabcoreError
from sparta.reparam import (
    DeltaLayer,
    check_opacus_compatible,
    delta_layers,
    reparametrize,
    set_masks,
)

METHODS = ("sparta", "full", "last-layer", "bitfit", "magnitude", "random", "non-private")
ACCOUNTANTS = ("prv", "rdp")


@dataclass(frozen=True)
class SpartaConfig:
    """One private fine-tuning run.

    Parameters
    ----------
    method
        ``sparta`` (private row choice), ``full`` (DP-SGD on every weight), ``last-layer``
        (the head only), ``bitfit`` (head, biases and norms), ``magnitude`` (rows chosen by
        the pretrained weights' row norms: public information), ``random`` (random rows),
        ``non-private`` (plain SGD on every weight: the ceiling, no privacy).
    epsilon, delta
        The privacy budget (ε, δ); δ None means 1/n^1.1 (below 1/n, as it must be).
    trainable_fraction
        Share of each layer's rows that train (SPARTA, magnitude, random); in (0, 1].
    epochs, probe_epochs
        Epochs in all; SPARTA spends ``probe_epochs`` on linear probing and one on the mask.
    batch_size
        Expected batch size under Poisson sampling (sample rate = batch_size / n).
    lr, momentum, max_grad_norm
        SGD settings and the clipping norm C (DP-SGD's clipped, averaged gradients take a
        larger step than plain SGD's).
    nonprivate_lr
        The learning rate of the non-private ceiling (plain SGD, no clipping).
    accountant
        ``prv`` (default, as the paper's code) or ``rdp``.
    seed
        Seeds the initialisation of the head, the batches and the noise.
    """

    method: str = "sparta"
    epsilon: float = 4.0
    delta: float | None = None
    trainable_fraction: float = 0.2
    epochs: int = 10
    probe_epochs: int = 3
    batch_size: int = 64
    lr: float = 0.5
    nonprivate_lr: float = 0.05
    momentum: float = 0.9
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LabcoreError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.accountant not in ACCOUNTANTS:
            raise LabcoreError(f"accountant must be prv or rdp, got {self.accountant!r}")
        for name in ("epsilon", "lr", "nonprivate_lr", "max_grad_norm"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v <= 0
            ):
                raise LabcoreError(f"{name} must be a positive number, got {v!r}")
        if self.delta is not None and not (0 < self.delta < 1):
            raise LabcoreError(f"delta must be in (0, 1), got {self.delta!r}")
        f = self.trainable_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1:
            raise LabcoreError(f"trainable_fraction (sparsity) must be in (0, 1], got {f!r}")
        if not 0 <= self.momentum < 1:
            raise LabcoreError(f"momentum must be in [0, 1), got {self.momentum!r}")
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("probe_epochs", self.probe_epochs, minimum=0)
        if self.method == "sparta" and self.probe_epochs + 1 > self.epochs:
            raise LabcoreError(
                f"SPARTA needs probe_epochs + 1 mask epoch <= epochs; got probe_epochs="
                f"{self.probe_epochs}, epochs={self.epochs}"
            )

    def delta_for(self, n: int) -> float:
        """δ for a training set of n examples; δ ≥ 1/n is refused (it would allow releasing
        an example outright)."""
        delta = self.delta if self.delta is not None else 1.0 / n**1.1
        if delta >= 1.0 / n:
            raise LabcoreError(
                f"delta={delta:g} is not below 1/n = {1.0 / n:g} for n={n} training examples: "
                "such a δ allows publishing an example outright; use a smaller delta"
            )
        return delta


@dataclass
class FinetuneResult:
    method: str
    epsilon: float | None  # spent, by the accountant (None for non-private)
    delta: float | None
    noise_multiplier: float | None
    steps: int
    sample_rate: float
    trainable_fraction: float  # trainable scalars / all scalars of the model (final phase)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    time_s: float = 0.0


@functools.lru_cache(maxsize=64)
def noise_for_budget(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """σ for ``steps`` Poisson-subsampled Gaussian steps to spend at most (ε, δ).

    Opacus' ``get_noise_multiplier`` searches σ to a tolerance and can land slightly above
    the target (opacus#346, #348); the σ is then raised by 1% steps until the same accountant
    reports ε ≤ target for the full run, so the budget is a promise, not an estimate.
    """
    from opacus.accountants import PRVAccountant, RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    sigma = get_noise_multiplier(
        target_epsilon=epsilon,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant=accountant,
    )
    for _ in range(200):
        acc = PRVAccountant() if accountant == "prv" else RDPAccountant()
        acc.history = [(sigma, sample_rate, steps)]
        if acc.get_epsilon(delta=delta) <= epsilon:
            return float(sigma)
        sigma *= 1.01
    raise LabcoreError(f"no noise level reaches ε={epsilon} at δ={delta:g} in {steps} steps")


class RowScores:
    """The private row scores of the mask epoch.

    :meth:`update` is the only entry for data: it receives Opacus' per-layer sums of clipped
    per-example gradients and adds |Σ| + N(0, σ²C²) (one Gaussian-mechanism release of the
    sum, whose L2 sensitivity is C: |·| is 1-Lipschitz per coordinate).
    """

    def __init__(self, shapes: dict[str, tuple[int, int]], noise_std: float, generator) -> None:
        self.noise_std = float(noise_std)
        self.generator = generator
        self.total = {name: torch.zeros(shape) for name, shape in shapes.items()}
        self.n_updates = 0

    def update(self, summed: dict[str, torch.Tensor], scale: float) -> None:
        for name, s in summed.items():
            noise = (
                torch.normal(0.0, self.noise_std, size=s.shape, generator=self.generator)
                if self.noise_std > 0
                else torch.zeros(s.shape)
            )
            self.total[name] += (s.detach().abs().cpu() + noise) * scale
        self.n_updates += 1

    def row_scores(self) -> dict[str, torch.Tensor]:
        """Per layer and row: the sum of its weights' scores, clamped at 0."""
        return {name: t.flatten(1).sum(dim=1).clamp_min(0.0) for name, t in self.total.items()}


def select_rows(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Per layer, a 0/1 mask of the ``ceil(fraction · rows)`` rows of largest score (ties
    by row order). A function of the scores only.

    >>> select_rows({"a": torch.tensor([0.1, 3.0, 2.0, 0.0])}, 0.5)["a"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    masks = {}
    for name, s in scores.items():
        k = max(1, math.ceil(fraction * len(s)))
        order = np.argsort(-s.numpy(), kind="stable")[:k]
        m = torch.zeros(len(s))
        m[torch.as_tensor(order)] = 1.0
        masks[name] = m
    return masks


def _magnitude_masks(model: nn.Module, fraction: float) -> dict[str, torch.Tensor]:
    scores = {
        name: torch.linalg.vector_norm(layer.weight_init.detach().flatten(1), dim=1).cpu()
        for name, layer in delta_layers(model)
    }
    return select_rows(scores, fraction)


def _random_masks(model: nn.Module, fraction: float, generator) -> dict[str, torch.Tensor]:
    scores = {
        name: torch.rand(layer.out_rows, generator=generator) for name, layer in delta_layers(model)
    }
    return select_rows(scores, fraction)


def _trainable_fraction(model: nn.Module, total: int) -> float:
    n = 0
    for module in model.modules():
        if isinstance(module, DeltaLayer):
            if module.weight_delta.requires_grad:
                n += int(module.row_mask.sum().item()) * module.row_size
            if module.bias is not None and module.bias.requires_grad:
                n += module.bias.numel()
            continue
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                n += p.numel()
    return n / total


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _set_trainable(model: nn.Module, head: str, method: str, frozen: tuple[str, ...]) -> None:
    """Which parameters DP-SGD sees (W_init and the masks are always frozen)."""
    for name, module in model.named_modules():
        in_head = _under(name, (head,))
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, DeltaLayer) and pname in ("weight_init", "row_mask"):
                continue
            if _under(name, frozen):
                p.requires_grad_(False)
            elif in_head:
                p.requires_grad_(True)
            elif method == "last-layer":
                p.requires_grad_(False)
            elif method == "bitfit":
                p.requires_grad_(pname == "bias" or isinstance(module, nn.LayerNorm | nn.GroupNorm))
            else:  # W_Δ of every layer (masked rows get zero gradients), biases, norms
                p.requires_grad_(True)


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Accuracy of ``model`` (logits) on (X, y)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            correct += int((model(X[i : i + batch]).argmax(dim=1) == y[i : i + batch]).sum())
    return correct / max(len(X), 1)


def dp_finetune(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    config: SpartaConfig,
    *,
    head: str,
    frozen: tuple[str, ...] = (),
    X_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (logits out, cross-entropy) on (X, y) by ``config.method``, in
    place. ``head`` names the classification head module (always trainable, never
    re-parametrized); the modules named in ``frozen`` (and their children) train under no
    method. ``X_eval``/``y_eval``, when given, are scored after every epoch into the
    history: those accuracies are not private, so they must not be training data. Returns
    the privacy actually spent and the history.

    The batches and the noise come from one generator seeded by ``config.seed``: runs
    reproduce exactly, which is what a benchmark needs, but anyone who knows the seed can
    regenerate the noise. For a real release use a secret seed (e.g. from ``secrets``).
    """
    with warnings.catch_warnings():
        # Opacus' backward hooks fire on the first trainable layer, whose input needs no
        # gradient; PyTorch warns about that case, which is the expected one here.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        return _finetune(model, X, y, config, head, tuple(frozen), X_eval, y_eval)


def _finetune(model, X, y, config, head, frozen, X_eval, y_eval) -> FinetuneResult:
    from opacus.accountants import PRVAccountant, RDPAccountant
    from opacus.data_loader import DPDataLoader
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import (
        GradSampleModuleFastGradientClipping,
    )
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
    from torch.utils.data import DataLoader, TensorDataset

    t0 = time.perf_counter()
    if dict(model.named_modules()).get(head) is None:
        raise LabcoreError(f"the model has no module named {head!r} (the classification head)")
    n = len(X)
    if n != len(y) or n < 2:
        raise LabcoreError(
            f"X and y must hold the same number (>= 2) of examples, got {n} and {len(y)}"
        )
    private = config.method != "non-private"
    delta = config.delta_for(n) if private else None
    model.train()  # pretrained models often come in eval mode; Opacus validates training mode
    check_opacus_compatible(model)
    total = sum(p.numel() for p in model.parameters())
    reparametrize(model, skip=(head, *frozen))
    _set_trainable(model, head, config.method, frozen)
    gen = torch.Generator().manual_seed(config.seed)
    layers = dict(delta_layers(model))

    # Which rows train, and when.
    if config.method in ("full", "non-private"):
        set_masks(model, 1.0)
    elif config.method in ("last-layer", "bitfit"):
        set_masks(model, 0.0)
    elif config.method == "magnitude":
        set_masks(model, _magnitude_masks(model, config.trainable_fraction))
    elif config.method == "random":
        set_masks(model, _random_masks(model, config.trainable_fraction, gen))
    else:  # sparta: probing first
        set_masks(model, 0.0 if config.probe_epochs > 0 else 1.0)

    q = min(1.0, config.batch_size / n)
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))  # len() of Opacus' DPDataLoader
    total_steps = steps_per_epoch * config.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    lr = config.lr if private else config.nonprivate_lr
    sgd = torch.optim.SGD(params, lr=lr, momentum=config.momentum)
    dataset = TensorDataset(X, y)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, Any]] = []
    result = FinetuneResult(config.method, None, delta, None, 0, q, 0.0)

    if not private:
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=gen)
        for epoch in range(config.epochs):
            model.train()
            for xb, yb in loader:
                sgd.zero_grad()
                loss_fn(model(xb), yb).backward()
                sgd.step()
                result.steps += 1
            _log(history, epoch, "train", model, X_eval, y_eval, t0)
        result.trainable_fraction = _trainable_fraction(model, total)
        result.history, result.time_s = history, time.perf_counter() - t0
        return result

    searched = time.perf_counter()
    sigma = noise_for_budget(config.epsilon, delta, q, total_steps, config.accountant)
    # The σ search is shared by every private method of a run (and cached): not timed, so
    # that the first method run does not carry it.
    t0 += time.perf_counter() - searched
    accountant = PRVAccountant() if config.accountant == "prv" else RDPAccountant()
    # Ghost clipping (Opacus' fast gradient clipping): per-example norms from the layer
    # inputs and backprops, then a second backward of the clip-weighted loss gives
    # Σ_i clip(g_i) in p.grad; the per-example gradients are never stored.
    gsm = GradSampleModuleFastGradientClipping(
        model, max_grad_norm=config.max_grad_norm, use_ghost_clipping=True, loss_reduction="mean"
    )
    optimizer = DPOptimizerFastGradientClipping(
        sgd,
        noise_multiplier=sigma,
        max_grad_norm=config.max_grad_norm,
        expected_batch_size=config.batch_size,
        loss_reduction="mean",
        generator=gen,
    )
    criterion = DPLossFastGradientClipping(gsm, optimizer, loss_fn, loss_reduction="mean")
    loader = DPDataLoader.from_data_loader(
        DataLoader(dataset, batch_size=config.batch_size), generator=gen
    )
    if len(loader) != steps_per_epoch:  # the accounting above must match the steps taken
        raise RuntimeError(
            f"Opacus runs {len(loader)} steps per epoch, accounted {steps_per_epoch}"
        )

    def one_epoch(phase: str, scores: RowScores | None = None) -> None:
        gsm.train()
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            if len(xb) == 0:  # an empty Poisson batch still counts as a step
                accountant.step(noise_multiplier=sigma, sample_rate=q)
                result.steps += 1
                continue
            criterion(gsm(xb), yb).backward()  # p.grad = Σ_i clip(g_i), no noise yet
            if scores is None:
                optimizer.step()  # adds N(0, σ²C²), divides by the expected batch size
            else:  # the mask epoch: the clipped sum goes to the scores; nothing is updated
                summed = {name: layer.weight_delta.grad for name, layer in layers.items()}
                scores.update(summed, 1.0 / (config.batch_size * steps_per_epoch))
            accountant.step(noise_multiplier=sigma, sample_rate=q)
            result.steps += 1
        optimizer.zero_grad(set_to_none=True)

    epoch = 0
    if config.method == "sparta":
        for _ in range(config.probe_epochs):
            one_epoch("probe")
            _log(history, epoch, "probe", model, X_eval, y_eval, t0)
            epoch += 1
        set_masks(model, 1.0)  # folds the probe's updates (none: masks were 0), W_Δ = 0
        shapes = {name: tuple(layer.weight_delta.shape) for name, layer in layers.items()}
        scores = RowScores(shapes, sigma * config.max_grad_norm, gen)
        one_epoch("mask", scores)
        result.masks = select_rows(scores.row_scores(), config.trainable_fraction)
        set_masks(model, result.masks)
        sgd.state.clear()  # momentum restarts with the new trainable rows
        _log(history, epoch, "mask", model, X_eval, y_eval, t0)
        epoch += 1
    else:
        result.masks = {name: layer.row_mask.detach().clone() for name, layer in layers.items()}
    while epoch < config.epochs:
        one_epoch("train")
        _log(history, epoch, "train", model, X_eval, y_eval, t0)
        epoch += 1
    gsm._close()
    for layer in layers.values():
        layer.fold_()
    result.epsilon = float(accountant.get_epsilon(delta=delta))
    result.noise_multiplier = float(sigma)
    result.trainable_fraction = _trainable_fraction(model, total)
    result.history, result.time_s = history, time.perf_counter() - t0
    return result


def _log(history, epoch, phase, model, X_eval, y_eval, t0) -> None:
    entry = {"epoch": epoch + 1, "phase": phase, "time_s": time.perf_counter() - t0}
    if X_eval is not None:
        entry["accuracy"] = evaluate(model, X_eval, y_eval)
    history.append(entry)
