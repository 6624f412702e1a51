#!/usr/bin/env bash
# ALPS and SparseGPT time per Llama-7B-shaped layer (4096 x 4096, 11008 x 4096, 4096 x 11008;
# 128 x 2048 calibration tokens) on CUDA. Extra arguments go to gpu_layer.py, e.g.
#   packages/alps/bench/gpu.sh --out DIR      # default packages/alps/bench/results-gpu
#   packages/alps/bench/gpu.sh --small --device cpu      # a quick check without a GPU
# Uses the workspace environment when uv is available, else the current Python with the
# sources on PYTHONPATH (needs torch and transformers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
script="$root/packages/alps/bench/gpu_layer.py"
cd "$root"
if command -v uv >/dev/null 2>&1 && [ -f uv.lock ]; then
    exec uv run --locked python "$script" "$@"
fi
export PYTHONPATH="$root/shared/src:$root/packages/layerwise/src:$root/packages/alps/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$script" "$@"
