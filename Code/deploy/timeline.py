"""Emotion over time in a long recording, and what ``--mode predict`` scores of an input longer than one window.

A model of this project reads one window: the run's signal length L at 22 050 Hz (EMO-DB: 96 000 samples,
4.35 s). Predict centres every input to L, so of a longer input it scores only the middle L samples
(``scored_span`` says so). The timeline scores all of it:

1. **Reading.** The file is read in blocks of ``BLOCK_FRAMES``, mixed to mono and resampled to 22 050 Hz block by
   block with ``soxr.ResampleStream`` at librosa.load's quality (soxr HQ): joined, the blocks are bit for bit the
   signal ``librosa.load`` returns for the whole file (tests/test_timeline.py), so every window holds the samples
   training would have read. Formats libsndfile cannot open (audioread's) are decoded whole, as predict does.
2. **Voice activity, by energy.** The signal in frames of ``FRAME`` = 512 samples (23 ms; frame j is samples
   512 j .. 512 j + 511, the last one possibly shorter); a frame's level is 10 log10 of the mean square of its
   samples less their mean (dB re full scale; a constant offset is no sound). A frame is voiced when its level is
   at most ``THRESHOLD_DB`` = 40 dB below the loudest frame's and the loudest frame reaches ``SILENT_DBFS`` =
   -60 dBFS (a quieter file is all silence).
3. **Windows.** L samples starting every hop samples (default L // 2) from sample 0 while they fit in the file;
   when the last one ends before the file does, one more ends at the file's end. A file shorter than L is one
   window, zero-padded around as predict pads it. A window is voiced when at least ``MIN_VOICED`` = 20 % of the
   frames that start inside it are voiced; the others are skipped.
4. **Scores.** Each voiced window gets the training features (``data.features.signal_features``: a window of
   exactly L samples stays as it is) and the mean of the fold models' softmax, ``BATCH`` windows at a time.
5. **The file.** The mean of the voiced windows' probabilities, and the share of voiced time per label: every
   window owns the stretch of the file nearer its centre than any other window's centre.

Memory: two passes over the file (the threshold is relative to the loudest frame, known after the first), each
holding a block and a rolling buffer of at most one window plus one block. What grows with the file is one
float per frame (7 kB a minute) and the probabilities of each window.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from typing import NamedTuple, Optional

import numpy as np

from ..core.atomic_file import atomic_write, check_writable, write_table
from ..core.errors import UserError, named, printable
from ..core.figures import plain_text
from ..data.corpora import SAMPLE_RATE
from .input_checks import dc_offset, signal_warning, source_named, training_corpus_line

FRAME = 512  # samples per energy frame (23 ms at 22 050 Hz)
THRESHOLD_DB = -40.0  # a frame is voiced within this many dB of the file's loudest frame
SILENT_DBFS = -60.0  # a file whose loudest frame is quieter than this is all silence
MIN_VOICED = 0.2  # a window is voiced when this share of the frames starting inside it are voiced
BLOCK_FRAMES = 1 << 16  # frames read from the file at once (3 s at 22 050 Hz)
BATCH = 64  # windows scored at once: bounds the features in memory (64 x 188 x 39 floats for EMO-DB's MFCCs)
MAX_RUNS_SHOWN = 30  # label runs printed on the console; the CSV has every window


# --- what predict scores --------------------------------------------------------------------------------------

def scored_span(seconds: float, signal_length: int) -> dict:
    """``duration_seconds`` and ``scored_seconds`` of a predicted input, and a ``notice`` when it is longer than
    the model's window, of which predict scores only the middle."""
    window = signal_length / SAMPLE_RATE
    span = {"duration_seconds": round(seconds, 3), "scored_seconds": round(min(seconds, window), 3)}
    if round(seconds, 2) > round(window, 2):  # as shown: not "the middle 2.00 s of its 2.00 s" for a sample more
        span["notice"] = (f"only the middle {window:.2f} s of its {seconds:.2f} s were scored (the model's window); "
                          "--timeline scores the whole file window by window")
    return span


# --- reading in blocks ----------------------------------------------------------------------------------------

def _file_blocks(path: str, block_frames: int) -> Iterator[np.ndarray]:
    """The file as mono 22 050 Hz float32 blocks that join into ``librosa.load(path)``'s signal."""
    import soundfile
    import soxr

    from ..data.audio import load_audio, not_finite
    try:
        sound = soundfile.SoundFile(path)
    except soundfile.SoundFileRuntimeError:  # not libsndfile's: decoded whole, as librosa.load falls back
        yield load_audio(path)
        return
    with sound:
        rate = sound.samplerate
        stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ") if rate != SAMPLE_RATE \
            else None
        read = written = 0
        while True:
            block = sound.read(block_frames, dtype="float32", always_2d=True)  # (n, channels)
            last = len(block) < block_frames
            mono = np.mean(block.T, axis=0)  # librosa.to_mono's mean over the channel axis of (channels, n)
            if not np.isfinite(mono).all():  # a float file's NaN was taken for silence ("at nan dBFS")
                raise not_finite(path)
            read += len(mono)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
                if last:  # librosa.resample's fix_length: ceil(samples * ratio) in all
                    wanted = int(np.ceil(read * (float(SAMPLE_RATE) / rate)))
                    mono = np.pad(mono, (0, max(0, wanted - written - len(mono))))[:max(0, wanted - written)]
            written += len(mono)
            if len(mono):
                yield mono
            if last:
                return


def _source_blocks(source, block_frames: int) -> Iterator[np.ndarray]:
    """Blocks of a checked source: a path (streamed) or ``(samples, sample_rate)`` (resampled whole: it is in
    memory already)."""
    if isinstance(source, tuple):
        from ..data.audio import resample
        samples, rate = source
        yield resample(samples, rate)
        return
    yield from _file_blocks(source, block_frames)


def checked_source(source, api: bool = True) -> tuple[object, str]:
    """(source, name) for one audio file or ``(samples, sample_rate)``; a one-line error for anything else. What the
    timeline says beyond the audio module's ``check_audio_file``, naming the API's ``source`` or, with
    ``api=False``, ``--wav`` as predict does: a folder (predict reads the files of one, the timeline one file), a
    path that is not there, a file that is not audio by its name."""
    if isinstance(source, tuple) and len(source) == 2 and not isinstance(source[0], (str, os.PathLike)):
        return source, "<array>"
    if not isinstance(source, (str, os.PathLike)):
        raise UserError(f"timeline: {type(source).__name__} given; it takes one audio file or (samples, sample_rate)")
    from ..data.audio import AUDIO_KINDS, check_audio_file, is_audio, missing
    path = os.fspath(source)
    if os.path.isdir(path):
        raise UserError(f"{source_named(path, api)}: {'timeline' if api else '--timeline'} reads one audio file, "
                        "not a folder")
    if not os.path.isfile(path):
        raise UserError(f"{source_named(path, api)}: {missing(path, 'file')}")
    if not is_audio(path):
        raise UserError(f"{source_named(path, api)}: not an audio file ({AUDIO_KINDS})")
    check_audio_file(path, read_whole=False)  # streamed window by window: any length; empty or cut short refused
    return path, path


# --- voice activity and windows -------------------------------------------------------------------------------

class SignalLevels(NamedTuple):
    levels: np.ndarray  # (frames,) level in dB re full scale of every ``FRAME``-sample frame
    samples: int  # the signal's length
    peak: float  # its largest absolute sample
    offset: float  # its mean sample (a constant, DC, offset)


def frame_levels(blocks) -> SignalLevels:
    """The levels of a signal given as blocks of samples, read once. A frame's level is of its samples less their
    mean: a constant (DC) offset is no sound (a file of the constant 0.01, at -40 dBFS, was scored as voice)."""
    powers, carry, samples, peak, total = [], np.empty(0, np.float32), 0, 0.0, 0.0
    for block in blocks:
        samples += len(block)
        peak = max(peak, float(np.abs(block).max())) if len(block) else peak
        total += float(block.sum(dtype=np.float64))
        data = np.concatenate([carry, block])
        whole = len(data) // FRAME * FRAME
        powers.append(data[:whole].reshape(-1, FRAME).var(axis=1, dtype=np.float64))  # (frames,)
        carry = data[whole:]
    if len(carry):
        powers.append([carry.var(dtype=np.float64)])
    power = np.concatenate(powers) if powers else np.empty(0)
    # digital silence: -200 dB
    levels = 10 * np.log10(np.maximum(power, 1e-20))
    return SignalLevels(levels, samples, peak, total / samples if samples else 0.0)


def voiced_frames(levels: np.ndarray) -> np.ndarray:
    """Which frames are voiced (the energy rule of the module's docstring): (frames,) bool."""
    loudest = levels.max()
    if loudest < SILENT_DBFS:
        return np.zeros(len(levels), bool)
    return levels >= loudest + THRESHOLD_DB


def window_starts(samples: int, length: int, hop: int) -> np.ndarray:
    """First sample of every window: every ``hop`` while a window fits, one more ending at the file's end."""
    if samples <= length:
        return np.array([0])
    starts = np.arange(0, samples - length + 1, hop)
    if starts[-1] + length < samples:
        starts = np.append(starts, samples - length)
    return starts


def voiced_windows(voiced: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Windows [start, end) in which at least ``MIN_VOICED`` of the frames starting inside are voiced: (W,) bool."""
    counts = np.concatenate([[0], np.cumsum(voiced)])
    first, stop = -(-starts // FRAME), -(-ends // FRAME)  # frames j with start <= FRAME j < end
    return (counts[stop] - counts[first]) >= MIN_VOICED * np.maximum(stop - first, 1)


def _regions(voiced: np.ndarray, samples: int) -> list[list[float]]:
    """[start, end] seconds of each run of voiced frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))  # run starts, ends
    return [[round(int(a) * FRAME / SAMPLE_RATE, 3), round(min(int(b) * FRAME, samples) / SAMPLE_RATE, 3)]
            for a, b in edges.reshape(-1, 2)]


def _window_signals(blocks, starts: np.ndarray, length: int) -> Iterator[np.ndarray]:
    """The samples [s, s + length) of every start s (ascending), from a buffer that keeps only what the next
    windows need; a window past the end of the signal is cut short."""
    buffer, offset, k = np.empty(0, np.float32), 0, 0  # buffer[0] is sample ``offset`` of the signal
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while k < len(starts) and starts[k] + length <= offset + len(buffer):
            yield buffer[starts[k] - offset:starts[k] - offset + length]
            k += 1
        drop = min(len(buffer), (starts[k] if k < len(starts) else offset + len(buffer)) - offset)
        buffer, offset = buffer[drop:], offset + drop
    for start in starts[k:]:
        yield buffer[start - offset:]


def checked_hop(hop: Optional[float], length: int, api: bool = True) -> int:
    """``hop`` seconds in samples (default half a window); one line for a hop that is not in (0, window], naming
    the API's ``hop`` or, with ``api=False``, ``--hop``."""
    window = length / SAMPLE_RATE
    if hop is None:
        return length // 2
    if isinstance(hop, bool) or not isinstance(hop, (int, float, np.integer, np.floating)):  # the API's
        raise UserError(f"hop={hop!r}: give a number of seconds, or None for half a window")
    given = named("hop", hop, api=True) if api else f"--hop {hop:g}"
    if not (math.isfinite(hop) and round(hop * SAMPLE_RATE) >= 1):
        raise UserError(f"{given}: must be a positive number of seconds")
    samples = round(hop * SAMPLE_RATE)
    if samples < FRAME:  # finer than the energy rule's frames: many times the windows (--hop 0.0001: 10 000 a second)
        raise UserError(f"{given}: shorter than one {FRAME / SAMPLE_RATE * 1000:.0f} ms frame of the energy "
                        f"rule; give at least {math.ceil(FRAME / SAMPLE_RATE * 1000) / 1000:g}")
    if samples > length:
        raise UserError(f"{given}: longer than the model's {window:.2f} s window, so the windows would leave "
                        f"parts of the file unscored; give at most {math.floor(window * 100) / 100:.2f}")
    return samples


# --- the timeline ---------------------------------------------------------------------------------------------

def timeline(run, source, hop: Optional[float] = None, fold: Optional[int] = None,
             block_frames: int = BLOCK_FRAMES) -> dict:
    """``api.Run.timeline``: the emotion of every window of one audio file (see the module's docstring).

    Args:
        run: an ``api.Run``.
        source: an audio file, or ``(samples, sample_rate)``.
        hop: seconds between window starts (default half a window; at most a window).
        fold: score by fold ``fold``'s model alone (default: the mean of all folds).
        block_frames: frames read from the file at once.

    Returns:
        ``file``, ``duration_seconds``, ``window_seconds``, ``hop_seconds``; ``windows``: one dict per window
        (``start``, ``end`` in seconds, ``voiced``, ``label`` and ``probabilities``, both None when skipped;
        ``shift``: its own distance from the training corpus' MFCC statistics, None when skipped or when the run
        keeps none); ``voiced_regions`` ([start, end] seconds of the voiced frames), ``voiced_seconds`` (the time
        the voiced windows own), ``overall`` (the mean probabilities of the voiced windows), ``share_of_time`` (of
        ``voiced_seconds``, per label) and ``domain_shift``: the voiced windows together against
        ``window_threshold`` (data/feature_statistics.py), with a ``warning`` above it (None without statistics);
        ``warning``: predict's warning for the whole file (much shorter than a window, samples far beyond full
        scale, a constant offset), or None; ``training_corpus``: for a file of one window that is a clip the run
        trained on, predict's row entry of it (which folds trained on it, what the fold that held it out
        predicts), else None.

    A run trained with ``--normalize speaker`` takes the file as one speaker: its windows are scored once all are
    read, standardised with the statistics of all of them (memory then grows with the file's windows).
    """
    from ..data import feature_statistics as mfcc_statistics
    from ..data.features import N_MFCC, signal_features
    source, name = checked_source(source)
    length = run.signal_length
    hop_samples = checked_hop(hop, length)
    levels, samples, peak, offset = frame_levels(_source_blocks(source, block_frames))
    if samples == 0:
        raise UserError(f"{name}: holds no audio samples; nothing to put on a timeline")
    frames = voiced_frames(levels)
    starts = window_starts(samples, length, hop_samples)
    ends = np.minimum(starts + length, samples)
    voiced = voiced_windows(frames, starts, ends)
    if not voiced.any():
        loudest = "digital silence" if levels.max() <= -200 else f"loudest 23 ms frame at {levels.max():.1f} dBFS"
        if offset_words := dc_offset(offset):  # a constant alone: no signal without the offset, as predict says
            loudest += f", but {offset_words}"
        raise UserError(f"{name}: all silence by the energy rule ({loudest}; no window has {MIN_VOICED:.0%} of its "
                        f"frames within {-THRESHOLD_DB:g} dB of it, above {SILENT_DBFS:g} dBFS): nothing to score")
    probabilities = np.full((len(starts), len(run.classes)), np.nan)  # (W, C), NaN for skipped windows
    rows = np.flatnonzero(voiced)
    means = np.full((len(starts), N_MFCC), np.nan)  # (W, 39): each voiced window's mean MFCCs (domain shift)
    batch, held = [], []  # held: --normalize speaker's windows, scored once all are read (the file: one speaker)
    seen = None  # a file of one window that is a clip of the run's training corpus: predict's notice
    for k, signal in enumerate(_window_signals(_source_blocks(source, block_frames), starts[rows], length)):
        batch.append(signal_features(signal, length, run.feature_kind))  # (T, 39) or (S, 64, 64, 3)
        if len(batch) == BATCH or k == len(rows) - 1:
            done, features = rows[k + 1 - len(batch):k + 1], np.stack(batch)
            if run.feature_kind == "mfcc":
                means[done] = mfcc_statistics.utterance_means(features)
            if run.normalize == "speaker":
                held.append((done, features))
            else:
                probabilities[done] = run.fold_outputs(features, fold)[1].mean(axis=0)
                if len(starts) == 1:
                    seen = run._training_corpus(run._seen_rows(features)[0], features[0], fold)
            batch = []
    if held:
        every = np.concatenate([f[mfcc_statistics.unpadded_frames(f)] for _, f in held])[None]  # (1, frames, 39)
        moments = mfcc_statistics.frame_moments(every)
        for done, features in held:
            probabilities[done] = run.fold_outputs(run.model_inputs(features, moments), fold)[1].mean(axis=0)
    result = _summary(name, run.classes, samples, length, hop_samples, starts, ends, voiced, probabilities, frames)
    shift = (mfcc_statistics.window_shift(means[rows], run.feature_statistics, run.data)
             if run.feature_kind == "mfcc" else None)
    for window, row in zip(result["windows"], means):  # each window's own distance (None: skipped, or no statistics)
        window["shift"] = (mfcc_statistics.means_distance(row[None], run.feature_statistics)
                           if shift is not None and window["voiced"] else None)
    # as predict warns: too short, cast integers, an offset
    warning = signal_warning(name, samples / SAMPLE_RATE, length, peak=peak, offset=offset)
    return {**result, "domain_shift": shift, "warning": warning, "training_corpus": seen}


def stretches(starts: np.ndarray, ends: np.ndarray, total) -> np.ndarray:
    """Bounds (W + 1,) of the stretch each window owns: the part of [0, total] nearer its centre than any other
    window's centre (any unit: samples or seconds)."""
    centres = (np.asarray(starts) + np.asarray(ends)) / 2
    return np.concatenate([[0], (centres[1:] + centres[:-1]) / 2, [total]])


def _summary(name: str, classes: list, samples: int, length: int, hop: int, starts: np.ndarray, ends: np.ndarray,
             voiced: np.ndarray, probabilities: np.ndarray, frames: np.ndarray) -> dict:
    """The timeline's dict (see ``timeline``)."""
    labels = np.where(voiced, np.nan_to_num(probabilities).argmax(axis=1), -1)  # (W,), -1 when skipped
    owned = np.diff(stretches(starts, ends, samples)) / SAMPLE_RATE * voiced  # (W,) seconds
    windows = [{"start": round(int(s) / SAMPLE_RATE, 3), "end": round(int(e) / SAMPLE_RATE, 3), "voiced": bool(v),
                "label": classes[label] if v else None,
                "probabilities": {c: float(p) for c, p in zip(classes, row)} if v else None}
               for s, e, v, label, row in zip(starts, ends, voiced, labels, probabilities)]
    overall = probabilities[voiced].mean(axis=0)
    return {"file": name, "duration_seconds": round(samples / SAMPLE_RATE, 3),
            "window_seconds": round(length / SAMPLE_RATE, 3), "hop_seconds": round(hop / SAMPLE_RATE, 3),
            "classes": list(classes), "windows": windows, "voiced_regions": _regions(frames, samples),
            "voiced_seconds": round(float(owned.sum()), 3),
            "overall": {c: float(p) for c, p in zip(classes, overall)},
            "share_of_time": {c: float(owned[labels == i].sum() / owned.sum()) for i, c in enumerate(classes)}}


# --- recipe for exported models -------------------------------------------------------------------------------

def recipe(signal_length: int) -> dict:
    """The timeline's rules for the exported model's sidecar: how to window a long file and skip its silence."""
    return {
        "window_samples": int(signal_length),
        "default_hop_samples": int(signal_length) // 2,
        "windows": "starts at 0, hop, 2 hop, ... while start + window_samples <= samples; when the last window "
                   "ends before the signal does, one more starting at samples - window_samples; a signal shorter "
                   "than window_samples is one window, centred as every input is (the features' steps)",
        "vad": {"frame_samples": FRAME, "threshold_db": THRESHOLD_DB, "silent_dbfs": SILENT_DBFS,
                "min_voiced_fraction": MIN_VOICED,
                "rule": "frame j = samples [frame_samples j, frame_samples (j + 1)) of the mono 22 050 Hz signal "
                        "(the last frame possibly shorter); level = 10 log10(mean of its squared samples) dB; a "
                        "frame is voiced when level >= max level + threshold_db and max level >= silent_dbfs; a "
                        "window [start, end) is voiced when at least min_voiced_fraction of the frames j with "
                        "start <= frame_samples j < end are voiced; other windows are skipped"},
        "scores": "each voiced window's features (the features' steps; a window of window_samples stays as it is) "
                  "through the model; the file's distribution is the mean of the voiced windows' outputs",
    }


# --- output ---------------------------------------------------------------------------------------------------

def output_paths(source: str, output: Optional[str]) -> tuple[str, str]:
    """(table, picture): ``--output`` (.csv or .json) and the picture beside it, named after the whole table
    (``t.csv.png``, ``t.json.png``: the two tables of one stem keep a picture each, where the second one's replaced
    the first's ``t.png``), or ``<stem>_timeline.csv/.png`` in the current folder."""
    if output:
        return output, output + ".png"
    stem = os.path.splitext(os.path.basename(source))[0]
    return f"{stem}_timeline.csv", f"{stem}_timeline.png"


def write_timeline_table(path: str, result: dict, follow_link: bool = False) -> None:
    """One row per window (skipped ones with voiced=no and empty scores) as CSV, or the whole dict as JSON; the
    column ``domain_shift``: the window's own distance from the training corpus' statistics (empty without).
    ``follow_link``: ``path`` is the user's ``--output`` (``atomic_file.atomic_write``)."""
    classes = result["classes"]

    def csv_row(w: dict) -> list:
        scores = [f"{w['probabilities'][c]:.6f}" for c in classes] if w["voiced"] else [""] * len(classes)
        shift = "" if w.get("shift") is None else f"{w['shift']:.3f}"
        return [f"{w['start']:.3f}", f"{w['end']:.3f}", "yes" if w["voiced"] else "no", w["label"] or "", shift,
                *scores]
    write_table(path, result, ["start_s", "end_s", "voiced", "label", "domain_shift", *classes],
                map(csv_row, result["windows"]), follow_link)


@plain_text
def write_picture(path: str, result: dict, title: str, follow_link: bool = False) -> None:
    """The probabilities stacked over time (each window drawn over the stretch it owns), skipped windows grey,
    and a strip below with the voiced frames. ``follow_link``: ``path`` is named after the user's ``--output``
    (``atomic_file.atomic_write``)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    classes, windows = result["classes"], result["windows"]
    bounds = stretches([w["start"] for w in windows], [w["end"] for w in windows], result["duration_seconds"])
    voiced = np.array([w["voiced"] for w in windows])
    shares = np.array([[w["probabilities"][c] if w["voiced"] else 0.0 for c in classes] for w in windows])  # (W, C)
    tops = np.vstack([shares.cumsum(axis=1), shares[-1:].cumsum(axis=1)])  # (W + 1, C): steps hold to the end
    colours = colormaps["tab10"].colors
    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    top, strip = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [6, 1], "hspace": 0.08})
    for i, colour in enumerate(colours[:len(classes)]):
        top.fill_between(bounds, tops[:, i - 1] if i else 0, tops[:, i], step="post", color=colour, lw=0)
    skipped = [(bounds[i], bounds[i + 1] - bounds[i]) for i in np.flatnonzero(~voiced)]
    top.broken_barh(skipped, (0, 1), color="0.85", lw=0)
    strip.broken_barh([(a, b - a) for a, b in result["voiced_regions"]], (0, 1), color="0.3", lw=0)
    top.set(xlim=(0, result["duration_seconds"]), ylim=(0, 1), ylabel="probability", title=title)
    strip.set(yticks=[], xlabel="time (s)", ylabel="voiced", ylim=(0, 1))
    handles = [Patch(color=colour, label=c) for c, colour in zip(classes, colours)]
    handles.append(Patch(color="0.85", label="skipped (silence)"))
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    figure.subplots_adjust(left=0.06, right=0.82, top=0.9, bottom=0.13)
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"), follow_link)


def label_runs(result: dict) -> list[tuple[float, float, str]]:
    """(start, end, label) of each run of voiced windows with one label, over the stretches they own."""
    windows = result["windows"]
    bounds = stretches([w["start"] for w in windows], [w["end"] for w in windows], result["duration_seconds"])
    runs = []
    for i, w in enumerate(windows):
        if runs and w["label"] == runs[-1][2] and runs[-1][1] == bounds[i]:
            runs[-1] = (runs[-1][0], bounds[i + 1], w["label"])
        elif w["voiced"]:
            runs.append((bounds[i], bounds[i + 1], w["label"]))
    return runs


def format_summary(result: dict) -> str:
    """The console lines of a timeline."""
    classes, windows = result["classes"], result["windows"]
    voiced = sum(w["voiced"] for w in windows)
    lines = [f"{printable(os.path.basename(result['file']))}: {result['duration_seconds']:.2f} s, {len(windows)} "
             f"window{'' if len(windows) == 1 else 's'} of "
             f"{result['window_seconds']:.2f} s every {result['hop_seconds']:.2f} s; {voiced} voiced, "
             f"{len(windows) - voiced} skipped as silence"]
    runs = label_runs(result)
    for start, end, label in runs[:MAX_RUNS_SHOWN]:
        lines.append(f"  {start:8.2f} - {end:8.2f} s  {label}")
    if len(runs) > MAX_RUNS_SHOWN:
        lines.append(f"  ... {len(runs) - MAX_RUNS_SHOWN} more label runs in the table")
    lines.append("overall (mean over the voiced windows): " +
                 "  ".join(f"{c} {result['overall'][c]:.3f}" for c in classes))
    lines.append(f"share of the time of the voiced windows ({result['voiced_seconds']:.2f} s): " +
                 "  ".join(f"{c} {result['share_of_time'][c]:.0%}" for c in classes))
    if result.get("training_corpus"):
        lines.append(training_corpus_line(result["training_corpus"]))
    return "\n".join(lines)


def run_cli(run, wav: str, hop: Optional[float], output: Optional[str], fold: Optional[int]) -> dict:
    """``--mode predict --timeline``: the timeline of ``wav`` printed, and written as a table and a picture."""
    checked_hop(hop, run.signal_length, api=False)  # named as the flag, before any audio is read
    table, picture = output_paths(wav, output)
    check_writable(table, "--output")
    check_writable(picture, "--output")
    result = run.timeline(wav, hop, fold)
    if result["warning"]:
        print(f"warning: {printable(result['warning'])}", file=sys.stderr)
    shift = result.get("domain_shift")
    if shift and shift["warning"]:
        print(f"warning: {shift['warning']}", file=sys.stderr)
    print(format_summary(result))
    typed = output is not None  # --output and the picture named after it: the user's names, written through a link
    write_timeline_table(table, result, follow_link=typed)
    write_picture(picture, result, f"{os.path.basename(wav)}: {run.model_name} {run.data} ({run.folds_used(fold)})",
                  follow_link=typed)
    print(printable(f"wrote {table}"))
    print(printable(f"wrote {picture}"))
    return result
