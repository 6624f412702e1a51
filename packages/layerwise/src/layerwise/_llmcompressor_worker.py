"""Run llmcompressor's GPTQ on a checkpoint; used by ``layerwise bench`` as a cross-check.

This file runs as a script under *another* Python (the one that has ``llmcompressor``
installed), because llmcompressor pins torch and transformers versions that differ from our
lock. It imports neither ``layerwise`` nor ``labcore``: it reads the checkpoint directory and a
safetensors file with the calibration ``input_ids`` and ``attention_mask`` (the very windows the
other rows use), quantizes every decoder ``Linear`` with llmcompressor's ``GPTQModifier``, and
writes the fake-quantized (dequantized) linear weights to ``--out`` plus a JSON summary to
stdout. The calling process loads those weights into its own copy of the model and evaluates
perplexity there, so evaluation is identical for every row.

Usage::

    python _llmcompressor_worker.py --model DIR --calibration calib.safetensors \
        --bits 3 [--sym] [--group-size 128] --out weights.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="transformers checkpoint directory")
    p.add_argument(
        "--calibration", required=True, help="safetensors with input_ids, attention_mask"
    )
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--sym", action="store_true", help="symmetric grid (default asymmetric)")
    p.add_argument("--group-size", type=int, default=None, help="default: per output channel")
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--percdamp", type=float, default=0.01)
    p.add_argument("--out", required=True, help="safetensors file for the quantized weights")
    args = p.parse_args(argv)

    import llmcompressor
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calib = load_file(args.calibration)
    ids, mask = calib["input_ids"], calib["attention_mask"]
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": mask.tolist()})

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    weights = QuantizationArgs(
        num_bits=args.bits,
        type="int",
        symmetric=args.sym,
        strategy="group" if args.group_size else "channel",
        group_size=args.group_size,
    )
    scheme = QuantizationScheme(targets=["Linear"], weights=weights)
    recipe = GPTQModifier(
        config_groups={"group_0": scheme},
        ignore=["lm_head"],
        block_size=args.block_size,
        dampening_frac=args.percdamp,
        actorder=None,
    )
    start = time.perf_counter()
    oneshot(
        model=model,
        tokenizer=tokenizer,
        dataset=data,
        recipe=recipe,
        num_calibration_samples=ids.shape[0],
        max_seq_length=ids.shape[1],
        shuffle_calibration_samples=False,
    )
    elapsed = time.perf_counter() - start

    state: dict[str, torch.Tensor] = {}
    max_levels = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head" and ".layers." in name:
            w = module.weight.detach().float().cpu().contiguous()
            # The weight left in the module after oneshot is the fake-quantized one; check it.
            levels = max(len(torch.unique(row)) for row in w[: min(8, w.shape[0])])
            max_levels = max(max_levels, levels)
            state[f"{name}.weight"] = w
    tmp = args.out + ".tmp"
    save_file(state, tmp)
    os.replace(tmp, args.out)
    json.dump(
        {
            "time_s": elapsed,
            "layers": len(state),
            "max_levels_per_row": max_levels,
            "llmcompressor": llmcompressor.__version__,
            "torch": torch.__version__,
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
