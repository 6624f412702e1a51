"""The re-parametrization W = W_init + m ⊙ W_Δ of a linear layer, with a per-sample
gradient rule for Opacus.

W_init (the pretrained weight, folded updates included) and the row mask m are frozen;
W_Δ is the only trainable weight and starts at zero. Because ∂L/∂W_Δ = m ⊙ ∂L/∂W, a masked
row's per-sample gradients are exactly zero: it contributes nothing to the clipping norm,
and the noise DP-SGD adds to it never reaches the forward pass (m = 0 there). One trainable
tensor per layer also avoids Opacus' trouble with partly frozen layers (opacus#436).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from opacus.grad_sample import register_grad_sampler
from torch import nn

from labcore.errors import LabcoreError


class DeltaLinear(nn.Module):
    """``nn.Linear`` as W_init + m ⊙ W_Δ (m one value per output row).

    >>> layer = DeltaLinear.from_linear(nn.Linear(3, 2))
    >>> float(layer.weight_delta.abs().sum()), layer.row_mask.tolist()
    (0.0, [1.0, 1.0])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # Frozen parameters, not buffers: Opacus refuses trainable layers holding buffers.
        self.weight_init = nn.Parameter(torch.zeros(out_features, in_features), requires_grad=False)
        self.row_mask = nn.Parameter(torch.ones(out_features), requires_grad=False)
        self.weight_delta = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> DeltaLinear:
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        layer = layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.weight_init.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight W_init + m ⊙ W_Δ."""
        return self.weight_init + self.row_mask[:, None] * self.weight_delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def fold_(self) -> None:
        """Move m ⊙ W_Δ into W_init and reset W_Δ to zero (the function is unchanged)."""
        self.weight_init.add_(self.row_mask[:, None] * self.weight_delta)
        self.weight_delta.zero_()

    def extra_repr(self) -> str:
        trainable = int(self.row_mask.sum())
        return f"in={self.in_features}, out={self.out_features}, trainable rows={trainable}"


@register_grad_sampler(DeltaLinear)
def _delta_linear_grad_sample(layer: DeltaLinear, activations, backprops):
    """Per-sample gradients: ∂L_i/∂W_Δ = m ⊙ (backprop_i ⊗ activation_i)."""
    a = activations[0].to(backprops.dtype)
    out = {}
    if layer.weight_delta.requires_grad:
        gs = torch.einsum("n...i,n...j->nij", backprops, a)
        out[layer.weight_delta] = gs * layer.row_mask[None, :, None]
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = torch.einsum("n...k->nk", backprops)
    return out


def reparametrize(model: nn.Module, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` (except the modules named in ``skip`` and
    their children, e.g. the classification head) by a :class:`DeltaLinear` in place.
    Returns the names replaced."""
    replaced = []
    for name, module in list(model.named_modules()):
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not any(
                full == s or full.startswith(s + ".") for s in skip
            ):
                setattr(module, child_name, DeltaLinear.from_linear(child))
                replaced.append(full)
    if not replaced:
        raise LabcoreError("the model has no nn.Linear layer to fine-tune sparsely")
    return replaced


def delta_layers(model: nn.Module) -> Iterator[tuple[str, DeltaLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, DeltaLinear):
            yield name, module


def set_masks(model: nn.Module, masks: dict[str, torch.Tensor] | float) -> None:
    """Install row masks (a tensor per layer name, or one value for all) after folding the
    current updates into W_init, so the function is unchanged and W_Δ restarts at zero."""
    for name, layer in delta_layers(model):
        layer.fold_()
        value = masks if isinstance(masks, int | float) else masks[name]
        with torch.no_grad():
            layer.row_mask.copy_(torch.as_tensor(value, dtype=layer.row_mask.dtype))


def check_opacus_compatible(model: nn.Module) -> None:
    """A clear error naming the first layer Opacus cannot train privately, and the fix."""
    from opacus.validators import ModuleValidator

    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise LabcoreError(
                f"layer {name!r} is {type(module).__name__}, which Opacus cannot train privately "
                "(it mixes the examples of a batch): replace it with GroupNorm or LayerNorm, e.g. "
                "model = opacus.validators.ModuleValidator.fix(model)"
            )
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        first = str(errors[0]).split(". ")[0]
        raise LabcoreError(
            f"Opacus cannot train this model privately: {first}; see "
            "opacus.validators.ModuleValidator.fix"
        )
