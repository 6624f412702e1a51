"""Bytes on disk and reload fidelity of the compressed-tensors export, on a real model.

For each method the model is compressed once (BBC train windows), then saved in our layout
and exported to compressed-tensors with float32 and with float16 scales and unquantized parts;
each export is loaded by plain transformers (compressed-tensors installed), its logits on the
first evaluation window are compared with the in-memory model's, and its BBC-test perplexity
is measured again. The dense model saved in float16 is the size reference.

    uv run python packages/layerwise/bench/export_table.py --out packages/layerwise/bench/results-export

It writes results.json, results.md and summary.md into --out (the shared bench format).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


def _resident(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def main(argv: list[str] | None = None) -> int:
    from layerwise import (
        Calibration,
        GPTQConfig,
        RTNConfig,
        SparseGPTConfig,
        __version__,
        compress,
        save,
    )
    from layerwise.compressed import disk_bytes
    from layerwise.evaluate import evaluate_perplexity
    from transformers import AutoModelForCausalLM

    from labcore.bench import BenchConfig, BenchReport, Row, provenance
    from labcore.data import evaluation_windows, load_corpus
    from labcore.device import seed_everything
    from labcore.models import load_causal_lm
    from labcore.progress import status

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", type=Path, default=Path("bench/results-export"))
    p.add_argument("--calib-windows", type=int, default=16)
    p.add_argument("--eval-windows", type=int, default=32)
    p.add_argument("--seqlen", type=int, default=256)
    p.add_argument("--only", default=None, help="comma-separated row labels")
    args = p.parse_args(argv)

    rows = [
        ("gptq", {"bits": 4, "group": "channel", "sym": True}, GPTQConfig(bits=4, sym=True)),
        ("gptq", {"bits": 4, "group": "channel", "sym": False}, GPTQConfig(bits=4)),
        (
            "gptq",
            {"bits": 4, "group": 32, "sym": True},
            GPTQConfig(bits=4, group_size=32, sym=True),
        ),
        ("gptq", {"bits": 3, "group": "channel", "sym": True}, GPTQConfig(bits=3, sym=True)),
        ("rtn", {"bits": 8, "group": "channel", "sym": True}, RTNConfig(bits=8, sym=True)),
        ("sparsegpt", {"sparsity": "2:4"}, SparseGPTConfig(nm="2:4")),
        ("sparsegpt", {"sparsity": 0.5}, SparseGPTConfig(sparsity=0.5)),
    ]
    only = set(args.only.split(",")) if args.only else None
    seed_everything(0)
    corpus = load_corpus("bbc")
    dense, tok = load_causal_lm(args.model)
    cal = Calibration.from_corpus(tok, corpus, n=args.calib_windows, seqlen=args.seqlen, seed=0)
    first = evaluation_windows(tok, corpus.test, seqlen=args.seqlen, max_windows=1, seed=0)[:1]

    def ppl(model) -> float:
        return evaluate_perplexity(
            model, tok, corpus, seqlen=args.seqlen, windows=args.eval_windows, seed=0
        ).perplexity

    report = BenchReport(
        package="layerwise",
        version=__version__,
        config={
            "model": args.model,
            "calibration": f"bbc train, {args.calib_windows} x {args.seqlen} tokens, seed 0",
            "evaluation": f"bbc test, {args.eval_windows} x {args.seqlen} tokens",
            "logit_diff": "max |logit| difference on the first evaluation window",
        },
    )
    command = ["export_table.py", *(sys.argv[1:] if argv is None else argv)]
    report.command = "uv run python packages/layerwise/bench/" + " ".join(command)
    config = BenchConfig(quick=True, out=args.out)
    before = provenance("layerwise", config, argv=command)
    work = Path(tempfile.mkdtemp(prefix="layerwise-export-"))
    t_start = time.perf_counter()
    try:
        dense.to(torch.float16).save_pretrained(work / "dense16")
        dense_ppl = ppl(dense.float())
        report.add(
            Row(
                "dense",
                {"format": "transformers float16"},
                "bbc",
                0,
                {
                    "bytes_mib": disk_bytes(work / "dense16") / 2**20,
                    "perplexity": dense_ppl,
                    "perplexity_after_reload": dense_ppl,
                    "loads_in_transformers": 1.0,
                },
                0.0,
            )
        )
        del dense
        for method, params, cfg in rows:
            label = f"{method}-{'-'.join(str(v) for v in params.values())}"
            if only and label not in only:
                continue
            model, _ = load_causal_lm(args.model)
            rep, codes = compress(model, cfg, cal, device="cpu", progress=False)
            in_memory = ppl(model)
            reference = _logits(model, first)
            ours = save(model, tok, work / f"{label}-ours", report=rep, quantized=codes)
            report.add(
                Row(
                    method,
                    {**params, "format": "layerwise/1"},
                    "bbc",
                    0,
                    # not reloaded here: layerwise.load restores these weights exactly (tested)
                    {"bytes_mib": disk_bytes(ours) / 2**20, "perplexity": in_memory},
                    round(rep.time_s, 2),
                )
            )
            for dtype in ("float32", "float16"):
                path = work / f"{label}-ct-{dtype}"
                save(model, tok, path, quantized=codes, format="compressed-tensors", dtype=dtype)
                loaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
                metrics = {
                    "bytes_mib": disk_bytes(path) / 2**20,
                    "perplexity": in_memory,
                    "perplexity_after_reload": ppl(loaded),
                    "loads_in_transformers": 1.0,
                    "logit_diff": float((_logits(loaded, first) - reference).abs().max()),
                    "resident_mib_after_load": _resident(loaded) / 2**20,
                }
                report.add(
                    Row(
                        method,
                        {**params, "format": f"compressed-tensors {dtype}"},
                        "bbc",
                        0,
                        metrics,
                        round(rep.time_s, 2),
                    )
                )
                status(f"{label} {dtype}: {metrics}")
                del loaded
                gc.collect()
            del model
            gc.collect()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.stamp(config, argv=command, total_s=time.perf_counter() - t_start, before=before)
    report.write(args.out)
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
