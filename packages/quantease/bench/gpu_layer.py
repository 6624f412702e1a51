"""Time GPTQ and QuantEase on Llama-7B-shaped layers (4096 x 4096, 11008 x 4096, 4096 x 11008).

Random weights and a random correlated Σ from ``sequences x seqlen`` tokens (default
128 x 2048); 3 bits per channel, QuantEase with 30 sweeps (torch backend on CUDA). Prints the
time per layer and an estimate for a whole Llama-7B (32 blocks), to compare with the paper's
"Falcon-180B in about 3 hours on one A100". ``--small`` shrinks the shapes for a CPU check.
Run it through ``bench/gpu.sh``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from layerwise.bench import (
    LLAMA_7B_LAYERS,
    SMALL_LAYERS,
    solver_report,
    time_layer_solvers,
)
from layerwise.methods.gptq import gptq_quantize
from quantease import QuantEaseConfig, __version__, quantease_quantize
from quantease.core import layer_objective

from labcore.bench import BenchConfig, machine_info
from labcore.device import resolve_device


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--bits", type=int, default=3)
    p.add_argument("--sweeps", type=int, default=30)
    p.add_argument("--small", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-gpu")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    cfg = QuantEaseConfig(bits=args.bits, sweeps=args.sweeps, backend="torch")
    solvers = {
        "gptq": lambda W, H: gptq_quantize(W, H, cfg.spec)[0].dequantize(),
        "quantease": lambda W, H: quantease_quantize(W, H, cfg)[0].dequantize(),
    }
    rows, block = time_layer_solvers(
        solvers,
        shapes=SMALL_LAYERS if args.small else LLAMA_7B_LAYERS,
        tokens=args.sequences * args.seqlen,
        device=device,
        objective=layer_objective,
    )
    report = solver_report(
        package="quantease",
        version=__version__,
        config={
            "calibration": f"{args.sequences} x {args.seqlen} random correlated tokens",
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "bits": args.bits,
            "sweeps": args.sweeps,
        },
        rows=rows,
        block=block,
        command="bench/gpu.sh " + " ".join(sys.argv[1:]),
    )
    report.stamp(BenchConfig(quick=args.small, device=str(device), out=args.out))
    report.write(args.out)
    print(report.to_markdown())
    print(machine_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
