"""Choose QuantEase's default ridge shrinkage (``damp``) on held-out *training* text.

The BBC train split is cut in two by document (even / odd positions): calibration windows
come from the first half, perplexity is measured on the second; the test split, which the
benches report, is never read. Every candidate damp and GPTQ (at its default 1% damping and
at 10%, for reference) runs on the same calibration windows, one set per calibration seed.

    uv run python bench/select_damp.py                                # quick sizes (16 x 256)
    uv run python bench/select_damp.py --calib-windows 64 --seqlen 512 --eval-windows 64

Prints a Markdown table (mean ± sd of the held-out perplexity over the seeds) and writes
``select_damp.json`` into ``--out`` (default ``bench/results-damp/``, not committed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--damps", default="0,0.01,0.03,0.1,0.3")
    p.add_argument("--gptq-percdamps", default="0.01,0.1")
    p.add_argument("--seeds", default="10,11", help="calibration seeds (not the bench's 0,1,2)")
    p.add_argument("--bits", type=int, default=3)
    p.add_argument("--calib-windows", type=int, default=16)
    p.add_argument("--eval-windows", type=int, default=32)
    p.add_argument("--seqlen", type=int, default=256)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results-damp")
    args = p.parse_args()

    from layerwise.calibration import Calibration
    from layerwise.engine import compress
    from layerwise.evaluate import evaluate_perplexity
    from layerwise.methods import GPTQConfig
    from quantease import QuantEaseConfig

    from labcore.data import Corpus, load_corpus
    from labcore.device import seed_everything
    from labcore.io import atomic_write_json
    from labcore.models import load_causal_lm

    bbc = load_corpus("bbc")
    split = Corpus("bbc-train-halves", bbc.train[0::2], bbc.train[1::2], disjoint=True)
    candidates = [
        (f"quantease damp {float(d):g}", QuantEaseConfig(bits=args.bits, damp=float(d)))
        for d in args.damps.split(",")
    ] + [
        (f"gptq percdamp {float(d):g}", GPTQConfig(bits=args.bits, percdamp=float(d)))
        for d in args.gptq_percdamps.split(",")
        if d
    ]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[float]] = {name: [] for name, _ in candidates}
    times: dict[str, list[float]] = {name: [] for name, _ in candidates}
    for seed in seeds:
        seed_everything(seed)
        _, tok = load_causal_lm(args.model, device="cpu")
        cal = Calibration.from_corpus(
            tok, split, n=args.calib_windows, seqlen=args.seqlen, seed=seed
        )
        for name, cfg in candidates:
            model, _ = load_causal_lm(args.model, device="cpu")
            t0 = time.perf_counter()
            compress(model, cfg, cal, device="cpu", batch_size=8)
            times[name].append(time.perf_counter() - t0)
            ppl = evaluate_perplexity(
                model, tok, split, seqlen=args.seqlen, windows=args.eval_windows, seed=seed
            ).perplexity
            results[name].append(ppl)
            print(f"seed {seed} {name}: held-out perplexity {ppl:.2f}", flush=True)

    def spread(xs: list[float]) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.fmean(xs):.1f} ± {sd:.1f}"

    lines = [
        f"Held-out BBC-train perplexity, {args.bits}-bit per channel, "
        f"{args.calib_windows} x {args.seqlen} calibration tokens, seeds {args.seeds}",
        "",
        "| method | perplexity (mean ± sd) | per seed | time (s) |",
        "|---|---|---|---|",
    ]
    for name, xs in results.items():
        per_seed = " / ".join(f"{x:.1f}" for x in xs)
        lines.append(
            f"| {name} | {spread(xs)} | {per_seed} | {statistics.fmean(times[name]):.0f} |"
        )
    qe = {n: statistics.fmean(x) for n, x in results.items() if n.startswith("quantease")}
    best = min(qe, key=qe.__getitem__)
    lines += ["", f"lowest mean: {best}"]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        args.out / f"select_damp-{args.calib_windows}x{args.seqlen}.json",
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "perplexity": results,
            "time_s": times,
            "best": best,
        },
    )


if __name__ == "__main__":
    main()
