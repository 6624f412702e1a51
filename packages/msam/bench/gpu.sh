#!/usr/bin/env bash
# GPU check for msam: time per step of SGD, SAM, mSAM sequential and mSAM vmap on a
# ResNet-18-sized model at batch 256 on CUDA. Run from the repository root:
#   bash packages/msam/bench/gpu.sh [OUT_DIR]
set -euo pipefail
out="${1:-${OUT:-packages/msam/bench/results-gpu}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
uv run --locked python packages/msam/bench/gpu_step_time.py "$out"
