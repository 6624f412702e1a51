"""Time GPTQ and SparseGPT on one Llama-7B-shaped decoder block with random weights.

Two measurements per method, both on the chosen device (CUDA by default):

* ``engine``: the whole layer-wise engine on a one-block LlamaForCausalLM (hidden 4096,
  MLP 11008, 32 heads), calibrated on ``sequences x seqlen`` random tokens (default
  128 x 2048): capture, statistics, the seven solves in true-sequential order, propagation.
* ``solver``: the solver alone (``gptq_quantize`` / ``sparsegpt_prune``) on the seven weight
  matrices of the block against a fixed Hessian, summed, after one warm-up call.

Random weights make the perplexity meaningless but the timing is the same as for a real
7B block, which is what this script is for. ``--small`` shrinks everything so the script can
be checked on a CPU. Run it through ``bench/gpu.sh``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from layerwise import __version__
from layerwise.bench import random_hessian
from layerwise.calibration import Calibration
from layerwise.engine import compress
from layerwise.methods import GPTQConfig, SparseGPTConfig
from layerwise.methods.gptq import gptq_quantize
from layerwise.methods.sparsegpt import sparsegpt_prune
from layerwise.quant import QuantSpec

from labcore.bench import BenchConfig, BenchReport, Row, machine_info
from labcore.device import MemoryMonitor, resolve_device, seed_everything

LLAMA_7B = {"hidden": 4096, "mlp": 11008, "heads": 32}
SMALL = {"hidden": 256, "mlp": 688, "heads": 4}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_block_llama(shape: dict[str, int], vocab: int = 1024):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape["hidden"],
        intermediate_size=shape["mlp"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        num_hidden_layers=1,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    return model


def block_shapes(shape: dict[str, int]) -> list[tuple[str, int, int]]:
    h, m = shape["hidden"], shape["mlp"]
    return [
        ("q_proj", h, h),
        ("k_proj", h, h),
        ("v_proj", h, h),
        ("o_proj", h, h),
        ("gate_proj", m, h),
        ("up_proj", m, h),
        ("down_proj", h, m),
    ]


def time_engine(config, shape, sequences, seqlen, device, seed) -> tuple[float, dict]:
    seed_everything(seed)
    model = one_block_llama(shape)
    ids = torch.randint(0, model.config.vocab_size, (sequences, seqlen))
    cal = Calibration(ids, torch.ones_like(ids))
    _sync(device)
    with MemoryMonitor() as mem:
        start = time.perf_counter()
        report, _ = compress(model, config, cal, device=device, batch_size=8, progress=False)
        _sync(device)
        elapsed = time.perf_counter() - start
    return elapsed, {
        "mean_rel_error": report.mean_rel_error,
        "damping_increases": report.damping_increases,
        "peak_rss_gib": mem.peak_rss_gib,
        **({"peak_cuda_gib": mem.peak_cuda_gib} if mem.peak_cuda_gib is not None else {}),
    }


def time_solver(method: str, shape, tokens, device) -> float:
    hessians = {d: random_hessian(d, tokens, device) for d in {shape["hidden"], shape["mlp"]}}
    spec = QuantSpec(bits=4)

    def solve(rows: int, cols: int) -> None:
        W = torch.randn(rows, cols, device=device) * 0.02
        if method == "gptq":
            gptq_quantize(W, hessians[cols], spec)
        else:
            sparsegpt_prune(W, hessians[cols], sparsity=0.5)

    solve(*block_shapes(shape)[0][1:])  # warm-up: kernels, allocator
    _sync(device)
    total = 0.0
    for _, rows, cols in block_shapes(shape):
        start = time.perf_counter()
        solve(rows, cols)
        _sync(device)
        total += time.perf_counter() - start
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--small", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-gpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    shape = SMALL if args.small else LLAMA_7B
    tokens = args.sequences * args.seqlen
    report = BenchReport(
        package="layerwise",
        version=__version__,
        command="bench/gpu.sh " + " ".join(sys.argv[1:]),
        config={
            "block": f"llama, hidden {shape['hidden']}, mlp {shape['mlp']}, random weights",
            "calibration": f"{args.sequences} x {args.seqlen} random tokens",
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    )
    configs = {"gptq": GPTQConfig(bits=4), "sparsegpt": SparseGPTConfig(sparsity=0.5)}
    for method, config in configs.items():
        params = {"bits": 4} if method == "gptq" else {"sparsity": 0.5}
        elapsed, metrics = time_engine(
            config, shape, args.sequences, args.seqlen, device, args.seed
        )
        report.add(Row(f"{method}-engine", params, "random block", args.seed, metrics, elapsed))
        print(f"{method} engine: {elapsed:.2f} s {metrics}", file=sys.stderr)
        solver_s = time_solver(method, shape, tokens, device)
        report.add(Row(f"{method}-solver", params, "random block", args.seed, {}, solver_s))
        print(f"{method} solver (7 layers): {solver_s:.2f} s", file=sys.stderr)
    report.stamp(
        BenchConfig(quick=args.small, seeds=(args.seed,), device=str(device), out=args.out)
    )
    report.write(args.out)
    print(report.to_markdown())
    print(machine_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
