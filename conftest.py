"""Test-session setup shared by every package.

numba writes its on-disk cache (``cache=True`` kernels: librosa's, graphl0bnb's, quantease's)
next to the source files. pytest-xdist workers that compile the same kernel at once in a
fresh environment can leave a corrupt cache entry behind, and every later load of it then
segfaults (seen in CI on a clean clone). Each worker therefore gets its own cache folder,
kept between runs of the same checkout so that compiled kernels are reused.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def pytest_configure(config) -> None:
    # Runs in every xdist worker before test modules (hence numba) are imported; the
    # worker id is only known here, not when this file is imported. Workers inherit the
    # controller's environment, so a folder set here (marked) is replaced, a user's is kept.
    if "NUMBA_CACHE_DIR" in os.environ and "LABCORE_NUMBA_CACHE" not in os.environ:
        return
    checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:10]
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    os.environ["NUMBA_CACHE_DIR"] = str(
        Path(tempfile.gettempdir()) / f"numba-cache-{os.getuid()}-{checkout}-{worker}"
    )
    os.environ["LABCORE_NUMBA_CACHE"] = "1"
