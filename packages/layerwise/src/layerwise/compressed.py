"""Export to the compressed-tensors format that vLLM and transformers load as quantized.

The checkpoint is written by the ``compressed-tensors`` library itself (install
``layerwise[export]``): our integer codes, scales and zero points are attached to the model as
its quantization parameters and its ``ModelCompressor`` packs them and writes
``quantization_config`` (``quant_method: compressed-tensors``) into ``config.json``.

What the format holds (compressed-tensors 0.20):

* weight-only integer quantization, 2 to 8 bits, per channel or per group, symmetric or
  asymmetric. Symmetric layers are written ``pack-quantized`` (codes bit-packed into int32:
  ``bits``/32 of a 32-bit word per weight). Asymmetric layers are written ``int-quantized``
  (one int8 per weight) by default: compressed-tensors 0.20 packs asymmetric zero points when
  saving but sizes them unpacked when transformers prepares a model to load, so transformers
  refuses packed asymmetric checkpoints (llm-compressor issues 1618 and 1704). Pass
  ``pack="pack-quantized"`` to pack them anyway for vLLM, which reads its own way.
* The format's values are ``scale · (q − zero_point)`` with signed codes
  ``q ∈ [−2^(b−1), 2^(b−1) − 1]``; ours are unsigned ``[0, 2^b − 1]``, so codes and zero points
  are shifted by ``2^(b−1)``, which is exact.

What it cannot hold, and what happens:

* Activation order with groups (a column's group not ``column // group_size``): the format's
  arbitrary group index (``actorder="group"``) was removed in compressed-tensors 0.15. Refused.
* Full-precision outliers (QuantEase's outlier-aware variant): no tensor for them. Refused, or
  with ``unsupported="dense"`` the layer is written unquantized (its exact merged weight) and
  listed in ``ignore``.
* Sparse-plus-low-rank layers: written as their dense sum ``S + U V`` (every engine computes
  the same function; the factors stay only in our own layout).
* Sparsity: compressed-tensors 0.20 has no sparse compressor (the bitmask and 2:4 compressors
  were removed), so pruned weights are written dense, with their zeros; bytes on disk are
  those of the dense model.
* Blocks of different shapes after structured pruning: transformers and vLLM build every block
  from one config. Refused (a uniform structure exports).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labcore import LabcoreError
from labcore.io import atomic_directory
from layerwise.quant import QuantizedWeight

FORMAT = "compressed-tensors"
PACKS = ("pack-quantized", "int-quantized")


@dataclass
class ExportSummary:
    """What :func:`save_compressed_tensors` wrote."""

    path: Path
    pack: str | None
    quantized_layers: int
    dense_layers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": FORMAT,
            "pack": self.pack,
            "quantized_layers": self.quantized_layers,
            "dense_layers": self.dense_layers,
            "notes": self.notes,
        }


def _require_library():
    try:
        import compressed_tensors  # noqa: F401
    except ImportError:
        raise LabcoreError(
            "exporting to compressed-tensors needs the compressed-tensors library: "
            "pip install 'layerwise[export]'"
        ) from None


def _check_layer(name: str, q: QuantizedWeight) -> None:
    cols = q.codes.shape[1]
    if q.group_size is not None:
        if cols % q.group_size:
            raise LabcoreError(
                f"{name}: {cols} input columns are not a multiple of group_size {q.group_size}; "
                "compressed-tensors needs whole groups"
            )
        static = torch.arange(cols, device=q.g_idx.device) // q.group_size
        if not torch.equal(q.g_idx.long(), static):
            raise LabcoreError(
                f"{name}: activation order with groups (column groups out of order) cannot be "
                "written in compressed-tensors 0.20, which removed arbitrary group indices "
                "(actorder='group'); quantize without act_order, or per channel"
            )
    if not 1 <= q.bits <= 8:
        raise LabcoreError(f"{name}: compressed-tensors holds 1 to 8 bits, not {q.bits}")


def _spec_key(q: QuantizedWeight) -> tuple[int, bool, int | None]:
    return (q.bits, q.sym, q.group_size)


def _check_structure(model: Any) -> None:
    from layerwise.architectures import ARCHITECTURES, get_blocks
    from layerwise.structure import block_shape, model_context

    arch = ARCHITECTURES.get(getattr(model.config, "model_type", None))
    if arch is None or arch.structure is None:
        return
    ctx = model_context(model, arch)
    shapes = {block_shape(b, arch, ctx.head_dim) for b in get_blocks(model, arch)}
    if len(shapes) > 1:
        raise LabcoreError(
            "the blocks of this model have different shapes after structured pruning; "
            "transformers and vLLM build every block from one config, so it cannot be exported "
            "(export a uniform structure, or keep layerwise's own format)"
        )


def save_compressed_tensors(
    model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    quantized: dict[str, QuantizedWeight] | None = None,
    pack: str | None = None,
    unsupported: str = "error",
    dtype: Any = "float32",
    sidecar: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Write ``model`` as a compressed-tensors checkpoint (atomically).

    Parameters
    ----------
    model, tokenizer
        The compressed model (not modified: a copy is packed) and its tokenizer.
    quantized
        Integer codes per full layer name (:func:`layerwise.compress` returns them; a saved
        directory has them in ``quantized.safetensors``). Layers without codes are written as
        they are (dense; pruned zeros included).
    pack
        ``"pack-quantized"`` or ``"int-quantized"``; None chooses pack-quantized when every
        quantized layer is symmetric, else int-quantized (see the module notes).
    unsupported
        ``"error"`` (default) refuses layers the format cannot hold (outliers);
        ``"dense"`` writes them unquantized with their exact weights.
    dtype
        Of the scales and of every unquantized tensor (embeddings, norms, dense layers).
        ``"float32"`` (default) reproduces the in-memory model exactly; ``"float16"`` or
        ``"bfloat16"`` halve those bytes, as served models are, and round the scales (the
        integer codes stay exact).
    sidecar
        Extra facts written to ``layerwise.json`` next to the checkpoint.
    """
    _require_library()
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )

    from layerwise.export import SIDECAR
    from layerwise.structure import plain_linear_layers

    if unsupported not in ("error", "dense"):
        raise LabcoreError(f"unsupported must be 'error' or 'dense', got {unsupported!r}")
    if pack is not None and pack not in PACKS:
        raise LabcoreError(f"pack must be one of {', '.join(PACKS)}, got {pack!r}")
    _check_structure(model)
    quantized = dict(quantized or {})
    notes: list[str] = []
    dense_layers: list[str] = []
    for name, q in list(quantized.items()):
        if q.outliers is not None and q.outlier_count:
            if unsupported == "error":
                raise LabcoreError(
                    f"{name}: {q.outlier_count} full-precision outliers cannot be written in "
                    "compressed-tensors (no tensor for them); pass unsupported='dense' "
                    "(--unsupported dense) to write such layers unquantized"
                )
            dense_layers.append(name)
            del quantized[name]
            continue
        _check_layer(name, q)
    if dense_layers:
        notes.append(
            f"{len(dense_layers)} layer(s) with outliers written unquantized (merged weight)"
        )
    all_sym = all(q.sym for q in quantized.values())
    chosen = pack or ("pack-quantized" if all_sym else "int-quantized")
    if chosen == "pack-quantized" and not all_sym:
        notes.append(
            "asymmetric layers packed: vLLM reads them; transformers with compressed-tensors "
            "0.20 cannot (it sizes packed asymmetric zero points wrongly when loading)"
        )

    from labcore.models import _resolve_dtype

    work = copy.deepcopy(model).to(_resolve_dtype(dtype))
    with plain_linear_layers(work, dense=True) as factored:
        if factored:
            notes.append(
                f"{len(factored)} sparse-plus-low-rank layer(s) written as their dense sum S + U V"
            )
        for name in quantized:
            try:
                module = work.get_submodule(name)
            except AttributeError:
                raise LabcoreError(f"quantized layer {name} is not in the model") from None
            if not isinstance(module, torch.nn.Linear):
                raise LabcoreError(
                    f"{name}: compressed-tensors quantizes torch.nn.Linear layers, not "
                    f"{type(module).__name__} (e.g. GPT-2's Conv1D)"
                )
        groups: dict[tuple, list[str]] = {}
        for name, q in quantized.items():
            groups.setdefault(_spec_key(q), []).append(name)
        summary = ExportSummary(Path(out_dir), chosen if quantized else None, len(quantized))
        summary.dense_layers, summary.notes = dense_layers, notes
        with atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
            compressor = None
            if quantized:
                config = QuantizationConfig(
                    config_groups={
                        f"group_{i}": QuantizationScheme(
                            targets=names,
                            weights=QuantizationArgs(
                                num_bits=bits,
                                type="int",
                                symmetric=sym,
                                strategy="channel" if group_size is None else "group",
                                group_size=group_size,
                            ),
                        )
                        for i, ((bits, sym, group_size), names) in enumerate(groups.items())
                    },
                    format=chosen,
                    quantization_status="frozen",
                )
                apply_quantization_config(work, config)
                for name, q in quantized.items():
                    _attach(work.get_submodule(name), q)
                compressor = ModelCompressor.from_pretrained_model(work, quantization_format=chosen)
                compressor.compress_model(work)
            work.save_pretrained(tmp)
            if compressor is not None:
                compressor.update_config(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            facts = {
                "format": FORMAT,
                "export": summary.to_dict() | {"path": None},
                **(sidecar or {}),
            }
            (tmp / SIDECAR).write_text(json.dumps(facts, indent=2, default=str) + "\n")
    return summary


def _attach(module: torch.nn.Module, q: QuantizedWeight) -> None:
    """Our grid as the module's compressed-tensors parameters (signed codes: shift 2^(b−1))."""
    half = 2 ** (q.bits - 1)
    with torch.no_grad():
        module.weight.copy_(q.dequantize().to(module.weight.device, module.weight.dtype))
        scale = q.scales.to(module.weight_scale.device, module.weight_scale.dtype)
        module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
        if hasattr(module, "weight_zero_point"):
            zp = (q.zeros - half).round().reshape(module.weight_zero_point.shape)
            module.weight_zero_point.copy_(zp.to(module.weight_zero_point.dtype))
        elif not torch.all(q.zeros == half):
            raise LabcoreError("a symmetric layer's zero points must sit at 2^(bits-1)")


def disk_bytes(path: str | Path, patterns: Iterable[str] = ("*.safetensors",)) -> int:
    """Bytes of the weight files in a checkpoint folder."""
    path = Path(path)
    return sum(f.stat().st_size for p in patterns for f in path.glob(p))
