"""A corpus on disk -> its (path, label, speaker) items in the authors' order: class folders, the corpus' own
file naming, or a CSV manifest; a dataset of your own's labels and mean length."""

from __future__ import annotations

import os
import sys

import numpy as np

from ..core.csv_rows import csv_rows
from ..core.errors import UserError, first_few, named_twice_in_any_case
from ..core.paths import not_a_folder
from .audio import _decode_reason, _hidden, audio_files
from .corpora import SAMPLE_RATE, Corpus, natural_key


def _authors_order(items: list[tuple[str, str, str]], corpus: Corpus, root: str) -> list[tuple[str, str, str]]:
    """By class in one-hot column order, then the file's own name compared naturally (SPEC §1.4).

    Equal names in different folders (SAVEE ``DC/a01.wav``, ``JE/a01.wav``) are ordered by their path,
    so the order, and with it the fold split, never depends on the file system.
    """
    column = {c: i for i, c in enumerate(corpus.classes)}
    return sorted(items, key=lambda item: (column[item[1]], natural_key(os.path.basename(item[0])),
                                           natural_key(os.path.relpath(item[0], root))))


MANIFEST_COLUMNS = ("path", "label", "speaker")  # in this order where the first line does not name them


def read_manifest(path: str) -> list[tuple[str, str, str]]:
    """(path, label, speaker) rows of a CSV manifest ``path,label[,speaker]``; relative paths from its folder. A
    first line that names the columns (path, label and optionally speaker, in any order) is read by those names:
    read by position, ``path,speaker,label`` made the speakers the classes."""
    folder = os.path.dirname(os.path.abspath(path))
    lines = csv_rows(path, path)
    columns = {name: i for i, name in enumerate(MANIFEST_COLUMNS)}
    if lines and lines[0][1][0].lower() in MANIFEST_COLUMNS:  # a header
        number, names = lines.pop(0)
        names = [name.lower() for name in names]
        if sorted(names) not in (["label", "path"], ["label", "path", "speaker"]):
            raise UserError(f"{path}: line {number} names the columns {','.join(names)!r}; a manifest's are path, "
                            "label and optionally speaker, each once")
        columns = {name: i for i, name in enumerate(names)}
    rows, lines_of = [], {}
    for number, row in lines:
        if len(row) not in (2, 3) or len(row) > len(columns) or any(
                columns[name] >= len(row) or not row[columns[name]] for name in ("path", "label")):
            raise UserError(f"{path}: line {number} is not '{','.join(sorted(columns, key=columns.get))}': "
                            f"{','.join(row)!r}")
        wav, label = row[columns["path"]], row[columns["label"]]
        full = os.path.join(folder, wav)
        if os.path.isdir(full):
            raise UserError(f"{path}: line {number} names {wav!r}, a folder; a manifest lists one audio file a line")
        if not os.path.isfile(full):
            raise UserError(f"{path}: line {number} names {wav!r}, which does not exist (a relative path is read "
                            f"from the manifest's folder, {folder})")
        first = lines_of.setdefault(os.path.realpath(full), number)
        if first != number:  # one recording twice: in a training fold and a test fold at once, or in two classes
            raise UserError(f"{path}: line {number} names {wav!r} again (line {first}); list each file once")
        speaker = row[columns["speaker"]] if columns.get("speaker", 3) < len(row) else ""
        rows.append((full, label, speaker))
    if not rows:
        raise UserError(f"{path}: the manifest lists no files")
    return rows


def read_file_list(path: str) -> tuple[list[str], list[str] | None]:
    """The files of a CSV list for predict and their speakers: (paths, speakers or None).

    Its first line names the columns: ``path`` and, optionally, ``speaker`` (an extraction manifest's header
    ``path,label,speaker`` will do: other columns are ignored). Relative paths are from the list's folder; lines
    starting with # are skipped. A file that is missing is predict's to report, row by row, as one it cannot read.
    """
    folder = os.path.dirname(os.path.abspath(path))
    lines = csv_rows(path, path)
    header = [name.lower() for name in lines[0][1]] if lines else []
    if "path" not in header:
        raise UserError(f"{path}: its first line must name the columns, 'path' and optionally 'speaker' "
                        f"(got {','.join(lines[0][1]) if lines else 'an empty file'!r})")
    where, speaker_column = header.index("path"), header.index("speaker") if "speaker" in header else None
    paths, speakers = [], []
    for number, row in lines[1:]:
        cells = row + [""] * len(header)
        if not cells[where] or (speaker_column is not None and not cells[speaker_column]):
            raise UserError(f"{path}: line {number} lacks its {'path' if not cells[where] else 'speaker'}: "
                            f"{','.join(row)!r}")
        paths.append(os.path.join(folder, cells[where]))
        speakers.append(cells[speaker_column] if speaker_column is not None else "")
    if not paths:
        raise UserError(f"{path}: the list names no files")
    return paths, speakers if speaker_column is not None else None


def dataset_classes(wav_path: str) -> tuple[str, ...]:
    """A user dataset's labels, natural-sorted: its manifest's labels, or its sub-folders that hold wav files. Two
    labels that differ in case only ('Angry', 'angry') are refused: one class written two ways, which would train
    as two (and a pool of corpora matches class names whatever their case)."""
    if wav_path.lower().endswith(".csv"):
        classes = sorted({label for _, label, _ in read_manifest(wav_path)}, key=natural_key)
    elif not os.path.isdir(wav_path):
        raise not_a_folder(wav_path, wav_path, "folder of wav files")
    else:
        classes = sorted((d for d in _sub_folders(wav_path) if audio_files(os.path.join(wav_path, d))),
                         key=natural_key)
        if len(classes) < 2:
            raise UserError(f"{wav_path}: a dataset of your own needs <label>/*.wav folders for at least 2 labels, "
                            f"found {len(classes)}")
    twice = named_twice_in_any_case(classes)
    if twice is not None:
        first, second = twice
        raise UserError(f"{wav_path}: the labels {first!r} and {second!r} differ in case only; name the class one "
                        "way")
    return tuple(classes)


# where a feature file's speakers come from, for the messages of the modes that need one per row
SPEAKERS_FROM = ("speakers come from a known corpus' file names (in any layout), or from the speaker column of a "
                 "manifest (path,label,speaker); class folders of a dataset of your own give none")


def folders_without_audio(wav_path: str) -> list[str]:
    """The sub-folders of a dataset's folder layout that hold no audio file, so are no class (an empty class folder,
    or one of notes); [] for a manifest."""
    if wav_path.lower().endswith(".csv") or not os.path.isdir(wav_path):
        return []
    return sorted((d for d in _sub_folders(wav_path) if not audio_files(os.path.join(wav_path, d))), key=natural_key)


def _sub_folders(wav_path: str) -> list[str]:
    """The names of ``wav_path``'s sub-folders that are not hidden: the labels of a dataset's folder layout, where
    they hold audio."""
    return [d for d in os.listdir(wav_path) if not _hidden(d) and os.path.isdir(os.path.join(wav_path, d))]


def mean_signal_length(paths: list[str], skip_bad_files: bool = False) -> int:
    """Mean duration of the files in samples at 22 050 Hz (the default length for a dataset of your own). A file
    whose header does not read is one line, or, with ``skip_bad_files``, left out here as extraction leaves it out
    (it ended the command before, whatever --skip_bad_files said)."""
    import soundfile
    lengths = []
    for path in paths:
        try:
            info = soundfile.info(path)
        except Exception as exc:
            if skip_bad_files:
                continue
            empty = os.path.isfile(path) and os.path.getsize(path) == 0  # said as load_audio says it
            raise UserError(f"{path}: the file is empty" if empty else
                            f"{path}: cannot be decoded as audio ({_decode_reason(exc)})") from None
        if info.frames == 0 and skip_bad_files:  # a header without samples: extraction skips it too
            continue
        lengths.append(info.frames * SAMPLE_RATE / info.samplerate)
    if not lengths:
        raise UserError(f"none of the {len(paths)} audio file(s) could be decoded")
    return int(round(np.mean(lengths)))


def _speaker_from_name(corpus: Corpus, path: str, above: str) -> str:
    """The speaker the corpus' own naming gives ``path``, or '' where that is the name of a folder at or above
    ``above``: a class folder or the dataset's folder is no speaker (SAVEE's ``angry/a01.wav`` gave the speaker
    'angry', and ``--cv speaker`` then held out whole classes)."""
    speaker = corpus.parse_name(path)[1] or ""
    return "" if speaker in os.path.abspath(above).split(os.sep) else speaker


def _manifest_items(path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The manifest's rows, every label one of the corpus' classes; a row without a speaker gets the one a known
    corpus' file name gives (EMO-DB's 03a01Wa.wav: 03), never a folder's name."""
    items = read_manifest(path)
    unknown = sorted({label for _, label, _ in items} - set(corpus.classes))
    if unknown:
        raise UserError(f"{path}: label(s) {', '.join(unknown)} are not classes of {corpus.key} "
                        f"({', '.join(corpus.classes)})")
    return [(wav, label, speaker or _speaker_from_name(corpus, wav, os.path.dirname(wav)))
            for wav, label, speaker in items]


def _class_folder_items(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The original's layout ``<wav_path>/<class>/*.wav``; every class needs its folder with files in it. Audio
    outside the class folders is left out, and said."""
    items = []
    for label in corpus.classes:
        folder = os.path.join(wav_path, label)
        files = audio_files(folder) if os.path.isdir(folder) else []
        if not files:
            raise UserError(f"{folder}: no wav files for class {label!r}")
        items += [(p, label, _speaker_from_name(corpus, p, folder)) for p in files]
    taken = {p for p, _, _ in items}
    _say_left_out([p for p in audio_files(wav_path) if p not in taken], wav_path,
                  f"lie outside its class folders ({', '.join(corpus.classes)})")
    return items


def _named_items(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """The corpus' own naming anywhere below ``wav_path``; files whose name gives none of its labels are left out,
    and said."""
    items, left_out = [], []
    for path in audio_files(wav_path):
        label, speaker = corpus.parse_name(path)
        if label in corpus.classes:
            items.append((path, label, speaker or ""))
        else:
            left_out.append(path)
    if not items:
        raise UserError(f"{wav_path}: no wav files named like {corpus.key} files and no <class>/ folders "
                        f"({', '.join(corpus.classes)})")
    _say_left_out(left_out, wav_path, f"are not named like {corpus.key} files (no class of theirs in the name)")
    return items


def _say_left_out(paths: list[str], wav_path: str, why: str) -> None:
    """One warning line for the audio files of ``wav_path`` that the layout leaves out (they were dropped unsaid)."""
    if paths:
        shown = first_few(os.path.relpath(p, wav_path) for p in paths)
        print(f"warning: {len(paths)} audio file(s) below {wav_path} {why}, so they are left out: {shown}",
              file=sys.stderr)


def list_corpus_files(wav_path: str, corpus: Corpus) -> list[tuple[str, str, str]]:
    """(path, label, speaker or '') in the authors' order: by class in ``corpus.classes`` order, then file name.

    Three layouts: a CSV manifest ``path,label[,speaker]``; the original's ``<wav_path>/<class>/*.wav``
    (chosen when a class-named folder exists); or the corpus' own file naming anywhere below ``wav_path``
    (EMODB letters, RAVDESS codes, SAVEE and EMOVO prefixes, CASIA emotion folders).
    """
    if wav_path.lower().endswith(".csv") and os.path.isfile(wav_path):
        items, root = _manifest_items(wav_path, corpus), os.path.dirname(os.path.abspath(wav_path))
    elif not os.path.isdir(wav_path):
        raise not_a_folder(wav_path, wav_path, "folder of wav files")
    elif any(os.path.isdir(os.path.join(wav_path, c)) for c in corpus.classes):
        items, root = _class_folder_items(wav_path, corpus), wav_path
    else:
        items, root = _named_items(wav_path, corpus), wav_path
    missing = [c for c in corpus.classes if c not in {label for _, label, _ in items}]
    if missing:  # a class without examples would be a one-hot column that is never 1
        raise UserError(f"{wav_path}: no wav files for class(es) {', '.join(missing)} of {corpus.key}")
    return _authors_order(items, corpus, root)
