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

Unstructured sparsity saves neither memory nor time in this dense format: that needs sparse
kernels (e.g. torch's semi-structured 2:4 support on recent GPUs), which this package does not
provide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from labcore import LabcoreError
from labcore.io import atomic_directory
from layerwise.architectures import set_weight
from layerwise.engine import CompressionReport
from layerwise.quant import QuantizedWeight, pack_codes, unpack_codes

FORMAT = "layerwise/1"
SIDECAR = "layerwise.json"
PACKED = "quantized.safetensors"


def save(
    model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    report: CompressionReport | None = None,
    quantized: dict[str, QuantizedWeight] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the compressed model atomically (into a temporary folder, then renamed)."""
    from safetensors.torch import save_file

    from layerwise import __version__

    out = Path(out_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        sidecar = {
            "format": FORMAT,
            "layerwise_version": __version__,
            "model_type": model.config.model_type,
            "quantized": bool(quantized),
            **(report.to_dict() if report is not None else {}),
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


def load(
    path: str | Path, *, device: Any = "cpu", dtype: Any = "float32"
) -> tuple[Any, Any, dict[str, Any]]:
    """Load a saved compressed model: (model, tokenizer, sidecar).

    Quantized layers are rebuilt from their packed integer codes, so the weights equal those
    of the in-memory model that was saved.
    """
    from labcore.models import load_causal_lm

    path = Path(path)
    if not (path / SIDECAR).is_file():
        raise LabcoreError(f"{path} is not a layerwise output directory (no {SIDECAR})")
    sidecar = json.loads((path / SIDECAR).read_text())
    model, tokenizer = load_causal_lm(str(path), dtype=dtype, device=device)
    if (path / PACKED).is_file():
        for name, q in read_quantized(path / PACKED).items():
            set_weight(model.get_submodule(name), q.dequantize())
    return model, tokenizer, sidecar
