"""wav -> features, and the feature files, read and written safely.

Two feature kinds (``FEATURE_KINDS``), both from the same centred signal (SPEC §1.1-1.2):

- ``mfcc``: 39-D MFCCs exactly as the original (SPEC §1.3), (T, 39) per utterance;
- ``logmel3``: DCNN-BLSTMwA's input (Zhang et al., 2021): a 64-band log-Mel spectrogram with its delta and
  delta-delta as three channels, cut into 64-frame segments with 50 % overlap, (S, 64, 64, 3) per utterance.

Feature file: ``np.save`` of a dict ``{"x": float32 (N, ...), "y": float32 one-hot (N, C)}`` (the
authors' format; their loader is ``np.load(path, allow_pickle=True).item()``), plus metadata keys
``files``, ``speakers``, ``classes``, ``signal_length`` and ``features`` (the kind; a file without it,
such as the authors' own, holds MFCCs) that their loader ignores. Such a file is a pickle, and
unpickling can run code: ``load_features`` admits only numpy arrays, dicts, strings and numbers, and
refuses anything else. Knows nothing about models.
"""

from __future__ import annotations

import itertools
import os
import pickle
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import BinaryIO

import numpy as np

from .corpora import SAMPLE_RATE, Corpus, natural_key
from .atomic_file import atomic_write
from .errors import UserError

N_MFCC = 39

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

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# kind -> what x holds, for messages
FEATURE_KINDS = {"mfcc": f"(N, T, {N_MFCC}) MFCC frames",
                 "logmel3": f"(N, S, {SEGMENT_FRAMES}, {N_MELS}, 3) log-Mel segments"}


def _decode_reason(exc: BaseException) -> str:
    """The most telling short reason in an exception chain.

    librosa tries libsndfile first and then audioread, whose errors often carry no message; the libsndfile
    error it raised on the way (the chain's context) says what is wrong with the file.
    """
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__context__
    for error in chain:
        if getattr(error, "error_string", ""):  # soundfile.LibsndfileError without the path
            return error.error_string.strip()
    for error in chain:
        if str(error).strip():
            return str(error).strip().splitlines()[0]
    names = {"NoBackendError": "no decoder recognises it", "EOFError": "the file ends early"}
    return names.get(type(chain[0]).__name__, type(chain[0]).__name__)


def load_audio(path: str) -> np.ndarray:
    """``librosa.load`` with its defaults, as the original: mono, resampled to 22 050 Hz; (s,) float32."""
    import librosa
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such audio file")
    if os.path.getsize(path) == 0:
        raise UserError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread; the error says it all
            warnings.simplefilter("ignore")
            signal, _ = librosa.load(path)  # librosa's defaults, as the original: sr=22050, mono=True
    except Exception as exc:  # soundfile and audioread raise many types; all mean "not decodable"
        raise UserError(f"{path}: cannot be decoded as audio ({_decode_reason(exc)})") from None
    if signal.size == 0:
        raise UserError(f"{path}: holds no audio samples")
    return signal


def resample(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Samples of any rate, (s,) or (s, channels), as ``librosa.load`` would return them: mono at 22 050 Hz."""
    import librosa
    signal = np.asarray(samples, dtype=np.float32)
    if signal.ndim == 2:  # (s, channels), soundfile's layout; librosa.load averages the channels
        signal = signal.mean(axis=1)
    if signal.ndim != 1 or signal.size == 0:
        raise UserError(f"audio array of shape {np.shape(samples)}: expected (samples,) or (samples, channels)")
    if sample_rate != SAMPLE_RATE:
        signal = librosa.resample(signal, orig_sr=sample_rate, target_sr=SAMPLE_RATE)  # librosa.load's soxr_hq
    return signal


def centre(signal: np.ndarray, signal_length: int) -> np.ndarray:
    """Centred to exactly ``signal_length`` samples (SPEC §1.2): zero-padded around, or its middle cut: (L,)."""
    s = len(signal)
    if s < signal_length:  # zero-pad floor((L - s) / 2) on the left, the rest on the right
        left = (signal_length - s) // 2
        return np.pad(signal, (left, signal_length - s - left)).astype(np.float32)
    start = (s - signal_length) // 2  # crop the middle: signal[p : p + L], p = floor((s - L) / 2)
    return signal[start:start + signal_length].astype(np.float32)


def load_centered(path: str, signal_length: int) -> np.ndarray:
    """``librosa.load`` (mono, 22 050 Hz), then centred to exactly ``signal_length`` samples (SPEC §1.2): (L,)."""
    return centre(load_audio(path), signal_length)


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
    """One utterance's feature shape for a signal of ``signal_length`` samples."""
    if kind == "mfcc":
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


def row_signatures(x: np.ndarray) -> np.ndarray:
    """One short fingerprint per utterance: its features averaged over frames (and segments), float32.

    (N, T, 39) MFCCs -> (N, 39); (N, S, 64, 64, 3) log-Mel segments -> (N, 64 * 3). A run keeps those of its
    training rows, and prediction compares a file's with them to tell a file the run trained on from a new one:
    re-extracting the same audio gives the same averages to about 1e-4, other utterances differ by far more.
    """
    averaged = x.mean(axis=1) if x.ndim == 3 else x.mean(axis=(1, 2))
    return averaged.reshape(len(x), -1).astype(np.float32)


def _hidden(name: str) -> bool:
    # macOS archives carry "._03a01Wa.wav" resource forks and __MACOSX/ copies that are not audio
    return name.startswith(".") or name == "__MACOSX"


def is_audio(name: str) -> bool:
    """The one rule for what counts as an audio file, in a folder as given one by one: a visible file whose
    extension libsndfile (wav, flac, ogg) or librosa's fallback (mp3) decodes."""
    return name.lower().endswith(AUDIO_EXTENSIONS) and not _hidden(os.path.basename(name))


def audio_files(folder: str) -> list[str]:
    """Every audio file (``is_audio``) below ``folder``, hidden files and folders left out, in a fixed order."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        found += [os.path.join(root, n) for n in sorted(names) if is_audio(n)]
    return found


def _authors_order(items: list[tuple[str, str, str]], corpus: Corpus, root: str) -> list[tuple[str, str, str]]:
    """By class in one-hot column order, then the file's own name compared naturally (SPEC §1.4).

    Equal names in different folders (SAVEE ``DC/a01.wav``, ``JE/a01.wav``) are ordered by their path,
    so the order, and with it the fold split, never depends on the file system.
    """
    column = {c: i for i, c in enumerate(corpus.classes)}
    return sorted(items, key=lambda item: (column[item[1]], natural_key(os.path.basename(item[0])),
                                           natural_key(os.path.relpath(item[0], root))))


def read_manifest(path: str) -> list[tuple[str, str, str]]:
    """(path, label, speaker) rows of a CSV manifest ``path,label[,speaker]``; relative paths from its folder."""
    import csv
    folder = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().startswith("#") or (number == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) not in (2, 3) or not row[0].strip() or not row[1].strip():
                raise UserError(f"{path}: line {number} is not 'path,label[,speaker]': {','.join(row)!r}")
            wav = os.path.join(folder, row[0].strip())
            if not os.path.isfile(wav):
                raise UserError(f"{path}: line {number} names {row[0].strip()!r}, which does not exist")
            rows.append((wav, row[1].strip(), row[2].strip() if len(row) == 3 else ""))
    if not rows:
        raise UserError(f"{path}: the manifest lists no files")
    return rows


def dataset_classes(wav_path: str) -> tuple[str, ...]:
    """A user dataset's labels, natural-sorted: its manifest's labels, or its sub-folders that hold wav files."""
    if wav_path.lower().endswith(".csv"):
        return tuple(sorted({label for _, label, _ in read_manifest(wav_path)}, key=natural_key))
    if not os.path.isdir(wav_path):
        raise UserError(f"{wav_path}: no such folder of wav files")
    classes = [d for d in os.listdir(wav_path) if not _hidden(d) and os.path.isdir(os.path.join(wav_path, d))
               and audio_files(os.path.join(wav_path, d))]
    if len(classes) < 2:
        raise UserError(f"{wav_path}: a dataset of your own needs <label>/*.wav folders for at least 2 labels, "
                        f"found {len(classes)}")
    return tuple(sorted(classes, key=natural_key))


def mean_signal_length(paths: list[str]) -> int:
    """Mean duration of the files in samples at 22 050 Hz (the default length for a dataset of your own)."""
    import soundfile
    lengths = []
    for path in paths:
        try:
            info = soundfile.info(path)
        except Exception as exc:
            raise UserError(f"{path}: cannot be decoded as audio ({_decode_reason(exc)})") from None
        lengths.append(info.frames * SAMPLE_RATE / info.samplerate)
    return int(round(np.mean(lengths)))


def _manifest_items(path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The manifest's rows, every label one of the corpus' classes."""
    items = read_manifest(path)
    unknown = sorted({label for _, label, _ in items} - set(corpus.classes))
    if unknown:
        raise UserError(f"{path}: label(s) {', '.join(unknown)} are not classes of {corpus.key} "
                        f"({', '.join(corpus.classes)})")
    return items


def _class_folder_items(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The original's layout ``<wav_path>/<class>/*.wav``; every class needs its folder with files in it."""
    items = []
    for label in corpus.classes:
        folder = os.path.join(wav_path, label)
        files = audio_files(folder) if os.path.isdir(folder) else []
        if not files:
            raise UserError(f"{folder}: no wav files for class {label!r}")
        items += [(p, label, corpus.parse_name(p)[1] or "") for p in files]
    return items


def _named_items(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The corpus' own naming anywhere below ``wav_path``; files whose name gives none of its labels are skipped."""
    items = []
    for path in audio_files(wav_path):
        label, speaker = corpus.parse_name(path)
        if label in corpus.classes:
            items.append((path, label, speaker or ""))
    if not items:
        raise UserError(f"{wav_path}: no wav files named like {corpus.key} files and no <class>/ folders "
                        f"({', '.join(corpus.classes)})")
    return items


def list_corpus_files(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """(path, label, speaker or '') in the authors' order: by class in ``corpus.classes`` order, then file name.

    Three layouts: a CSV manifest ``path,label[,speaker]``; the original's ``<wav_path>/<class>/*.wav``
    (chosen when a class-named folder exists); or the corpus' own file naming anywhere below ``wav_path``
    (EMODB letters, RAVDESS codes, SAVEE and EMOVO prefixes, CASIA emotion folders).
    """
    if wav_path.lower().endswith(".csv") and os.path.isfile(wav_path):
        items, root = _manifest_items(wav_path, corpus), os.path.dirname(os.path.abspath(wav_path))
    elif not os.path.isdir(wav_path):
        raise UserError(f"{wav_path}: no such folder of wav files")
    elif any(os.path.isdir(os.path.join(wav_path, c)) for c in corpus.classes):
        items, root = _class_folder_items(wav_path, corpus), wav_path
    else:
        items, root = _named_items(wav_path, corpus), wav_path
    missing = [c for c in corpus.classes if c not in {label for _, label, _ in items}]
    if missing:  # a class without examples would be a one-hot column that is never 1
        raise UserError(f"{wav_path}: no wav files for class(es) {', '.join(missing)} of {corpus.key}")
    return _authors_order(items, corpus, root)


class _Progress:
    """``extract EMODB: 120/535 files [####................] 22%`` on stderr.

    Rewritten in place on a terminal; in a log (not a terminal) one line per tenth, so CI logs stay short.
    """

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled, self.done = label, total, enabled, 0
        self.in_place = enabled and sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1
        tenth_reached = 10 * self.done // self.total > 10 * (self.done - 1) // self.total
        if not self.enabled or not (self.in_place or tenth_reached):
            return
        filled = 20 * self.done // self.total
        line = (f"{self.label}: {self.done}/{self.total} files [{'#' * filled}{'.' * (20 - filled)}] "
                f"{100 * self.done // self.total}%")
        end = "\n" if self.done == self.total or not self.in_place else ""
        sys.stderr.write(f"\r{line}{end}" if self.in_place else f"{line}{end}")
        sys.stderr.flush()

    def close(self) -> None:
        """End an unfinished in-place line, so that an error message starts on a line of its own."""
        if self.in_place and 0 < self.done < self.total:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _one_thread_each() -> None:
    """In a worker: one BLAS thread, so that n workers on n cores do not fight over them (measured: 2 workers
    with the default 2 threads each ran at half the speed of one process; with one thread each, 2.8x faster)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _extract_or_skip(path: str, length: int, kind: str):
    """(features, None), or (None, the one-line reason) for a file that cannot be decoded (--skip_bad_files)."""
    try:
        return extract_file(path, length, kind), None
    except UserError as exc:
        return None, str(exc)


def _extract_into(x: np.ndarray, paths: list[str], length: int, kind: str, workers: int, bar: _Progress,
                  skip_bad_files: bool) -> list[str]:
    """x[i] = features of paths[i]; with workers > 1 each process sends back only its features, never audio.

    Returns (row, reason) of the files left out (``skip_bad_files``; their rows of x stay unset); without it the
    first bad file ends the extraction with its ``UserError``.
    """
    work = _extract_or_skip if skip_bad_files else extract_file
    skipped = []

    def store(i: int, result) -> None:
        features, reason = result if skip_bad_files else (result, None)
        if reason is None:
            x[i] = features
        else:
            skipped.append((i, reason))
        bar.step()

    if workers == 1:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):  # as in the workers, so that 1 and n processes give identical bits
            for i, path in enumerate(paths):
                store(i, work(path, length, kind))
        return skipped
    pool = ProcessPoolExecutor(workers, initializer=_one_thread_each)
    try:
        for i, result in enumerate(pool.map(work, paths, itertools.repeat(length), itertools.repeat(kind),
                                            chunksize=4)):
            store(i, result)  # results arrive in file order
    finally:
        # after an undecodable file (or Ctrl-C), drop the queued files instead of decoding the rest first
        pool.shutdown(wait=True, cancel_futures=True)
    return skipped


def extract_corpus(wav_path: str, corpus: Corpus, signal_length: int | None = None, workers: int | None = None,
                   progress: bool = True, kind: str = "mfcc", skip_bad_files: bool = False) -> dict:
    """Every file of ``wav_path`` -> the feature dict of the authors' format plus metadata, in parallel.

    Args:
        wav_path: folder (class folders or the corpus' own naming) or CSV manifest.
        corpus: gives the classes, their order and the default signal length.
        signal_length: samples each utterance is centred to (default ``corpus.signal_length``).
        workers: processes (default: all cores; 1 runs in this process).
        progress: show a progress bar on stderr.
        kind: a key of ``FEATURE_KINDS``.
        skip_bad_files: leave out the files that cannot be decoded and list them on stderr. Off by default: a
            corpus with a file missing has other rows, hence other folds, than the published one.

    Returns:
        ``x`` float32 (N, T, 39) or (N, S, 64, 64, 3), ``y`` float32 one-hot (N, C), ``files`` (paths relative
        to ``wav_path``), ``speakers`` ('' when unknown), ``classes``, ``signal_length`` and ``features`` (kind).
    """
    length = signal_length or corpus.signal_length
    shape = feature_shape(kind, length)  # before any file is read: a too short length fails at once
    items = list_corpus_files(wav_path, corpus)
    paths = [p for p, _, _ in items]
    x = np.empty((len(items), *shape), np.float32)  # (N, T, 39) or (N, S, 64, 64, 3), allocated once
    bar = _Progress(f"extract {corpus.key}", len(items), progress)
    try:
        skipped = _extract_into(x, paths, length, kind, max(1, min(workers or os.cpu_count() or 1, len(items))), bar,
                                skip_bad_files)
    finally:
        bar.close()
    if skipped:
        bad = {i for i, _ in skipped}
        keep = [i for i in range(len(paths)) if i not in bad]
        if not keep:
            raise UserError(f"{wav_path}: none of its {len(paths)} files could be decoded")
        print(f"skipped {len(skipped)} file(s) that could not be decoded (the corpus has other rows, hence other "
              "folds, than with them):", file=sys.stderr)
        for _, reason in skipped:
            print(f"  {reason}", file=sys.stderr)
        x, items, paths = x[keep], [items[i] for i in keep], [paths[i] for i in keep]
    column = {c: i for i, c in enumerate(corpus.classes)}
    y = np.eye(corpus.num_classes, dtype=np.float32)[[column[label] for _, label, _ in items]]  # (N, C)
    root = os.path.dirname(os.path.abspath(wav_path)) if os.path.isfile(wav_path) else wav_path
    return {"x": x, "y": y, "files": np.array([os.path.relpath(p, root) for p in paths]),
            "speakers": np.array([s for _, _, s in items]), "classes": np.array(corpus.classes),
            "signal_length": np.int64(length), "features": kind}


def save_features(path: str, data: dict) -> None:
    """``np.save`` of the dict (the authors' format), written atomically: never half-written under ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a handle, not a name: np.save would append ".npy" to other names
            np.save(f, data, allow_pickle=True)
    atomic_write(path, write)


# What a genuine feature file's pickle may name: numpy's array, dtype and scalar reconstruction
# (``numpy._core`` since numpy 2, ``numpy.core`` before), nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, strings and numbers, and call nothing else."""

    def __init__(self, file: BinaryIO, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        # every callable a pickle can run is looked up here (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*)
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UserError(f"{self.path}: refused to load: the file asks to run {module}.{name} "
                        "(a feature file holds only arrays)")


def _read_npy(path: str) -> object:
    """The object stored in a .npy file; a pickled one goes through ``_ArraysOnly``."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise UserError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported (1.0 or 2.0)")
        _, _, dtype = readers[version](f)
        if not dtype.hasobject:  # a plain numeric array holds no pickle, hence no code
            f.seek(0)
            return np.load(f, allow_pickle=False)
        stored = _ArraysOnly(f, path).load()  # np.save pickles object arrays; the dict is a 0-d one
    return stored.item() if isinstance(stored, np.ndarray) and stored.shape == () else stored


def _require_dict(data: object, path: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a {type(data).__name__}, not the dict {{'x': ..., 'y': ...}} of a feature file")


def load_features(path: str, data_key: str | None = None) -> dict:
    """Read a feature file without letting it run code; one-line ``UserError`` for anything else.

    ``data_key`` (the ``--data`` of the caller) completes the hint given when the file does not exist.
    """
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, not a feature file (.npy)")
    if not os.path.isfile(path):
        hint = f"python main.py --mode extract --data {data_key or '<KEY>'} --wav_path <folder>"
        raise UserError(f"{path}: feature file not found; make it with: {hint}")
    try:
        data = _read_npy(path)
    except UserError:
        raise
    except Exception as exc:  # a truncated or foreign file fails in numpy or pickle in many ways
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        raise UserError(f"{path}: not a readable .npy feature file ({type(exc).__name__}: {reason})") from None
    _require_dict(data, path)
    return data


def _arrays(data: dict, path: str) -> tuple[np.ndarray, np.ndarray]:
    """``data["x"]``, ``data["y"]`` once they are known to be numpy arrays."""
    _require_dict(data, path)
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}; a feature file holds 'x' and 'y'")
    for key in ("x", "y"):
        if not isinstance(data[key], np.ndarray):
            raise UserError(f"{path}: {key} is a {type(data[key]).__name__}, not a numpy array")
    return data["x"], data["y"]


def stored_kind(data: dict, path: str) -> str:
    """The feature kind a file records under ``features``; "mfcc" for files without it (the authors')."""
    kind = str(data.get("features", "mfcc"))
    if kind not in FEATURE_KINDS:
        raise UserError(f"{path}: 'features' is {kind!r}, not one of {', '.join(FEATURE_KINDS)}")
    return kind


def _shape_fits(x: np.ndarray, kind: str) -> bool:
    if kind == "mfcc":
        return x.ndim == 3 and x.shape[1] > 0 and x.shape[2] == N_MFCC
    return x.ndim == 5 and x.shape[1] > 0 and x.shape[2:] == (SEGMENT_FRAMES, N_MELS, 3)


def validate_features(data: dict, path: str, corpus: Corpus, kind: str = "mfcc",
                      model: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (N, T, 39) or (N, S, 64, 64, 3), y float32 (N, C)) after checking the feature kind, keys,
    ranks, dtypes, class count and values.

    ``kind`` is what the model reads; ``model`` (its ``--model`` name) completes the message when the file
    holds another kind. Every failure is a one-line ``UserError`` naming ``path``, raised before a model
    sees the data.
    """
    x, y = _arrays(data, path)
    stored = stored_kind(data, path)
    if stored != kind:
        reader = f"--model {model}" if model else "the model"
        raise UserError(f"{path}: holds {stored} features; {reader} needs {kind}: extract them with "
                        f"--mode extract --features {kind}")
    if not _shape_fits(x, kind):
        raise UserError(f"{path}: x has shape {x.shape}, expected {FEATURE_KINDS[kind]}")
    if y.ndim != 2:
        raise UserError(f"{path}: y has shape {y.shape}, expected one-hot (N, C)")
    for key, array in (("x", x), ("y", y)):
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{path}: {key} has dtype {array.dtype}, expected float32")
    if y.shape[1] != corpus.num_classes:
        raise UserError(f"{path}: y has {y.shape[1]} classes, --data {corpus.key} has {corpus.num_classes} "
                        f"({', '.join(corpus.classes)})")
    if len(x) != len(y):
        raise UserError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise UserError(f"{path}: holds no samples")
    bad = int((~np.isfinite(x).reshape(len(x), -1).all(axis=1)).sum())
    if bad:
        raise UserError(f"{path}: {bad} row(s) of x hold NaN or Inf")
    if not (np.isin(y, (0.0, 1.0)).all() and (y.sum(axis=1) == 1).all()):
        raise UserError(f"{path}: y is not one-hot (each row one 1, the rest 0)")
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)
