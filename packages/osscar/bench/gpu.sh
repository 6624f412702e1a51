#!/usr/bin/env bash
# Speed of a shrunk Llama-7B-shaped model (random weights; 25% of the heads and 30% of the
# neurons removed in every block, as OSSCAR's structured results leave it) against the dense
# one on CUDA: prefill latency and decoding tokens/s. Extra arguments go to gpu_speed.py, e.g.
#   packages/osscar/bench/gpu.sh --out DIR      # default packages/osscar/bench/results-gpu
#   packages/osscar/bench/gpu.sh --small --device cpu      # a quick check without a GPU
# Uses the workspace environment when uv is available, else the current Python with the
# sources on PYTHONPATH (needs torch and transformers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
script="$root/packages/osscar/bench/gpu_speed.py"
cd "$root"
if command -v uv >/dev/null 2>&1 && [ -f uv.lock ]; then
    exec uv run --locked python "$script" "$@"
fi
export PYTHONPATH="$root/shared/src:$root/packages/layerwise/src:$root/packages/osscar/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$script" "$@"
