"""The training corpus' MFCC statistics, and how far inputs lie from them: the domain-shift warning; and the
mean and variance over unpadded frames that ``--normalize corpus`` and ``speaker`` standardise with.

A run keeps, in its ``run.json``, per MFCC coefficient: the mean and standard deviation over the non-padded frames
of its corpus, and the mean and standard deviation of its utterances' own means (``corpus_statistics``). A padded
frame (zero padding from centring, or digital silence) is flat in the log-Mel domain, floored 80 dB below the
utterance's peak: only its coefficient 0 is non-zero.

The distance of n inputs (``shift_distance``) is the root mean square over the 39 coefficients of
``(m - utterance mean) / utterance std``, where ``m`` is the inputs' mean of their utterance means. One utterance
varies a lot (speaker, emotion, sentence), the mean of several much less, so the threshold falls with n:
``max(1, 2 / sqrt(n))``. bench/domain_shift.py measured it on emodb_2s: utterances of held-out speakers of the
training corpus' setup against the same utterances through another channel (gain, band limit, noise);
docs/cross_corpus.md has the table. The windows of one recording (a timeline) vary less at n = 1 and more at
large n than random utterances (one speaker, one setup): ``window_threshold`` is ``max(1.1, 2 / sqrt(n))``,
measured by bench/timeline_shift.py (docs/timeline.md). Log-Mel runs (DCNN-BLSTMwA) keep no statistics and get
no warning, and so does a run folder written before the statistics were kept.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

FLAT = 1e-3  # largest |coefficient 1..38| of a padded frame; an unpadded frame's largest is above 0.01 (emodb_2s)
THRESHOLD_ONE = 2.0  # the threshold of one input (measured: bench/domain_shift.py, docs/cross_corpus.md)
THRESHOLD_FLOOR = 1.0  # the threshold of many inputs together
THRESHOLD_WINDOWS_FLOOR = 1.1  # the threshold of many windows of one recording (bench/timeline_shift.py)
EPSILON = 1e-6  # added to a variance before standardising (--normalize)


def unpadded_frames(x: np.ndarray) -> np.ndarray:
    """(..., T) mask of the frames of (..., T, 39) MFCCs that are not padding."""
    return np.abs(x[..., 1:]).max(axis=-1) > FLAT


def utterance_means(x: np.ndarray) -> np.ndarray:
    """(N, 39): each utterance's mean over its non-padded frames (zeros for one without any)."""
    kept = unpadded_frames(x)[..., None]
    return (x * kept).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)


def frame_moments(x: np.ndarray) -> np.ndarray:
    """(2, 39): the mean and the variance of each coefficient over the non-padded frames of (N, T, 39) MFCCs
    (0 and 1 where there are none): what ``--normalize corpus`` and ``speaker`` standardise with."""
    frames = x[unpadded_frames(x)].astype(np.float64)
    if not len(frames):
        return np.stack([np.zeros(x.shape[-1]), np.ones(x.shape[-1])])
    return np.stack([frames.mean(axis=0), frames.var(axis=0)])


def standardise(x: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """(N, T, 39) MFCCs standardised with ``moments`` (``frame_moments``' (2, 39)), padded frames set to 0: the
    formula of nn/normalization.py's layers, for ``--normalize speaker`` (float32)."""
    mean, variance = np.asarray(moments, dtype=np.float64)
    kept = unpadded_frames(x)[..., None]
    return ((x - mean) / np.sqrt(variance + EPSILON) * kept).astype(np.float32)


def corpus_statistics(x: np.ndarray, kind: str) -> Optional[dict]:
    """The statistics a run keeps of its (N, T, 39) MFCCs (lists of 39 floats): ``frame_moments`` (as mean and
    standard deviation) and those of the utterance means; None for another feature kind or where every frame is
    padding."""
    if kind != "mfcc":
        return None
    x = x.astype(np.float64)  # the padding mask and every mean in float64, as run.json has always kept them
    frames = int(unpadded_frames(x).sum())
    if not frames:  # every frame is padding (silent or empty files): nothing to compare inputs with
        return None
    (mean, variance), means = frame_moments(x), utterance_means(x)
    return {"frame_mean": mean.tolist(), "frame_std": np.sqrt(variance).tolist(),
            "utterance_mean": means.mean(axis=0).tolist(), "utterance_std": means.std(axis=0).tolist(),
            "frames": frames, "utterances": int(len(x))}


def threshold(n: int) -> float:
    """The distance above which n inputs together count as another recording setup or corpus."""
    return max(THRESHOLD_FLOOR, THRESHOLD_ONE / math.sqrt(max(n, 1)))


def window_threshold(n: int) -> float:
    """The distance above which n voiced windows of one recording (a timeline) together count as another
    recording setup or corpus: windows of one speaker vary less than random utterances at n = 1 and more at
    large n, so the floor is higher (bench/timeline_shift.py, docs/timeline.md)."""
    return max(THRESHOLD_WINDOWS_FLOOR, THRESHOLD_ONE / math.sqrt(max(n, 1)))


def means_distance(means: np.ndarray, statistics: dict) -> float:
    """How far the mean of utterance means (N, 39) lies from a run's ``statistics``, in standard deviations of the
    corpus' utterance means (root mean square over the coefficients)."""
    spread = np.maximum(np.asarray(statistics["utterance_std"]), 1e-6)
    z = (np.asarray(means, np.float64).mean(axis=0) - np.asarray(statistics["utterance_mean"])) / spread
    return float(np.sqrt(np.mean(z ** 2)))


def shift_distance(x: np.ndarray, statistics: dict) -> float:
    """How far (N, T, 39) MFCCs (N inputs together; one utterance (T, 39) too) lie from a run's ``statistics``
    (``means_distance`` of their utterance means)."""
    return means_distance(utterance_means(x.reshape(-1, *x.shape[-2:]).astype(np.float64)), statistics)


def _shift(distance: float, limit: float, what: str, corpus: str) -> dict:
    warning = None
    if distance > limit:
        warning = (f"{what} MFCC statistics lie {distance:.2f} from those of {corpus}, the training corpus (above "
                   f"{limit:.2f}): another recording setup or corpus; expect far lower accuracy than the run's own "
                   "figures (docs/cross_corpus.md)")
    return {"distance": distance, "threshold": limit, "warning": warning}


def domain_shift(x: np.ndarray, statistics: Optional[dict], corpus: str) -> Optional[dict]:
    """{"distance", "threshold", "inputs", "warning" (None below the threshold)} of (N, T, 39) inputs taken
    together; None when the run keeps no statistics."""
    if statistics is None or x.ndim != 3 or not len(x):
        return None
    what = "this input's" if len(x) == 1 else f"these {len(x)} inputs'"
    return {**_shift(shift_distance(x, statistics), threshold(len(x)), what, corpus), "inputs": int(len(x))}


def window_shift(means: np.ndarray, statistics: Optional[dict], corpus: str) -> Optional[dict]:
    """{"distance", "threshold", "windows", "warning"} of a recording's voiced windows taken together (their
    utterance means (W, 39)), against ``window_threshold``; None when the run keeps no statistics."""
    if statistics is None or not len(means):
        return None
    what = "this recording's" if len(means) == 1 else f"this recording's {len(means)} voiced windows'"
    return {**_shift(means_distance(means, statistics), window_threshold(len(means)), what, corpus),
            "windows": int(len(means))}
