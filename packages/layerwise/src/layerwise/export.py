"""Saving and loading compressed models.

A saved directory holds

* a normal transformers checkpoint (``config.json``, ``model.safetensors``, tokenizer files):
  dense weights, with zeros at pruned entries and de-quantized values for quantized layers,
  so any transformers code loads it;
* ``layerwise.json``: the method, its config, the calibration sizes and the per-layer report
  (relative error, sparsity, damping used);
* for quantization methods, ``quantized.safetensors`` in our packed layout, per layer
  ``<name>``:

  ============== ======= ==================================================================
  key            dtype   contents
  ============== ======= ==================================================================
  <name>.qcodes  uint8   [out, ceil(in·bits/8)]: codes bit-packed row by row, ``bits`` bits
                         per code, least significant bit first
  <name>.scales  float32 [out, groups]
  <name>.zeros   float32 [out, groups]: integral zero points
  <name>.g_idx   int32   [in]: the group of each input column (act-order permutes it)
  <name>.outlier_index int64 [k]: only for outlier-aware methods: flat (row-major) positions
                         of the full-precision outliers
  <name>.outlier_values float32 [k]: their values, added to the grid values
  ============== ======= ==================================================================

  The safetensors metadata entry ``layerwise`` is JSON with ``format`` and, per layer,
  ``bits``, ``sym``, ``group_size``, ``in_features`` and ``outliers`` (k). A weight reads back
  as ``scales[:, g_idx] * (codes - zeros[:, g_idx])`` plus the outliers at their positions;
  :func:`load` rebuilds the quantized layers from it exactly.

* after structured pruning, per-block shapes: when every block kept the same number of heads,
  K/V heads and neurons, ``config.json`` says so (``num_attention_heads``,
  ``num_key_value_heads``, ``head_dim``, ``intermediate_size``) and plain
  ``from_pretrained`` loads the smaller model; otherwise the config keeps the original
  geometry, ``layerwise.json`` holds ``structure`` (``head_dim`` and per block
  ``num_heads``, ``num_kv_heads``, ``intermediate_size``), plain ``from_pretrained`` refuses
  the shapes and :func:`load` rebuilds the blocks;
* ``extras.safetensors``: the named extra tensors of the layers' results, keys
  ``<layer>.<extra>``. Sparse-plus-low-rank layers (:class:`~layerwise.structure.FactoredLinear`)
  are saved in ``model.safetensors`` as their dense sum ``S + U V`` (any transformers code
  computes the same function) and here as ``<layer>.sparse``, ``<layer>.lowrank_u``,
  ``<layer>.lowrank_v``, from which :func:`load` rebuilds the factored layers exactly.

Unstructured sparsity saves neither memory nor time in this dense format: that needs sparse
kernels (e.g. torch's semi-structured 2:4 support on recent GPUs), which this package does not
provide. Structured pruning does: the saved model is smaller and faster everywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from labcore import LabcoreError
from labcore.io import atomic_directory
from layerwise.architectures import ARCHITECTURES, get_blocks, set_weight
from layerwise.engine import CompressionReport
from layerwise.quant import QuantizedWeight, pack_codes, unpack_codes
from layerwise.structure import (
    LOWRANK_U,
    LOWRANK_V,
    BlockShape,
    block_shape,
    install_factored,
    model_context,
    plain_linear_layers,
    shrink_block_to,
)

FORMAT = "layerwise/1"
SIDECAR = "layerwise.json"
PACKED = "quantized.safetensors"
EXTRAS = "extras.safetensors"
SPARSE = "sparse"  # the S of a factored layer in EXTRAS


def _record_structure(model: Any) -> dict[str, Any] | None:
    """Per-block shapes of a structurally pruned llama-like model (None when unchanged).

    A uniform result is written into the model's config (so plain ``from_pretrained`` loads
    it); a non-uniform one is returned for the sidecar."""
    arch = ARCHITECTURES.get(getattr(model.config, "model_type", None))
    if arch is None or arch.structure is None:
        return None
    ctx = model_context(model, arch)
    stock = BlockShape(ctx.num_heads, ctx.num_kv_heads, ctx.intermediate_size)
    shapes = [block_shape(b, arch, ctx.head_dim) for b in get_blocks(model, arch)]
    if all(shape == stock for shape in shapes):
        return None
    if len(set(shapes)) == 1:
        cfg = model.config
        cfg.num_attention_heads = shapes[0].num_heads
        cfg.num_key_value_heads = shapes[0].num_kv_heads
        cfg.intermediate_size = shapes[0].intermediate_size
        cfg.head_dim = ctx.head_dim  # no longer hidden_size // num_attention_heads
        return {"uniform": True, "head_dim": ctx.head_dim, "blocks": [asdict(shapes[0])]}
    return {"uniform": False, "head_dim": ctx.head_dim, "blocks": [asdict(s) for s in shapes]}


def save(
    model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    report: CompressionReport | None = None,
    quantized: dict[str, QuantizedWeight] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    format: str = "layerwise",
    **export_options: Any,
) -> Path:
    """Write the compressed model atomically (into a temporary folder, then renamed).

    ``format="layerwise"`` (default) writes this package's lossless layout (below);
    ``format="compressed-tensors"`` writes the checkpoint vLLM and transformers load as
    quantized (:func:`layerwise.compressed.save_compressed_tensors`, which takes
    ``export_options``: ``pack``, ``unsupported``, ``dtype``).
    """
    from safetensors.torch import save_file

    from layerwise import __version__

    if format == "compressed-tensors":
        from layerwise.compressed import save_compressed_tensors

        facts = {
            "layerwise_version": __version__,
            "model_type": model.config.model_type,
            **(report.to_dict() if report is not None else {}),
            **(extra or {}),
        }
        return save_compressed_tensors(
            model,
            tokenizer,
            out_dir,
            quantized=quantized,
            sidecar=facts,
            overwrite=overwrite,
            **export_options,
        ).path
    if format != "layerwise":
        raise LabcoreError(f"format must be 'layerwise' or 'compressed-tensors', got {format!r}")
    if export_options:
        raise LabcoreError(
            f"options {sorted(export_options)} apply to format='compressed-tensors' only"
        )

    out = Path(out_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        structure = _record_structure(model)
        extras: dict[str, torch.Tensor] = {}
        for layer, tensors in (report.extras if report is not None else {}).items():
            for key, value in tensors.items():
                extras[f"{layer}.{key}"] = value.detach().float().cpu().contiguous()
        with plain_linear_layers(model, dense=True) as factored:
            model.save_pretrained(tmp)
        for layer, module in factored.items():
            extras[f"{layer}.{SPARSE}"] = module.weight.detach().float().cpu().contiguous()
            extras[f"{layer}.{LOWRANK_U}"] = module.lowrank_u.detach().float().cpu().contiguous()
            extras[f"{layer}.{LOWRANK_V}"] = module.lowrank_v.detach().float().cpu().contiguous()
        if extras:
            save_file(extras, str(tmp / EXTRAS), metadata={"format": FORMAT})
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        sidecar = {
            "format": FORMAT,
            "layerwise_version": __version__,
            "model_type": model.config.model_type,
            "quantized": bool(quantized),
            **(report.to_dict() if report is not None else {}),
            **({"block_structure": structure} if structure is not None else {}),
            **({"factored_layers": sorted(factored)} if factored else {}),
            **(extra or {}),
        }
        if quantized:
            tensors, layers = {}, {}
            for name, q in quantized.items():
                tensors[f"{name}.qcodes"] = pack_codes(q.codes, q.bits).contiguous()
                tensors[f"{name}.scales"] = q.scales.float().contiguous()
                tensors[f"{name}.zeros"] = q.zeros.float().contiguous()
                tensors[f"{name}.g_idx"] = q.g_idx.to(torch.int32).contiguous()
                layers[name] = {
                    "bits": q.bits,
                    "sym": q.sym,
                    "group_size": q.group_size,
                    "in_features": int(q.codes.shape[1]),
                    "outliers": q.outlier_count,
                }
                if q.outliers is not None:
                    flat = q.outliers.float().reshape(-1)
                    index = torch.nonzero(flat).reshape(-1)
                    tensors[f"{name}.outlier_index"] = index.to(torch.int64).cpu().contiguous()
                    tensors[f"{name}.outlier_values"] = flat[index].cpu().contiguous()
            meta = {"format": FORMAT, "layers": layers}
            save_file(tensors, str(tmp / PACKED), metadata={"layerwise": json.dumps(meta)})
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return out


def read_quantized(path: str | Path) -> dict[str, QuantizedWeight]:
    """Read ``quantized.safetensors`` back into :class:`QuantizedWeight` objects."""
    from safetensors import safe_open

    path = Path(path)
    out: dict[str, QuantizedWeight] = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("layerwise", "{}"))
        if meta.get("format") != FORMAT:
            raise LabcoreError(
                f"{path}: not a {FORMAT} packed file (format {meta.get('format')!r})"
            )
        for name, m in meta["layers"].items():
            codes = unpack_codes(fh.get_tensor(f"{name}.qcodes"), m["bits"], m["in_features"])
            outliers = None
            if m.get("outliers"):
                outliers = torch.zeros(codes.numel())
                outliers[fh.get_tensor(f"{name}.outlier_index")] = fh.get_tensor(
                    f"{name}.outlier_values"
                )
                outliers = outliers.reshape(codes.shape)
            out[name] = QuantizedWeight(
                codes,
                fh.get_tensor(f"{name}.scales"),
                fh.get_tensor(f"{name}.zeros"),
                fh.get_tensor(f"{name}.g_idx"),
                m["bits"],
                m["sym"],
                m["group_size"],
                outliers,
            )
    return out


def read_extras(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """``extras.safetensors`` of a saved directory (or the file) as ``{layer: {name: tensor}}``."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / EXTRAS
    if not path.is_file():
        return {}
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(path)).items():
        layer, _, name = key.rpartition(".")
        out.setdefault(layer, {})[name] = value
    return out


def _load_restructured(path: Path, structure: dict[str, Any], dtype: Any, device: Any):
    """Build the model from its config, give each block its saved shapes, load the weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from labcore.device import resolve_device
    from labcore.models import _resolve_dtype
    from layerwise.architectures import architecture_of

    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_config(config, dtype=_resolve_dtype(dtype))
    arch = architecture_of(model)
    blocks = get_blocks(model, arch)
    shapes = structure.get("blocks") or []
    if len(shapes) != len(blocks):
        raise LabcoreError(
            f"{path}/{SIDECAR}: structure lists {len(shapes)} blocks, the model has {len(blocks)}"
        )
    for block, shape in zip(blocks, shapes, strict=True):
        shrink_block_to(block, arch, BlockShape(**shape), int(structure["head_dim"]))
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        if file.name not in (PACKED, EXTRAS):
            state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise LabcoreError(
            f"{path}: the weights do not fit the saved structure (missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(unexpected)[:4]})"
        )
    if tied:
        model.tie_weights()
    model.to(resolve_device(device)).eval()
    return model, AutoTokenizer.from_pretrained(path)


def load(
    path: str | Path, *, device: Any = "cpu", dtype: Any = "float32", factored: bool = True
) -> tuple[Any, Any, dict[str, Any]]:
    """Load a saved compressed model: (model, tokenizer, sidecar).

    Quantized layers are rebuilt from their packed integer codes, so the weights equal those
    of the in-memory model that was saved; blocks of a non-uniform structured result get
    their saved shapes; sparse-plus-low-rank layers become
    :class:`~layerwise.structure.FactoredLinear` again (``factored=False`` keeps the dense
    ``S + U V`` of ``model.safetensors``).
    """
    from labcore.models import load_causal_lm

    path = Path(path)
    if not (path / SIDECAR).is_file():
        raise LabcoreError(f"{path} is not a layerwise output directory (no {SIDECAR})")
    sidecar = json.loads((path / SIDECAR).read_text())
    structure = sidecar.get("block_structure")
    if structure is not None and not structure.get("uniform", True):
        model, tokenizer = _load_restructured(path, structure, dtype, device)
    else:
        model, tokenizer = load_causal_lm(str(path), dtype=dtype, device=device)
    if (path / PACKED).is_file():
        for name, q in read_quantized(path / PACKED).items():
            set_weight(model.get_submodule(name), q.dequantize())
    if factored:
        for layer, tensors in read_extras(path).items():
            if SPARSE in tensors and LOWRANK_U in tensors and LOWRANK_V in tensors:
                install_factored(
                    model, layer, tensors[SPARSE], tensors[LOWRANK_U], tensors[LOWRANK_V]
                )
    return model, tokenizer, sidecar
