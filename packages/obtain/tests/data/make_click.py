"""Build ``click120.flac``: 8 s of a 120 BPM click track at 8 kHz (a few kB), with its beats.

It makes ``obtain track tests/data/click120.flac --json`` run offline in seconds, for the CLI
tests. Rebuild with ``uv run python tests/data/make_click.py`` from ``packages/obtain``.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from obtain.synth import click_track

HERE = Path(__file__).parent
SR = 8000


def main() -> None:
    y, beats = click_track(bpm=120, seconds=8, sr=SR)
    sf.write(HERE / "click120.flac", y, SR, subtype="PCM_16")
    (HERE / "click120.beats").write_text("".join(f"{b:.4f}\n" for b in beats))


if __name__ == "__main__":
    main()
