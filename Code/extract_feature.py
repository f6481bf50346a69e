"""wav -> 39-D MFCC exactly as the original (SPEC §1), and the feature files, read and written safely.

Feature file: ``np.save`` of a dict ``{"x": float32 (N, T, 39), "y": float32 one-hot (N, C)}`` (the
authors' format; their loader is ``np.load(path, allow_pickle=True).item()``), plus metadata keys
``files``, ``speakers``, ``classes``, ``signal_length`` that their loader ignores. Such a file is a
pickle, and unpickling can run code: ``load_features`` admits only numpy arrays, dicts, strings
and numbers, and refuses anything else. Knows nothing about models.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from corpora import SAMPLE_RATE, Corpus, natural_key
from errors import UserError

N_MFCC = 39


def load_centered(path: str, signal_length: int) -> np.ndarray:
    """``librosa.load`` (mono, 22 050 Hz), then centred to exactly ``signal_length`` samples (SPEC §1.2)."""
    import librosa
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise UserError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread; the error says it all
            warnings.simplefilter("ignore")
            signal, _ = librosa.load(path)  # librosa's defaults, as the original: sr=22050, mono=True
    except Exception as exc:  # soundfile and audioread raise many types; all mean "not decodable"
        name = type(exc).__name__  # some decoders raise without a message: say what the exception means
        reason = (str(exc).strip().splitlines()[0] if str(exc).strip() else
                  {"NoBackendError": "no decoder recognises it", "EOFError": "the file ends early"}.get(name, name))
        raise UserError(f"{path}: cannot be decoded as audio ({reason})") from None
    if signal.size == 0:
        raise UserError(f"{path}: holds no audio samples")
    s = len(signal)
    if s < signal_length:  # zero-pad floor((L - s) / 2) on the left, the rest on the right
        left = (signal_length - s) // 2
        return np.pad(signal, (left, signal_length - s - left)).astype(np.float32)
    start = (s - signal_length) // 2
    return signal[start:start + signal_length].astype(np.float32)


def mfcc(signal: np.ndarray) -> np.ndarray:
    """``librosa.feature.mfcc(y, sr=22050, n_mfcc=39)`` at its defaults, transposed: (L,) -> (T, 39)."""
    import librosa
    return librosa.feature.mfcc(y=signal, sr=SAMPLE_RATE, n_mfcc=N_MFCC).T.astype(np.float32)


def extract_file(path: str, signal_length: int) -> np.ndarray:
    """One file's (T, 39) features; the unit of work of the process pool."""
    return mfcc(load_centered(path, signal_length))


def _wav_files(folder: str) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if n.lower().endswith(".wav")]
    return found


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
    classes = [d for d in os.listdir(wav_path) if os.path.isdir(os.path.join(wav_path, d))
               and _wav_files(os.path.join(wav_path, d))]
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
            raise UserError(f"{path}: cannot be decoded as audio ({exc})") from None
        lengths.append(info.frames * SAMPLE_RATE / info.samplerate)
    return int(round(np.mean(lengths)))


def list_corpus_files(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """(path, label, speaker) in the authors' order: by class in ``corpus.classes`` order, then natural file name.

    Three layouts: a CSV manifest ``path,label[,speaker]``; the original's ``<wav_path>/<class>/*.wav``
    (used when class-named folders exist); or the corpus' own file naming anywhere below ``wav_path``
    (EMODB letters, RAVDESS codes, ...).
    """
    if wav_path.lower().endswith(".csv") and os.path.isfile(wav_path):
        items = read_manifest(wav_path)
        unknown = sorted({label for _, label, _ in items} - set(corpus.classes))
        if unknown:
            raise UserError(f"{wav_path}: label(s) {', '.join(unknown)} are not classes of {corpus.key} "
                            f"({', '.join(corpus.classes)})")
        order = {c: i for i, c in enumerate(corpus.classes)}
        return sorted(items, key=lambda item: (order[item[1]], natural_key(os.path.basename(item[0]))))
    if not os.path.isdir(wav_path):
        raise UserError(f"{wav_path}: no such folder of wav files")
    class_dirs = {c: os.path.join(wav_path, c) for c in corpus.classes if os.path.isdir(os.path.join(wav_path, c))}
    items = []
    if class_dirs:
        for label in corpus.classes:
            folder = class_dirs.get(label)
            files = _wav_files(folder) if folder else []
            if not files:
                raise UserError(f"{folder or os.path.join(wav_path, label)}: no wav files for class {label!r}")
            items += [(p, label, corpus.parse_name(p)[1] or "") for p in files]
    else:
        for path in _wav_files(wav_path):
            label, speaker = corpus.parse_name(path)
            if label in corpus.classes:
                items.append((path, label, speaker or ""))
        if not items:
            raise UserError(f"{wav_path}: no wav files named like {corpus.key} files and no <class>/ folders "
                            f"({', '.join(corpus.classes)})")
        missing = sorted(set(corpus.classes) - {label for _, label, _ in items})
        if missing:
            raise UserError(f"{wav_path}: no wav files for class(es) {', '.join(missing)} of {corpus.key}")
    order = {c: i for i, c in enumerate(corpus.classes)}
    return sorted(items, key=lambda item: (order[item[1]], natural_key(os.path.basename(item[0]))))


class _Progress:
    """A progress bar on stderr: rewritten in place on a terminal, a line per tenth otherwise (logs, CI)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled, self.done = label, total, enabled, 0
        self.in_place = sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1
        percent = 100 * self.done // self.total
        tenth_reached = percent // 10 > 100 * (self.done - 1) // self.total // 10
        if self.enabled and (self.in_place or tenth_reached or self.done == self.total):
            filled = int(20 * self.done / self.total)
            end = "\n" if self.done == self.total or not self.in_place else ""
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total} files [{'#' * filled}{'.' * (20 - filled)}] "
                             f"{percent}%{end}")
            sys.stderr.flush()


def extract_corpus(wav_path: str, corpus: Corpus, signal_length: int | None = None, workers: int | None = None,
                   progress: bool = True) -> dict:
    """All files of ``wav_path`` -> the feature dict, in parallel; holds features only, never all the audio."""
    length = signal_length or corpus.signal_length
    items = list_corpus_files(wav_path, corpus)
    frames = 1 + length // 512
    x = np.empty((len(items), frames, N_MFCC), np.float32)  # (N, T, 39), allocated once
    bar = _Progress(f"extract {corpus.key}", len(items), progress)
    workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    paths = [p for p, _, _ in items]
    if workers == 1:
        for i, path in enumerate(paths):
            x[i] = extract_file(path, length)
            bar.step()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for i, features in enumerate(pool.map(extract_file, paths, [length] * len(paths), chunksize=4)):
                x[i] = features
                bar.step()
    index = {c: i for i, c in enumerate(corpus.classes)}
    y = np.eye(corpus.num_classes, dtype=np.float32)[[index[label] for _, label, _ in items]]
    root = os.path.dirname(os.path.abspath(wav_path)) if os.path.isfile(wav_path) else wav_path
    return {"x": x, "y": y, "files": np.array([os.path.relpath(p, root) for p in paths]),
            "speakers": np.array([s for _, _, s in items]), "classes": np.array(corpus.classes),
            "signal_length": np.int64(length)}


def save_features(path: str, data: dict) -> None:
    """``np.save`` of the dict (the authors' format), written to a temporary file and renamed into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".npy", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, data, allow_pickle=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# What a genuine feature file's pickle may name: numpy's array and scalar reconstruction, nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UserError(f"{self.path}: refused to load: the file asks to run {module}.{name} "
                        "(a feature file holds only arrays)")


def load_features(path: str, data_key: str | None = None) -> dict:
    """Read a feature file without letting it run code; one-line ``UserError`` for anything else."""
    if not os.path.isfile(path):
        hint = f"python main.py --mode extract --data {data_key or '<KEY>'} --wav_path <folder>"
        raise UserError(f"{path}: feature file not found; make it with: {hint}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, _, dtype = read_header(f)
            if dtype.hasobject and shape == ():
                data = _ArraysOnly(io.BytesIO(f.read()), path).load()  # np.save pickles a 0-d object array
                data = data.item() if isinstance(data, np.ndarray) and data.shape == () else data
            else:  # a bare array: never holds code, read it plainly
                f.seek(0)
                data = np.load(f, allow_pickle=False)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npy feature file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a {type(data).__name__}, not the dict {{'x': ..., 'y': ...}} of a feature file")
    return data


def validate_features(data: dict, path: str, corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (N, T, 39), y float32 (N, C)) after checking keys, ranks, dtypes, class count and values."""
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}; a feature file holds 'x' and 'y'")
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    if x.ndim != 3 or x.shape[-1] != N_MFCC:
        raise UserError(f"{path}: x has shape {x.shape}, expected (N, T, {N_MFCC})")
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
    bad = int((~np.isfinite(x).all(axis=(1, 2))).sum())
    if bad:
        raise UserError(f"{path}: {bad} row(s) of x hold NaN or Inf")
    if not (np.isin(y, (0.0, 1.0)).all() and (y.sum(axis=1) == 1).all()):
        raise UserError(f"{path}: y is not one-hot (each row one 1, the rest 0)")
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)
