"""Tokens/s and perplexity of checkpoints served by vLLM (run by gpu_vllm.sh, in vLLM's own
environment: it imports only vllm and the standard library)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def main() -> int:
    from vllm import LLM, SamplingParams

    p = argparse.ArgumentParser()
    p.add_argument("--texts", required=True, help="JSON list of evaluation texts")
    p.add_argument("--model", action="append", required=True, help="LABEL=PATH")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=256)
    args = p.parse_args()
    texts = json.loads(Path(args.texts).read_text())
    print("| model | generated tokens/s | perplexity (BBC test, vLLM prompt logprobs) |")
    print("|---|---|---|")
    for item in args.model:
        label, path = item.split("=", 1)
        llm = LLM(model=path, dtype="float16", max_model_len=2048, gpu_memory_utilization=0.5)
        prompts = [t[:400] for t in texts[: args.prompts]]
        greedy = SamplingParams(max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)
        llm.generate(prompts[:4], greedy)  # warm-up: kernels and graphs
        start = time.perf_counter()
        outs = llm.generate(prompts, greedy)
        elapsed = time.perf_counter() - start
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        scoring = SamplingParams(max_tokens=1, prompt_logprobs=0)
        nll, count = 0.0, 0
        for o in llm.generate([t[:4000] for t in texts], scoring):
            ids = o.prompt_token_ids
            for token, entry in zip(ids[1:], o.prompt_logprobs[1:], strict=True):
                nll -= entry[token].logprob  # the log-probability of the actual next token
                count += 1
        print(f"| {label} | {tokens / elapsed:.0f} | {math.exp(nll / count):.3f} |", flush=True)
        del llm
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
