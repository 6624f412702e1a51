"""Time per step on CUDA: SGD, SAM, mSAM (k = 8) sequential and vmap, ResNet-18 (GroupNorm,
11.2M parameters) on a batch of 256 random 3×32×32 images. Writes results.json, results.md
and summary.md into the folder given as the first argument."""

from __future__ import annotations

import sys

import torch
from msam import __version__
from msam.bench import step_time_rows, summary_markdown

from labcore.bench import BenchConfig, BenchReport


def main(out: str) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    torch.backends.cudnn.benchmark = True
    spec = {
        "model": "resnet18",
        "image_shape": [3, 32, 32],
        "batch_size": 256,
        "micro_batches": [8],
        "steps": 20,
    }
    report = BenchReport(
        package="msam", version=__version__, command="bash bench/gpu.sh", config={"step_time": spec}
    )
    step_time_rows(report, spec, torch.device("cuda"))
    report.summary = summary_markdown([], [], report.rows)
    report.stamp(BenchConfig(device="cuda", out=out))  # provenance: commit, versions, argv
    report.write(out)
    print(report.summary)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-results")
