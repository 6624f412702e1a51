"""Time GPTQ and QuantEase on Llama-7B-shaped layers (4096 x 4096, 11008 x 4096, 4096 x 11008).

Random weights and a random correlated Σ from ``sequences x seqlen`` tokens (default
128 x 2048); 3 bits per channel, QuantEase with 30 sweeps (torch backend on CUDA). Prints the
time per layer and an estimate for a whole Llama-7B (32 blocks: 4 attention matrices of
4096 x 4096, gate/up 11008 x 4096, down 4096 x 11008), to compare with the paper's
"Falcon-180B in about 3 hours on one A100". ``--small`` shrinks the shapes for a CPU check.
Run it through ``bench/gpu.sh``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from layerwise.bench import random_hessian
from layerwise.methods.gptq import gptq_quantize
from quantease import QuantEaseConfig, __version__, quantease_quantize
from quantease.core import layer_objective

from labcore.bench import BenchReport, Row, machine_info
from labcore.device import resolve_device

SHAPES = {"attn": (4096, 4096), "mlp_up": (11008, 4096), "mlp_down": (4096, 11008)}
SMALL = {"attn": (256, 256), "mlp_up": (688, 256), "mlp_down": (256, 688)}
PER_BLOCK = {"attn": 4, "mlp_up": 2, "mlp_down": 1}  # matrices of each shape in one block


def _timed(device, fn, *args):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--bits", type=int, default=3)
    p.add_argument("--sweeps", type=int, default=30)
    p.add_argument("--small", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--out", type=Path, default=Path("results") / "quantease-gpu")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    shapes = SMALL if args.small else SHAPES
    tokens = args.sequences * args.seqlen
    cfg = QuantEaseConfig(bits=args.bits, sweeps=args.sweeps, backend="torch")
    report = BenchReport(
        package="quantease",
        version=__version__,
        command="bench/gpu.sh " + " ".join(sys.argv[1:]),
        config={
            "calibration": f"{args.sequences} x {args.seqlen} random correlated tokens",
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "bits": args.bits,
            "sweeps": args.sweeps,
        },
    )
    block_time = {"gptq": 0.0, "quantease": 0.0}
    warm = torch.randn(64, 64, device=device)
    quantease_quantize(warm, warm.T @ warm, cfg)  # kernels, allocator
    for label, (rows, cols) in shapes.items():
        S = random_hessian(cols, tokens, device)
        W = torch.randn(rows, cols, device=device) * 0.02
        (qg, _), t_gptq = _timed(device, gptq_quantize, W, S, cfg.spec)
        (qq, _), t_qe = _timed(device, quantease_quantize, W, S, cfg)
        f_g = layer_objective(W, qg.dequantize(), S)
        f_q = layer_objective(W, qq.dequantize(), S)
        for method, t, f in (("gptq", t_gptq, f_g), ("quantease", t_qe, f_q)):
            block_time[method] += PER_BLOCK[label] * t
            report.add(
                Row(method, {"shape": f"{rows}x{cols}"}, "random layer", 0, {"objective": f}, t)
            )
        print(
            f"{rows}x{cols}: gptq {t_gptq:.2f} s, quantease {t_qe:.2f} s "
            f"(objective ratio {f_q / f_g:.3f})",
            file=sys.stderr,
        )
        del S, W
    for method, t in block_time.items():
        report.add(Row(f"{method}-llama7b-estimate", {"blocks": 32}, "random layer", 0, {}, 32 * t))
    report.write(args.out)
    print(report.to_markdown())
    print(machine_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
