"""What a method knows about the model, and the structural edits the engine makes for it.

* :class:`ModelContext`: the model's config and geometry (blocks, heads, grouped K/V heads,
  head size, MLP width), handed to :meth:`Method.prepare` before compression.
* :class:`Site`: where one call compresses (block index, full names of its layers).
* Structured pruning: a method returns ``keep_inputs`` on the attention output projection (whole
  K/V head groups) or the MLP down projection (neurons); :func:`remove_structures` removes or
  zeroes the coupled rows and columns of every projection of the block.
* :class:`FactoredLinear`: a linear layer computing ``(S + U V) x`` for sparse-plus-low-rank
  results (the ``lowrank_u`` / ``lowrank_v`` extras of a :class:`LayerResult`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from labcore import LabcoreError
from layerwise.architectures import Architecture, get_blocks

#: Extra tensors of a LayerResult that make the layer compute (S + U V) x.
LOWRANK_U = "lowrank_u"
LOWRANK_V = "lowrank_v"


@dataclass(frozen=True)
class ModelContext:
    """The model a method is about to compress (read-only).

    Attributes
    ----------
    config
        The transformers config of the model.
    model_type, architecture
        ``config.model_type`` and its :class:`~layerwise.architectures.Architecture`.
    n_blocks
        Number of decoder blocks.
    hidden_size, num_heads, num_kv_heads, head_dim, intermediate_size
        The stock geometry (None where the family does not define it). ``num_kv_heads`` is
        the number of key/value heads (grouped-query attention: each serves
        ``heads_per_group`` query heads).
    """

    config: Any
    model_type: str
    architecture: Architecture
    n_blocks: int
    hidden_size: int | None
    num_heads: int | None
    num_kv_heads: int | None
    head_dim: int | None
    intermediate_size: int | None

    @property
    def heads_per_group(self) -> int | None:
        if self.num_heads is None or not self.num_kv_heads:
            return None
        return self.num_heads // self.num_kv_heads

    def prefix(self, block: int) -> str:
        """Full-name prefix of a block's layers, e.g. ``model.layers.3.``."""
        return f"{self.architecture.blocks}.{block}."


def model_context(model: Any, arch: Architecture) -> ModelContext:
    """The :class:`ModelContext` of a transformers causal LM."""
    cfg = model.config

    def first(*names: str) -> int | None:
        for n in names:
            v = getattr(cfg, n, None)
            if isinstance(v, int):
                return v
        return None

    hidden = first("hidden_size", "n_embd")
    heads = first("num_attention_heads", "n_head")
    kv = first("num_key_value_heads") or heads
    head_dim = first("head_dim") or (hidden // heads if hidden and heads else None)
    inter = first("intermediate_size", "ffn_dim", "n_inner")
    if inter is None and cfg.model_type == "gpt2" and hidden:
        inter = 4 * hidden
    return ModelContext(
        config=cfg,
        model_type=cfg.model_type,
        architecture=arch,
        n_blocks=len(get_blocks(model, arch)),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=inter,
    )


@dataclass(frozen=True)
class Site:
    """Where one compression call works: a block and the layers of one group in it."""

    block: int
    prefix: str
    names: tuple[str, ...]

    def full_name(self, name: str) -> str:
        return self.prefix + name


def head_group_columns(groups: Any, *, head_dim: int, heads_per_group: int) -> torch.Tensor:
    """Input columns of the attention output projection that belong to K/V head ``groups``.

    Query head ``h`` reads K/V head ``h // heads_per_group`` (transformers' ``repeat_kv``), so
    group ``g`` owns query heads ``g·heads_per_group ... (g+1)·heads_per_group − 1`` and their
    ``head_dim`` columns each.

    Examples
    --------
    >>> head_group_columns([1], head_dim=2, heads_per_group=2).tolist()
    [4, 5, 6, 7]
    """
    width = head_dim * heads_per_group
    groups = torch.as_tensor(groups, dtype=torch.long).reshape(-1)
    return (groups[:, None] * width + torch.arange(width)).reshape(-1)


# --------------------------------------------------------------------------------------------
# Structural edits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockShape:
    """The per-block geometry after structured pruning."""

    num_heads: int
    num_kv_heads: int
    intermediate_size: int


def block_shape(block: torch.nn.Module, arch: Architecture, head_dim: int) -> BlockShape:
    """Read a llama-like block's geometry off its module shapes."""
    st = _structure(arch)
    q = block.get_submodule(st.query)
    k = block.get_submodule(st.key_value[0])
    gate = block.get_submodule(st.mlp_inputs[0])
    return BlockShape(
        num_heads=q.weight.shape[0] // head_dim,
        num_kv_heads=k.weight.shape[0] // head_dim,
        intermediate_size=gate.weight.shape[0],
    )


def _structure(arch: Architecture):
    if arch.structure is None:
        raise LabcoreError(
            f"structured pruning is not supported for blocks at {arch.blocks} (no structure "
            "table: only llama-like models, e.g. llama, qwen2, mistral)"
        )
    return arch.structure


def _linear_like(module: torch.nn.Module, in_features: int, out_features: int) -> torch.nn.Linear:
    """An empty Linear of the given size with ``module``'s bias flag, dtype and device."""
    return torch.nn.Linear(
        in_features,
        out_features,
        bias=module.bias is not None,
        device=module.weight.device,
        dtype=module.weight.dtype,
    )


def _select_rows(module: torch.nn.Module, rows: torch.Tensor, mask: bool) -> torch.nn.Module:
    """``module`` keeping only ``rows`` of its output (mask: zero the others in place)."""
    rows = rows.to(module.weight.device)
    if mask:
        drop = torch.ones(module.weight.shape[0], dtype=torch.bool, device=rows.device)
        drop[rows] = False
        with torch.no_grad():
            module.weight[drop] = 0
            if module.bias is not None:
                module.bias[drop] = 0
        return module
    new = _linear_like(module, module.weight.shape[1], rows.numel())
    with torch.no_grad():
        new.weight.copy_(module.weight[rows])
        if module.bias is not None:
            new.bias.copy_(module.bias[rows])
    return new


def _select_columns(module: torch.nn.Module, cols: torch.Tensor, mask: bool) -> torch.nn.Module:
    cols = cols.to(module.weight.device)
    if mask:
        drop = torch.ones(module.weight.shape[1], dtype=torch.bool, device=cols.device)
        drop[cols] = False
        with torch.no_grad():
            module.weight[:, drop] = 0
        return module
    new = _linear_like(module, cols.numel(), module.weight.shape[0])
    with torch.no_grad():
        new.weight.copy_(module.weight[:, cols])
        if module.bias is not None:
            new.bias.copy_(module.bias)
    return new


def _replace(block: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = block.get_submodule(parent_name) if parent_name else block
    setattr(parent, attr, module)


def check_keep_inputs(keep: Any, n: int, what: str) -> torch.Tensor:
    """``keep`` as sorted distinct column indices in [0, n), or a LabcoreError naming ``what``."""
    keep = torch.as_tensor(keep).reshape(-1).long().cpu()
    if keep.numel() == 0:
        raise LabcoreError(f"{what}: keep_inputs removes every input; keep at least one")
    if int(keep.min()) < 0 or int(keep.max()) >= n or torch.unique(keep).numel() != keep.numel():
        raise LabcoreError(f"{what}: keep_inputs must be distinct column indices in [0, {n})")
    return torch.sort(keep).values


def remove_structures(
    block: torch.nn.Module,
    arch: Architecture,
    consumer: str,
    keep: Any,
    *,
    head_dim: int | None,
    mask: bool = False,
    where: str = "",
) -> dict[str, Any]:
    """Keep only the input columns ``keep`` of ``consumer`` and the rows that produce them.

    ``consumer`` is the attention output projection (``keep`` must be whole K/V head groups'
    columns, see :func:`head_group_columns`) or the MLP down projection (any neurons). With
    ``mask=True`` shapes stay and the removed rows and columns are zeroed, which computes the
    same function. Returns a summary (kept heads, K/V heads or neurons).
    """
    st = _structure(arch)
    cons = block.get_submodule(consumer)
    n_in = cons.weight.shape[1]
    keep = check_keep_inputs(keep, n_in, where or consumer)
    if consumer == st.mlp_output:
        for name in st.mlp_inputs:
            _replace(block, name, _select_rows(block.get_submodule(name), keep, mask))
        _replace(block, consumer, _select_columns(cons, keep, mask))
        return {"neurons": int(keep.numel()), "neurons_removed": n_in - int(keep.numel())}
    if consumer != st.attention_output:
        raise LabcoreError(
            f"{where or consumer}: keep_inputs is supported on {st.attention_output} (heads) and "
            f"{st.mlp_output} (neurons) only"
        )
    if head_dim is None:
        raise LabcoreError("the model config gives no head_dim; cannot remove heads")
    q = block.get_submodule(st.query)
    k = block.get_submodule(st.key_value[0])
    n_heads, n_kv = q.weight.shape[0] // head_dim, k.weight.shape[0] // head_dim
    per_group = n_heads // n_kv
    width = head_dim * per_group
    # Query heads share their K/V head (transformers' repeat_kv): either whole K/V groups go,
    # or every group keeps the same number of its query heads and all K/V heads stay.
    groups = torch.unique(keep // width)
    if torch.equal(head_group_columns(groups, head_dim=head_dim, heads_per_group=per_group), keep):
        kv_rows = head_group_columns(groups, head_dim=head_dim, heads_per_group=1)
        _replace(block, st.query, _select_rows(q, keep, mask))
        for name in st.key_value:
            _replace(block, name, _select_rows(block.get_submodule(name), kv_rows, mask))
        _replace(block, consumer, _select_columns(cons, keep, mask))
        kept = int(groups.numel())
        return {
            "kv_heads": kept,
            "heads": kept * per_group,
            "kv_heads_removed": n_kv - kept,
            "heads_removed": (n_kv - kept) * per_group,
        }
    heads = torch.unique(keep // head_dim)
    per_kv = torch.bincount(heads // per_group, minlength=n_kv)
    whole_heads = torch.equal(head_group_columns(heads, head_dim=head_dim, heads_per_group=1), keep)
    if not whole_heads or int(per_kv.min()) != int(per_kv.max()) or int(per_kv.min()) == 0:
        raise LabcoreError(
            f"{where or consumer}: keep_inputs must be whole K/V head groups ({per_group} query "
            f"head(s) × head_dim {head_dim} = {width} columns each) or the same number of whole "
            f"query heads ({head_dim} columns each) in every one of the {n_kv} K/V groups "
            "(use head_group_columns)"
        )
    _replace(block, st.query, _select_rows(q, keep, mask))
    _replace(block, consumer, _select_columns(cons, keep, mask))
    if not mask:
        _set_query_groups(block, st, int(per_kv[0]))
    kept = int(heads.numel())
    return {"kv_heads": n_kv, "heads": kept, "kv_heads_removed": 0, "heads_removed": n_heads - kept}


def _set_query_groups(block: torch.nn.Module, st: Any, per_group: int) -> None:
    """Tell the attention module how many query heads now share each K/V head."""
    parent_name = st.query.rpartition(".")[0]
    attention = block.get_submodule(parent_name) if parent_name else block
    if hasattr(attention, "num_key_value_groups"):
        attention.num_key_value_groups = per_group


def shrink_block_to(block: torch.nn.Module, arch: Architecture, shape: BlockShape, head_dim: int):
    """Give a freshly built block the module shapes of ``shape`` (values are overwritten by
    the checkpoint that is loaded next)."""
    st = _structure(arch)
    keep_q = torch.arange(shape.num_heads * head_dim)
    keep_kv = torch.arange(shape.num_kv_heads * head_dim)
    keep_n = torch.arange(shape.intermediate_size)
    _replace(block, st.query, _select_rows(block.get_submodule(st.query), keep_q, False))
    for name in st.key_value:
        _replace(block, name, _select_rows(block.get_submodule(name), keep_kv, False))
    cons = block.get_submodule(st.attention_output)
    _replace(block, st.attention_output, _select_columns(cons, keep_q, False))
    for name in st.mlp_inputs:
        _replace(block, name, _select_rows(block.get_submodule(name), keep_n, False))
    cons = block.get_submodule(st.mlp_output)
    _replace(block, st.mlp_output, _select_columns(cons, keep_n, False))
    _set_query_groups(block, st, shape.num_heads // shape.num_kv_heads)


# --------------------------------------------------------------------------------------------
# Sparse plus low rank
# --------------------------------------------------------------------------------------------


class FactoredLinear(torch.nn.Module):
    """``y = S x + U (V x) + b``: a sparse (or any) weight ``S`` plus a low-rank ``U V``.

    ``weight`` is S [out, in], ``lowrank_u`` U [out, r], ``lowrank_v`` V [r, in]. The dense
    equivalent is :meth:`dense_weight`.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        lowrank_u: torch.Tensor,
        lowrank_v: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        out_f, in_f = weight.shape
        if lowrank_u.ndim != 2 or lowrank_v.ndim != 2 or lowrank_u.shape[0] != out_f:
            raise LabcoreError(
                f"lowrank_u must be [{out_f}, r] and lowrank_v [r, {in_f}], got "
                f"{tuple(lowrank_u.shape)} and {tuple(lowrank_v.shape)}"
            )
        if lowrank_v.shape != (lowrank_u.shape[1], in_f):
            raise LabcoreError(
                f"lowrank_v must be [{lowrank_u.shape[1]}, {in_f}], got {tuple(lowrank_v.shape)}"
            )
        self.in_features, self.out_features = in_f, out_f
        self.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.lowrank_u = torch.nn.Parameter(lowrank_u.detach().clone(), requires_grad=False)
        self.lowrank_v = torch.nn.Parameter(lowrank_v.detach().clone(), requires_grad=False)
        self.bias = (
            None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        )

    @property
    def rank(self) -> int:
        return int(self.lowrank_u.shape[1])

    def dense_weight(self) -> torch.Tensor:
        return self.weight + self.lowrank_u @ self.lowrank_v

    def to_linear(self, *, dense: bool = True) -> torch.nn.Linear:
        """A plain ``nn.Linear`` (same bias, dtype and device) holding S + U V (``dense``) or
        S alone (the base of a LoRA export)."""
        linear = torch.nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(self.dense_weight() if dense else self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        return f.linear(x, self.weight, self.bias) + f.linear(
            f.linear(x, self.lowrank_v), self.lowrank_u
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


@contextlib.contextmanager
def plain_linear_layers(model: torch.nn.Module, *, dense: bool = True):
    """Swap every :class:`FactoredLinear` of ``model`` for a plain ``nn.Linear`` holding
    S + U V (``dense``) or S alone, for the duration of the block (e.g. to save a
    checkpoint any transformers code loads); yields ``{name: FactoredLinear}``."""
    factored = {n: m for n, m in model.named_modules() if isinstance(m, FactoredLinear)}
    for name, module in factored.items():
        _replace(model, name, module.to_linear(dense=dense))
    try:
        yield factored
    finally:
        for name, module in factored.items():
            _replace(model, name, module)


def install_factored(
    block_or_model: torch.nn.Module,
    name: str,
    sparse: torch.Tensor,
    lowrank_u: torch.Tensor,
    lowrank_v: torch.Tensor,
) -> FactoredLinear:
    """Replace the linear layer ``name`` by a :class:`FactoredLinear` (same bias, dtype and
    device)."""
    old = block_or_model.get_submodule(name)
    dtype, device = old.weight.dtype, old.weight.device
    new = FactoredLinear(
        sparse.to(device, dtype),
        lowrank_u.to(device, dtype),
        lowrank_v.to(device, dtype),
        None if getattr(old, "bias", None) is None else old.bias,
    )
    _replace(block_or_model, name, new)
    return new
