"""CLI, click mixing, metrics helpers and the bench's aggregation, on small synthetic audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from obtain.bench import run_datasets
from obtain.cli import CLICK_FREQ, main, mix_clicks
from obtain.evaluate import beat_scores, find_clips, load_beats, matched_offsets
from obtain.synth import synth_track

SR = 22050


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    y, beats = synth_track(kind="drums", bpm=110, seconds=14, sr=SR)
    sf.write(d / "song.wav", y, SR, subtype="PCM_16")
    (d / "song.beats").write_text("# reference\n" + "".join(f"{b:.4f}\t1\n" for b in beats))
    return d, y, beats


def test_track_json_and_out(song, tmp_path, capsys):
    d, _, ref = song
    assert main(["track", str(d / "song.wav"), "--json", "--out", str(tmp_path / "b.txt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["tempo_bpm"] - 110) < 2
    assert beat_scores(ref, out["beats"])["F"] >= 0.9
    assert len(out["decided_at"]) == len(out["beats"])
    np.testing.assert_allclose(load_beats(tmp_path / "b.txt"), out["beats"], atol=1e-4)


def test_click_output_has_clicks_on_the_beats(song, tmp_path, capsys):
    """Detect the clicks back from the written file: they fall on the reported beats."""
    import librosa

    d, y, _ = song
    out_wav = tmp_path / "clicks.wav"
    assert main(["click", str(d / "song.wav"), "--out", str(out_wav), "--json"]) == 0
    beats = np.array(json.loads(capsys.readouterr().out)["beats"])
    mix, sr = sf.read(out_wav)
    assert sr == SR and len(mix) == len(y)
    y16 = sf.read(d / "song.wav")[0]
    scale = float(mix @ y16 / (y16 @ y16))
    residual = mix - scale * y16  # the clicks alone (plus 16-bit rounding)
    n_fft = 256
    band = round(CLICK_FREQ / (SR / n_fft))
    env = np.abs(librosa.stft(residual, n_fft=n_fft, hop_length=32))[band - 1 : band + 2].sum(0)
    found = librosa.onset.onset_detect(
        onset_envelope=env, sr=SR, hop_length=32, units="time", backtrack=False
    )
    assert len(found) == len(beats)
    assert np.max(np.abs(found - beats)) < 0.01


def test_mix_clicks_keeps_the_level():
    y = np.full(SR, 0.9)
    mix, scale = mix_clicks(y, SR, [0.5])
    assert np.abs(mix).max() <= 0.99 + 1e-12 and scale < 1
    _, scale2 = mix_clicks(0.1 * np.sin(np.arange(SR)), SR, [])
    assert scale2 == 1.0


def test_plot_writes_a_png(song, tmp_path):
    pytest.importorskip("matplotlib")
    d, _, _ = song
    fig = tmp_path / "fig.png"
    assert (
        main(["plot", str(d / "song.wav"), "--out", str(fig), "--reference", str(d / "song.beats")])
        == 0
    )
    assert fig.read_bytes()[:4] == b"\x89PNG"


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["track", str(tmp_path / "missing.wav")]) == 2
    assert "no such audio file" in capsys.readouterr().err
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    assert main(["track", str(tmp_path / "bad.wav")]) == 2
    assert "cannot read audio" in capsys.readouterr().err
    assert main(["click", str(tmp_path / "bad.wav")]) == 2  # no --out


def test_find_clips_reads_gtzan_and_plain_names(tmp_path):
    for name in ("country.00000.wav", "a.wav", "orphan.wav"):
        sf.write(tmp_path / name, np.zeros(100), SR)
    (tmp_path / "gtzan_country_00000.beats").write_text("0.5\t1\n1.0\t2\n")
    (tmp_path / "a.beats").write_text("# c\n\n0.25\n")
    clips = {c.name: c for c in find_clips(tmp_path)}
    assert set(clips) == {"country.00000", "a"}
    np.testing.assert_allclose(load_beats(clips["country.00000"].beats), [0.5, 1.0])
    np.testing.assert_allclose(load_beats(clips["a"].beats), [0.25])


def test_metrics_helpers():
    ref = np.arange(0, 30, 0.5)
    perfect = beat_scores(ref, ref)
    assert perfect == {"F": 1.0, "CMLt": 1.0, "AMLt": 1.0, "P": 1.0}
    double = beat_scores(ref, np.arange(0, 30, 0.25))
    assert double["CMLt"] == 0.0 and double["AMLt"] > 0.95
    np.testing.assert_allclose(matched_offsets(ref, ref + 0.02), 0.02)
    assert len(matched_offsets(ref, ref + 0.2)) == 0


def test_bench_rows_for_obtain_and_librosa(song):
    _, y, ref = song
    rows, per_clip = run_datasets(
        {"tiny": [("song", y, SR, ref)], "short": [("s", y[: 6 * SR], SR, ref[ref < 6])]},
        ["obtain", "librosa-offline"],
    )
    by = {(r.dataset, r.method): r for r in rows}
    ours = by[("tiny", "obtain")]
    assert ours.metrics["F"] >= 0.9 and 0 < ours.metrics["rtf"] < 1
    assert ours.metrics["median_latency_ms"] is not None
    assert by[("tiny", "librosa-offline")].metrics["F"] > 0.5
    assert any("smoke" in r.dataset for r in rows)  # a 6 s clip is not averaged in
    assert len(per_clip) == 4
