"""The embedded default corpus: generated, deterministic "emotional speech" for a first run without any corpus.

Each utterance is a voiced harmonic signal (a glottal-like source of 12 harmonics with a 1/k
roll-off, shaped by two formant-like resonances) whose pitch level, pitch range, tempo (syllable
rate) and loudness depend on the emotion class, with per-utterance variation (a speaker-like pitch
offset, jitter, breath noise) so that classes overlap. It is NOT speech: numbers obtained on it
say that the pipeline works, nothing about any emotion corpus. Files are written in the original's
layout ``<folder>/<class>/<class>_<nn>.wav`` (22 050 Hz, 16-bit PCM).
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from .corpora import CORPORA, SAMPLE_RATE

CORPUS = CORPORA["SYNTH"]

# class -> (mean pitch Hz, pitch range in semitones, contour slope, syllables per second, loudness dBFS)
PROSODY = {
    "angry": (220.0, 7.0, -0.2, 5.5, -8.0),
    "happy": (240.0, 9.0, 0.6, 5.0, -12.0),
    "neutral": (140.0, 2.5, -0.1, 4.0, -16.0),
    "sad": (110.0, 2.0, -0.6, 2.5, -24.0),
}


def _resonate(signal: np.ndarray, centre: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonator (a formant) at ``centre`` Hz."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * centre / SAMPLE_RATE
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], signal)


def utterance(label: str, rng: np.random.Generator, seconds: float = 1.5) -> np.ndarray:
    """One synthetic utterance of class ``label`` as float32 samples in [-1, 1]."""
    pitch, semitones, slope, rate, loudness = PROSODY[label]
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch *= 2 ** (rng.normal(0, 1.5) / 12)  # speaker-like offset, +-1.5 semitones
    contour = semitones * (0.5 * np.sin(2 * np.pi * rng.uniform(0.4, 1.2) * t + rng.uniform(0, 2 * np.pi))
                           + slope * (t / seconds - 0.5))
    f0 = pitch * 2 ** ((contour + rng.normal(0, 0.15, n).cumsum() / np.sqrt(n)) / 12)  # (n,) with slow jitter
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    source = sum(np.sin(k * phase) / k for k in range(1, 13))
    voiced = _resonate(source, rng.uniform(500, 800), 90) + 0.6 * _resonate(source, rng.uniform(1100, 1800), 120)
    # syllables: raised-cosine bumps at the class' rate, with pauses between
    syllable = rate * rng.uniform(0.85, 1.15)
    envelope = np.clip(np.sin(np.pi * syllable * t + rng.uniform(0, np.pi)), 0, None) ** 1.5
    envelope *= np.clip(np.minimum(t, seconds - t) / 0.05, 0, 1)  # fade in and out
    signal = voiced * envelope + rng.normal(0, 0.02, n)
    gain = 10 ** ((loudness + rng.normal(0, 2.0)) / 20) / (np.sqrt(np.mean(signal ** 2)) + 1e-9)
    return np.clip(signal * gain, -1, 1).astype(np.float32)


def generate(folder: str, per_class: int = 30, seed: int = 0) -> list[str]:
    """Write ``per_class`` utterances of each class as ``folder/<class>/<class>_<nn>.wav`` and return their paths.

    Files already there are overwritten. Utterance ``i`` of class ``c`` draws from its own generator
    ``default_rng([seed, c, i])``: the same seed gives byte-identical files, whatever ``per_class`` is.
    """
    paths = []
    for c, label in enumerate(CORPUS.classes):
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, c, i])
            path = os.path.join(folder, label, f"{label}_{i + 1:02d}.wav")
            sf.write(path, utterance(label, rng), SAMPLE_RATE, subtype="PCM_16")
            paths.append(path)
    return paths
