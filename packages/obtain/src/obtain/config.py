"""Tracker settings: one dataclass shared by the Python API and the CLI.

Every time constant is given in seconds (or BPM) and converted to OSS frames for the sample
rate at hand by :class:`Frames`. At 44.1 kHz the conversion gives back the official integers
(frame 1024, hop 128, tempo window 2048 OSS frames refreshed every 128, lags 98…414, a CBSS
buffer of 2048, beat slack 10, phase offset 5, AMPD padding 207), so other sample rates run
the same algorithm on the same time scale without resampling.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

from labcore.errors import LabcoreError

# The official design rate: 44.1 kHz audio, hop 128 -> 344.53 OSS frames per second.
REFERENCE_SR = 44100
REFERENCE_HOP = 128
REFERENCE_FOSS = REFERENCE_SR / REFERENCE_HOP


def _frames_s(n: float) -> float:
    """Seconds of ``n`` OSS frames at the reference rate."""
    return n / REFERENCE_FOSS


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`obtain.BeatTracker` (defaults: the OBTAIN paper's code).

    Parameters
    ----------
    bpm_min, bpm_max
        Tempo range searched (50 to 210 BPM).
    frame_s, hop_s
        Analysis window (1024 samples at 44.1 kHz, Hamming) and hop (128 samples).
    lowpass_hz
        Cut-off of the 15-tap Hamming FIR that smooths the spectral flux into the OSS. 6 Hz
        reproduces the official taps (centre 0.13307, ends 0.00964).
    tempo_window_s, tempo_interval_s
        OSS window of each tempo estimate (2048 frames, 5.94 s) and time between estimates
        (128 frames, 0.37 s).
    tempo_start_s
        OSS needed before the first tempo estimate (and so before the first beat).
    lag_history, lag_sigma_s
        The last ``lag_history`` per-window lags vote in a histogram of Gaussians of width
        ``lag_sigma_s`` (10 frames).
    tempo_half_life
        Age (in estimates) at which a lag's vote counts half. ``math.inf`` gives the official
        flat histogram, which needs about half of its 100 entries (18 s) to follow a tempo
        change; the default 4 (1.5 s) follows one in a few seconds.
    octave_correction, prior_bpm, prior_octaves
        Choose between the histogram's lag, its half and its double by how well a comb of
        that period fits the recent OSS, times a log-normal tempo prior (centre ``prior_bpm``,
        width ``prior_octaves`` in octaves, librosa's defaults). This replaces the official
        3-class SVM, whose weights were trained on unknown data and are not reproduced here.
    change_bpm, change_patience, change_warmup, ratio_tol
        Tempo hysteresis. After ``change_warmup`` estimates, a change of more than
        ``change_bpm`` from the mean of the last 3 accepted tempi is taken only after
        ``change_patience`` consecutive insistent estimates, and never when the ratio is within
        ``ratio_tol`` (relative) of 2, 1/2, 3/2 or 2/3 (octave and triplet flips). The official
        code uses an absolute ±0.1, which also rejects a genuine 100 -> 140 BPM change.
    alpha, tightness
        CBSS weight of the past (0.9) and tightness of the log-Gaussian transition window (10).
    cbss_s
        Length of the CBSS buffer used by the beat decision (2048 frames).
    beat_slack_s
        Peak search opens ``beat_slack_s`` before the expected beat and a beat is forced
        ``beat_slack_s`` after it (10 frames).
    phase_correction, phase_min_offset_s, phase_periods
        Once per beat (half a period after the last one) re-align the beat counter to the
        pulse train that fits the CBSS best, if it is better than the beats so far and off by
        more than ``phase_min_offset_s`` (5 frames). The fit is taken over the last
        ``phase_periods`` periods (``None``: the whole CBSS buffer, as the official code). A
        pulse train over many periods is biased when the tempo estimate lags a changing
        tempo; over one period it is not (a 90 -> 130 BPM ramp: F 0.08 -> 0.99).
    ampd_scales, ampd_pad_s, ampd_random
        AMPD peak test (30 scales, 207 frames of zero padding). With ``ampd_random`` the
        scalogram's non-maximum entries are ``1 + U(0, 1)`` as in the paper and the official
        code (seeded by ``seed``); by default they are 1, which gives the same test in
        expectation, deterministically.
    silence_ratio
        No beat is emitted while the mean OSS over the last second is below this fraction of
        its long-run level (music stopped), and none at all in digital silence.
    seed
        Seed of the randomized AMPD.
    """

    bpm_min: float = 50.0
    bpm_max: float = 210.0
    frame_s: float = 1024 / REFERENCE_SR
    hop_s: float = REFERENCE_HOP / REFERENCE_SR
    lowpass_hz: float = 6.0
    fir_taps: int = 15
    tempo_window_s: float = _frames_s(2048)
    tempo_interval_s: float = _frames_s(128)
    tempo_start_s: float = 3.0
    lag_history: int = 100
    lag_sigma_s: float = _frames_s(10)
    tempo_half_life: float = 4.0
    octave_correction: bool = True
    prior_bpm: float = 120.0
    prior_octaves: float = 1.0
    change_bpm: float = 5.0
    change_patience: int = 4
    change_warmup: int = 18
    ratio_tol: float = 0.05
    alpha: float = 0.9
    tightness: float = 10.0
    cbss_s: float = _frames_s(2048)
    beat_slack_s: float = _frames_s(10)
    phase_correction: bool = True
    phase_min_offset_s: float = _frames_s(5)
    phase_periods: int | None = 1
    ampd_scales: int = 30
    ampd_pad_s: float = _frames_s(207)
    ampd_random: bool = False
    silence_ratio: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(msg: str):
            raise LabcoreError(f"TrackerConfig: {msg}")

        for f in fields(self):
            v = getattr(self, f.name)
            kind = {"int": numbers.Integral, "bool": bool}.get(str(f.type), numbers.Real)
            if f.name == "phase_periods" and v is None:
                continue
            if f.name == "phase_periods":
                kind = numbers.Integral
            if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
                bad(f"{f.name} must be {getattr(kind, '__name__', kind)}, got {v!r}")
            if isinstance(v, float) and math.isnan(v):
                bad(f"{f.name} is NaN")
            if isinstance(v, float) and math.isinf(v) and f.name not in ("tempo_half_life",):
                bad(f"{f.name} must be finite (only tempo_half_life may be math.inf)")
        if not 0 < self.bpm_min < self.bpm_max:
            bad(f"need 0 < bpm_min < bpm_max, got {self.bpm_min}, {self.bpm_max}")
        if not 0 < self.hop_s <= self.frame_s:
            bad(f"need 0 < hop_s <= frame_s, got {self.hop_s}, {self.frame_s}")
        if self.fir_taps < 1 or self.fir_taps % 2 == 0:
            bad(f"fir_taps must be odd and positive (a symmetric filter), got {self.fir_taps}")
        if self.lowpass_hz <= 0:
            bad(f"lowpass_hz must be > 0, got {self.lowpass_hz}")
        max_period_s = 60.0 / self.bpm_min
        if self.tempo_window_s < 2 * max_period_s:
            bad(
                f"tempo_window_s={self.tempo_window_s:.2f} s must hold two periods of bpm_min "
                f"({2 * max_period_s:.2f} s)"
            )
        if not 0 < self.tempo_start_s <= self.tempo_window_s:
            bad("tempo_start_s must be in (0, tempo_window_s]")
        if self.tempo_interval_s <= 0:
            bad("tempo_interval_s must be > 0")
        if self.lag_history < 1 or self.lag_sigma_s <= 0:
            bad("lag_history must be >= 1 and lag_sigma_s > 0")
        if not self.tempo_half_life > 0:
            bad("tempo_half_life must be > 0 (math.inf for the official flat histogram)")
        if self.prior_bpm <= 0 or self.prior_octaves <= 0:
            bad("prior_bpm and prior_octaves must be > 0")
        if not 0.0 <= self.alpha < 1.0:
            bad(f"alpha must be in [0, 1), got {self.alpha}")
        if self.tightness <= 0:
            bad("tightness must be > 0")
        if self.cbss_s < 2 * max_period_s:
            bad("cbss_s must hold two periods of bpm_min")
        if self.change_patience < 1 or self.change_warmup < 0 or self.change_bpm < 0:
            bad("change_patience >= 1, change_warmup >= 0 and change_bpm >= 0 are required")
        if not 0 <= self.ratio_tol < 0.25:
            bad("ratio_tol must be in [0, 0.25)")
        if self.ampd_scales < 1:
            bad("ampd_scales must be >= 1")
        if not 0 <= self.silence_ratio < 1:
            bad("silence_ratio must be in [0, 1)")
        if self.ampd_pad_s * REFERENCE_FOSS < self.ampd_scales:
            bad("ampd_pad_s must cover ampd_scales frames (the AMPD test looks that far ahead)")
        if not 0 <= self.beat_slack_s < 30.0 / self.bpm_max:
            bad("beat_slack_s must be below half the shortest period (30 / bpm_max)")
        if self.phase_periods is not None and self.phase_periods < 1:
            bad("phase_periods must be >= 1 or None")
        if self.seed < 0:
            bad("seed must be >= 0")
        if self.tempo_window_s > 60 or self.cbss_s > 60:
            bad("tempo_window_s and cbss_s are limited to 60 s")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def official(cls, **overrides) -> TrackerConfig:
        """The official code's settings where ours differ: a flat 100-lag histogram, phase
        check over the whole CBSS buffer, ratio tolerance ±0.1, randomized AMPD. Its octave
        SVM is not reproduced, so octave correction is off."""
        settings = dict(
            tempo_half_life=math.inf,
            phase_periods=None,
            ratio_tol=0.1,
            ampd_random=True,
            octave_correction=False,
        )
        return cls(**{**settings, **overrides})


@dataclass(frozen=True)
class Frames:
    """A :class:`TrackerConfig` converted to samples and OSS frames for one sample rate."""

    sr: int
    n_fft: int
    hop: int
    f_oss: float
    min_lag: int
    max_lag: int
    tempo_window: int
    tempo_interval: int
    tempo_start: int
    lag_sigma: float
    cbss_len: int
    beat_slack: int
    phase_min_offset: int
    ampd_pad: int

    @classmethod
    def of(cls, cfg: TrackerConfig, sr: int) -> Frames:
        hop = max(1, round(cfg.hop_s * sr))
        n_fft = max(hop, round(cfg.frame_s * sr))
        f = sr / hop

        def fr(seconds: float) -> int:
            return max(1, round(seconds * f))

        min_lag = max(2, math.floor(f * 60.0 / cfg.bpm_max))
        max_lag = math.floor(f * 60.0 / cfg.bpm_min) + 1
        return cls(
            sr=sr,
            n_fft=n_fft,
            hop=hop,
            f_oss=f,
            min_lag=min_lag,
            max_lag=max_lag,
            tempo_window=fr(cfg.tempo_window_s),
            tempo_interval=fr(cfg.tempo_interval_s),
            tempo_start=fr(cfg.tempo_start_s),
            lag_sigma=cfg.lag_sigma_s * f,
            cbss_len=fr(cfg.cbss_s),
            beat_slack=fr(cfg.beat_slack_s),
            phase_min_offset=fr(cfg.phase_min_offset_s),
            ampd_pad=fr(cfg.ampd_pad_s),
        )

    def lag_to_bpm(self, lag: float) -> float:
        return 60.0 * self.f_oss / lag

    def bpm_to_lag(self, bpm: float) -> float:
        return 60.0 * self.f_oss / bpm
