"""The low-rank part as a PEFT LoRA adapter over the sparse checkpoint.

:func:`save_peft` writes two folders:

* ``base/``: a plain transformers checkpoint whose decomposed layers hold only S (zeros at
  the pruned entries), loadable by any transformers code;
* ``adapter/``: a PEFT LoRA adapter (``adapter_config.json`` and
  ``adapter_model.safetensors``) with ``lora_B = U`` and ``lora_A = V`` on exactly the
  decomposed layers, ``lora_alpha = r`` so the scaling α/r is 1 (per-layer ranks go into
  ``rank_pattern`` / ``alpha_pattern``).

``PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("base"), "adapter")`` then
computes S x + U V x, and ``merge_and_unload()`` gives the dense S + U V. Engines that serve
LoRA adapters over a base model run the pair (vLLM: ``--enable-lora`` with
``--max-lora-rank`` at least the rank, whose default 16 is below this package's 32). Speed:
S is stored dense with zeros; a 2:4 S runs faster only through 2:4 kernels (e.g. torch's
``to_sparse_semi_structured`` on NVIDIA Ampere or newer), and the rank-r branch adds two thin
matmuls per layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from layerwise.structure import plain_linear_layers

from labcore import LabcoreError
from labcore.io import atomic_directory

BASE = "base"
ADAPTER = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def save_peft(model: Any, tokenizer: Any, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``out_dir/base`` (S only) and ``out_dir/adapter`` (L as LoRA), atomically.

    ``model`` holds :class:`~layerwise.structure.FactoredLinear` layers (after
    :func:`hasslefree.compress`, or from ``layerwise.load(path)``); it is left as it was
    (its layers are swapped for plain ones only while the base is written, in its own dtype).
    The adapter's ``base_model_name_or_path`` is the absolute path of ``out_dir/base``, so
    tools that load the base from the adapter config get S, not the dense model.

    Examples
    --------
    >>> import tempfile, torch
    >>> from labcore.models import tiny_causal_lm
    >>> from layerwise import Calibration
    >>> from hasslefree import HassleFreeConfig, compress, load_peft, save_peft
    >>> model, tok = tiny_causal_lm("llama")
    >>> cal = Calibration(torch.randint(3, len(tok), (4, 32)), None)
    >>> _ = compress(model, cal, HassleFreeConfig(rank=4), device="cpu", progress=False)
    >>> out = save_peft(model, tok, tempfile.mkdtemp() + "/peft")
    >>> peft_model = load_peft(out)
    >>> ids = torch.randint(3, len(tok), (1, 8))
    >>> bool(torch.allclose(peft_model(ids).logits, model(ids).logits, atol=1e-5))
    True
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    out = Path(out_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with plain_linear_layers(model, dense=False) as factored:
            if not factored:
                raise LabcoreError(
                    "the model has no sparse-plus-low-rank layers (FactoredLinear): decompose "
                    "it with hasslefree.compress or load a saved output with layerwise.load"
                )
            model.save_pretrained(tmp / BASE)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / BASE)
        ranks = {name: module.rank for name, module in factored.items()}
        top = max(ranks.values())
        pattern = {name: r for name, r in ranks.items() if r != top}
        lora = LoraConfig(
            r=top,
            lora_alpha=top,  # scaling α/r = 1 in every layer: B A is exactly U V
            target_modules=sorted(factored),
            rank_pattern=pattern,
            alpha_pattern=pattern,
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            base_model_name_or_path=str((out / BASE).resolve()),
        )
        lora.save_pretrained(str(tmp / ADAPTER))
        tensors = {}
        for name, module in factored.items():
            key = f"base_model.model.{name}"
            tensors[f"{key}.lora_A.weight"] = module.lowrank_v.detach().float().cpu().contiguous()
            tensors[f"{key}.lora_B.weight"] = module.lowrank_u.detach().float().cpu().contiguous()
        save_file(tensors, str(tmp / ADAPTER / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return out


def load_peft(path: str | Path, *, device: Any = "cpu", merge: bool = False) -> Any:
    """Load ``path/base`` with the LoRA adapter ``path/adapter`` (a ``PeftModel``), in eval
    mode; ``merge=True`` returns the plain transformers model with S + U V merged in."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = Path(path)
    for part in (BASE, ADAPTER):
        if not (path / part).is_dir():
            raise LabcoreError(f"{path} is not a hasslefree PEFT export (no {part}/ folder)")
    base = AutoModelForCausalLM.from_pretrained(path / BASE, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, path / ADAPTER)
    if merge:
        model = model.merge_and_unload()
    return model.to(device).eval()
