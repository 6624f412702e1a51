"""Where the decoder blocks and their linear layers are, per ``config.model_type``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labcore import LabcoreError


@dataclass(frozen=True)
class Architecture:
    """Decoder-block layout of one model family.

    blocks   dotted path of the ModuleList of decoder blocks
    groups   linear layers of one block in true-sequential order (each tuple is one group:
             its members read the same input)
    """

    blocks: str
    groups: tuple[tuple[str, ...], ...]

    @property
    def linear_names(self) -> tuple[str, ...]:
        return tuple(name for group in self.groups for name in group)


_LLAMA_LIKE = Architecture(
    blocks="model.layers",
    groups=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        ("self_attn.o_proj",),
        ("mlp.gate_proj", "mlp.up_proj"),
        ("mlp.down_proj",),
    ),
)

ARCHITECTURES: dict[str, Architecture] = {
    "llama": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "gpt2": Architecture(
        blocks="transformer.h",
        groups=(("attn.c_attn",), ("attn.c_proj",), ("mlp.c_fc",), ("mlp.c_proj",)),
    ),
    "opt": Architecture(
        blocks="model.decoder.layers",
        groups=(
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
            ("self_attn.out_proj",),
            ("fc1",),
            ("fc2",),
        ),
    ),
}


def register_architecture(model_type: str, arch: Architecture) -> None:
    """Teach the engine a new model family."""
    ARCHITECTURES[model_type] = arch


def architecture_of(model: Any) -> Architecture:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise LabcoreError(
            f"unsupported model type {model_type!r}; supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[model_type]


def get_blocks(model: Any, arch: Architecture) -> torch.nn.ModuleList:
    module = model
    for part in arch.blocks.split("."):
        module = getattr(module, part)
    return module


def is_conv1d(module: torch.nn.Module) -> bool:
    # GPT-2's Conv1D stores the weight as [in, out]; everything else is nn.Linear [out, in].
    return type(module).__name__ == "Conv1D"


def get_weight(module: torch.nn.Module) -> torch.Tensor:
    """The weight as [out, in] float32 (a copy)."""
    w = module.weight.detach()
    return (w.t() if is_conv1d(module) else w).float().clone()


def set_weight(module: torch.nn.Module, weight: torch.Tensor) -> None:
    w = weight.t() if is_conv1d(module) else weight
    with torch.no_grad():
        module.weight.copy_(w.to(module.weight.dtype))


def in_features(module: torch.nn.Module) -> int:
    return module.weight.shape[0] if is_conv1d(module) else module.weight.shape[1]
