"""Fast tests of the streaming tracker on synthetic tracks with known beats."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest
from obtain import BeatTracker, TrackerConfig, track
from obtain.beats import ampd_newest_is_peak, best_phase, cbss_step, detrend, transition_window
from obtain.config import Frames
from obtain.oss import lowpass_taps
from obtain.synth import beat_grid, click_track, synth_track
from obtain.tempo import enhance_harmonics, generalized_autocorrelation, pulse_scores

from labcore.errors import LabcoreError

SR = 22050


def f_measure(ref, est, after=5.0):
    return mir_eval.beat.f_measure(
        mir_eval.beat.trim_beats(np.asarray(ref), after),
        mir_eval.beat.trim_beats(np.asarray(est), after),
    )


@pytest.fixture(scope="module")
def click120():
    return click_track(bpm=120, seconds=20, sr=SR)


def test_frames_match_the_official_integers():
    fr = Frames.of(TrackerConfig(), 44100)
    assert (fr.n_fft, fr.hop) == (1024, 128)
    assert (fr.min_lag, fr.max_lag) == (98, 414)  # floor(f*60/210), floor(f*60/50) + 1
    assert (fr.tempo_window, fr.tempo_interval, fr.cbss_len) == (2048, 128, 2048)
    assert (fr.beat_slack, fr.phase_min_offset, fr.ampd_pad) == (10, 5, 207)
    # Other rates keep the time scale: same OSS rate at 22.05 kHz.
    fr2 = Frames.of(TrackerConfig(), 22050)
    assert (fr2.n_fft, fr2.hop, fr2.min_lag, fr2.max_lag) == (512, 64, 98, 414)
    assert fr.lag_to_bpm(fr.bpm_to_lag(123.0)) == pytest.approx(123.0)


def test_lowpass_taps_reproduce_the_official_filter():
    taps = lowpass_taps(TrackerConfig(), Frames.of(TrackerConfig(), 44100))
    assert len(taps) == 15
    np.testing.assert_allclose(taps, taps[::-1])  # symmetric: linear phase, delay 7 frames
    assert taps[7] == pytest.approx(0.13307, abs=2e-5)
    assert taps[0] == pytest.approx(0.00964, abs=2e-5)


def test_cbss_step_equals_a_direct_loop():
    rng = np.random.default_rng(0)
    tau, alpha, eta = 37, 0.9, 10.0
    oss = rng.random(300)
    fast = np.zeros(300)
    for n in range(300):
        fast[n] = cbss_step(fast, n, oss[n], tau, alpha, eta)
    slow = np.zeros(300)
    for n in range(300):
        best = 0.0
        found = False
        for v in range(-2 * tau, -round(tau / 2) + 1):
            if n + v >= 0:
                w = math.exp(-0.5 * (eta * math.log(-v / tau)) ** 2)
                best = w * slow[n + v] if not found else max(best, w * slow[n + v])
                found = True
        slow[n] = (1 - alpha) * oss[n] + (alpha * best if found else 0.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    v, w = transition_window(tau, eta)
    assert w.max() == pytest.approx(1.0) and v[np.argmax(w)] == -tau


def test_pulse_scores_and_autocorrelation_by_brute_force():
    rng = np.random.default_rng(1)
    x = rng.random(200)
    s = pulse_scores(x, 17)
    for phi in (0, 5, 16):
        want = sum(x[phi + b * 17] for b in range(4))
        want += 0.5 * sum(x[phi + 2 * b * 17] for b in range(4) if phi + 2 * b * 17 < 200)
        want += 0.5 * sum(x[phi + round(1.5 * b * 17)] for b in range(4))
        assert s[phi] == pytest.approx(want)
    acf = generalized_autocorrelation(x, 512)
    direct = np.fft.irfft(np.abs(np.fft.rfft(np.r_[x, np.zeros(312)])) ** 0.5)
    np.testing.assert_allclose(acf, direct, atol=1e-12)
    enh = enhance_harmonics(acf, 60)
    assert enh[10] == pytest.approx(acf[10] + acf[20] + acf[40])


def test_ampd_deterministic_and_randomized_agree_on_a_clear_peak():
    t = np.arange(400)
    peak = detrend(np.cos(2 * np.pi * (t - 399) / 50))  # the newest sample is a maximum
    for rng in (None, np.random.default_rng(0)):
        assert ampd_newest_is_peak(peak, n_scales=30, pad=60, rng=rng)
        falling = detrend(np.cos(2 * np.pi * (t - 380) / 50))
        assert not ampd_newest_is_peak(falling, n_scales=30, pad=60, rng=rng)


def test_best_phase_finds_the_last_pulse():
    x = np.zeros(300)
    x[300 - 1 - 13 :: -40] = 1.0  # pulses 13, 53, 93, ... frames before the newest sample
    phi, score = best_phase(x, 40)
    assert phi == 13 and score == pytest.approx(1.0)
    assert best_phase(x, 40, max_periods=1)[0] == 13


def test_click_track_at_120_bpm(click120):
    y, ref = click120
    beats, tempo = track(y, SR)
    assert f_measure(ref, beats) >= 0.95
    assert abs(tempo[-1, 1] - 120) <= 2
    assert tempo[0, 0] <= 3.5  # the first tempo comes after ~3 s of audio


def test_tempo_jump_is_followed():
    y, ref = synth_track(kind="click", bpm=100, bpm_end=140, jump_at=12.0, seconds=30, sr=SR)
    tracker = BeatTracker(sr=SR)
    tracker.process(y)
    curve = tracker.tempo_curve()
    late = curve[curve[:, 0] >= 12.0 + 6.0]
    assert len(late) and np.all(np.abs(late[:, 1] - 140) <= 2)
    beats = np.array(tracker.beats)
    after = ref[ref >= 12.0 + 7.0]
    assert mir_eval.beat.f_measure(after, beats[beats >= after[0] - 0.1]) >= 0.9
    before = ref[(ref >= 5) & (ref < 12)]
    assert mir_eval.beat.f_measure(before, beats[(beats >= 4.9) & (beats < 12)]) >= 0.9


def test_streaming_is_causal(click120):
    """Appending future audio never changes beats already emitted, and every beat is
    returned no later than the block that completes the frame deciding it."""
    y, _ = click120
    cut = int(11.3 * SR)
    short = BeatTracker(sr=SR)
    short.process(y[:cut])
    assert len(short.events) >= 10
    for future in (y[cut:], np.zeros(5 * SR), np.random.default_rng(0).standard_normal(SR)):
        other = BeatTracker(sr=SR)
        other.process(np.r_[y[:cut], future])
        assert other.events[: len(short.events)] == short.events
    # Sample by sample: a beat comes out as soon as its deciding frame is complete.
    tracker = BeatTracker(sr=SR)
    for i in range(int(7 * SR)):
        for _ in tracker.process(y[i : i + 1]):
            now = (i + 1) / SR
            assert tracker.events[-1].decided_at == pytest.approx(now, abs=1e-9)


def test_long_streams_keep_the_same_beats_after_buffer_compaction():
    """Buffers are compacted after ~33 s; a tracker with 20x larger buffers agrees."""
    y, _ = synth_track(kind="drums", bpm=100, bpm_end=128, jump_at=30.0, seconds=70, sr=8000)
    normal = BeatTracker(sr=8000)
    normal.process(y)
    big = BeatTracker(sr=8000)
    big._oss_buf = np.zeros(20 * len(big._oss_buf))
    big._cbss_buf = np.zeros(20 * len(big._cbss_buf))
    big.process(y)
    assert len(normal.beats) > 100
    assert normal.events == big.events


def test_block_size_does_not_change_beats():
    y, _ = click_track(bpm=126, seconds=9, sr=SR)
    results = []
    for block in (1, 64, 4096):
        tracker = BeatTracker(sr=SR)
        out = []
        for s in range(0, len(y), block):
            out += tracker.process(y[s : s + block])
        results.append(out)
        assert out == tracker.beats
    assert len(results[0]) > 5
    assert results[0] == results[1] == results[2]


def test_silence_gives_no_beats_and_no_error():
    tracker = BeatTracker(sr=SR)
    assert tracker.process(np.zeros(10 * SR)) == []
    assert tracker.tempo is None
    beats, tempo = track(np.zeros(8 * SR), SR)
    assert len(beats) == 0 and tempo.shape == (0, 2)


def test_beats_stop_when_the_music_stops(click120):
    y, _ = click120
    tracker = BeatTracker(sr=SR)
    tracker.process(np.r_[y, np.zeros(6 * SR)])
    assert tracker.beats and max(tracker.beats) < len(y) / SR + 1.5


def test_integer_pcm_and_channels_first_stereo_are_converted(click120):
    y, _ = click120
    pcm = np.round(y * 32767).astype(np.int16)
    b_float, _ = track(y, SR)
    b_int, _ = track(pcm, SR)
    assert len(b_int) == len(b_float)
    np.testing.assert_allclose(b_int, b_float, atol=0.01)
    b_stereo, _ = track(np.vstack([y, y]), SR)
    np.testing.assert_allclose(b_stereo, b_float)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: BeatTracker(sr=0), "sample rate"),
        (lambda: BeatTracker(sr=22050.5), "sample rate"),
        (lambda: BeatTracker(sr=float("inf")), "sample rate"),
        (lambda: BeatTracker(sr="44100"), "sample rate"),
        (lambda: BeatTracker(sr=10**12), "sample rate"),
        (lambda: BeatTracker(sr=SR, config={"alpha": 0.5}), "TrackerConfig"),
        (lambda: BeatTracker(sr=SR).process([[0.0, 1.0], [0.0]]), "not an array"),
        (lambda: track(np.zeros(100), SR, block="a"), "block"),
        (lambda: TrackerConfig(ampd_pad_s=0.0), "ampd_pad_s"),
        (lambda: TrackerConfig(cbss_s=float("inf")), "finite"),
        (lambda: TrackerConfig(fir_taps=3.0), "fir_taps"),
        (lambda: TrackerConfig(beat_slack_s=10.0), "beat_slack_s"),
        (lambda: TrackerConfig(seed=-1), "seed"),
        (lambda: BeatTracker(sr=SR).process(np.zeros((2, 100))), "mono"),
        (lambda: BeatTracker(sr=SR).process(np.array([0.0, np.nan])), "NaN"),
        (lambda: BeatTracker(sr=SR).process(np.array(["a"])), "dtype"),
        (lambda: BeatTracker(sr=SR).process(np.zeros(4, dtype=complex)), "dtype"),
        (lambda: track(np.zeros(0), SR), "empty"),
        (lambda: track(np.zeros((1000, 2)), SR), "frames-first"),
        (lambda: BeatTracker(sr=SR, alpha=1.5), "alpha"),
        (lambda: BeatTracker(sr=SR, no_such_setting=1), "unknown tracker setting"),
        (lambda: TrackerConfig(bpm_min=200, bpm_max=100), "bpm_min"),
    ],
)
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(LabcoreError, match=match):
        call()


def test_empty_block_is_fine():
    assert BeatTracker(sr=SR).process(np.zeros(0)) == []


def test_randomized_ampd_is_seeded(click120):
    y, ref = click120
    a = BeatTracker(sr=SR, ampd_random=True, seed=3)
    a.process(y)
    b, _ = track(y, SR, ampd_random=True, seed=3)
    np.testing.assert_array_equal(a.beats, b)
    assert f_measure(ref, b) >= 0.95
    untouched = np.random.default_rng(3).bit_generator.state
    assert a._rng.bit_generator.state != untouched  # the random scalogram was drawn


def test_ampd_with_zero_padding_accepts_a_rising_edge():
    """The official test pads zeros after the newest sample, so a sample above the trend
    and above its lambda predecessors counts as a peak even while the signal still rises:
    beats come out as soon as the search window opens, and their times come from the
    counter (see BeatTracker._emit)."""
    t = np.arange(400)
    rising = detrend(np.cos(2 * np.pi * (t - 405) / 50))  # the maximum is 5 frames ahead
    assert ampd_newest_is_peak(rising, n_scales=30, pad=60)
    below = rising.copy()
    below[-1] = -1.0  # below the trend: never a peak
    assert not ampd_newest_is_peak(below, n_scales=30, pad=60)


def test_beat_times_and_latency(click120):
    y, ref = click120
    tracker = BeatTracker(sr=SR)
    tracker.process(y)
    est = np.array(tracker.beats)
    late = est[est > 5]
    offsets = np.array([e - ref[np.argmin(np.abs(ref - e))] for e in late])
    assert abs(np.median(offsets)) < 0.008  # reported within a few ms of the clicks
    lat = np.array([b.latency for b in tracker.events if b.time > 5])
    assert np.all(lat < tracker.onset_delay)  # decided ahead of the onset's own OSS peak
    assert tracker.next_beat == pytest.approx(tracker.beats[-1] + 0.5, abs=0.02)


def test_other_sample_rates_track_the_same_music():
    for sr in (16000, 44100, 48000):
        y, ref = synth_track(kind="drums", bpm=100, seconds=16, sr=sr)
        beats, tempo = track(y, sr)
        assert f_measure(ref, beats) >= 0.9, sr
        assert abs(tempo[-1, 1] - 100) <= 2, sr


def test_beat_grid_ramp_and_jump():
    g = beat_grid(bpm=60, seconds=10, start=0.0)
    np.testing.assert_allclose(g, np.arange(10.0))
    j = beat_grid(bpm=60, bpm_end=120, jump_at=4.0, seconds=6, start=0.0)
    np.testing.assert_allclose(j, [0, 1, 2, 3, 4, 4.5, 5, 5.5])
    r = beat_grid(bpm=60, bpm_end=120, seconds=20, start=0.0)
    assert np.all(np.diff(np.diff(r)) < 0)  # accelerating


def test_docstring_examples_run():
    import doctest

    import obtain.tracker

    result = doctest.testmod(obtain.tracker, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0
