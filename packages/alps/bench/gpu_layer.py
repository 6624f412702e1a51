"""Time ALPS and SparseGPT on Llama-7B-shaped layers (4096 x 4096, 11008 x 4096, 4096 x 11008).

Random weights and a random correlated H from ``sequences x seqlen`` tokens (default
128 x 2048), 70% unstructured sparsity by default. Prints the time per layer, the layer
objective, and an estimate for a whole Llama-7B (32 blocks). ``--small`` shrinks the shapes
for a CPU check. Run it through ``bench/gpu.sh``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from alps import ALPSConfig, __version__, alps_prune, layer_objective
from layerwise.bench import (
    LLAMA_7B_LAYERS,
    SMALL_LAYERS,
    solver_report,
    time_layer_solvers,
)
from layerwise.methods.sparsegpt import sparsegpt_prune

from labcore.bench import BenchConfig, machine_info
from labcore.device import resolve_device


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--small", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-gpu")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    cfg = ALPSConfig(sparsity=args.sparsity)
    solvers = {
        "sparsegpt": lambda W, H: sparsegpt_prune(W, H, sparsity=args.sparsity)[0],
        "alps": lambda W, H: alps_prune(W, H, cfg)[0],
    }
    rows, block = time_layer_solvers(
        solvers,
        shapes=SMALL_LAYERS if args.small else LLAMA_7B_LAYERS,
        tokens=args.sequences * args.seqlen,
        device=device,
        objective=layer_objective,
    )
    report = solver_report(
        package="alps",
        version=__version__,
        config={
            "calibration": f"{args.sequences} x {args.seqlen} random correlated tokens",
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "sparsity": args.sparsity,
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
