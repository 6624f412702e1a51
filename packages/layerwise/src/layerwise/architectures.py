"""Where the decoder blocks and their linear layers are, per ``config.model_type``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labcore import LabcoreError


@dataclass(frozen=True)
class Structure:
    """Which projections of a block shrink together when whole structures are removed.

    Removing input columns of a *consumer* (the attention output projection, the MLP down
    projection) removes the output rows that produce them in the *producers*. For attention
    the unit is a key/value head group: one K/V head and the query heads that share it
    (grouped-query attention), so the query projection loses ``heads_per_group · head_dim``
    rows and the key and value projections ``head_dim`` rows each per removed group. For the
    MLP the unit is one intermediate neuron (a row of gate and up, a column of down).
    """

    attention_output: str  # consumer: its input columns are the heads' outputs
    query: str
    key_value: tuple[str, str]
    mlp_output: str  # consumer: its input columns are the intermediate neurons
    mlp_inputs: tuple[str, ...]  # producers of the neurons (gate, up)


@dataclass(frozen=True)
class Architecture:
    """Decoder-block layout of one model family.

    blocks     dotted path of the ModuleList of decoder blocks
    groups     linear layers of one block in true-sequential order (each tuple is one group:
               its members read the same input)
    modules    the layers of each sub-module (attention, MLP), for methods that compress a
               module's layers jointly (``grouping = "module"``)
    structure  how projections shrink together (None: structured pruning not supported)
    """

    blocks: str
    groups: tuple[tuple[str, ...], ...]
    modules: tuple[tuple[str, ...], ...] = ()
    structure: Structure | None = None

    @property
    def linear_names(self) -> tuple[str, ...]:
        return tuple(name for group in self.groups for name in group)

    def groups_for(self, grouping: str) -> tuple[tuple[str, ...], ...]:
        """The groups a method with this ``grouping`` compresses, in order."""
        if grouping == "sequential":
            return self.groups
        if grouping == "block":
            return (self.linear_names,)
        if grouping == "module":
            if not self.modules:
                raise LabcoreError(f"grouping 'module' is not defined for blocks at {self.blocks}")
            return self.modules
        raise LabcoreError(f"unknown grouping {grouping!r}; use 'sequential', 'block' or 'module'")


_LLAMA_LIKE = Architecture(
    blocks="model.layers",
    groups=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        ("self_attn.o_proj",),
        ("mlp.gate_proj", "mlp.up_proj"),
        ("mlp.down_proj",),
    ),
    modules=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
        ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    ),
    structure=Structure(
        attention_output="self_attn.o_proj",
        query="self_attn.q_proj",
        key_value=("self_attn.k_proj", "self_attn.v_proj"),
        mlp_output="mlp.down_proj",
        mlp_inputs=("mlp.gate_proj", "mlp.up_proj"),
    ),
)

ARCHITECTURES: dict[str, Architecture] = {
    "llama": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "gpt2": Architecture(
        blocks="transformer.h",
        groups=(("attn.c_attn",), ("attn.c_proj",), ("mlp.c_fc",), ("mlp.c_proj",)),
        modules=(("attn.c_attn", "attn.c_proj"), ("mlp.c_fc", "mlp.c_proj")),
    ),
    "opt": Architecture(
        blocks="model.decoder.layers",
        groups=(
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
            ("self_attn.out_proj",),
            ("fc1",),
            ("fc2",),
        ),
        modules=(
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"),
            ("fc1", "fc2"),
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
