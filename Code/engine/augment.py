"""Balancing and augmenting a training fold (``--balance``, ``--augment``; both off by default).

Zhang et al. (2021) "preprocess the speech samples by data enhancement and datasets balancing" before
DCNN-BLSTMwA; how, their abstract does not say and their full text was not available to us. These are
our stand-ins, applied to the rows a fold trains on and never to its test rows:

- ``oversample``: every class of the training rows repeated (whole copies, then a random subset) up to
  the size of the largest class;
- ``masked_copies``: log-Mel segments with one band of mel channels and one stretch of time set to the
  utterance's mean (SpecAugment-style frequency and time masks), the same band and stretch in every
  segment that covers them.

Knows nothing about TensorFlow or models.
"""

from __future__ import annotations

import numpy as np

from ..data.features import SEGMENT_HOP


def oversample(rows: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rows`` followed by extra rows of every class smaller than the largest, until all classes are equal.

    Args:
        rows: indices into ``labels`` (the training rows).
        labels: class index of every row of the data.
        rng: draws which rows of a class are repeated once more when whole copies do not fit.
    """
    classes, counts = np.unique(labels[rows], return_counts=True)
    extra = []
    for label, count in zip(classes, counts):
        members = rows[labels[rows] == label]
        copies, rest = divmod(int(counts.max() - count), int(count))
        extra += [np.tile(members, copies), rng.choice(members, rest, replace=False)]
    return np.concatenate([rows, *extra]).astype(rows.dtype)


def masked_copies(x: np.ndarray, copies: int, rng: np.random.Generator, max_bands: int = 8,
                  max_frames: int = 16) -> np.ndarray:
    """``copies`` masked versions of every utterance of ``x`` (N, S, 64, 64, 3): (copies * N, S, 64, 64, 3).

    Copy k of utterance i is row k * N + i. Each gets one frequency mask (0 to ``max_bands`` mel bands)
    and one time mask (0 to ``max_frames`` frames of the utterance, placed on its frame axis, which the
    50 %-overlapping segments share); masked values become the utterance's per-channel mean, i.e. zero
    after the network's standardisation.
    """
    n, segments, frames, bands, _ = x.shape
    covered = SEGMENT_HOP * (segments - 1) + frames  # utterance frames the segments span
    out = np.concatenate([x] * copies)  # (copies * N, S, 64, 64, 3)
    for utterance in out:
        fill = utterance.mean(axis=(0, 1, 2))  # (3,)
        width = int(rng.integers(0, max_bands + 1))
        low = int(rng.integers(0, bands - width + 1))
        utterance[:, :, low:low + width, :] = fill
        length = int(rng.integers(0, max_frames + 1))
        start = int(rng.integers(0, covered - length + 1))
        for s in range(segments):  # the stretch [start, start + length) in segment s's own frame numbers
            a, b = max(start - SEGMENT_HOP * s, 0), min(start + length - SEGMENT_HOP * s, frames)
            if a < b:
                utterance[s, a:b] = fill
    return out
