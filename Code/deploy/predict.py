"""Emotion of audio files from saved fold weights: the training pipeline's features, the folds' votes averaged.

Each file goes through exactly what training saw (librosa at 22 050 Hz, centred to the run's signal length, then
the model's features: 39 MFCCs, or DCNN-BLSTMwA's log-Mel segments); every fold model gives softmax probabilities,
and their mean is the prediction (or one fold's). A file the run trained on is recognised by its features
(``data.features.row_signatures``): nine of ten fold models trained on it, so its fold mean is no held-out score;
the row says so and gives the prediction of the one fold that held it out.

Inputs: an audio file, a folder (every audio file below it, ``data.audio.is_audio``), a list of paths, a CSV list of
files (``data.corpus_files.read_file_list``: a ``path`` column and optionally a ``speaker`` one), any of those listed
once (``list_inputs``), or ``(samples, sample_rate)``. One file given alone must decode (one-line error otherwise);
among several, a file that cannot be decoded is skipped and reported in its row (``error``), and the others are
predicted.

Many files are read, predicted and written ``CHUNK`` at a time (``clip_chunks``, ``Run.predict_chunks``,
``write_output`` from an iterator): the memory a folder of thousands of files needs does not grow with their number
(docs/reliability.md measures it).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.atomic_file import write_table
from ..core.errors import UserError, printable
from ..data.audio import (
    AUDIO_KINDS,
    audio_and_other_files,
    centre,
    check_audio_file,
    is_audio,
    load_audio,
    missing,
    resample,
)
from ..data.corpora import SAMPLE_RATE, natural_key
from ..data.corpus_files import read_file_list
from ..data.features import signal_features
from .input_checks import source_named, training_corpus_line

CHUNK = 256  # files read and predicted together: what a prediction of many files holds at a time


@dataclass
class Clip:
    """One input: its name, its duration, and its features (None with ``error`` when it could not be read)."""

    name: str
    seconds: float = 0.0
    features: Optional[np.ndarray] = None
    error: Optional[str] = None
    silent: bool = False  # what is scored (the middle window) is all silence: its loudest frame below SILENT_DBFS
    voiced_elsewhere: bool = False  # ... while the file is not: its voice lies outside the window scored
    peak: float = 0.0  # the largest absolute sample (full scale is 1)
    offset: float = 0.0  # the mean sample of what is scored: a constant (DC) offset


@dataclass(frozen=True)
class Inputs:
    """The files of a source, listed once (``list_inputs``): every function here that takes a source takes this too,
    so that a command counts, standardises and predicts the same files, reading a folder or a CSV list once."""

    source: str  # what was given, for messages
    paths: tuple[str, ...]
    skip_bad: bool  # several inputs: a file that cannot be decoded is reported in its row, not raised
    speakers: Optional[tuple[str, ...]] = None  # a CSV list's speaker column, one per path
    others: tuple[str, ...] = ()  # a folder's files that are not audio by their names (``files_not_read``)

    def __str__(self) -> str:
        return self.source


def list_inputs(source, api: bool = True) -> Inputs:
    """The files of a path, a folder, a CSV list of files or a list of paths (one line naming what is wrong, as
    the API's ``source`` or, with ``api=False``, as ``--wav``)."""
    if isinstance(source, Inputs):
        return source
    if isinstance(source, (list, tuple)):
        if not source:  # it returned [] without a word, where an empty folder or file list is one line
            raise UserError(f"{'source' if api else '--wav'}: the list of paths is empty")
        return Inputs("the list of paths", tuple(os.fspath(_path(p)) for p in source), True)
    source = os.fspath(_path(source))
    if os.path.isdir(source):
        found, others = audio_and_other_files(source)  # one walk of the folder
        files = sorted(found, key=lambda p: natural_key(os.path.relpath(p, source)))
        if not files:
            raise UserError(f"{source_named(source, api)}: the folder holds no audio files "
                            f"({AUDIO_KINDS})")
        return Inputs(source, tuple(files), True, others=tuple(others))
    if os.path.isfile(source):
        if _is_list(source):
            paths, speakers = read_file_list(source)
            return Inputs(source, tuple(paths), True, None if speakers is None else tuple(speakers))
        if not is_audio(source):
            raise UserError(f"{source_named(source, api)}: not an audio file ({AUDIO_KINDS}) nor a "
                            "CSV list of files")
        check_audio_file(source)  # an empty or cut-short file answers before the weights load
        return Inputs(source, (source,), False)
    raise UserError(f"{source_named(source, api)}: {missing(source, 'file or folder')}")


def files_not_read(inputs: Inputs) -> str:
    """What a folder given as the inputs holds besides audio files, which predict passes over ("" where nothing,
    and for other inputs): an .m4a or a .wave of a user's recordings was left out without a word."""
    others = inputs.others
    if not others:
        return ""
    kinds = Counter(os.path.splitext(path)[1].lower() or "no extension" for path in others)
    named = ", ".join(kind if count == 1 else f"{kind} x{count}" for kind, count in sorted(kinds.items()))
    return f"{len(others)} file(s) not read, their names not those of audio files ({named}); read: {AUDIO_KINDS}"


def listed_once(source):
    """``source`` with its files listed (``Inputs``), or itself where it is ``(samples, sample_rate)``: what a
    function that reads ``source`` more than once (its speakers, then its audio) passes on."""
    return source if _is_array(source) else list_inputs(source)


def _is_list(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".csv")


def input_speakers(source) -> Optional[list[tuple[str, str]]]:
    """(path, speaker) of each input, in order, where ``source`` is a CSV list of files with a speaker column (or
    its ``Inputs``); else None."""
    if not isinstance(source, Inputs):
        if not (_is_list(source) and os.path.isfile(source)):
            return None
        source = list_inputs(source)
    return None if source.speakers is None else list(zip(source.paths, source.speakers))


def _path(source):
    """``source`` if it names a file; else one line saying what predict takes (an array of features is no path)."""
    if isinstance(source, (str, os.PathLike)):
        return source
    shape = f" of shape {source.shape}" if hasattr(source, "shape") else ""
    raise UserError(f"source: got {type(source).__name__}{shape}; an input is an audio file, a folder, a list of "
                    "paths or (samples, sample_rate); for MFCC features use Run.fold_outputs or Run.evaluate")


def _is_array(source) -> bool:
    return isinstance(source, tuple) and len(source) == 2 and not isinstance(source[0], (str, os.PathLike))


def input_count(source) -> int:
    """How many inputs ``source`` holds (a folder's audio files are listed, not read)."""
    return 1 if _is_array(source) else len(list_inputs(source).paths)


def clip_chunks(source, signal_length: int, kind: str, size: int = CHUNK) -> Iterator[list[Clip]]:
    """The inputs' features (the run's signal length and feature kind), in order, ``size`` clips at a time; see the
    module's docstring."""
    if _is_array(source):
        samples, rate = source
        signal = resample(samples, rate)
        yield [_clip("<array>", signal, signal_length, kind)]
        return
    listed = list_inputs(source)
    paths = listed.paths
    for start in range(0, len(paths), size):
        clips = []
        for path in paths[start:start + size]:
            try:
                signal = load_audio(path)
            except UserError as exc:
                if not listed.skip_bad:
                    raise
                clips.append(Clip(path, error=str(exc)))
                continue
            clips.append(_clip(path, signal, signal_length, kind))
        yield clips


def _clip(name: str, signal: np.ndarray, signal_length: int, kind: str) -> Clip:
    """A decoded input's clip: its features, whether what is scored of it (its middle window, ``centre``) is all
    silence by the timeline's energy rule (its loudest frame below -60 dBFS: two seconds of speech and twenty of
    silence after them were scored on silence as "angry", without a word), its largest absolute sample, and the
    mean sample of what is scored (a DC offset)."""
    from .timeline import SILENT_DBFS, frame_levels
    scored = centre(signal, signal_length)
    # the levels of the scored samples, without centre's zero padding (whose edge, after an offset, sounded as a step)
    heard = frame_levels([scored if len(signal) >= signal_length else signal])
    silent = bool(heard.levels.max() < SILENT_DBFS)
    voiced_elsewhere = (silent and len(signal) > signal_length
                        and bool(frame_levels([signal]).levels.max() >= SILENT_DBFS))
    return Clip(name, len(signal) / SAMPLE_RATE, signal_features(scored, signal_length, kind), silent=silent,
                voiced_elsewhere=voiced_elsewhere, peak=float(np.abs(signal).max()) if len(signal) else 0.0,
                offset=heard.offset)


def read_clips(source, signal_length: int, kind: str) -> list[Clip]:
    """Every input's features at once (``clip_chunks`` in one list)."""
    return [clip for chunk in clip_chunks(source, signal_length, kind) for clip in chunk]


def write_output(path: str, rows: Iterable[dict], classes) -> None:
    """The predictions as CSV or JSON (by the extension), written atomically, row by row as ``rows`` yields them.
    A CSV column is named as the JSON key it flattens (``label``, ``held_out_label``, a class's probability under
    the class's name), so that a script reads either."""
    def csv_row(r: dict) -> list:
        probabilities = r["probabilities"] or {}
        seen = r.get("training_corpus") or {}
        shift = r.get("domain_shift") or {}
        return [r["file"], r["label"] or "", *(f"{probabilities[c]:.6f}" if probabilities else "" for c in classes),
                r.get("in_training_corpus", ""), seen.get("held_out_by_fold", ""), seen.get("held_out_label", ""),
                r.get("error") or "", r.get("duration_seconds", ""), r.get("scored_seconds", ""),
                r.get("notice", ""), r.get("warning", ""), f"{shift['distance']:.3f}" if shift else "",
                f"{shift['threshold']:.3f}" if shift else ""]
    write_table(path, rows, ["file", "label", *classes, "in_training_corpus", "held_out_by_fold",
                             "held_out_label", "error", "duration_seconds", "scored_seconds", "notice",
                             "warning", "domain_shift_of_inputs", "domain_shift_threshold"],
                map(csv_row, rows), follow_link=True)  # --output, the user's name


def unchecked(run, where: str) -> list[str]:
    """What predict cannot tell of an input with the weights of ``run`` (a deploy.api.Run, in the folder the user
    named ``where``), said once before the predictions: a file they trained on, where they record no training
    utterances (the authors' folders), and audio unlike their corpus, where they keep no statistics of its MFCCs
    (the authors' folders; DCNN-BLSTMwA): there the authors' weights lose most of their accuracy without a word
    (bench/degraded_audio.py)."""
    notes = []
    older = " (a run trained by an older version; runs trained now keep them)" if run.run is not None else ""
    if run.run is None or not run.run.records_training_rows:
        notes.append(f"{where} records no training utterances{older}: a file its folds trained on is not "
                     "recognised by its audio (a file named as its corpus names its recordings is said to be one)")
    if run.feature_statistics is None or run.feature_kind != "mfcc":
        kept = older if run.feature_kind == "mfcc" else " (they are kept for MFCC runs only)"
        notes.append(f"{where} keeps no statistics of its corpus' features{kept}: audio unlike {run.data} "
                     "(telephone band, noise, music, clipping, another loudness) gets no warning, though there "
                     "its predictions may be no better than chance")
    return notes


def format_row(row: dict, classes, folder: Optional[str] = None) -> str:
    """The console line of one prediction: the file named by its path inside ``folder`` (the --wav folder: its
    a/x.wav and b/x.wav read alike by their base names), else by its base name; a control character escaped."""
    name = printable(os.path.relpath(row["file"], folder) if folder else os.path.basename(row["file"]))
    if row.get("error"):
        return f"{name}: skipped ({row['error']})"
    shares = "  ".join(f"{c} {row['probabilities'][c]:.3f}" for c in classes)
    line = f"{name}: {row['label']}   ({shares})"
    if row.get("notice"):
        line += f"\n    {row['notice']}"
    seen = row.get("training_corpus")
    return line + (f"\n    {training_corpus_line(seen)}" if seen else "")
