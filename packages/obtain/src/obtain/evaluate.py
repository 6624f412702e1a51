"""Beat-tracking metrics (mir_eval) and data-set loading."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labcore.errors import LabcoreError

# mir_eval's default: beats before 5 s are ignored (the tempo warm-up of every tracker).
TRIM_S = 5.0


def beat_scores(reference, estimated, *, trim: float = TRIM_S) -> dict[str, float]:
    """F-measure (±70 ms), CMLt, AMLt and P-score from ``mir_eval.beat``, after trimming the
    first ``trim`` seconds of both sequences."""
    import mir_eval

    ref = np.asarray(reference, dtype=float)
    est = np.asarray(estimated, dtype=float)
    ref = ref[ref >= trim]
    est = est[est >= trim]
    with warnings.catch_warnings():  # mir_eval warns (and scores 0) for < 2 beats
        warnings.simplefilter("ignore", UserWarning)
        _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
        return {
            "F": float(mir_eval.beat.f_measure(ref, est)),
            "CMLt": float(cmlt),
            "AMLt": float(amlt),
            "P": float(mir_eval.beat.p_score(ref, est)),
        }


def matched_offsets(reference, estimated, *, window: float = 0.07) -> np.ndarray:
    """For each estimated beat within ``window`` of a reference beat, ``est - ref`` (s)."""
    ref = np.asarray(reference, dtype=float)
    est = np.asarray(estimated, dtype=float)
    if len(ref) == 0 or len(est) == 0:
        return np.zeros(0)
    idx = np.clip(np.searchsorted(ref, est), 1, len(ref) - 1)
    near = np.where(np.abs(est - ref[idx - 1]) < np.abs(est - ref[idx]), idx - 1, idx)
    d = est - ref[near]
    return d[np.abs(d) <= window]


def load_beats(path: str | os.PathLike[str]) -> np.ndarray:
    """Beat times from a text file: the first column of each line.

    Blank lines and lines starting with ``#`` are skipped; columns may be separated by tabs,
    spaces or commas. Reads our ``.beats`` files, GTZAN's ``time<TAB>position`` annotations and
    madmom's output.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    numpy.ndarray
        Times in seconds (float64), sorted.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise LabcoreError(f"cannot read beat file {p}: {e}") from e
    times = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        first = s.replace(",", " ").split()[0]
        try:
            times.append(float(first))
        except ValueError:
            raise LabcoreError(f"{p}:{lineno}: not a beat time: {line!r}") from None
    return np.sort(np.asarray(times, dtype=np.float64))


@dataclass
class Clip:
    """One annotated recording."""

    name: str
    audio: Path
    beats: Path
    dataset: str


def _annotation_for(wav: Path) -> Path | None:
    same = wav.with_suffix(".beats")
    if same.is_file():
        return same
    key = wav.stem.replace(".", "_")
    return next((c for c in sorted(wav.parent.glob("*.beats")) if c.stem.endswith(key)), None)


def find_clips(folder) -> list[Clip]:
    """Annotated clips in ``folder``: every audio file with a ``.beats`` file named like it
    (``x.wav`` + ``x.beats``, or GTZAN's ``country.00000.wav`` +
    ``gtzan_country_00000.beats``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabcoreError(f"no such folder: {folder}")
    clips = []
    for wav in sorted(p for ext in ("wav", "flac", "mp3", "ogg") for p in folder.glob(f"*.{ext}")):
        ann = _annotation_for(wav)
        if ann is not None:
            clips.append(Clip(wav.stem, wav, ann, folder.name))
    return clips


def load_audio(path, *, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float audio at its own rate (or resampled to ``sr``), with a clear error."""
    import librosa

    path = Path(path)
    if not path.is_file():
        raise LabcoreError(f"no such audio file: {path}")
    try:
        import soundfile as sf

        frames = sf.info(str(path)).frames
    except Exception:  # not a format libsndfile knows (mp3 on old builds): librosa decides
        frames = None
    if frames == 0:  # refuse at once (librosa's fallback decoders take seconds to agree)
        raise LabcoreError(f"{path} holds no samples")
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread
            warnings.simplefilter("ignore")
            y, rate = librosa.load(path, sr=sr, mono=True)
    except Exception as e:  # soundfile/audioread raise many types, some without a message
        reason = str(e).strip() or f"{type(e).__name__}; not a supported audio file"
        raise LabcoreError(f"cannot read audio {path}: {reason}") from None
    if len(y) == 0:
        raise LabcoreError(f"{path} holds no samples")
    return y.astype(np.float64), int(rate)
