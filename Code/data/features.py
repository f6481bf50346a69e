"""Signal -> features: the two feature kinds (``FEATURE_KINDS``), both from the same centred signal (SPEC §1.1-1.2).

- ``mfcc``: 39-D MFCCs exactly as the original (SPEC §1.3), (T, 39) per utterance;
- ``logmel3``: DCNN-BLSTMwA's input (Zhang et al., 2021): a 64-band log-Mel spectrogram with its delta and
  delta-delta as three channels, cut into 64-frame segments with 50 % overlap, (S, 64, 64, 3) per utterance.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from ..core.errors import UserError, first_few
from .audio import centre, load_audio
from .corpora import SAMPLE_RATE

N_MFCC = 39
# The longest utterance extracted: 10 min. Each is one row of the feature file; a recording much longer than an
# utterance (an hour's mean length, a length typed in the wrong unit) would fill the memory instead.
MAX_SIGNAL_LENGTH = 600 * SAMPLE_RATE

# logmel3 (Zhang et al., 2021). From the paper's abstract and SPEC §5: 64 mel bands, 3 channels, 64-frame
# segments, 50 % overlap. Its full text was not available to us; from the public prototype's utils.py:
# 25 ms Hamming window, 10 ms hop, 20-8000 Hz. Ours: 22 050 Hz like every corpus here, librosa's
# power_to_db (top_db 80) and delta (width 9).
N_MELS = 64
SEGMENT_FRAMES = 64
SEGMENT_HOP = 32  # 50 % overlap
WIN_LENGTH = 551  # 25 ms at 22 050 Hz
HOP_LENGTH = 220  # 10 ms
N_FFT = 1024  # the smallest power of two holding the window
FMIN, FMAX = 20.0, 8000.0

# kind -> what x holds, for messages
FEATURE_KINDS = {"mfcc": f"(N, T, {N_MFCC}) MFCC frames",
                 "logmel3": f"(N, S, {SEGMENT_FRAMES}, {N_MELS}, 3) log-Mel segments"}

MFCC_WINDOW = 2048  # librosa.feature.mfcc's n_fft at its defaults


def mfcc(signal: np.ndarray) -> np.ndarray:
    """``librosa.feature.mfcc(y, sr=22050, n_mfcc=39)`` at its defaults, transposed: (L,) -> (T, 39)."""
    import librosa
    return librosa.feature.mfcc(y=signal, sr=SAMPLE_RATE, n_mfcc=N_MFCC).T.astype(np.float32)


def logmel3(signal: np.ndarray) -> np.ndarray:
    """(L,) -> (S, 64 frames, 64 mel bands, 3): log-Mel, delta, delta-delta, in 64-frame segments hopping 32.

    The frames are librosa's centred STFT frames, T = 1 + floor(L / 220); segment s holds frames
    32 s .. 32 s + 63, S = 1 + floor((T - 64) / 32). The last (T - 64) mod 32 frames fall in no segment.
    """
    import librosa
    power = librosa.feature.melspectrogram(y=signal, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                                           win_length=WIN_LENGTH, window="hamming", n_mels=N_MELS, fmin=FMIN,
                                           fmax=FMAX)  # (64, T)
    static = librosa.power_to_db(power)  # (64, T) dB, floored 80 dB below the utterance's peak
    channels = np.stack([static, librosa.feature.delta(static), librosa.feature.delta(static, order=2)],
                        axis=-1).transpose(1, 0, 2)  # (T, 64, 3)
    starts = range(0, len(channels) - SEGMENT_FRAMES + 1, SEGMENT_HOP)
    return np.stack([channels[s:s + SEGMENT_FRAMES] for s in starts]).astype(np.float32)  # (S, 64, 64, 3)


def feature_shape(kind: str, signal_length: int) -> tuple:
    """One utterance's feature shape for a signal of ``signal_length`` samples (at most ``MAX_SIGNAL_LENGTH``)."""
    if signal_length > MAX_SIGNAL_LENGTH:  # each utterance's features and spectrum would fill the memory
        raise UserError(f"--mean_signal_length {signal_length}: utterances of {signal_length / SAMPLE_RATE / 60:.1f} "
                        f"min; at most {MAX_SIGNAL_LENGTH} samples (10 min): "
                        "cut long recordings into utterances, or score them window by window with --mode predict "
                        "--timeline")
    if kind == "mfcc":
        if signal_length < MFCC_WINDOW:  # librosa warned, then padded a window of silence around a few samples
            raise UserError(f"--mean_signal_length {signal_length}: shorter than one MFCC analysis window "
                            f"({MFCC_WINDOW} samples, 93 ms); give at least {MFCC_WINDOW}")
        return 1 + signal_length // 512, N_MFCC
    frames = 1 + signal_length // HOP_LENGTH
    if frames < SEGMENT_FRAMES:
        raise UserError(f"--features logmel3: utterances of {signal_length} samples give {frames} frames, fewer "
                        f"than one segment of {SEGMENT_FRAMES} (at least {(SEGMENT_FRAMES - 1) * HOP_LENGTH} "
                        "samples, 0.63 s; set --mean_signal_length)")
    return 1 + (frames - SEGMENT_FRAMES) // SEGMENT_HOP, SEGMENT_FRAMES, N_MELS, 3


def signal_features(signal: np.ndarray, signal_length: int, kind: str = "mfcc") -> np.ndarray:
    """A 22 050 Hz signal's features after centring: (T, 39) MFCCs or (S, 64, 64, 3) log-Mel segments."""
    centred = centre(signal, signal_length)
    return mfcc(centred) if kind == "mfcc" else logmel3(centred)


def extract_file(path: str, signal_length: int, kind: str = "mfcc") -> np.ndarray:
    """One file's features, (T, 39) or (S, 64, 64, 3); the unit of work of the process pool."""
    return signal_features(load_audio(path), signal_length, kind)


# the largest difference of a signature to a training row's that still means "the same audio" (prediction, the
# leak check of fine-tuning)
SEEN_TOLERANCE = 0.05


def row_signatures(x: np.ndarray) -> np.ndarray:
    """One short fingerprint per utterance: its features averaged over frames (and segments), float32.

    (N, T, 39) MFCCs -> (N, 39); (N, S, 64, 64, 3) log-Mel segments -> (N, 64 * 3). A run keeps those of its
    training rows, and prediction compares a file's with them to tell a file the run trained on from a new one:
    re-extracting the same audio gives the same averages to about 1e-4, other utterances differ by far more.
    """
    averaged = x.mean(axis=1) if x.ndim == 3 else x.mean(axis=(1, 2))
    return averaged.reshape(len(x), -1).astype(np.float32)


def identical_rows(x: np.ndarray) -> list[tuple[int, int]]:
    """(row, the earlier row it equals) for every row of ``x`` whose features are bit-identical to an earlier row's:
    one recording twice (a copy under another name, another format, a corpus pooled with a part of itself), which
    can sit in a training fold and a test fold at once."""
    first, pairs = {}, []
    for i, row in enumerate(x):
        digest = hashlib.sha256(np.ascontiguousarray(row).tobytes()).digest()
        if digest in first:
            pairs.append((i, first[digest]))
        else:
            first[digest] = i
    return pairs


def warn_of_identical_rows(x: np.ndarray, files, where: str) -> None:
    """One warning line on stderr naming ``where``'s rows that repeat an earlier row (``identical_rows``), by file
    name where ``files`` gives them; nothing where none does."""
    pairs = identical_rows(x)
    if not pairs:
        return
    def named(row: int) -> str:
        return str(files[row]) if files is not None else f"row {row}"
    shown = first_few((f"{named(i)} = {named(j)}" for i, j in pairs), "; ")
    print(f"warning: {where}: {len(pairs)} row(s) hold the same features as another row, so one recording can be in "
          f"a training fold and a test fold at once, which inflates the figures: {shown}; remove the copies",
          file=sys.stderr)


def signature_matches(signatures: np.ndarray, known: np.ndarray) -> list[np.ndarray]:
    """For each row of ``signatures`` (N, D), the rows of ``known`` (M, D) that are the same audio, ascending: every
    coefficient within SEEN_TOLERANCE. ``known`` is sorted once on its first coefficient and each row tests only
    those near its own there, so no N x M x D array is made (fine-tuning compares whole corpora)."""
    order = np.argsort(known[:, 0], kind="stable")
    first = known[order, 0]
    # a window twice the tolerance: a superset of the matches whatever the rounding, the exact test decides
    starts = np.searchsorted(first, signatures[:, 0] - 2 * SEEN_TOLERANCE, side="left")
    stops = np.searchsorted(first, signatures[:, 0] + 2 * SEEN_TOLERANCE, side="right")
    matches = []
    for signature, start, stop in zip(signatures, starts, stops):
        candidates = order[start:stop]
        close = np.abs(known[candidates] - signature).max(axis=1) <= SEEN_TOLERANCE
        matches.append(np.sort(candidates[close]))
    return matches
