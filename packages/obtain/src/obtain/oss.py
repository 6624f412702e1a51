"""Onset strength signal (OSS), computed causally block by block.

Each hop, the last ``n_fft`` samples are Hamming-windowed, their magnitude spectrum divided
by ``n_fft`` and log-compressed as ``ln(1 + 1000 |X|)``; the spectral flux is the sum of the
positive increases over bins 1… (the DC bin is left out); the OSS is the flux smoothed by a
symmetric low-pass FIR over the last ``fir_taps`` flux values. The stream starts with
``n_fft - hop`` zeros, so the first OSS frame ends after the first hop of audio.

The result does not depend on how the audio is cut into blocks: every frame is computed from
the same samples by the same arithmetic in the same order (tested with blocks of 1 to 4096).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import firwin

from obtain.config import Frames, TrackerConfig

LOG_GAIN = 1000.0


def lowpass_taps(cfg: TrackerConfig, fr: Frames) -> np.ndarray:
    """The OSS smoothing filter: a Hamming-window FIR designed by ``scipy.signal.firwin``."""
    cutoff = min(cfg.lowpass_hz, 0.49 * fr.f_oss)
    return firwin(cfg.fir_taps, cutoff, fs=fr.f_oss, window="hamming")


class OnsetStrength:
    """Streaming OSS: feed samples with :meth:`process`, get the OSS frames they complete."""

    def __init__(self, cfg: TrackerConfig, fr: Frames):
        self.fr = fr
        self.window = np.hamming(fr.n_fft)
        # A 5-smooth FFT length (zero padding): odd window lengths at unusual rates would
        # otherwise dominate the run time. 44.1 kHz (1024) and 22.05 kHz (512) are unchanged.
        self.fft_len = next_fast_len(fr.n_fft, real=True)
        self.taps = lowpass_taps(cfg, fr)
        # Samples not yet consumed, preceded by the n_fft - hop samples the next frame needs.
        self._buf = np.zeros(fr.n_fft - fr.hop)
        self._prev_logmag = np.zeros(self.fft_len // 2 + 1)
        self._flux_tail = np.zeros(len(self.taps) - 1)
        self.n_frames = 0

    @property
    def delay_frames(self) -> float:
        """Group delay of the FIR, in OSS frames ((taps - 1) / 2)."""
        return (len(self.taps) - 1) / 2

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Consume samples; return ``(oss, flux)`` for the frames completed by them."""
        fr = self.fr
        buf = np.concatenate([self._buf, x]) if len(x) else self._buf
        n_new = (len(buf) - (fr.n_fft - fr.hop)) // fr.hop
        if n_new <= 0:
            self._buf = buf
            return np.zeros(0), np.zeros(0)
        frames = np.lib.stride_tricks.sliding_window_view(buf, fr.n_fft)[:: fr.hop][:n_new]
        # Batched FFT: numpy's pocketfft transforms each row independently, so a frame's
        # spectrum does not depend on how many frames share the call (block-size invariance
        # is tested).
        spec = np.fft.rfft(frames * self.window, self.fft_len, axis=1)
        logmag = np.log1p(LOG_GAIN * (np.abs(spec) / fr.n_fft))
        logmag[:, 0] = 0.0
        diff = np.diff(np.vstack([self._prev_logmag[None, :], logmag]), axis=0)
        flux = np.maximum(diff, 0.0).sum(axis=1)
        self._prev_logmag = logmag[-1]
        self._buf = buf[n_new * fr.hop :].copy()

        hist = np.concatenate([self._flux_tail, flux])
        taps = self.taps
        k = len(taps)
        oss = np.zeros(n_new)
        for j in range(k):  # column by column: a fixed summation order
            oss += taps[k - 1 - j] * hist[j : j + n_new]
        self._flux_tail = hist[-(k - 1) :] if k > 1 else np.zeros(0)
        self.n_frames += n_new
        return oss, flux
