"""``obtain plot``: audio, OSS, CBSS, tempo and beats of one tracked recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labcore.errors import LabcoreError


def plot_tracking(y: np.ndarray, sr: int, tracker, out: Path, *, reference=None) -> Path:
    """Draw a tracker's run (``record=True``) on ``y`` and save it atomically to ``out``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LabcoreError("obtain plot needs matplotlib: pip install obtain[plot]") from None
    from labcore.io import atomic_write_bytes

    tr = tracker.trace()
    beats = np.asarray(tracker.beats)
    fig, axes = plt.subplots(4, 1, figsize=(12, 8), sharex=True)
    t = np.arange(len(y)) / sr
    step = max(1, len(y) // 20000)
    axes[0].plot(t[::step], y[::step], lw=0.4, color="0.4")
    axes[0].set_ylabel("audio")
    axes[1].plot(tr["time"], tr["oss"], lw=0.7)
    axes[1].set_ylabel("OSS")
    axes[2].plot(tr["time"], tr["cbss"], lw=0.7, color="tab:green")
    axes[2].set_ylabel("CBSS")
    curve = tracker.tempo_curve()
    if len(curve):
        axes[3].step(curve[:, 0], curve[:, 1], where="post", color="tab:purple")
    axes[3].set_ylabel("tempo (BPM)")
    axes[3].set_xlabel("time (s)")
    for ax in axes[:3]:
        for b in beats:
            ax.axvline(b, color="tab:red", lw=0.6, alpha=0.7)
        if reference is not None:
            for b in reference:
                ax.axvline(b, color="k", lw=0.6, ls=":", alpha=0.7)
    title = "OBTAIN: beats (red)" + (", reference (dotted)" if reference is not None else "")
    axes[0].set_title(title)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(out).suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(Path(out), buf.getvalue())
