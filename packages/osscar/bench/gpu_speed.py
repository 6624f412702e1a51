"""Speed of a shrunk Llama-7B-shaped model against the dense one (random weights).

Builds a Llama with the geometry of Llama-2-7B (hidden 4096, 32 heads, MLP 11008; ``--layers``
blocks, default 8, so that dense and shrunk fit one GPU together), removes ``--head-sparsity``
of the K/V head groups and ``--mlp-sparsity`` of the neurons of every block through the
layerwise engine's structural edit (the same code that shrinks OSSCAR's results; which heads
and neurons go does not change the speed), and measures prefill latency and greedy decoding
tokens/s of both with ``layerwise.evaluate.measure_speed``. ``--small --device cpu`` checks
the script without a GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from layerwise.evaluate import measure_speed
from osscar import __version__
from speed_cpu import shrink  # the same structural edit as the CPU speed table (bench/)

from labcore.bench import BenchConfig, BenchReport, Row, machine_info
from labcore.device import resolve_device


def build(small: bool, layers: int, dtype: torch.dtype, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    geometry = (
        {"hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 8,
         "intermediate_size": 688}
        if small
        else {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 32,
              "intermediate_size": 11008}
    )  # fmt: skip
    config = LlamaConfig(vocab_size=32000, num_hidden_layers=layers, **geometry)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--head-sparsity", type=float, default=0.25)
    p.add_argument("--mlp-sparsity", type=float, default=0.3)
    p.add_argument("--prompt-tokens", type=int, default=2048)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--small", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-gpu")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    prompt = 64 if args.small else args.prompt_tokens
    new = 8 if args.small else args.new_tokens
    report = BenchReport(
        package="osscar",
        version=__version__,
        config={
            "model": f"Llama-7B-shaped, {args.layers} blocks, random weights, {dtype}",
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "prompt_tokens": prompt,
            "new_tokens": new,
        },
        command="bench/gpu.sh " + " ".join(sys.argv[1:]),
    )
    model = build(args.small, args.layers, dtype, device)
    dense = measure_speed(model, prompt_tokens=prompt, new_tokens=new, repeats=5)
    report.add(Row("dense", {}, "random", 0, dense, 0.0))
    shrink(model, args.mlp_sparsity, args.head_sparsity, "kv-group")
    shrunk = measure_speed(model, prompt_tokens=prompt, new_tokens=new, repeats=5)
    shrunk |= {
        "params_ratio": shrunk["params"] / dense["params"],
        "prefill_speedup": dense["latency_ms"] / shrunk["latency_ms"],
        "decode_speedup": shrunk["tokens_per_s"] / dense["tokens_per_s"],
    }
    params = {"head_sparsity": args.head_sparsity, "mlp_sparsity": args.mlp_sparsity}
    report.add(Row("shrunk", params, "random", 0, shrunk, 0.0))
    report.stamp(BenchConfig(quick=args.small, device=str(device), out=args.out))
    report.write(args.out)
    print(report.to_markdown())
    print(machine_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
