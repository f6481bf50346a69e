"""Another recording setup, simulated: a gain, a band limit and added noise applied to a 22 050 Hz signal.

The stand-in for a second corpus' microphone and room in the cross-corpus measurements (bench/domain_shift.py,
bench/timeline_shift.py, docs/cross_corpus.md) and the tests: the same utterances, heard through another channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .corpora import SAMPLE_RATE


@dataclass(frozen=True)
class Channel:
    """Gain in dB, a Butterworth band pass (Hz, order 4), white noise at ``snr_db`` below the signal's power."""

    gain_db: float = -6.0
    low_hz: float = 300.0
    high_hz: float = 3400.0
    snr_db: float = 20.0
    seed: int = 0

    def apply(self, signal: np.ndarray) -> np.ndarray:
        from scipy.signal import butter, sosfilt
        sos = butter(4, [self.low_hz, self.high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        out = sosfilt(sos, np.asarray(signal, dtype=np.float64)) * 10 ** (self.gain_db / 20)
        power = float(np.mean(out ** 2)) if len(out) else 0.0
        noise = np.random.default_rng(self.seed).normal(size=len(out)) * np.sqrt(power / 10 ** (self.snr_db / 10))
        return (out + noise).astype(np.float32)
