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
from opacus.grad_sample import register_grad_sampler, register_norm_sampler
from torch import nn

from labcore.errors import LabcoreError


class DeltaLayer(nn.Module):
    """A layer whose weight is W_init + m ⊙ W_Δ, m one value per output row (neuron or
    channel). Subclasses set ``weight_init``, ``row_mask``, ``weight_delta`` and ``bias``."""

    weight_init: nn.Parameter
    row_mask: nn.Parameter
    weight_delta: nn.Parameter

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight W_init + m ⊙ W_Δ."""
        shape = (-1,) + (1,) * (self.weight_delta.dim() - 1)
        return self.weight_init + self.row_mask.view(shape) * self.weight_delta

    @property
    def out_rows(self) -> int:
        return self.weight_delta.shape[0]

    @property
    def row_size(self) -> int:
        """Weights per row (what one trainable row adds to the trainable count)."""
        return self.weight_delta[0].numel()

    @torch.no_grad()
    def fold_(self) -> None:
        """Move m ⊙ W_Δ into W_init and reset W_Δ to zero (the function is unchanged)."""
        self.weight_init.copy_(self.weight)
        self.weight_delta.zero_()

    def _frozen_init(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        # Frozen parameters, not buffers: Opacus refuses trainable layers holding buffers.
        self.weight_init = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.row_mask = nn.Parameter(
            torch.ones(weight.shape[0], dtype=weight.dtype, device=weight.device),
            requires_grad=False,
        )
        self.weight_delta = nn.Parameter(torch.zeros_like(weight.detach()))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())


class DeltaLinear(DeltaLayer):
    """``nn.Linear`` as W_init + m ⊙ W_Δ (m one value per output row).

    >>> layer = DeltaLinear.from_linear(nn.Linear(3, 2))
    >>> float(layer.weight_delta.abs().sum()), layer.row_mask.tolist()
    (0.0, [1.0, 1.0])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._frozen_init(
            torch.zeros(out_features, in_features), torch.zeros(out_features) if bias else None
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> DeltaLinear:
        layer = cls.__new__(cls)
        DeltaLayer.__init__(layer)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer._frozen_init(linear.weight, linear.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        trainable = int(self.row_mask.sum())
        return f"in={self.in_features}, out={self.out_features}, trainable rows={trainable}"


class DeltaConv2d(DeltaLayer):
    """``nn.Conv2d`` (groups = 1, numeric padding) as W_init + m ⊙ W_Δ, m one value per
    output channel."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> DeltaConv2d:
        if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise LabcoreError(
                f"{conv} is not supported for sparse fine-tuning (groups must be 1, padding "
                "numeric with zeros); leave it out with skip=(its name,)"
            )
        layer = cls()
        layer.stride, layer.padding, layer.dilation = conv.stride, conv.padding, conv.dilation
        layer.kernel_size = conv.kernel_size
        layer._frozen_init(conv.weight, conv.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        out, cin, kh, kw = self.weight_delta.shape
        return f"{cin}, {out}, kernel=({kh}, {kw}), trainable channels={int(self.row_mask.sum())}"


@register_grad_sampler(DeltaLinear)
def _delta_linear_grad_sample(layer: DeltaLinear, activations, backprops):
    """Per-sample gradients: ∂L_i/∂W_Δ = m ⊙ (backprop_i ⊗ activation_i)."""
    a = activations[0].to(backprops.dtype)
    out = {}
    if layer.weight_delta.requires_grad:
        rows = layer.row_mask.nonzero().squeeze(1)
        if len(rows) == layer.out_rows:
            gs = torch.einsum("n...i,n...j->nij", backprops, a) * layer.row_mask[None, :, None]
        else:  # only the trainable rows cost work (20% of the rows: a fifth of the einsum)
            gs = a.new_zeros((a.shape[0], *layer.weight_delta.shape))
            picked = backprops.index_select(-1, rows)
            gs[:, rows] = torch.einsum("n...i,n...j->nij", picked, a) * layer.row_mask[rows, None]
        out[layer.weight_delta] = gs
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = torch.einsum("n...k->nk", backprops)
    return out


@register_norm_sampler(DeltaLinear)
def _delta_linear_norm_sample(layer: DeltaLinear, activations, backprops):
    """Per-sample gradient norms without the per-sample gradients (ghost clipping, Li et al.
    2022): for a sequence, ‖Σ_t b̃_t a_tᵀ‖_F² = Σ_{t,s} (a_t·a_s)(b̃_t·b̃_s), where b̃ keeps the
    backprops of the trainable rows (times their mask). It costs n·T²·(in + out) instead of
    n·T·in·out and no n·out·in tensor is stored: what makes DP-SGD on MiniLM fit a CPU."""
    a = activations[0].to(backprops.dtype)
    n = a.shape[0]
    a, b = a.reshape(n, -1, a.shape[-1]), backprops.reshape(n, -1, backprops.shape[-1])
    out = {}
    if layer.weight_delta.requires_grad:
        rows = layer.row_mask.nonzero().squeeze(1)
        bt = b if len(rows) == layer.out_rows else b.index_select(-1, rows)
        bt = bt * layer.row_mask[rows]
        if bt.shape[-1] == 0:
            out[layer.weight_delta] = b.new_zeros(n)
        elif b.shape[1] == 1:
            out[layer.weight_delta] = (bt[:, 0].square().sum(1) * a[:, 0].square().sum(1)).sqrt()
        else:
            gram_b = torch.einsum("nik,njk->nij", bt, bt)
            gram_a = torch.einsum("nik,njk->nij", a, a)
            out[layer.weight_delta] = (gram_b * gram_a).sum(dim=(1, 2)).clamp_min(0).sqrt()
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = torch.linalg.vector_norm(b.sum(dim=1), dim=1)
    return out


@register_grad_sampler(DeltaConv2d)
def _delta_conv_grad_sample(layer: DeltaConv2d, activations, backprops):
    """Per-sample gradients of a convolution (unfolded input patches times the output's
    backprops, as Opacus does for ``nn.Conv2d``), masked per output channel."""
    from opacus.utils.tensor_utils import unfold2d

    a = activations[0].to(backprops.dtype)
    n = a.shape[0]
    out = {}
    if layer.weight_delta.requires_grad:
        patches = unfold2d(
            a,
            kernel_size=layer.kernel_size,
            padding=layer.padding,
            stride=layer.stride,
            dilation=layer.dilation,
        )
        b = backprops.reshape(n, layer.out_rows, -1)
        gs = torch.einsum("noq,npq->nop", b, patches).reshape(n, *layer.weight_delta.shape)
        out[layer.weight_delta] = gs * layer.row_mask.view(1, -1, 1, 1, 1)
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = backprops.reshape(n, layer.out_rows, -1).sum(dim=2)
    return out


def reparametrize(model: nn.Module, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (except the modules named in ``skip`` and
    their children, e.g. the classification head) by a :class:`DeltaLinear` in place.
    Returns the names replaced."""
    replaced = []
    for name, module in list(model.named_modules()):
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if any(full == s or full.startswith(s + ".") for s in skip):
                continue
            if isinstance(child, nn.Linear):
                setattr(module, child_name, DeltaLinear.from_linear(child))
                replaced.append(full)
            elif isinstance(child, nn.Conv2d):
                setattr(module, child_name, DeltaConv2d.from_conv(child))
                replaced.append(full)
    if not replaced:
        raise LabcoreError("the model has no nn.Linear or nn.Conv2d layer to fine-tune sparsely")
    return replaced


def delta_layers(model: nn.Module) -> Iterator[tuple[str, DeltaLayer]]:
    for name, module in model.named_modules():
        if isinstance(module, DeltaLayer):
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
