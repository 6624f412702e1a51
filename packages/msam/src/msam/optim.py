"""SAM and micro-batch SAM (mSAM) as ``torch.optim.Optimizer`` wrappers.

One mSAM step on a mini-batch B split into k micro-batches B_1..B_k of sizes n_1..n_k:

1. for each j: g_j = ∇L_{B_j}(w), ε_j = ρ g_j / (‖g_j‖ + eps) with the norm over all
   parameters (ASAM: ε_j = ρ T² g_j / ‖T g_j‖ with T = |w|), then h_j = ∇L_{B_j}(w + ε_j);
2. g = Σ_j (n_j / n) h_j, the size-weighted AVERAGE of the perturbed gradients (with equal
   sizes: (1/k) Σ_j h_j). Keras' micro-batch SAM sums them instead, which multiplies the
   learning rate by k; this module does not;
3. the base optimizer (SGD, AdamW, ...) steps on g. Weight decay belongs to the base optimizer.

k = 1 is SAM; ρ = 0 is the base optimizer.

BatchNorm rule
--------------
When the model is passed (``train_step`` always has it; ``step``/``sam_backward`` take
``model=``), the running statistics of every BatchNorm layer in training mode are updated by
the unperturbed forward pass of each micro-batch only, never at a perturbed point w + ε_j:
k updates per step, one per micro-batch, all at the current weights w. Both passes normalise
with the current micro-batch's own statistics, as BatchNorm does in training.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from labcore import LabcoreError

Batch = Any  # a tensor, or a (nested) tuple/list/dict of tensors sharing the first dimension
Closure = Callable[[Batch], torch.Tensor]
MODES = ("sequential", "vmap")


# --------------------------------------------------------------------------------------------
# Batches


def _tensors(batch: Batch) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        return [t for v in batch for t in _tensors(v)]
    return []


def batch_size(batch: Batch) -> int:
    """The shared first dimension of the tensors in ``batch`` (an error if they disagree)."""
    tensors = _tensors(batch)
    if not tensors:
        raise LabcoreError("the batch holds no tensors (expected a tensor or a tuple/dict of them)")
    sizes = {t.shape[0] if t.dim() else None for t in tensors}
    if None in sizes:
        raise LabcoreError("the batch holds a 0-d tensor; every tensor needs a batch dimension")
    if len(sizes) > 1:
        raise LabcoreError(
            f"the batch's tensors disagree in their first dimension: {sorted(sizes)}"
        )
    (n,) = sizes
    if n == 0:
        raise LabcoreError("the batch is empty")
    return int(n)


def _map(batch: Batch, fn: Callable[[torch.Tensor], Any]) -> Any:
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return type(batch)({k: _map(v, fn) for k, v in batch.items()})
    if isinstance(batch, tuple | list):
        return type(batch)(_map(v, fn) for v in batch)
    return batch


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    """Split along the first dimension into ``parts`` contiguous micro-batches.

    Sizes differ by at most one when ``parts`` does not divide the batch (the first
    ``n % parts`` micro-batches get one more example); mSAM then weights each micro-batch's
    gradient by its size, so the step stays an exact average over the examples.

    Examples
    --------
    >>> import torch
    >>> [len(x) for x, _ in split_batch((torch.zeros(10, 3), torch.zeros(10)), 4)]
    [3, 3, 2, 2]
    """
    n = batch_size(batch)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise LabcoreError(f"the number of micro-batches must be a positive integer, got {parts!r}")
    if parts > n:
        raise LabcoreError(f"cannot split a batch of {n} examples into {parts} micro-batches")
    pieces: list[Batch] = []
    bounds = [0]
    for j in range(parts):
        bounds.append(bounds[-1] + n // parts + (1 if j < n % parts else 0))
    for lo, hi in itertools.pairwise(bounds):
        pieces.append(_map(batch, lambda t, lo=lo, hi=hi: t[lo:hi]))
    return pieces


# --------------------------------------------------------------------------------------------
# Module helpers


def _batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers in training mode normalise with the batch's own
    statistics but leave their running mean, variance and batch counter untouched."""
    layers = _batchnorm_layers(model)
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def _ddp(model: nn.Module | None) -> Any:
    if model is None:
        return None
    from torch.nn.parallel import DistributedDataParallel

    return model if isinstance(model, DistributedDataParallel) else None


# --------------------------------------------------------------------------------------------
# The optimizer


class MicroBatchSAM(torch.optim.Optimizer):
    """Micro-batch sharpness-aware minimization (mSAM) around any base optimizer.

    Parameters
    ----------
    params
        Parameters or parameter groups, as for any optimizer. Groups may set their own
        ``rho``, ``adaptive`` and ``normalize``.
    base_optimizer
        The base optimizer's class, e.g. ``torch.optim.SGD``; it is built on the same
        parameter groups (so an LR scheduler works on either object).
    rho
        Radius of the ascent step (default 0.05; ASAM typically uses about 2.0).
    adaptive
        ASAM: scale the ascent step elementwise by |w|.
    normalize
        True (default): the ascent step is ε = ρ g/‖g‖ (Foret et al.). False: the
        un-normalized ε = ρ g (USAM, the form most SAM theory analyses; on a quadratic loss
        it is gradient descent preconditioned by I + ρH).
    micro_batches
        k, the number of micro-batches each mini-batch is split into (1 is SAM).
    micro_batch_size
        Alternatively, the micro-batch size: k = ceil(n / micro_batch_size) per batch.
    eps
        Added to the gradient norm.
    **base_kwargs
        Passed to the base optimizer (``lr``, ``momentum``, ``weight_decay``, ...).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from msam import MicroBatchSAM
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Linear(4, 3)
    >>> opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.05,
    ...                     micro_batches=4, lr=0.1, momentum=0.9)
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> loss = opt.train_step(model, nn.functional.cross_entropy, (x, y))
    >>> bool(torch.isfinite(loss))
    True
    """

    def __init__(
        self,
        params: Any,
        base_optimizer: type[torch.optim.Optimizer],
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        normalize: bool = True,
        micro_batches: int | None = None,
        micro_batch_size: int | None = None,
        eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        if isinstance(base_optimizer, torch.optim.Optimizer):
            raise LabcoreError(
                "base_optimizer must be an optimizer class such as torch.optim.SGD, not an "
                "instance; its keyword arguments go to this constructor"
            )
        if not (
            isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)
        ):
            raise LabcoreError(
                f"base_optimizer must be a torch.optim.Optimizer class, got {base_optimizer!r}"
            )
        _check_rho(rho)
        if micro_batches is not None and micro_batch_size is not None:
            raise LabcoreError("give micro_batches or micro_batch_size, not both")
        if micro_batch_size is None:
            micro_batches = 1 if micro_batches is None else micro_batches
            if (
                isinstance(micro_batches, bool)
                or not isinstance(micro_batches, int)
                or micro_batches < 1
            ):
                raise LabcoreError(
                    f"micro_batches must be a positive integer, got {micro_batches!r}"
                )
        elif (
            isinstance(micro_batch_size, bool)
            or not isinstance(micro_batch_size, int)
            or micro_batch_size < 1
        ):
            raise LabcoreError(
                f"micro_batch_size must be a positive integer, got {micro_batch_size!r}"
            )
        if not eps >= 0:
            raise LabcoreError(f"eps must be >= 0, got {eps}")
        super().__init__(
            params,
            {
                "rho": float(rho),
                "adaptive": bool(adaptive),
                "normalize": bool(normalize),
                **base_kwargs,
            },
        )
        for group in self.param_groups:
            _check_rho(group["rho"])
        # The base optimizer is built on the same group dicts, and `param_groups` and `state`
        # below delegate to it: an LR scheduler on either object, or a load_state_dict on
        # either, is seen by both.
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.defaults.update(self.base_optimizer.defaults)
        self.micro_batches = micro_batches
        self.micro_batch_size = micro_batch_size
        self.eps = float(eps)

    # ---- state -----------------------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        base = self.__dict__.get("base_optimizer")
        return base.param_groups if base is not None else self.__dict__["_own_param_groups"]

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        base = self.__dict__.get("base_optimizer")
        if base is not None:
            base.param_groups = value
        else:
            self.__dict__["_own_param_groups"] = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        base = self.__dict__.get("base_optimizer")
        return base.state if base is not None else self.__dict__["_own_state"]

    @state.setter
    def state(self, value: Any) -> None:
        base = self.__dict__.get("base_optimizer")
        if base is not None:
            base.state = value
        else:
            self.__dict__["_own_state"] = value

    def __getstate__(self) -> dict[str, Any]:
        # torch.optim.Optimizer pickles only defaults/state/param_groups; keep everything.
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its groups carry ``rho`` and ``adaptive``)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of the plain base optimizer (whose groups get
        this optimizer's default ``rho`` and ``adaptive``)."""
        self.base_optimizer.load_state_dict(state_dict)
        for group in self.param_groups:
            group.setdefault("rho", self.defaults["rho"])
            group.setdefault("adaptive", self.defaults["adaptive"])
            group.setdefault("normalize", self.defaults["normalize"])
            _check_rho(group["rho"])

    def num_micro_batches(self, n: int) -> int:
        """k for a batch of ``n`` examples."""
        if self.micro_batch_size is not None:
            return math.ceil(n / self.micro_batch_size)
        assert self.micro_batches is not None
        if self.micro_batches > n:
            raise LabcoreError(
                f"micro_batches={self.micro_batches} is larger than the batch ({n} examples)"
            )
        return self.micro_batches

    def _params(self) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        return [(p, g) for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _group_setting(self, group: dict[str, Any], name: str) -> Any:
        return group.get(name, self.defaults[name])

    # ---- the ascent step -----------------------------------------------------------------

    def _ascent(
        self,
        entries: list[tuple[torch.Tensor, dict[str, Any]]],
        grads: list[torch.Tensor | None],
        grad_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor | None], torch.Tensor]:
        """ε for each parameter from its gradient, and whether that gradient is finite.

        A non-finite gradient gives ε = 0, decided on the device (no host sync per
        micro-batch). The normalized ε is scale-invariant in the gradient, so a GradScaler's
        factor needs no unscaling; the un-normalized one divides by ``grad_scale``.
        """
        adaptive = [self._group_setting(g, "adaptive") for _, g in entries]
        scaled = [
            None if g is None else (g * p.abs() if a else g)
            for (p, _), g, a in zip(entries, grads, adaptive, strict=True)
        ]
        norms = [torch.linalg.vector_norm(s) for s in scaled if s is not None]
        if not norms:
            return [None] * len(entries), torch.ones((), dtype=torch.bool)
        norm = torch.linalg.vector_norm(torch.stack(norms))
        finite = torch.isfinite(norm)
        out: list[torch.Tensor | None] = []
        for (p, group), s, a in zip(entries, scaled, adaptive, strict=True):
            rho = self._group_setting(group, "rho")
            if s is None or rho == 0:
                out.append(None)
                continue
            e = s * p.abs() if a else s * 1.0
            if self._group_setting(group, "normalize"):
                e.mul_(rho / (norm + self.eps))
            else:
                e.mul_(rho / grad_scale)
            out.append(torch.where(finite, e, torch.zeros((), dtype=e.dtype, device=e.device)))
        return out, finite

    # ---- sequential mode ---------------------------------------------------------------------

    def sam_backward(
        self,
        closure: Closure,
        batch: Batch,
        *,
        weight: float = 1.0,
        model: nn.Module | None = None,
        scaler: Any = None,
    ) -> torch.Tensor:
        """Add ``weight`` times the mSAM gradient of ``batch`` to the parameters' ``.grad``.

        Like ``loss.backward()``, gradients accumulate: calling this on several chunks with
        weights summing to one, then :meth:`step`, is gradient accumulation (the same update
        as one call on the concatenated batch when the chunks are whole micro-batches).

        ``closure(micro_batch)`` returns the mean loss on that micro-batch as a scalar tensor;
        do not call backward in it. It is called twice per micro-batch (at w and w + ε).
        With ``model`` given, BatchNorm running statistics follow the module's rule and a
        DistributedDataParallel model runs every pass under ``no_sync()`` with one all-reduce
        of the averaged gradient at the end of each call. With an enabled GradScaler the
        gradients are left scaled for ``scaler.step``, and any non-finite gradient makes them
        infinite, so that the scaler skips the step and lowers its scale; without one, a
        non-finite gradient raises ``FloatingPointError``.

        Returns the size-weighted mean loss at the unperturbed point (detached).
        """
        n = batch_size(batch)
        parts = split_batch(batch, self.num_micro_batches(n))
        entries = self._params()
        if not entries:
            raise LabcoreError("the optimizer holds no trainable parameters")
        params = [p for p, _ in entries]
        scaling = scaler is not None and scaler.is_enabled()
        carried = [p.grad for p in params]
        # w is restored by copying it back, not by subtracting ε: exact, so no drift.
        originals = [p.detach().clone() for p in params]
        accumulated = [torch.zeros_like(p) for p in params]
        ddp = _ddp(model)
        sync_off = ddp.no_sync if ddp is not None else contextlib.nullcontext
        total = torch.zeros((), device=params[0].device)
        finite = torch.ones((), dtype=torch.bool, device=params[0].device)
        # Only the un-normalized ascent needs the scale (one host sync per call).
        grad_scale = (
            float(scaler.get_scale())
            if scaling and not all(self._group_setting(g, "normalize") for _, g in entries)
            else 1.0
        )
        try:
            with torch.enable_grad(), sync_off():
                for part in parts:
                    share = batch_size(part) / n
                    for p in params:
                        p.grad = None
                    loss = _checked_loss(closure(part))
                    (scaler.scale(loss) if scaling else loss).backward()
                    perturbation, ok = self._ascent(entries, [p.grad for p in params], grad_scale)
                    finite = finite & ok.to(finite.device)
                    with torch.no_grad():
                        for p, e in zip(params, perturbation, strict=True):
                            p.grad = None
                            if e is not None:
                                p.add_(e)
                    try:
                        frozen = (
                            frozen_batchnorm_statistics(model)
                            if model is not None
                            else contextlib.nullcontext()
                        )
                        with frozen:
                            perturbed_loss = _checked_loss(closure(part)) * (weight * share)
                            (scaler.scale(perturbed_loss) if scaling else perturbed_loss).backward()
                    finally:
                        with torch.no_grad():
                            for p, e, w in zip(params, perturbation, originals, strict=True):
                                if e is not None:
                                    p.copy_(w)
                    with torch.no_grad():
                        for p, acc in zip(params, accumulated, strict=True):
                            if p.grad is not None:
                                acc.add_(p.grad)
                    total = total + loss.detach() * share
        except BaseException:
            for p, old in zip(params, carried, strict=True):
                p.grad = old
            raise
        if ddp is not None:
            # Every rank reaches this all-reduce (no early exit above), and an inf on one
            # rank reaches all of them, so their scalers skip the same step.
            _all_reduce_mean(accumulated, ddp.process_group)
        self._finish(params, accumulated, carried, finite, scaling)
        return total

    def _finish(
        self,
        params: list[torch.Tensor],
        accumulated: list[torch.Tensor],
        carried: list[torch.Tensor | None],
        finite: torch.Tensor,
        scaling: bool,
    ) -> None:
        """Check finiteness once per call (one host sync), then add into ``.grad``."""
        finite = finite & torch.isfinite(
            torch.stack([torch.linalg.vector_norm(a) for a in accumulated])
        ).all().to(finite.device)
        if not bool(finite):
            if not scaling:
                for p, old in zip(params, carried, strict=True):
                    p.grad = old
                raise FloatingPointError(
                    "a gradient is not finite (the loss diverged; lower the learning rate or "
                    "rho, or pass a GradScaler for float16 mixed precision)"
                )
            for acc in accumulated:
                acc.fill_(math.inf)
        for p, acc, old in zip(params, accumulated, carried, strict=True):
            p.grad = acc if old is None else old.add_(acc)

    # ---- vmap mode -------------------------------------------------------------------------

    def vmap_backward(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        batch: Batch,
        *,
        weight: float = 1.0,
        scaler: Any = None,
    ) -> torch.Tensor:
        """:meth:`sam_backward` with all micro-batches in parallel (``torch.func.vmap``).

        ``batch`` is ``(inputs, targets)``; ``loss_fn(model(inputs), targets)`` is the mean
        loss. The batch size must be a multiple of k, and the model must not hold BatchNorm
        layers in training mode (their running statistics cannot be updated inside vmap; use
        GroupNorm/LayerNorm, or ``mode="sequential"``). Memory grows to k copies of the
        gradients. Dropout draws different masks per micro-batch.
        """
        from torch.func import functional_call, grad, vmap

        if _ddp(model) is not None:
            raise LabcoreError(
                "mode='vmap' does not support DistributedDataParallel; use mode='sequential'"
            )
        if _batchnorm_layers(model):
            raise LabcoreError(
                "mode='vmap' cannot update BatchNorm running statistics; use a model with "
                "GroupNorm/LayerNorm, put BatchNorm in eval mode, or use mode='sequential'"
            )
        n = batch_size(batch)
        k = self.num_micro_batches(n)
        if n % k:
            raise LabcoreError(
                f"mode='vmap' needs the batch size ({n}) to be a multiple of the number of "
                f"micro-batches ({k}); use mode='sequential' for an uneven split"
            )
        inputs, targets = _pair(batch)
        entries = self._params()
        if not entries:
            raise LabcoreError("the optimizer holds no trainable parameters")
        ids = {id(p): i for i, (p, _) in enumerate(entries)}
        named = dict(model.named_parameters())
        trained = {name: p for name, p in named.items() if id(p) in ids}
        if len(trained) != len(entries):
            raise LabcoreError("the optimizer holds parameters that are not in the model")
        fixed = {name: p.detach() for name, p in named.items() if id(p) not in ids}
        fixed.update(dict(model.named_buffers()))
        names = list(trained)
        groups = [entries[ids[id(trained[name])]][1] for name in names]
        adaptive = [self._group_setting(g, "adaptive") for g in groups]
        rhos = [self._group_setting(g, "rho") for g in groups]
        normalizes = [self._group_setting(g, "normalize") for g in groups]
        device = entries[0][0].device
        scaling = scaler is not None and scaler.is_enabled()
        # scale() (not get_scale()) also initialises a fresh scaler's state for step().
        factor = float(scaler.scale(torch.ones((), device=device))) if scaling else 1.0

        def micro_loss(weights: dict[str, torch.Tensor], x: Any, y: Any):
            loss = loss_fn(functional_call(model, {**weights, **fixed}, (x,)), y)
            return loss * factor, loss.detach()

        grad_fn = grad(micro_loss, has_aux=True)
        folded = (
            _map(inputs, lambda t: t.reshape(k, n // k, *t.shape[1:])),
            _map(targets, lambda t: t.reshape(k, n // k, *t.shape[1:])),
        )
        w = {name: trained[name].detach() for name in names}
        g, losses = vmap(grad_fn, in_dims=(None, 0, 0), randomness="different")(w, *folded)
        scaled = {
            name: g[name] * w[name].abs() if a else g[name]
            for name, a in zip(names, adaptive, strict=True)
        }
        norm = torch.stack([s.flatten(1).pow(2).sum(1) for s in scaled.values()]).sum(0).sqrt()
        ok = torch.isfinite(norm)  # per micro-batch; a non-finite one gets ε = 0
        perturbed = {}
        for name, a, rho, unit in zip(names, adaptive, rhos, normalizes, strict=True):
            shape = (k,) + (1,) * w[name].dim()
            e = scaled[name] * w[name].abs() if a else scaled[name]
            e = e * (rho / (norm + self.eps)).view(shape) if unit else e * (rho / factor)
            e = torch.where(ok.view(shape), e, torch.zeros((), dtype=e.dtype, device=e.device))
            perturbed[name] = w[name] + e
        h, _ = vmap(grad_fn, in_dims=(0, 0, 0), randomness="different")(perturbed, *folded)
        params = [trained[name] for name in names]
        carried = [p.grad for p in params]
        accumulated = [h[name].mean(0).mul_(weight) for name in names]
        self._finish(params, accumulated, carried, ok.all(), scaling)
        return losses.mean()

    # ---- steps -----------------------------------------------------------------------------

    def step(  # type: ignore[override]
        self,
        closure: Closure | None = None,
        batch: Batch = None,
        *,
        model: nn.Module | None = None,
    ) -> torch.Tensor | None:
        """One update.

        With ``closure`` and ``batch``: :meth:`sam_backward` then the base optimizer's step;
        returns the mean loss. Without: the base optimizer's step on the gradients already
        accumulated by :meth:`sam_backward` (gradient accumulation, ``scaler.step(opt)``).
        """
        if closure is None:
            if batch is not None:
                raise LabcoreError("step(batch=...) needs the closure that computes the loss")
            self.base_optimizer.step()
            return None
        if batch is None:
            raise LabcoreError(
                "step(closure) needs the batch: the closure is called once per micro-batch "
                "with that micro-batch, as closure(micro_batch)"
            )
        loss = self.sam_backward(closure, batch, model=model)
        self.base_optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def train_step(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        batch: Batch,
        *,
        mode: str = "sequential",
        scaler: Any = None,
        autocast_dtype: torch.dtype | None = None,
        clip_grad_norm: float | None = None,
    ) -> torch.Tensor:
        """Zero the gradients, compute the mSAM gradient of ``batch`` and take one step.

        ``batch`` is ``(inputs, targets)`` and ``loss_fn(model(inputs), targets)`` the mean
        loss. ``mode`` is ``"sequential"`` (one micro-batch after another; any model) or
        ``"vmap"`` (all at once with ``torch.func``; the same update, see
        :meth:`vmap_backward`). ``scaler`` is a ``torch.amp.GradScaler``; ``autocast_dtype``
        runs the forward passes under ``torch.autocast``; ``clip_grad_norm`` clips the
        averaged gradient (after unscaling) before the step. Returns the mean loss.
        """
        if mode not in MODES:
            raise LabcoreError(f"mode must be one of {MODES}, got {mode!r}")
        inputs, targets = _pair(batch)
        device_type = _device_type(model)
        autocast = (
            torch.autocast(device_type=device_type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        self.zero_grad()
        with autocast:
            if mode == "vmap":
                loss = self.vmap_backward(model, loss_fn, (inputs, targets), scaler=scaler)
            else:

                def closure(part: Batch) -> torch.Tensor:
                    x, y = part
                    return loss_fn(model(x), y)

                loss = self.sam_backward(closure, (inputs, targets), model=model, scaler=scaler)
        # Stepping through self.step() (not the base optimizer's) keeps the step counters
        # that LR schedulers check right, whichever object the scheduler was given.
        apply_update(self, scaler=scaler, clip_grad_norm=clip_grad_norm)
        return loss


class SAM(MicroBatchSAM):
    """Sharpness-aware minimization (Foret et al.): :class:`MicroBatchSAM` with one
    micro-batch, i.e. one ascent step on the whole mini-batch.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from msam import SAM
    >>> model = nn.Linear(4, 2)
    >>> opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    >>> x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    >>> loss = opt.train_step(model, nn.functional.cross_entropy, (x, y))
    """

    def __init__(
        self,
        params: Any,
        base_optimizer: type[torch.optim.Optimizer],
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        normalize: bool = True,
        eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            base_optimizer,
            rho=rho,
            adaptive=adaptive,
            normalize=normalize,
            micro_batches=1,
            eps=eps,
            **base_kwargs,
        )


# --------------------------------------------------------------------------------------------
# Small helpers


def _check_rho(rho: Any) -> None:
    if (
        isinstance(rho, bool)
        or not isinstance(rho, int | float)
        or not math.isfinite(rho)
        or rho < 0
    ):
        raise LabcoreError(f"rho must be a finite number >= 0, got {rho!r}")


def _checked_loss(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise LabcoreError(
            "the closure must return the micro-batch's mean loss as a scalar tensor, got "
            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}"
        )
    if not loss.requires_grad:
        raise LabcoreError("the closure's loss does not require grad (computed under no_grad?)")
    return loss.reshape(())


def _pair(batch: Batch) -> tuple[Any, Any]:
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise LabcoreError("the batch must be a pair (inputs, targets)")
    batch_size(batch)
    return batch[0], batch[1]


def _device_type(model: nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    return "cpu"


def apply_update(
    optimizer: torch.optim.Optimizer, *, scaler: Any = None, clip_grad_norm: float | None = None
) -> None:
    """Clip the gradients (after unscaling) and step, through the GradScaler when given,
    then update the scaler."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if scaler is not None:
        if clip_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        optimizer.step()


def _all_reduce_mean(tensors: list[torch.Tensor], group: Any = None) -> None:
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    if not tensors:
        return
    flat = _flatten_dense_tensors(tensors)
    dist.all_reduce(flat, group=group)
    flat.div_(dist.get_world_size(group))
    for t, reduced in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
        t.copy_(reduced)
