"""Flatness of a trained model: top Hessian eigenvalue, Hessian trace and m-sharpness.

All three take ``data``, an iterable of ``(inputs, targets)`` batches (a DataLoader or a
list), and measure the loss L(w) = Σ_b (n_b / N) loss_fn(model(x_b), y_b), the mean over all
examples. The model is put in eval mode while measuring (BatchNorm uses its running
statistics, dropout is off), then restored. Hessian-vector products come from double
backward, so any differentiable model works.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from labcore import LabcoreError
from msam.optim import batch_size, split_batch

LossFn = Callable[[Any, Any], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards every submodule gets its own mode back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _materialise(data: Iterable[Any], max_batches: int | None) -> list[tuple[Any, Any, float]]:
    batches = []
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise LabcoreError("data must yield (inputs, targets) pairs")
        batches.append((batch[0], batch[1], float(batch_size(batch))))
    if not batches:
        raise LabcoreError("no data to measure flatness on")
    total = sum(n for *_, n in batches)
    return [(x, y, n / total) for x, y, n in batches]


def _params(model: nn.Module) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabcoreError("the model has no trainable parameters")
    return params


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def hessian_vector_product(
    model: nn.Module,
    loss_fn: LossFn,
    batches: list[tuple[Any, Any, float]],
    vector: list[torch.Tensor],
) -> list[torch.Tensor]:
    """H v for the mean loss over ``batches`` (triples of inputs, targets, weight)."""
    params = _params(model)
    out = [torch.zeros_like(p) for p in params]
    for x, y, w in batches:
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            # Parameters the loss does not use (say an unused pooler) have H = 0 rows.
            used = [i for i, g in enumerate(grads) if g is not None]
            hv = torch.autograd.grad(
                [grads[i] for i in used],
                [params[i] for i in used],
                grad_outputs=[vector[i] for i in used],
                allow_unused=True,
            )
        for i, h in zip(used, hv, strict=True):
            if h is not None:
                out[i].add_(h.detach(), alpha=w)
    return out


def hessian_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Any],
    *,
    iters: int = 20,
    tol: float = 1e-3,
    seed: int = 0,
    max_batches: int | None = None,
) -> float:
    """The Hessian eigenvalue of largest magnitude by power iteration (for a trained network
    this is the top eigenvalue λ_max). Stops when λ changes by less than ``tol`` relative.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(3, 1, bias=False)
    >>> x = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    >>> mse = lambda out, y: ((out.squeeze(1) - y) ** 2).mean()
    >>> # H = 2 XᵀX / n = diag(18, 8, 2) / 3
    >>> round(hessian_eigenvalue(model, mse, [(x, torch.zeros(3))], iters=100, tol=1e-9), 3)
    6.0
    """
    if iters < 1:
        raise LabcoreError(f"iters must be >= 1, got {iters}")
    batches = _materialise(data, max_batches)
    params = _params(model)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p) for p in params]
    norm = torch.sqrt(_dot(v, v))
    v = [t / norm for t in v]
    eig = math.nan
    with eval_mode(model):
        for _ in range(iters):
            hv = hessian_vector_product(model, loss_fn, batches, v)
            new = float(_dot(v, hv))
            norm = torch.sqrt(_dot(hv, hv))
            if float(norm) == 0.0:
                return 0.0
            v = [t / norm for t in hv]
            if not math.isnan(eig) and abs(new - eig) <= tol * max(abs(new), 1e-12):
                return new
            eig = new
    return eig


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Any],
    *,
    probes: int = 20,
    seed: int = 0,
    max_batches: int | None = None,
) -> float:
    """Hutchinson's estimate of the Hessian trace: the mean of vᵀHv over Rademacher
    probes v (unbiased; its standard error shrinks as 1/√probes).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(3, 1, bias=False)
    >>> x = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    >>> mse = lambda out, y: ((out.squeeze(1) - y) ** 2).mean()
    >>> # diagonal H: every Rademacher probe gives the exact trace (18 + 8 + 2) / 3
    >>> round(hessian_trace(model, mse, [(x, torch.zeros(3))], probes=3), 3)
    9.333
    """
    if probes < 1:
        raise LabcoreError(f"probes must be >= 1, got {probes}")
    batches = _materialise(data, max_batches)
    params = _params(model)
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with eval_mode(model):
        for _ in range(probes):
            v = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params]
            total += float(_dot(v, hessian_vector_product(model, loss_fn, batches, v)))
    return total / probes


def m_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Any],
    *,
    rho: float = 0.05,
    micro_batch_size: int = 32,
    ascent_steps: int = 3,
    max_batches: int | None = None,
) -> float:
    """m-sharpness: the mean over micro-batches B of max over ‖ε‖ ≤ ρ of L_B(w + ε) − L_B(w),
    each micro-batch weighted by its size. Every batch of ``data`` is split evenly into
    ceil(n / ``micro_batch_size``) micro-batches (so none is larger than that).

    The inner maximum is approximated by projected normalised-gradient ascent on the ball,
    ``ascent_steps`` steps of length 2ρ/steps, keeping the largest loss seen (one step is
    SAM's ε). A lower bound on the true maximum; ≥ 0 because ε = 0 is feasible.
    """
    if rho < 0 or not math.isfinite(rho):
        raise LabcoreError(f"rho must be a finite number >= 0, got {rho}")
    if micro_batch_size < 1 or ascent_steps < 1:
        raise LabcoreError("micro_batch_size and ascent_steps must be >= 1")
    batches = _materialise(data, max_batches)
    params = _params(model)
    originals = [p.detach().clone() for p in params]
    step = 2 * rho / ascent_steps
    gaps: list[tuple[float, int]] = []
    with eval_mode(model):
        for x, y, _ in batches:
            n = batch_size((x, y))
            for part in split_batch((x, y), math.ceil(n / micro_batch_size)):
                px, py = part
                with torch.no_grad():
                    base = float(loss_fn(model(px), py))
                best = base
                eps = [torch.zeros_like(p) for p in params]
                try:
                    for _ in range(ascent_steps):
                        with torch.enable_grad():
                            loss = loss_fn(model(px), py)
                            grads = torch.autograd.grad(loss, params, allow_unused=True)
                        best = max(best, float(loss.detach()))
                        grads = [
                            torch.zeros_like(p) if g is None else g
                            for p, g in zip(params, grads, strict=True)
                        ]
                        gnorm = float(torch.sqrt(_dot(grads, grads)))
                        if gnorm == 0.0 or rho == 0.0:
                            break
                        eps = [e + step * g / gnorm for e, g in zip(eps, grads, strict=True)]
                        enorm = float(torch.sqrt(_dot(eps, eps)))
                        if enorm > rho:
                            eps = [e * (rho / enorm) for e in eps]
                        with torch.no_grad():
                            for p, o, e in zip(params, originals, eps, strict=True):
                                p.copy_(o + e)
                    with torch.no_grad():
                        best = max(best, float(loss_fn(model(px), py)))
                finally:
                    with torch.no_grad():
                        for p, o in zip(params, originals, strict=True):
                            p.copy_(o)
                gaps.append((best - base, batch_size(part)))
    total = sum(n for _, n in gaps)
    return sum(g * n for g, n in gaps) / total
