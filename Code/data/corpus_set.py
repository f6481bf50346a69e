"""Several corpora in one run (``--data EMODB+RAVDE``): their classes matched to one common class set, their rows
pooled, and what run.json records of each corpus.

Classes are matched by name, case-insensitively, or through a label map (data/label_map.py): an entry maps a class
of a corpus (its own table's entry, else the entry for every corpus) to a class name of one of the corpora, or to
"" to drop it; a class no entry names keeps its own name. The common class set is the names that every corpus has
after the mapping, in the order they first appear (the first corpus' classes first), spelt as the first corpus
that has them spells them. Every other class is dropped with its utterances, and the printout says so. Rows are
pooled corpus after corpus, each in its file's order; speakers (and file names) are namespaced by their corpus
(``EMODB_A/03``), so two corpora's speaker ``03`` stay two speakers. Knows no files: data/resolve.py reads each
corpus' feature file and hands its arrays here.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Optional, Union

import numpy as np

from ..core.errors import UserError
from ..core.paths import shown
from .label_map import lookup, read_map_file


@dataclass(frozen=True)
class Source:
    """One corpus' feature file, read and checked (data/resolve.py)."""

    key: str
    path: str
    x: np.ndarray  # (N, T, 39) or (N, S, 64, 64, 3)
    y: np.ndarray  # (N, C) one-hot over ``classes``
    classes: list
    speakers: Optional[list]
    files: Optional[list]
    signal_length: int
    size: int  # bytes of the file
    sha256: str  # features_digest of the file's x and y (what a run on this corpus alone records)


@dataclass(frozen=True)
class Part:
    """One corpus of a pooled run, as run.json's ``corpora`` records it."""

    data: str  # the corpus key
    feature_file: dict  # {"path": absolute path, "size": bytes, "sha256": features_digest of its x and y}
    classes: list  # its own classes
    mapping: dict  # its class -> the common class, None where dropped
    utterances: int  # rows of its file
    rows: int  # rows kept (of a common class)
    start: int  # its first row in the pooled arrays

    @classmethod
    def from_dict(cls, values: dict) -> Part:
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def dropped(self) -> list:
        return [c for c in self.classes if self.mapping[c] is None]


@dataclass(frozen=True)
class Pooled:
    """The corpora's kept rows, pooled: features, one-hot labels over ``classes``, namespaced speakers and files."""

    x: np.ndarray
    y: np.ndarray
    speakers: Optional[list]
    files: Optional[list]
    classes: list  # the common class set
    parts: list  # Part per corpus, in --data order
    source: str  # how the classes were matched: "class names, case-insensitive" or the label map file


def corpus_keys(data: str) -> list[str]:
    """The corpora of ``--data``: ``EMODB+RAVDE`` is EMODB and RAVDE; one key is one corpus, each named once."""
    keys = data.split("+")
    if len(set(keys)) != len(keys):
        raise UserError(f"--data {data}: names a corpus twice")
    return keys


def corpus_rows(parts: list, n: int) -> Optional[np.ndarray]:
    """The corpus (its index in ``parts``) of each of the ``n`` pooled rows; None for a run on one corpus."""
    if not parts:
        return None
    index = np.empty(n, dtype=np.int64)
    for i, part in enumerate(parts):
        index[part.start:part.start + part.rows] = i
    return index


def _listing(classes: dict) -> str:
    return "; ".join(f"{key}: {', '.join(names)}" for key, names in classes.items())


def _entries(given: Union[str, dict, None], classes: dict, data: str) -> dict:
    """{corpus: {its class: target name or None}} for the classes an entry names; checked against the corpora."""
    if given is None:
        return {key: {} for key in classes}
    flag = f"--label_map {given}" if isinstance(given, (str, os.PathLike)) else "the run's label map"
    tables = read_map_file(os.fspath(given), "--label_map") if isinstance(given, (str, os.PathLike)) else \
        {None: {}, **given}
    known = [c for names in classes.values() for c in names]
    unknown = [key for key in tables if key is not None and key not in classes]
    if unknown:
        raise UserError(f"{flag}: [{unknown[0]}] is not one of the corpora of --data {data}")
    for name in tables[None]:
        if lookup(name, known) is None:
            raise UserError(f"{flag}: {name!r} is not a class of any corpus of --data {data} ({_listing(classes)})")
    entries = {}
    for key, names in classes.items():
        table = tables.get(key, {})
        for name in table:
            if lookup(name, names) is None:
                raise UserError(f"{flag}: [{key}] {name!r} is not a class of {key} ({', '.join(names)})")
        mine = {lookup(n, names): t for n, t in tables[None].items() if lookup(n, names) is not None}
        mine.update({lookup(n, names): t for n, t in table.items()})
        for name, target in mine.items():
            if target is not None and lookup(target, known) is None:
                raise UserError(f"{flag}: maps {name!r} to {target!r}, which is not a class of any corpus of --data "
                                f"{data} ({_listing(classes)})")
        entries[key] = mine
    return entries


def common_classes(classes: dict, given: Union[str, dict, None], data: str) -> tuple[list, dict]:
    """(the common class set, {corpus: {its class: common class or None}}) of ``classes`` {corpus: its classes}
    under ``given``: None (names), a label map file, or {corpus: {its class: common class or None}} (a run's)."""
    entries = _entries(given, classes, data)
    known = [c for names in classes.values() for c in names]
    target = {key: {c: (entries[key][c] if c in entries[key] else c) for c in names} for key, names in classes.items()}
    spelt = {key: {c: None if t is None else lookup(t, known) for c, t in names.items()}
             for key, names in target.items()}
    # spelt as ``known`` spells them (label_map.lookup, case-insensitive), so equal names are one class
    shared = set.intersection(*({t for t in names.values() if t is not None} for names in spelt.values()))
    common = list(dict.fromkeys(t for names in spelt.values() for t in names.values() if t in shared))
    if not common:
        how = f"under --label_map {given}" if isinstance(given, (str, os.PathLike)) else "by name"
        raise UserError(f"--data {data}: the corpora have no class in common {how} ({_listing(classes)}); map them "
                        "to common classes with --label_map FILE ([KEY] tables: their class = \"common class\")")
    mapping = {key: {c: (t if t is not None and t in common else None) for c, t in names.items()}
               for key, names in spelt.items()}
    return common, mapping


def pool(sources: list, given: Union[str, dict, None], data: str) -> Pooled:
    """The kept rows of ``sources`` (one Source per corpus, in --data order) pooled over the common class set."""
    first = sources[0]
    for other in sources[1:]:
        if other.x.shape[1:] != first.x.shape[1:]:
            raise UserError(f"--feature_path {other.path}: rows of shape {other.x.shape[1:]} (signal length "
                            f"{other.signal_length}), but {first.path} has {first.x.shape[1:]} "
                            f"({first.signal_length}): "
                            f"the corpora of one run need one signal length; re-extract {other.key} with --mode "
                            f"extract --mean_signal_length {first.signal_length}")
    common, mapping = common_classes({s.key: list(s.classes) for s in sources}, given, data)
    xs, labels, speakers, files, parts, start = [], [], [], [], [], 0
    for source in sources:
        target = np.array([common.index(mapping[source.key][c]) if mapping[source.key][c] is not None else -1
                           for c in source.classes])
        row_class = target[source.y.argmax(1)]
        kept = np.flatnonzero(row_class >= 0)
        xs.append(source.x[kept])
        labels.append(row_class[kept])
        speakers.append(None if source.speakers is None else [f"{source.key}/{source.speakers[i]}" for i in kept])
        files.append(None if source.files is None else [f"{source.key}/{source.files[i]}" for i in kept])
        feature_file = {"path": os.path.abspath(source.path), "size": int(source.size), "sha256": source.sha256}
        parts.append(Part(source.key, feature_file, list(source.classes), mapping[source.key], len(source.x),
                          len(kept), start))
        start += len(kept)
    x = np.concatenate(xs)
    y = np.eye(len(common), dtype=np.float32)[np.concatenate(labels)]
    how = "class names, case-insensitive" if given is None else \
        (os.fspath(given) if isinstance(given, (str, os.PathLike)) else "the run's label map")
    return Pooled(x, y, None if None in speakers else sum(speakers, []), None if None in files else sum(files, []),
                  common, parts, how)


def describe(pooled: Pooled, data: str) -> list[str]:
    """The printout's lines: each corpus, its file and rows kept, its mapped and dropped classes, the common set."""
    lines = [f"{data}: {len(pooled.parts)} corpora, {len(pooled.x)} utterances of the {len(pooled.classes)} common "
             f"classes ({', '.join(pooled.classes)}), classes matched by {pooled.source}"]
    for part in pooled.parts:
        renamed = [f"{c} -> {t}" for c, t in part.mapping.items() if t is not None and t != c]
        lines.append(f"  {part.data} <- {shown(part.feature_file['path'])}: {part.rows} of {part.utterances} utterances"
                     + (f"; mapped {', '.join(renamed)}" if renamed else "")
                     + f"; dropped classes: {', '.join(part.dropped) or 'none'}")
    return lines
