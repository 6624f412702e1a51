"""The "rendered" benchmark set: real scores from music21's corpus, played by fluidsynth.

Each piece is a score from the corpus bundled with music21, played under a tempo map that we
set (constant, a linear ramp, or a jump) and rendered to audio by Debian's ``fluidsynth`` with a
General MIDI soundfont. Because we write the tempo into the MIDI file ourselves, one tempo mark
on every beat, the beat times are known exactly from the score: no annotation step, and anyone
can rebuild the set offline (``apt install fluidsynth fluid-soundfont-gm`` and
``pip install obtain[render]``).

Beats follow the first time signature's beat unit (a quarter in 4/4 and 3/4, a dotted quarter
in 6/8 and 9/8, a half note in 2/2) on the bar grid, so a pickup (anacrusis) is handled: the
first annotated beat is the first grid beat at or after the start of the score.

Files written per piece: ``<name>.wav`` (mono, 16-bit PCM, peak 0.9) and ``<name>.beats``
(``time<TAB>position in bar`` per line, 1 = downbeat, like the GTZAN annotations), plus a
``manifest.json`` for the whole set.

Alignment (measured with fluidsynth 2.3.1 and FluidR3_GM): the MIDI note-on times equal the
computed times of the score's attacks to < 0.05 ms (checked on every render, 1 ms limit). In the
audio, fluidsynth starts a note 3-5 ms after its MIDI time (events are quantized to its 64-sample
blocks, plus the start of the instrument sample); this is not compensated: it is far below any
beat-evaluation tolerance and smaller than the spread of instrument attacks. librosa onsets of
the piano renders sit within 30 ms of 98-100 % of the beats that carry an attack (median
deviation about -2..+2 ms), when computed with ``onset_strength(center=False)``: librosa's
default ``center=True`` delays its onsets by ``n_fft / 2`` (23 ms at 44.1 kHz), a detector
artefact, not a rendering offset.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import glob
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labcore.errors import LabcoreError
from labcore.io import atomic_write_bytes

#: Where ``obtain render`` and ``obtain bench`` build and keep the rendered set (a cache).
DEFAULT_RENDER_DIR = Path("~/.cache/obtain/rendered")

#: Where :func:`find_soundfont` looks, in order (globs allowed).
SOUNDFONT_SEARCH: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/*.sf2",
    "/usr/share/sounds/sf2/*.sf2",
)

_TEMPO_KINDS = ("constant", "ramp", "jump")
_EPS = 1e-9


# ----------------------------------------------------------------------------- tempo maps


@dataclass(frozen=True)
class TempoMap:
    """A tempo map that is piecewise constant per beat.

    Parameters
    ----------
    kind : {"constant", "ramp", "jump"}
        ``constant``: ``bpm`` throughout. ``ramp``: linear in the beat index, from ``bpm`` at
        beat 0 to ``bpm_end`` at the last beat of the excerpt (and ``bpm_end`` after it).
        ``jump``: ``bpm`` before beat ``at_beat``, ``bpm_end`` from it on.
    bpm : float
        Start tempo in beats per minute, counted in the time signature's beat unit.
    bpm_end : float, optional
        End tempo, for ``ramp`` and ``jump`` only.
    at_beat : int, optional
        For ``jump`` only: index of the first beat played at ``bpm_end`` (>= 1).

    Raises
    ------
    LabcoreError
        Unknown kind, a tempo outside (20, 400) BPM, or fields missing or extra for the kind.
    """

    kind: str
    bpm: float
    bpm_end: float | None = None
    at_beat: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _TEMPO_KINDS:
            raise LabcoreError(
                f"unknown tempo map kind {self.kind!r}: use one of {', '.join(_TEMPO_KINDS)}"
            )
        for label, value in (("bpm", self.bpm), ("bpm_end", self.bpm_end)):
            if value is None:
                continue
            if not isinstance(value, int | float) or not 20 < value < 400:
                raise LabcoreError(f"tempo map {label}={value!r} is outside (20, 400) BPM")
        if self.kind == "constant" and (self.bpm_end is not None or self.at_beat is not None):
            raise LabcoreError("a constant tempo map takes only bpm (no bpm_end, no at_beat)")
        if self.kind in ("ramp", "jump") and self.bpm_end is None:
            raise LabcoreError(f"a {self.kind} tempo map needs bpm_end")
        if self.kind == "ramp" and self.at_beat is not None:
            raise LabcoreError("a ramp tempo map takes no at_beat (it spans the whole excerpt)")
        if self.kind == "jump" and (
            self.at_beat is None
            or isinstance(self.at_beat, bool)
            or not isinstance(self.at_beat, int)
            or self.at_beat < 1
        ):
            raise LabcoreError(
                f"a jump tempo map needs at_beat, an integer >= 1 (got {self.at_beat!r})"
            )

    def bpm_at(self, beat_index: int, n_beats: int) -> float:
        """Tempo in force from beat ``beat_index`` to the next one.

        Parameters
        ----------
        beat_index : int
            Index of the beat (0 = first beat of the excerpt), >= 0.
        n_beats : int
            Number of beats the map spans (the excerpt's beats); only a ramp uses it.

        Returns
        -------
        float
            Beats per minute.
        """
        if beat_index < 0:
            raise LabcoreError(f"beat index must be >= 0, got {beat_index}")
        if self.kind == "constant":
            return float(self.bpm)
        assert self.bpm_end is not None
        if self.kind == "jump":
            assert self.at_beat is not None
            return float(self.bpm if beat_index < self.at_beat else self.bpm_end)
        if n_beats < 2:
            return float(self.bpm)
        frac = min(beat_index, n_beats - 1) / (n_beats - 1)
        return float(self.bpm + (self.bpm_end - self.bpm) * frac)

    def label(self) -> str:
        """Short text for names and tables, e.g. ``96``, ``90->130``, ``100->140@24``."""
        if self.kind == "constant":
            return f"{self.bpm:g}"
        if self.kind == "ramp":
            return f"{self.bpm:g}->{self.bpm_end:g}"
        return f"{self.bpm:g}->{self.bpm_end:g}@{self.at_beat}"


def beat_times(
    score_beat_offsets_ql: Sequence[float] | np.ndarray,
    beat_duration_ql: float,
    tempo: TempoMap,
    *,
    n_beats: int | None = None,
) -> np.ndarray:
    """Times in seconds of beats at given score offsets, under a per-beat tempo map.

    The tempo is constant from one beat to the next: between beat ``k`` and beat ``k + 1`` it
    is ``tempo.bpm_at(k, n_beats)`` beats per minute (one beat = ``beat_duration_ql`` quarter
    lengths), so ``t[k+1] = t[k] + (o[k+1] - o[k]) / beat_duration_ql * 60 / bpm_at(k)``.
    Score offset 0 is at time 0; a span before the first beat (a pickup shorter than a whole
    number of beats) is played at the tempo of beat 0: ``t[0] = o[0] / beat_duration_ql * 60 /
    bpm_at(0)``.

    Parameters
    ----------
    score_beat_offsets_ql : sequence of float
        Strictly increasing score offsets of the beats, in quarter lengths, >= 0.
    beat_duration_ql : float
        Duration of one beat in quarter lengths (1 for 4/4, 1.5 for 6/8, 2 for 2/2).
    tempo : TempoMap
        The tempo map.
    n_beats : int, optional
        Beats spanned by the map (what a ramp is spread over); default: all given beats.

    Returns
    -------
    numpy.ndarray
        Beat times in seconds, one per offset.
    """
    o = np.asarray(score_beat_offsets_ql, dtype=np.float64)
    if o.ndim != 1:
        raise LabcoreError("beat offsets must be a 1-D sequence")
    if not beat_duration_ql > 0:
        raise LabcoreError(f"beat duration must be > 0 quarter lengths, got {beat_duration_ql}")
    if o.size == 0:
        return np.zeros(0)
    if o[0] < 0 or np.any(np.diff(o) <= 0):
        raise LabcoreError("beat offsets must be >= 0 and strictly increasing")
    n = len(o) if n_beats is None else int(n_beats)
    sec_per_beat = np.array([60.0 / tempo.bpm_at(k, n) for k in range(len(o))])
    gaps = np.diff(o) / beat_duration_ql * sec_per_beat[:-1]
    t0 = o[0] / beat_duration_ql * sec_per_beat[0]
    return t0 + np.concatenate(([0.0], np.cumsum(gaps)))


def excerpt_beats(
    offsets_ql: Sequence[float] | np.ndarray,
    beat_duration_ql: float,
    tempo: TempoMap,
    seconds: float,
) -> tuple[np.ndarray, int, int]:
    """Beat times of a score's beat grid and the beats that fall in a ``seconds`` excerpt.

    For a ramp the number of beats it spans depends on the tempo itself; it is set to the
    largest ``N`` whose ramp over ``N`` beats puts beat ``N - 1`` before ``seconds``. That is
    the excerpt's beat count, or one less when beat ``N`` (at ``bpm_end``) still fits.

    Parameters
    ----------
    offsets_ql : sequence of float
        Every grid beat of the score (strictly increasing offsets, quarter lengths).
    beat_duration_ql : float
        Beat unit in quarter lengths.
    tempo : TempoMap
        The tempo map.
    seconds : float
        Excerpt length.

    Returns
    -------
    times : numpy.ndarray
        Times of all given beats (those past the excerpt too).
    n_keep : int
        Beats with time < ``seconds`` (the first ``n_keep``).
    n_span : int
        The ``n_beats`` passed to :meth:`TempoMap.bpm_at`.

    Raises
    ------
    LabcoreError
        If the score ends before ``seconds`` (no grid beat at or after it).
    """
    o = np.asarray(offsets_ql, dtype=np.float64)
    n_span = len(o)
    if tempo.kind == "ramp":
        # beat N - 1 of a ramp over N beats comes later as N grows: stop at the first miss
        n_span = 1
        for n in range(2, len(o) + 1):
            if beat_times(o[:n], beat_duration_ql, tempo)[-1] >= seconds:
                break
            n_span = n
    times = beat_times(o, beat_duration_ql, tempo, n_beats=n_span)
    n_keep = int(np.sum(times < seconds))
    if n_keep == len(o):
        end = times[-1] if len(times) else 0.0
        raise LabcoreError(
            f"the score is too short: its last beat is at {end:.1f} s under tempo "
            f"{tempo.label()}, but the excerpt needs {seconds:g} s (pick a longer piece, a "
            "faster tempo or a shorter excerpt)"
        )
    return times, n_keep, n_span


# ----------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class PieceSpec:
    """One piece of the rendered set.

    Parameters
    ----------
    name : str
        File stem of the outputs, e.g. ``"bach_bwv66_6_const96"``.
    corpus_path : str
        music21 corpus id, e.g. ``"bach/bwv66.6"``.
    tempo : TempoMap
        Tempo map that replaces the score's tempo marks.
    program : int
        General MIDI program (0-127) given to every part; 0 = piano.
    seconds : float
        Excerpt length: the audio and the beats are cut there.
    """

    name: str
    corpus_path: str
    tempo: TempoMap
    program: int = 0
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\") or self.name.startswith("."):
            raise LabcoreError(f"piece name {self.name!r} is not a plain file stem")
        if not isinstance(self.program, int) or not 0 <= self.program <= 127:
            raise LabcoreError(f"GM program must be an integer in 0-127, got {self.program!r}")
        if not self.seconds > 0:
            raise LabcoreError(f"excerpt length must be > 0 s, got {self.seconds!r}")
        if not isinstance(self.tempo, TempoMap):
            raise LabcoreError("tempo must be a TempoMap")


def _const(bpm: float) -> TempoMap:
    return TempoMap("constant", bpm)


#: The default set: 12 excerpts of 30 s in 2/2, 2/4, 3/4, 4/4, 6/8 and 9/8, 8 at constant
#: tempo (66-160 BPM), 2 ramps and 2 jumps. GM programs: 0 piano, 19 church organ, 24 nylon
#: guitar, 40 violin, 45 pizzicato strings, 48 string ensemble. The organ chorale and the
#: string-ensemble minuet are the hard cases: legato, soft attacks, few clear onsets.
DEFAULT_PIECES: tuple[PieceSpec, ...] = (
    PieceSpec("corelli_op3no1_grave_const66", "corelli/opus3no1/1grave", _const(66), 19),
    PieceSpec("bach_bwv846_prelude_const76", "bach/bwv846", _const(76), 0),
    PieceSpec("schubert_lindenbaum_const88", "schubert/Lindenbaum", _const(88), 0),
    PieceSpec("bach_bwv371_chorale_const96", "bach/bwv371", _const(96), 19),
    PieceSpec("mozart_k458_mvt1_const104", "mozart/k458/movement1", _const(104), 45),
    PieceSpec("reel_miss_gunnings_const112", "ryansMammoth/MissGunningsFancyReel", _const(112), 40),
    PieceSpec("haydn_op74no1_menuetto_const138", "haydn/opus74no1/movement3", _const(138), 48),
    PieceSpec("beethoven_op18no1_mvt1_const160", "beethoven/opus18no1/movement1", _const(160), 0),
    PieceSpec("bach_bwv248_64_6_ramp90_130", "bach/bwv248.64-6", TempoMap("ramp", 90, 130), 0),
    PieceSpec(
        "jig_shuffle_and_cut_ramp140_100",
        "ryansMammoth/ShuffleAndCutJig",
        TempoMap("ramp", 140, 100),
        24,
    ),
    PieceSpec(
        "joplin_maple_leaf_jump100_140",
        "joplin/maple_leaf_rag",
        TempoMap("jump", 100, 140, at_beat=24),
        0,
    ),
    PieceSpec(
        "tidal_wave_jig_jump120_90",
        "ryansMammoth/TidalWaveJig",
        TempoMap("jump", 120, 90, at_beat=32),
        40,
    ),
)


# ----------------------------------------------------------------------------- tools


def _music21() -> Any:
    try:
        import music21
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise LabcoreError(
            "music21 is needed to render the benchmark set: pip install obtain[render]"
        ) from e
    return music21


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` program.

    Raises
    ------
    LabcoreError
        If it is not on ``PATH`` (nor in ``/usr/bin``).
    """
    path = shutil.which("fluidsynth")
    if path is None and os.access("/usr/bin/fluidsynth", os.X_OK):
        path = "/usr/bin/fluidsynth"
    if path is None:
        raise LabcoreError("fluidsynth not found: apt install fluidsynth fluid-soundfont-gm")
    return path


def find_soundfont(path: str | os.PathLike[str] | None = None) -> Path:
    """A General MIDI soundfont (``.sf2``).

    Parameters
    ----------
    path : path-like, optional
        Use this file; otherwise search :data:`SOUNDFONT_SEARCH` (FluidR3_GM first).

    Raises
    ------
    LabcoreError
        If ``path`` does not exist, or no soundfont is found.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise LabcoreError(f"soundfont not found: {p}")
        return p
    for pattern in SOUNDFONT_SEARCH:
        for hit in sorted(glob.glob(pattern)):
            if Path(hit).is_file():
                return Path(hit)
    raise LabcoreError(
        "no General MIDI soundfont found (looked for "
        + ", ".join(SOUNDFONT_SEARCH)
        + "): apt install fluid-soundfont-gm, or pass soundfont="
    )


@functools.lru_cache(maxsize=8)
def _fluidsynth_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:  # pragma: no cover
        raise LabcoreError(f"cannot run {exe}: {e}") from e
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


# ----------------------------------------------------------------------------- beat files


def _beats_text(times: np.ndarray, positions: np.ndarray) -> str:
    return "".join(f"{t:.6f}\t{int(q)}\n" for t, q in zip(times, positions, strict=True))


# ----------------------------------------------------------------------------- MIDI


def midi_note_ons(path: str | os.PathLike[str]) -> np.ndarray:
    """Note-on events of a standard MIDI file, in seconds (a small self-contained reader).

    Parameters
    ----------
    path : path-like
        A type 0 or 1 MIDI file with ticks-per-quarter timing.

    Returns
    -------
    numpy.ndarray
        Shape (n, 2): time in seconds and MIDI pitch of every note-on with velocity > 0,
        sorted by time.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"MThd":
        raise LabcoreError(f"{path}: not a MIDI file")
    hlen = int.from_bytes(data[4:8], "big")
    ntracks = int.from_bytes(data[10:12], "big")
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise LabcoreError(f"{path}: SMPTE time division is not supported")
    pos = 8 + hlen
    tempos: list[tuple[int, int]] = []
    notes: list[tuple[int, int]] = []
    for _ in range(ntracks):
        if data[pos : pos + 4] != b"MTrk":
            raise LabcoreError(f"{path}: bad track header at byte {pos}")
        end = pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
        pos += 8
        tick, status = 0, 0

        def vlq(p: int) -> tuple[int, int]:
            value = 0
            while True:
                b = data[p]
                p += 1
                value = (value << 7) | (b & 0x7F)
                if not b & 0x80:
                    return value, p

        while pos < end:
            delta, pos = vlq(pos)
            tick += delta
            if data[pos] & 0x80:
                status = data[pos]
                pos += 1
            if status == 0xFF:
                mtype = data[pos]
                length, pos = vlq(pos + 1)
                if mtype == 0x51:
                    tempos.append((tick, int.from_bytes(data[pos : pos + 3], "big")))
                pos += length
            elif status in (0xF0, 0xF7):
                length, pos = vlq(pos)
                pos += length
            else:
                kind = status & 0xF0
                nbytes = 1 if kind in (0xC0, 0xD0) else 2
                if kind == 0x90 and data[pos + 1] > 0:
                    notes.append((tick, data[pos]))
                pos += nbytes
        pos = end
    tempos.sort()
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, 500000))
    # seconds at each tempo change
    starts, secs = [], [0.0]
    for i, (tk, _) in enumerate(tempos):
        starts.append(tk)
        if i:
            prev_tk, prev_us = tempos[i - 1]
            secs.append(secs[-1] + (tk - prev_tk) * prev_us / division / 1e6)
    out = []
    for tk, pitch in notes:
        i = bisect.bisect_right(starts, tk) - 1
        out.append((secs[i] + (tk - starts[i]) * tempos[i][1] / division / 1e6, pitch))
    arr = np.asarray(sorted(out), dtype=np.float64).reshape(-1, 2)
    return arr


# ----------------------------------------------------------------------------- scores


@dataclass
class PreparedPiece:
    """A score made ready to render, with its beats (what :func:`prepare_piece` returns).

    Attributes
    ----------
    score : music21.stream.Score
        Tempo marks replaced by ours, repeats unrolled as written, every part on the GM
        program, truncated a little after the excerpt.
    time_signature : str
        The first time signature, e.g. ``"6/8"``.
    beat_unit_ql : float
        Beat length in quarter lengths.
    pickup_ql : float
        Missing duration of the first (pickup) measure; 0 without a pickup.
    beat_offsets_ql, beat_times, positions : numpy.ndarray
        The excerpt's beats: score offset, time in seconds, position in the bar (1 = downbeat).
    tempo_span_beats : int
        ``n_beats`` given to :meth:`TempoMap.bpm_at`.
    next_beat_time : float
        Time of the first beat after the excerpt.
    attack_offsets_ql : numpy.ndarray
        Offsets of the note attacks (not tied-over notes, not grace notes) in the excerpt.
    """

    score: Any
    time_signature: str
    beat_unit_ql: float
    pickup_ql: float
    beat_offsets_ql: np.ndarray
    beat_times: np.ndarray
    positions: np.ndarray
    tempo_span_beats: int
    next_beat_time: float
    attack_offsets_ql: np.ndarray

    def offsets_to_seconds(self, offsets_ql: Iterable[float]) -> np.ndarray:
        """Times of score offsets inside the excerpt (linear between beats)."""
        o = np.asarray(list(offsets_ql), dtype=np.float64)
        xs, ts = self.beat_offsets_ql, self.beat_times
        if xs[0] > 0:
            xs, ts = np.concatenate(([0.0], xs)), np.concatenate(([0.0], ts))
        # one more beat past the excerpt (tempo of its last beat) for the tail
        xs = np.append(xs, self.beat_offsets_ql[-1] + self.beat_unit_ql)
        ts = np.append(ts, self.next_beat_time)
        return np.interp(o, xs, ts)


def _load_score(corpus_path: str) -> Any:
    m21 = _music21()
    from music21 import corpus, stream

    try:
        score = corpus.parse(corpus_path)
    except Exception as e:
        raise LabcoreError(
            f"unknown music21 corpus path {corpus_path!r} ({type(e).__name__}: {e}); list "
            "them with music21.corpus.getComposer(...) or music21.corpus.getPaths()"
        ) from e
    if isinstance(score, stream.Opus):
        raise LabcoreError(
            f"{corpus_path!r} is a collection of {len(score.scores)} pieces, not one score "
            f"(music21 {m21.__version__})"
        )
    if not isinstance(score, stream.Score):
        wrapped = stream.Score()
        wrapped.insert(0, score)
        score = wrapped
    if not score.parts:
        raise LabcoreError(f"{corpus_path!r} has no parts")
    return score


def _attack_offsets(score: Any, end_ql: float) -> np.ndarray:
    from music21 import chord

    out = set()
    for n in score.flatten().notes:
        if n.duration.isGrace or n.offset >= end_ql:
            continue
        heads = n.notes if isinstance(n, chord.Chord) else [n]
        if any(h.tie is None or h.tie.type == "start" for h in heads):
            out.add(float(n.offset))
    return np.asarray(sorted(out), dtype=np.float64)


def prepare_piece(spec: PieceSpec) -> PreparedPiece:
    """Load a score and set it up for rendering: our tempo map, one instrument, no repeats.

    Steps: parse ``spec.corpus_path``; move to sounding pitch; remove every tempo indication
    (all parts, recursively); turn repeat barlines, endings and jumps into plain ones so the
    MIDI plays the score once, as written; compute the beat grid and the beats of the excerpt;
    cut the score one beat after the excerpt; put one tempo mark on every beat of the first part
    (and at offset 0 under a pickup); set every part to ``spec.program``.

    Parameters
    ----------
    spec : PieceSpec
        The piece.

    Returns
    -------
    PreparedPiece

    Raises
    ------
    LabcoreError
        Unknown corpus path, a time signature change inside the excerpt, or a score too short.
    """
    _music21()
    from music21 import bar, duration, instrument, meter, repeat, spanner, stream, tempo

    score = _load_score(spec.corpus_path)
    with contextlib.suppress(Exception):  # scores without transposition info
        score.toSoundingPitch(inPlace=True)

    # 1. no tempo marks, no repeats, no instruments of their own
    for s in list(score.recurse(streamsOnly=True, includeSelf=True)):
        s.removeByClass([tempo.TempoIndication, repeat.RepeatExpression, spanner.RepeatBracket])
        s.removeByClass([instrument.Instrument])
    # grace notes become zero-length MIDI notes, which can leave a voice sounding for ever
    # in fluidsynth (its fast render then never ends): play the main notes only
    for n in list(score.recurse().notes):
        if n.duration.isGrace:
            n.activeSite.remove(n)
    for m in score.recurse().getElementsByClass(stream.Measure):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = bar.Barline("regular")

    # 2. beat grid of the first time signature, on the bar grid (pickup aware)
    part0 = score.parts[0]
    measures = list(part0.getElementsByClass(stream.Measure))
    tss = list(part0.recurse().getElementsByClass(meter.TimeSignature))
    ts = tss[0] if tss else meter.TimeSignature("4/4")
    beat_ql = float(ts.beatDuration.quarterLength)
    beats_per_bar = int(ts.beatCount)
    bar_ql = float(ts.barDuration.quarterLength)
    pickup = 0.0
    if measures:
        m0 = measures[0]
        pad = float(m0.paddingLeft or 0.0)
        dur = float(m0.duration.quarterLength)
        if pad > _EPS:
            pickup = pad
        elif _EPS < dur < bar_ql - _EPS:
            pickup = bar_ql - dur
    total_ql = float(score.highestTime)
    k0 = math.ceil(pickup / beat_ql - _EPS)
    grid = np.array(
        [k * beat_ql - pickup for k in range(k0, math.ceil((total_ql + pickup) / beat_ql) + 1)]
    )
    grid = grid[(grid >= -_EPS) & (grid < total_ql - _EPS)]
    grid = np.maximum(grid, 0.0)
    if len(grid) < 2:
        raise LabcoreError(f"{spec.corpus_path!r}: fewer than two beats in the score")
    times, n_keep, n_span = excerpt_beats(grid, beat_ql, spec.tempo, spec.seconds)
    positions = (np.rint((grid + pickup) / beat_ql).astype(int) % beats_per_bar) + 1

    # the first beat past the excerpt, then one more beat: where the MIDI stops
    end_ql = float(grid[n_keep]) + beat_ql
    for t in tss:
        if t.getOffsetInHierarchy(part0) < end_ql and t.ratioString != ts.ratioString:
            raise LabcoreError(
                f"{spec.corpus_path!r}: the time signature changes from {ts.ratioString} to "
                f"{t.ratioString} inside the excerpt; pick another piece"
            )

    # 3. cut the score after the excerpt
    for p in score.parts:
        for m in list(p.getElementsByClass(stream.Measure)):
            if m.offset >= end_ql - _EPS:
                p.remove(m)
        for el in list(p.getElementsByClass(["GeneralNote"])):
            if el.offset >= end_ql - _EPS:
                p.remove(el)

    # 4. a tempo mark on every beat (and at 0 under a pickup), in the first part
    measures = list(part0.getElementsByClass(stream.Measure))
    m_offsets = [float(m.offset) for m in measures]
    marks = [(float(o), spec.tempo.bpm_at(k, n_span)) for k, o in enumerate(grid) if o < end_ql]
    if marks[0][0] > 0:
        marks.insert(0, (0.0, spec.tempo.bpm_at(0, n_span)))
    for off, bpm in marks:
        mm = tempo.MetronomeMark(number=bpm, referent=duration.Duration(beat_ql))
        if measures:
            i = max(bisect.bisect_right(m_offsets, off + _EPS) - 1, 0)
            measures[i].insert(off - m_offsets[i], mm)
        else:
            part0.insert(off, mm)

    # 5. one GM program for every part
    for p in score.parts:
        inst = instrument.Instrument()
        inst.midiProgram = spec.program
        inst.instrumentName = f"GM program {spec.program}"
        p.insert(0, inst)

    prepared = PreparedPiece(
        score=score,
        time_signature=ts.ratioString,
        beat_unit_ql=beat_ql,
        pickup_ql=pickup,
        beat_offsets_ql=grid[:n_keep].copy(),
        beat_times=times[:n_keep].copy(),
        positions=positions[:n_keep].copy(),
        tempo_span_beats=n_span,
        next_beat_time=float(times[n_keep]),
        attack_offsets_ql=_attack_offsets(score, float(grid[n_keep])),
    )
    return prepared


def write_midi(prepared: PreparedPiece, path: str | os.PathLike[str]) -> Path:
    """Write the prepared score as a MIDI file (no start delay: score offset 0 is time 0)."""
    _music21()
    from music21.midi.translate import streamToMidiFile

    mf = streamToMidiFile(prepared.score, addStartDelay=False)
    path = Path(path)
    atomic_write_bytes(path, mf.writestr())
    return path


def check_midi_alignment(prepared: PreparedPiece, midi_path: str | os.PathLike[str]) -> float:
    """Largest gap (seconds) between a score attack in the excerpt and the MIDI note-ons.

    Every attack offset of the excerpt is mapped to seconds through the tempo map; the result
    is the largest distance from one of those times to the nearest MIDI note-on, and from a
    MIDI note-on inside the excerpt to the nearest expected attack (so extra or missing notes,
    e.g. from repeats, show up too).
    """
    ons = midi_note_ons(midi_path)[:, 0]
    expected = prepared.offsets_to_seconds(prepared.attack_offsets_ql)
    if len(ons) == 0 or len(expected) == 0:
        return float("inf")
    horizon = prepared.beat_times[-1]
    inside = ons[ons <= horizon + 1e-3]
    d1 = np.abs(expected[:, None] - ons[None, :]).min(axis=1).max()
    d2 = np.abs(inside[:, None] - expected[None, :]).min(axis=1).max() if len(inside) else 0.0
    return float(max(d1, d2))


# ----------------------------------------------------------------------------- rendering


def _run_fluidsynth(
    exe: str, sf2: Path, mid: Path, wav: Path, sr: int, timeout: float = 300.0
) -> None:
    cmd = [exe, "-ni", "-g", "0.8", "-r", str(sr), "-F", str(wav), str(sf2), str(mid)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LabcoreError(
            f"fluidsynth did not finish {mid.name} in {timeout:g} s (a note left sounding?)"
        ) from e
    except OSError as e:
        raise LabcoreError(f"fluidsynth failed to run ({' '.join(cmd)}): {e}") from e
    if out.returncode != 0 or not wav.is_file():
        tail = (out.stderr or out.stdout).strip()[-800:]
        raise LabcoreError(
            f"fluidsynth failed (exit {out.returncode}) on {mid.name}: {tail or 'no output'}"
        )


def render_piece(
    spec: PieceSpec,
    out_dir: str | os.PathLike[str],
    *,
    sr: int = 44100,
    soundfont: str | os.PathLike[str] | None = None,
    keep_midi: bool = False,
) -> dict[str, Any]:
    """Render one piece: ``<name>.wav`` and ``<name>.beats`` in ``out_dir``.

    Parameters
    ----------
    spec : PieceSpec
        The piece.
    out_dir : path-like
        Output folder (created).
    sr : int
        Sample rate of the audio.
    soundfont : path-like, optional
        A General MIDI ``.sf2``; default: :func:`find_soundfont`.
    keep_midi : bool
        Also keep ``<name>.mid`` (the file fluidsynth played).

    Returns
    -------
    dict
        The manifest entry: name, corpus_path, time_signature, beat_unit_ql, tempo,
        program, seconds, n_beats, sr, music21_version, fluidsynth_version and a few more.

    Raises
    ------
    LabcoreError
        No music21, fluidsynth or soundfont; bad corpus path; fluidsynth failure; or a MIDI
        whose note times do not match the beat times (an internal check, 1 ms).
    """
    import soundfile as sf

    m21 = _music21()
    if not isinstance(sr, int) or sr < 8000:
        raise LabcoreError(f"sample rate must be an integer >= 8000, got {sr!r}")
    exe = find_fluidsynth()
    sf2 = find_soundfont(soundfont)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    prepared = prepare_piece(spec)
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{spec.name}.") as tmp:
        mid = write_midi(prepared, Path(tmp) / f"{spec.name}.mid")
        midi_dev = check_midi_alignment(prepared, mid)
        if not midi_dev < 1e-3:
            raise LabcoreError(
                f"{spec.name}: MIDI note times are off the computed beat times by "
                f"{midi_dev * 1e3:.2f} ms (expected < 1 ms); not rendering"
            )
        raw = Path(tmp) / "out_raw.wav"
        # fluidsynth renders ~100x faster than real time; the timeout only catches a hang
        _run_fluidsynth(exe, sf2, mid, raw, sr, timeout=60.0 + 4.0 * spec.seconds)
        y, got_sr = sf.read(raw, dtype="float64", always_2d=True)
        if got_sr != sr:
            raise LabcoreError(f"fluidsynth wrote {got_sr} Hz audio, asked for {sr} Hz")
        y = y.mean(axis=1)
        n = round(spec.seconds * sr)
        y = np.pad(y[:n], (0, max(0, n - len(y))))
        peak = float(np.abs(y).max())
        if peak <= 0:
            raise LabcoreError(f"{spec.name}: fluidsynth rendered silence")
        y *= 0.9 / peak
        if keep_midi:
            shutil.copyfile(mid, out / f"{spec.name}.mid")
        wav_tmp = Path(tmp) / "final.wav"
        sf.write(wav_tmp, y, sr, subtype="PCM_16")
        os.replace(wav_tmp, out / f"{spec.name}.wav")
    beats_text = _beats_text(prepared.beat_times, prepared.positions)
    atomic_write_bytes(out / f"{spec.name}.beats", beats_text.encode())

    attack_beats = np.isin(
        np.round(prepared.beat_offsets_ql, 6), np.round(prepared.attack_offsets_ql, 6)
    )
    return {
        "name": spec.name,
        "corpus_path": spec.corpus_path,
        "time_signature": prepared.time_signature,
        "beat_unit_ql": prepared.beat_unit_ql,
        "tempo": asdict(spec.tempo),
        "program": spec.program,
        "seconds": spec.seconds,
        "n_beats": len(prepared.beat_times),
        "sr": sr,
        "music21_version": str(m21.__version__),
        "fluidsynth_version": _fluidsynth_version(exe),
        "soundfont": sf2.name,
        "wav": f"{spec.name}.wav",
        "beats": f"{spec.name}.beats",
        "pickup_ql": prepared.pickup_ql,
        "first_beat_s": float(prepared.beat_times[0]),
        "tempo_span_beats": prepared.tempo_span_beats,
        "n_beats_with_attack": int(attack_beats.sum()),
        "midi_max_dev_ms": round(midi_dev * 1e3, 4),
    }


def _same_spec(entry: dict[str, Any], spec: PieceSpec, sr: int) -> bool:
    return (
        entry.get("corpus_path") == spec.corpus_path
        and entry.get("tempo") == asdict(spec.tempo)
        and entry.get("program") == spec.program
        and entry.get("seconds") == spec.seconds
        and entry.get("sr") == sr
    )


def build_rendered_set(
    out_dir: str | os.PathLike[str],
    *,
    pieces: Sequence[PieceSpec] = DEFAULT_PIECES,
    sr: int = 44100,
    soundfont: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Render a set of pieces and write ``manifest.json``.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created).
    pieces : sequence of PieceSpec
        What to render; default :data:`DEFAULT_PIECES`.
    sr : int
        Sample rate.
    soundfont : path-like, optional
        General MIDI soundfont; default :func:`find_soundfont`.
    overwrite : bool
        Render again pieces whose files exist already. Without it, a piece is skipped when its
        ``.wav`` and ``.beats`` exist and the old manifest has a matching entry.

    Returns
    -------
    list of dict
        The manifest entries, in ``pieces`` order. ``manifest.json`` holds
        ``{"dataset": "rendered", "pieces": [...]}``, written atomically.
    """
    names = [p.name for p in pieces]
    if len(set(names)) != len(names):
        raise LabcoreError("piece names must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    old: dict[str, dict[str, Any]] = {}
    if manifest.is_file() and not overwrite:
        try:
            loaded = json.loads(manifest.read_text())
            old = {e["name"]: e for e in loaded.get("pieces", [])}
        except (ValueError, KeyError, AttributeError, TypeError):
            old = {}
    entries = []
    for spec in pieces:
        prev = old.get(spec.name)
        if (
            not overwrite
            and prev is not None
            and _same_spec(prev, spec, sr)
            and (out / f"{spec.name}.wav").is_file()
            and (out / f"{spec.name}.beats").is_file()
        ):
            entries.append(prev)
            continue
        entries.append(render_piece(spec, out, sr=sr, soundfont=soundfont))
    # Pieces rendered earlier but not asked for now stay listed (a quick run renders a subset).
    kept = [e for n, e in old.items() if n not in set(names) and (out / f"{n}.wav").is_file()]
    doc = {"dataset": "rendered", "pieces": entries + kept}
    atomic_write_bytes(manifest, (json.dumps(doc, indent=2) + "\n").encode())
    return entries
