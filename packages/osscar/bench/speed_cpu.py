"""CPU speed of SmolLM2-135M shrunk to the bench's shapes, measured interleaved with the dense
model (dense, shrunk, dense, shrunk, ...) so that a slow spell of a shared machine hits both.

Which heads and neurons go does not change the speed, so the shapes are made with the
engine's structural edit directly (no calibration). Prints the median ratios over ``--rounds``.

    uv run python bench/speed_cpu.py
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from layerwise.architectures import architecture_of, get_blocks
from layerwise.evaluate import measure_speed
from layerwise.structure import head_group_columns, model_context, remove_structures

from labcore.models import load_causal_lm


def shrink(model, mlp: float, heads: float, unit: str) -> None:
    arch = architecture_of(model)
    ctx = model_context(model, arch)
    st = arch.structure
    keep_neurons = ctx.intermediate_size - round(mlp * ctx.intermediate_size)
    for block in get_blocks(model, arch):
        if heads > 0 and unit == "kv-group":
            keep = ctx.num_kv_heads - round(heads * ctx.num_kv_heads)
            cols = head_group_columns(
                range(keep), head_dim=ctx.head_dim, heads_per_group=ctx.heads_per_group
            )
            remove_structures(block, arch, st.attention_output, cols, head_dim=ctx.head_dim)
        elif heads > 0:
            per = ctx.heads_per_group - round(heads * ctx.heads_per_group)
            kept = [
                g * ctx.heads_per_group + i for g in range(ctx.num_kv_heads) for i in range(per)
            ]
            cols = head_group_columns(kept, head_dim=ctx.head_dim, heads_per_group=1)
            remove_structures(block, arch, st.attention_output, cols, head_dim=ctx.head_dim)
        remove_structures(block, arch, st.mlp_output, torch.arange(keep_neurons), head_dim=None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    dense, _ = load_causal_lm("smollm2-135m", device="cpu")
    settings = [(m, h, "kv-group") for h in (0.0, 0.33) for m in (0.2, 0.3, 0.5)]
    settings.append((0.3, 0.33, "query"))
    print("| MLP removed | heads removed | params | prefill latency | decode tokens/s |")
    print("|---|---|---|---|---|")
    for mlp, heads, unit in settings:
        model = copy.deepcopy(dense)
        shrink(model, mlp, heads, unit)
        lat, tps = [], []
        for _ in range(args.rounds):
            d = measure_speed(dense, repeats=3)
            s = measure_speed(model, repeats=3)
            lat.append(s["latency_ms"] / d["latency_ms"])
            tps.append(s["tokens_per_s"] / d["tokens_per_s"])
        what = "0" if heads == 0 else f"{heads:.0%} ({unit})"
        print(
            f"| {mlp:.0%} | {what} | {s['params'] / d['params']:.3f} | "
            f"{statistics.median(lat):.2f} | {statistics.median(tps):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
