"""A corpus' audio files -> the feature dict (the authors' format plus metadata), in a pool of processes."""

from __future__ import annotations

import itertools
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..core.errors import UserError
from .corpora import Corpus
from .corpus_files import list_corpus_files
from .features import extract_file, feature_shape, warn_of_identical_rows


class Progress:
    """``extract EMODB: 120/535 files [####................] 22%`` on stderr.

    Rewritten in place on a terminal; in a log (not a terminal) one line per tenth, so CI logs stay short.
    """

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled, self.done = label, total, enabled, 0
        self.in_place = enabled and sys.stderr.isatty()

    def step(self, files: int = 1) -> None:
        self.done += files
        tenth_reached = 10 * self.done // self.total > 10 * (self.done - files) // self.total
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
    """In a worker: one BLAS thread, so that n workers on n cores do not fight over them (with the default, a
    thread per core in every worker, parallel extraction ran slower than one process)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _extract_or_skip(path: str, length: int, kind: str):
    """(features, None), or (None, the one-line reason) for a file that cannot be decoded (--skip_bad_files)."""
    try:
        return extract_file(path, length, kind), None
    except UserError as exc:
        return None, str(exc)


def _extract_into(x: np.ndarray, paths: list[str], length: int, kind: str, workers: int, bar: Progress,
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
    bar = Progress(f"extract {corpus.key}", len(items), progress)
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
    empty = [c for c, count in zip(corpus.classes, y.sum(axis=0)) if count == 0]
    if empty:  # every file of a class skipped: a one-hot column that is never 1 (list_corpus_files refuses it too)
        raise UserError(f"{wav_path}: every file of class(es) {', '.join(empty)} could not be decoded; a class "
                        "without examples cannot be learned or scored")
    warn_of_identical_rows(x, paths, wav_path)
    root = os.path.dirname(os.path.abspath(wav_path)) if os.path.isfile(wav_path) else wav_path
    return {"x": x, "y": y, "files": np.array([os.path.relpath(p, root) for p in paths]),
            "speakers": np.array([s for _, _, s in items]), "classes": np.array(corpus.classes),
            "signal_length": np.int64(length), "features": kind}
