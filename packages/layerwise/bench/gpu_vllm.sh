#!/usr/bin/env bash
# Serve the compressed-tensors exports of SmolLM2-135M with vLLM on a CUDA GPU: tokens/s of
# greedy generation and BBC-test perplexity (from vLLM's prompt log-probabilities) for the
# fp16 model, GPTQ 4-bit (symmetric, per channel, pack-quantized) and SparseGPT 2:4.
#   packages/layerwise/bench/gpu_vllm.sh [--out DIR]   # default packages/layerwise/bench/results-vllm
# vLLM pins its own torch, so it runs from its own environment: set VLLM_PYTHON to a Python that
# has vllm installed (python -m venv /tmp/vllm && /tmp/vllm/bin/pip install vllm). The models
# are compressed and exported with this workspace's environment first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
out="$root/packages/layerwise/bench/results-vllm"
if [ "${1:-}" = "--out" ]; then out="$2"; fi
: "${VLLM_PYTHON:?set VLLM_PYTHON to a Python with vllm installed}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
run() { uv run --locked "$@"; }
run layerwise run --method gptq --bits 4 --sym --model smollm2-135m --out "$work/gptq4" \
    --calib-windows 128 --seqlen 512 --eval-windows 0 --device cuda -q
run layerwise export "$work/gptq4" --out "$work/gptq4-ct" --dtype float16 -q
run layerwise run --method sparsegpt --nm 2:4 --model smollm2-135m --out "$work/sgpt24" \
    --calib-windows 128 --seqlen 512 --eval-windows 0 --device cuda -q
run layerwise export "$work/sgpt24" --out "$work/sgpt24-ct" --dtype float16 -q
run python - "$work/dense16" <<'PY'
import sys
from labcore.models import load_causal_lm
model, tok = load_causal_lm("smollm2-135m", dtype="float16")
model.save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])
PY
run python -c "from labcore.data import load_corpus; import json,sys; json.dump(list(load_corpus('bbc').test[:64]), open(sys.argv[1], 'w'))" "$work/bbc_test.json"
mkdir -p "$out"
"$VLLM_PYTHON" "$root/packages/layerwise/bench/gpu_vllm.py" --texts "$work/bbc_test.json" \
    --model "fp16=$work/dense16" --model "gptq4=$work/gptq4-ct" --model "sparsegpt-2:4=$work/sgpt24-ct" \
    | tee "$out/results.md"
