"""Quantized weights that stay quantized at inference: torchao integer weight tensors.

:func:`use_int_kernels` swaps each quantized linear layer's weight for a torchao
``IntxUnpackedToInt8Tensor`` built from the *same integer codes and grid* that QuantEase
(or GPTQ, RTN) chose: one int8 per weight plus a scale and zero point per output channel or
group, so the layer computes ``x @ (scale · (q − z))ᵀ`` from integer storage and never keeps
a floating-point copy. Codes of b bits are stored as ``q − 2^(b−1)`` in int8 with
``zero_point = z − 2^(b−1)``, which dequantizes to exactly ``scale · (q − z)``.

What this buys on a CPU is measured in the bench, not assumed: 4× fewer weight bytes than
float32 (2× fewer than bfloat16; torchao keeps 2-7-bit codes unpacked in int8 on the CPU, so
4-bit saves no more than 8-bit). Speed depends on the compute dtype: see the README.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from labcore.errors import LabcoreError

_TARGET = {b: getattr(torch, f"int{b}") for b in range(1, 9)}


def _int_tensor_class():
    import logging

    # torchao's import-time notices about torch versions (warnings and torch's pytree log).
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torchao.quantization import IntxUnpackedToInt8Tensor
        except ImportError as exc:  # pragma: no cover - torchao is a dependency
            raise LabcoreError(f"torchao is needed for the integer kernels: {exc}") from None
    return IntxUnpackedToInt8Tensor


def int_weight(q: Any, dtype: torch.dtype) -> torch.Tensor:
    """A torchao integer weight tensor from a :class:`layerwise.QuantizedWeight`."""
    if q.outliers is not None and q.outlier_count:
        raise LabcoreError(
            "weights with full-precision outliers have no integer kernel; quantize without "
            "the outlier-aware variant"
        )
    cols = q.codes.shape[1]
    group = q.group_size or cols
    expected = torch.arange(cols, device=q.g_idx.device) // group
    if not torch.equal(q.g_idx.long(), expected) or cols % group:
        raise LabcoreError(
            "the integer kernel needs contiguous whole groups (no activation-order group "
            "indices, in_features divisible by the group size)"
        )
    offset = 1 << (q.bits - 1)
    qdata = (q.codes.to(torch.int16) - offset).to(torch.int8)
    zero = (q.zeros - offset).round().to(torch.int8)
    cls = _int_tensor_class()
    return cls(
        qdata.contiguous(),
        q.scales.to(dtype).contiguous(),
        zero.contiguous(),
        _TARGET[q.bits],
        (1, group),
        dtype,
        None,
    )


def use_int_kernels(model: Any, quantized: dict[str, Any], *, dtype: Any = torch.float32) -> Any:
    """Put torchao integer weights into ``model`` (in place) for every layer in
    ``quantized`` (name → QuantizedWeight, e.g. from :func:`layerwise.export.read_quantized`);
    the rest of the model is cast to ``dtype``. Returns the model."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if not quantized:
        raise LabcoreError("no quantized layers to put integer kernels into")
    model.to(dtype)
    for name, q in quantized.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise LabcoreError(
                f"the model has no layer {name!r} for its quantized weights"
            ) from None
        if not isinstance(module, torch.nn.Linear) or tuple(module.weight.shape) != tuple(
            q.codes.shape
        ):
            raise LabcoreError(
                f"{name}: quantized codes {tuple(q.codes.shape)} do not fit the layer {module}"
            )
        module.weight = torch.nn.Parameter(int_weight(q, dtype), requires_grad=False)
    return model.eval()


def _tensor_bytes(t: torch.Tensor) -> int:
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, n)) for n in names if getattr(t, n) is not None)
    return t.numel() * t.element_size()


def model_bytes(model: Any) -> int:
    """Bytes of the weights as the model holds them (integer codes + grids for torchao
    tensors; a tied embedding counted once)."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += _tensor_bytes(t)
    return total


def parameter_count(model: Any) -> int:
    """Weights of the model (a tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters())
