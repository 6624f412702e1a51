"""RAC: reasoning-aware compression (Lucas, Behdin et al., 2025).

Compress a reasoning model with calibration data made of its own on-policy chain of thought:
traces sampled from the dense model (:mod:`rac.traces`), turned into weighted calibration
sequences for any ``layerwise`` method (:mod:`rac.calibration`, ``--calib rac:traces.jsonl``).
"""

from __future__ import annotations

from rac.calibration import TraceCalibration, calibration_from_traces, rac_source
from rac.traces import TraceConfig, format_prompt, generate_traces, read_traces, summarize

__version__ = "0.1.0"

__all__ = [
    "TraceCalibration",
    "TraceConfig",
    "__version__",
    "calibration_from_traces",
    "format_prompt",
    "generate_traces",
    "rac_source",
    "read_traces",
    "summarize",
]
