"""Tests of the rendered benchmark set: tempo maps, beat times, beat files, MIDI and audio."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from obtain import render
from obtain.evaluate import load_beats
from obtain.render import (
    DEFAULT_PIECES,
    PieceSpec,
    TempoMap,
    beat_times,
    build_rendered_set,
    excerpt_beats,
    find_fluidsynth,
    find_soundfont,
    midi_note_ons,
)

from labcore.errors import LabcoreError

# ----------------------------------------------------------------------------- beat times


def brute_force_times(offsets, beat_ql, tempo, n_beats=None, step=Fraction(1, 48)):
    """Walk the score in tiny steps, each at the tempo of the last beat passed."""
    offsets = [Fraction(o) for o in offsets]
    n = len(offsets) if n_beats is None else n_beats
    out, t, pos, k = [], 0.0, Fraction(0), 0
    while len(out) < len(offsets):
        while len(out) < len(offsets) and pos == offsets[len(out)]:
            out.append(t)
        k = max(sum(1 for o in offsets if o <= pos) - 1, 0)
        t += float(step / Fraction(beat_ql)) * 60.0 / tempo.bpm_at(k, n)
        pos += step
    return np.array(out)


@pytest.mark.parametrize(
    "tempo",
    [
        TempoMap("constant", 96),
        TempoMap("ramp", 90, 130),
        TempoMap("ramp", 140, 100),
        TempoMap("jump", 100, 140, at_beat=5),
        TempoMap("jump", 120, 90, at_beat=1),
    ],
)
@pytest.mark.parametrize(
    ("beat_ql", "first"),
    [(1.0, 0.0), (1.0, 0.5), (1.5, 1.0), (2.0, 1.0)],  # 4/4, 2/4 pickup, 6/8, 2/2 pickup
)
def test_beat_times_match_a_brute_force_walk(tempo, beat_ql, first):
    offsets = [Fraction(first) + k * Fraction(beat_ql) for k in range(12)]
    got = beat_times([float(o) for o in offsets], beat_ql, tempo)
    np.testing.assert_allclose(got, brute_force_times(offsets, beat_ql, tempo), atol=1e-9)


def test_beat_times_closed_forms():
    t = beat_times(np.arange(8.0), 1.0, TempoMap("constant", 120))
    np.testing.assert_allclose(t, np.arange(8) * 0.5)
    # pickup: score offset 0 is time 0, the first beat comes at the tempo of beat 0
    t = beat_times([0.5, 1.5, 2.5], 1.0, TempoMap("constant", 60))
    np.testing.assert_allclose(t, [0.5, 1.5, 2.5])
    # 6/8 at 60 dotted quarters per minute: one second per dotted quarter
    t = beat_times([0.0, 1.5, 3.0], 1.5, TempoMap("constant", 60))
    np.testing.assert_allclose(t, [0.0, 1.0, 2.0])
    # jump at beat 2: intervals 1 s, 1 s, then 0.5 s
    t = beat_times(np.arange(5.0), 1.0, TempoMap("jump", 60, 120, at_beat=2))
    np.testing.assert_allclose(t, [0, 1, 2, 2.5, 3])
    # ramp over 3 beats: 60, 90, 120 BPM
    t = beat_times(np.arange(3.0), 1.0, TempoMap("ramp", 60, 120))
    np.testing.assert_allclose(t, [0, 1, 1 + 60 / 90])
    # a ramp spread over 3 beats holds bpm_end after them
    t = beat_times(np.arange(5.0), 1.0, TempoMap("ramp", 60, 120), n_beats=3)
    np.testing.assert_allclose(np.diff(t), [1, 60 / 90, 0.5, 0.5])
    assert beat_times([], 1.0, TempoMap("constant", 60)).shape == (0,)


def test_beat_times_rejects_bad_offsets():
    tempo = TempoMap("constant", 100)
    with pytest.raises(LabcoreError, match="increasing"):
        beat_times([0.0, 2.0, 1.0], 1.0, tempo)
    with pytest.raises(LabcoreError, match="increasing"):
        beat_times([-1.0, 0.0], 1.0, tempo)
    with pytest.raises(LabcoreError, match="beat duration"):
        beat_times([0.0, 1.0], 0.0, tempo)


@pytest.mark.parametrize(
    "tempo",
    [TempoMap("constant", 100), TempoMap("ramp", 90, 130), TempoMap("ramp", 140, 100)],
)
def test_excerpt_beats_cut_at_the_excerpt_length(tempo):
    grid = np.arange(200) * 1.0 + 0.5
    times, n_keep, n_span = excerpt_beats(grid, 1.0, tempo, 30.0)
    assert times[n_keep - 1] < 30.0 <= times[n_keep]
    if tempo.kind == "ramp":
        assert n_keep in (n_span, n_span + 1)
        assert tempo.bpm_at(n_span - 1, n_span) == tempo.bpm_end
    with pytest.raises(LabcoreError, match="too short"):
        excerpt_beats(grid[:20], 1.0, tempo, 30.0)


# ----------------------------------------------------------------------------- tempo maps


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("waltz", 100), "unknown tempo map kind"),
        (("constant", 20), "outside"),
        (("constant", 400), "outside"),
        (("constant", 100, 120), "only bpm"),
        (("ramp", 100), "needs bpm_end"),
        (("ramp", 100, 500), "outside"),
        (("ramp", 100, 120, 4), "no at_beat"),
        (("jump", 100, 120), "at_beat"),
        (("jump", 100, 120, 0), "at_beat"),
        (("jump", 100, None, 4), "needs bpm_end"),
    ],
)
def test_tempo_map_validation(args, match):
    with pytest.raises(LabcoreError, match=match):
        TempoMap(*args)


def test_tempo_map_bpm_at():
    ramp = TempoMap("ramp", 90, 130)
    assert ramp.bpm_at(0, 5) == 90
    assert ramp.bpm_at(2, 5) == 110
    assert ramp.bpm_at(4, 5) == 130
    assert ramp.bpm_at(9, 5) == 130
    jump = TempoMap("jump", 100, 140, at_beat=24)
    assert jump.bpm_at(23, 60) == 100
    assert jump.bpm_at(24, 60) == 140
    assert TempoMap("constant", 96).bpm_at(7, 10) == 96
    with pytest.raises(LabcoreError):
        ramp.bpm_at(-1, 5)


def test_piece_spec_validation_and_defaults():
    tempo = TempoMap("constant", 100)
    with pytest.raises(LabcoreError, match="program"):
        PieceSpec("x", "bach/bwv66.6", tempo, program=128)
    with pytest.raises(LabcoreError, match="file stem"):
        PieceSpec("a/b", "bach/bwv66.6", tempo)
    with pytest.raises(LabcoreError, match="excerpt"):
        PieceSpec("x", "bach/bwv66.6", tempo, seconds=0)
    kinds = [p.tempo.kind for p in DEFAULT_PIECES]
    assert len(DEFAULT_PIECES) == 12
    assert (kinds.count("constant"), kinds.count("ramp"), kinds.count("jump")) == (8, 2, 2)
    assert len({p.name for p in DEFAULT_PIECES}) == 12


# ----------------------------------------------------------------------------- beat files


def test_load_beats_reads_gtzan_and_madmom_files(tmp_path):
    gtzan = tmp_path / "gtzan.beats"
    gtzan.write_text("# GTZAN style\n0.557\t1\n1.045\t2\n\n1.532\t3\n  # comment\n2.020\t4\n")
    np.testing.assert_allclose(load_beats(gtzan), [0.557, 1.045, 1.532, 2.020])
    madmom = tmp_path / "madmom.beats"
    madmom.write_text("0.50\n1.00\n1.51\n")
    np.testing.assert_allclose(load_beats(madmom), [0.5, 1.0, 1.51])
    madmom_pos = tmp_path / "madmom_pos.beats"
    madmom_pos.write_text("0.50 1\n1.00 2\n1.5,3\n")
    np.testing.assert_allclose(load_beats(madmom_pos), [0.5, 1.0, 1.5])
    empty = tmp_path / "empty.beats"
    empty.write_text("# nothing\n\n")
    assert load_beats(empty).shape == (0,)
    bad = tmp_path / "bad.beats"
    bad.write_text("0.5\nbeat\n")
    with pytest.raises(LabcoreError, match=r"bad\.beats:2"):
        load_beats(bad)
    with pytest.raises(LabcoreError, match="cannot read"):
        load_beats(tmp_path / "missing.beats")


# ----------------------------------------------------------------------------- tools


def test_missing_tools_give_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(LabcoreError, match="soundfont not found"):
        find_soundfont(tmp_path / "none.sf2")
    monkeypatch.setattr(render, "SOUNDFONT_SEARCH", (str(tmp_path / "*.sf2"),))
    with pytest.raises(LabcoreError, match="no General MIDI soundfont"):
        find_soundfont()
    monkeypatch.setattr(render.shutil, "which", lambda _name: None)
    monkeypatch.setattr(render.os, "access", lambda *_a: False)
    with pytest.raises(LabcoreError, match="apt install fluidsynth"):
        find_fluidsynth()


# ----------------------------------------------------------------------------- scores, MIDI

RAG = PieceSpec(
    "rag_test", "joplin/maple_leaf_rag", TempoMap("jump", 100, 140, at_beat=4), seconds=6.0
)


@pytest.fixture(scope="module")
def rag():
    pytest.importorskip("music21")
    return render.prepare_piece(RAG)


def test_unknown_corpus_path_is_a_clear_error():
    pytest.importorskip("music21")
    spec = PieceSpec("x", "nobody/no_such_piece", TempoMap("constant", 100))
    with pytest.raises(LabcoreError, match="unknown music21 corpus path"):
        render.prepare_piece(spec)


def test_prepared_score_beats_follow_the_bar_grid(rag):
    # 2/4 with an eighth-note pickup: bar 1 starts at offset 0.5, beats on quarters from there
    assert rag.time_signature == "2/4"
    assert rag.beat_unit_ql == 1.0
    assert rag.pickup_ql == 1.5
    np.testing.assert_allclose(rag.beat_offsets_ql[:3], [0.5, 1.5, 2.5])
    assert list(rag.positions[:4]) == [1, 2, 1, 2]
    np.testing.assert_allclose(rag.beat_times[0], 0.3)  # half a beat at 100 BPM
    # at_beat=4: beats 0-4 are 0.6 s apart, from beat 4 on 60/140 s
    np.testing.assert_allclose(np.diff(rag.beat_times)[:6], [0.6] * 4 + [60 / 140] * 2)
    assert rag.beat_times[-1] < RAG.seconds <= rag.next_beat_time


def test_midi_note_ons_sit_on_the_computed_beat_times(rag, tmp_path):
    from music21 import tempo

    marks = list(rag.score.recurse().getElementsByClass(tempo.TempoIndication))
    assert len(marks) >= len(rag.beat_times) + 1  # one per beat, one at offset 0
    mid = render.write_midi(rag, tmp_path / "rag.mid")
    ons = midi_note_ons(mid)[:, 0]
    attack = np.isin(rag.beat_offsets_ql, rag.attack_offsets_ql)
    assert attack.sum() >= 0.8 * len(attack)
    gaps = np.abs(rag.beat_times[attack][:, None] - ons[None, :]).min(axis=1)
    assert gaps.max() < 1e-3
    # every attack of the excerpt, and no extra note (no repeats unrolled by the MIDI writer)
    assert render.check_midi_alignment(rag, mid) < 1e-3


# ----------------------------------------------------------------------------- rendering


def _tools_or_skip():
    pytest.importorskip("music21")
    try:
        find_fluidsynth()
        find_soundfont()
    except LabcoreError as e:
        pytest.skip(f"cannot render: {e}")


def test_render_piece_audio_is_aligned_with_the_beats(tmp_path):
    _tools_or_skip()
    import librosa
    import soundfile as sf

    entry = render.render_piece(RAG, tmp_path, keep_midi=True)
    wav = tmp_path / "rag_test.wav"
    info = sf.info(wav)
    assert (info.channels, info.samplerate, info.subtype) == (1, 44100, "PCM_16")
    assert info.frames == 6 * 44100
    assert entry["time_signature"] == "2/4"
    assert entry["n_beats"] == len(load_beats(tmp_path / "rag_test.beats"))
    assert entry["tempo"] == {"kind": "jump", "bpm": 100, "bpm_end": 140, "at_beat": 4}
    assert entry["fluidsynth_version"] and entry["music21_version"]

    rows = np.loadtxt(tmp_path / "rag_test.beats", ndmin=2)
    beats, positions = rows[:, 0], rows[:, 1]
    assert set(positions) == {1, 2}
    prepared = render.prepare_piece(RAG)
    np.testing.assert_allclose(beats, prepared.beat_times, atol=1e-6)
    attack = np.isin(prepared.beat_offsets_ql, prepared.attack_offsets_ql)

    # (a) the MIDI that fluidsynth played has a note-on on every beat with an attack
    ons = midi_note_ons(tmp_path / "rag_test.mid")[:, 0]
    assert np.abs(beats[attack][:, None] - ons[None, :]).min(axis=1).max() < 1e-3

    # (b) fluidsynth adds no offset: audio onsets sit on those beats. librosa's default
    # center=True shifts onsets n_fft/2 (23 ms) late, so the envelope is computed without it.
    y, sr = sf.read(wav)
    assert 0.85 < np.abs(y).max() < 0.95
    env = librosa.onset.onset_strength(y=y, sr=sr, center=False)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, units="time", backtrack=False)
    dev = np.array([np.min(np.abs(onsets - t)) for t in beats[attack]])
    assert np.mean(dev < 0.030) >= 0.8, dev
    signed = np.array([(onsets - t)[np.argmin(np.abs(onsets - t))] for t in beats[attack]])
    assert abs(np.median(signed)) < 0.015


def test_build_rendered_set_writes_a_manifest_and_skips_done_pieces(tmp_path):
    _tools_or_skip()
    spec = PieceSpec("chorale", "bach/bwv66.6", TempoMap("constant", 120), seconds=4.0)
    entries = build_rendered_set(tmp_path, pieces=(spec,))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["pieces"] == entries
    (entry,) = entries
    for key in ("name", "corpus_path", "time_signature", "beat_unit_ql", "tempo", "program"):
        assert key in entry
    assert entry["n_beats"] == 8  # 4 s at 120 BPM, the pickup beat first
    wav = tmp_path / "chorale.wav"
    mtime = wav.stat().st_mtime_ns
    assert build_rendered_set(tmp_path, pieces=(spec,)) == entries
    assert wav.stat().st_mtime_ns == mtime
    build_rendered_set(tmp_path, pieces=(spec,), overwrite=True)
    assert wav.stat().st_mtime_ns != mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
