"""Training one soft tree ensemble: plain SGD, the group-l0 proximal step after every step,
the dense-to-sparse schedule, the l2 term and early stopping on a validation set."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from skinnytrees.model import SoftTreeEnsemble, annealing, prox_group_l0_, prox_threshold

#: Early stopping watches the validation loss only once s(t) has reached this value: before,
#: the model is still dense and its loss says nothing about the sparse model being sought.
WARM_SCHEDULE = 0.99


@dataclass(frozen=True)
class TrainSettings:
    """Everything one training run needs (the estimator builds it from its parameters)."""

    task: str  # "classification" or "regression"
    n_outputs: int
    n_trees: int = 20
    depth: int = 4
    learning_rate: float = 0.1
    batch_size: int = 16
    max_epochs: int = 200
    l0: float = 0.0
    l2: float = 1e-2
    tau: float | None = 0.01
    patience: int = 20
    seed: int = 0
    device: str = "cpu"


@dataclass
class TrainResult:
    model: SoftTreeEnsemble
    n_selected: int
    epochs: int  # epochs run
    best_epoch: int  # epoch whose weights were kept (1-based)
    stopped_early: bool
    validation_loss: float | None
    history: list[dict] = field(default_factory=list)


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "classification":
        return torch.nn.functional.cross_entropy(out, y)
    return torch.nn.functional.mse_loss(out[:, 0], y)


def _targets(task: str, y: np.ndarray, device) -> torch.Tensor:
    if task == "classification":
        return torch.as_tensor(y, dtype=torch.long, device=device)
    return torch.as_tensor(y, dtype=torch.float32, device=device)


def train_soft_trees(
    settings: TrainSettings,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    fixed_support: np.ndarray | None = None,
    init: SoftTreeEnsemble | None = None,
) -> TrainResult:
    """Train by plain SGD with a constant learning rate; after every step the kernel's rows
    with ‖W_j‖ ≤ sqrt(2 · lr · λ · s(t)) are set to zero, where s(t) = 1 − exp(−τ t) and t
    counts steps.

    The loss is the mean cross-entropy (classes as integer codes) or the mean squared error,
    plus ``l2 / (T (2^d − 1)) · ‖W‖²`` (the paper's l2 term, scaled by the number of split
    nodes as in the official code). With a validation set, training stops after
    ``patience`` epochs without a lower validation loss (counted once s(t) ≥ 0.99) and the
    weights of the best epoch are returned.

    ``fixed_support`` (boolean, one per feature) keeps the other rows at zero (no l0 step):
    the hard-budget fine-tune. ``init`` starts from a copy of that model instead of a fresh one.
    """
    device = torch.device(settings.device)
    g = torch.Generator().manual_seed(int(settings.seed))
    if init is not None:
        model = copy.deepcopy(init).to(device)
    else:
        model = SoftTreeEnsemble(
            X.shape[1],
            settings.n_outputs,
            n_trees=settings.n_trees,
            depth=settings.depth,
            generator=g,
        ).to(device)
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    yt = _targets(settings.task, y, device)
    has_val = X_val is not None and len(X_val) > 0
    if has_val:
        Xv = torch.as_tensor(X_val, dtype=torch.float32, device=device)
        yv = _targets(settings.task, y_val, device)
    zero_rows = None
    if fixed_support is not None:
        zero_rows = torch.as_tensor(~np.asarray(fixed_support, dtype=bool), device=device)
        with torch.no_grad():
            model.kernel[zero_rows] = 0.0
    opt = torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    l2_per_node = settings.l2 / (settings.n_trees * model.n_nodes)
    use_prox = settings.l0 > 0 and fixed_support is None
    n = Xt.shape[0]
    batch = min(settings.batch_size, n)
    step = 0
    best_loss, best_state, best_epoch = math.inf, None, 0
    since_best, stopped_early, history = 0, False, []
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=g).to(device)
        for idx in order.split(batch):
            loss = _loss(settings.task, model(Xt[idx]), yt[idx])
            if l2_per_node > 0:
                loss = loss + l2_per_node * model.kernel.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if use_prox:
                s = annealing(step, settings.tau)
                prox_group_l0_(
                    model.kernel,
                    prox_threshold(
                        learning_rate=settings.learning_rate, l0=settings.l0, schedule=s
                    ),
                )
            elif zero_rows is not None:
                with torch.no_grad():
                    model.kernel[zero_rows] = 0.0
        if not torch.isfinite(model.kernel).all():
            raise FloatingPointError(
                f"training diverged at epoch {epoch} (non-finite weights): lower learning_rate "
                f"(now {settings.learning_rate})"
            )
        if not has_val:
            continue
        model.eval()
        with torch.no_grad():
            vloss = float(_loss(settings.task, model(Xv), yv))
        n_sel = int((model.feature_norms() > 0).sum())
        history.append({"epoch": epoch, "validation_loss": vloss, "n_selected": n_sel})
        warm = not use_prox or annealing(step, settings.tau) >= WARM_SCHEDULE
        if not warm:
            continue
        if vloss < best_loss:
            best_loss, best_epoch, since_best = vloss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if since_best >= settings.patience:
                stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epoch
    model.eval()
    n_selected = int((model.feature_norms() > 0).sum())
    return TrainResult(
        model=model,
        n_selected=n_selected,
        epochs=epoch,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        validation_loss=best_loss if math.isfinite(best_loss) else None,
        history=history,
    )
