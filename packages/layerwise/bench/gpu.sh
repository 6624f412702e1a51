#!/usr/bin/env bash
# GPTQ and SparseGPT timings on one Llama-7B-shaped random block (hidden 4096, MLP 11008,
# 128 x 2048 calibration tokens) on CUDA. Extra arguments go to gpu_block.py, e.g.
#   packages/layerwise/bench/gpu.sh --out DIR      # default packages/layerwise/bench/results-gpu
#   packages/layerwise/bench/gpu.sh --small --device cpu      # a quick check without a GPU
# Uses the workspace environment when uv is available, else the current Python with the
# sources on PYTHONPATH (needs torch and transformers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
script="$root/packages/layerwise/bench/gpu_block.py"
cd "$root"
if command -v uv >/dev/null 2>&1 && [ -f uv.lock ]; then
    exec uv run --locked python "$script" "$@"
fi
export PYTHONPATH="$root/shared/src:$root/packages/layerwise/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$script" "$@"
