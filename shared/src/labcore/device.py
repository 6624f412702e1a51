"""Device resolution, seeding, a timer that synchronises CUDA, and peak-memory readings.

torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from labcore.errors import LabcoreError


def _torch():
    import torch

    return torch


def resolve_device(device: str | Any = "auto") -> Any:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` into a device.

    ``"auto"`` picks CUDA when it is available, else the CPU. Asking for CUDA on a machine
    without it raises :class:`~labcore.errors.LabcoreError`.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    torch = _torch()
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device).strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise LabcoreError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LabcoreError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LabcoreError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type not in {"cpu", "mps"}:
        raise LabcoreError(f"unsupported device type {dev.type!r}; use auto, cpu or cuda")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and (when imported) torch's generators."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)


def synchronize(device: Any = None) -> None:
    """Wait for queued CUDA work (no-op on CPU or when torch was never imported)."""
    if "torch" not in sys.modules:
        return
    torch = sys.modules["torch"]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        if device is not None and getattr(device, "type", str(device)) == "cpu":
            return
        torch.cuda.synchronize(device)


@dataclass
class Timer:
    """Wall-clock timer that synchronises CUDA at start and stop, so GPU work is counted.

    Examples
    --------
    >>> with Timer() as t:
    ...     _ = sum(range(1000))
    >>> t.elapsed >= 0
    True
    """

    device: Any = None
    elapsed: float = 0.0
    _start: float = field(default=0.0, repr=False)

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.elapsed = time.perf_counter() - self._start


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (Linux and macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Current resident set size of this process, in bytes."""
    import psutil

    return int(psutil.Process(os.getpid()).memory_info().rss)


def reset_peak_cuda_memory() -> None:
    """Reset CUDA's peak-allocation counter (no-op without CUDA)."""
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.reset_peak_memory_stats()


def peak_cuda_bytes() -> int | None:
    """Peak bytes allocated by torch on the current CUDA device, or None without CUDA."""
    if "torch" not in sys.modules or not sys.modules["torch"].cuda.is_available():
        return None
    return int(sys.modules["torch"].cuda.max_memory_allocated())


def memory_report() -> dict[str, float | None]:
    """Peak CPU RSS and peak CUDA allocation, in GiB."""
    cuda = peak_cuda_bytes()
    return {
        "peak_rss_gib": round(peak_rss_bytes() / 2**30, 3),
        "peak_cuda_gib": None if cuda is None else round(cuda / 2**30, 3),
    }


class MemoryMonitor:
    """Peak resident memory (sampled) and peak CUDA allocation while a block runs.

    ``ru_maxrss`` only ever grows over a process's life, so per-step peaks need sampling: a
    background thread reads the RSS every ``interval`` seconds.

    Examples
    --------
    >>> with MemoryMonitor() as mem:
    ...     buf = bytearray(50 * 2**20)
    >>> mem.peak_rss_gib > 0
    True
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_cuda: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, current_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryMonitor:
        reset_peak_cuda_memory()
        self.peak_rss = current_rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, current_rss_bytes())
        self.peak_cuda = peak_cuda_bytes()

    @property
    def peak_rss_gib(self) -> float:
        return round(self.peak_rss / 2**30, 3)

    @property
    def peak_cuda_gib(self) -> float | None:
        return None if self.peak_cuda is None else round(self.peak_cuda / 2**30, 3)
