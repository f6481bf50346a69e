"""Which corpus and which feature file: the one resolver that train, test, predict, export, the grid and the API
use. ``--data A+B`` names several corpora, each with its own feature file (``MFCC/<KEY>.npy`` by default,
or the files of ``--feature_path a.npy+b.npy`` in that order), pooled by data/corpus_set.py. A corpus key is a known
corpus (case-sensitive, with a suggestion for a near miss) or a dataset of your own whose labels and signal length
its feature file records; a feature file is read, checked against the corpus and the model's feature kind,
and described as a run records it (``TrainingData``).

Messages name the command line's flags, or the API's arguments when ``api`` is true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional, Union

from ..core.config import TrainingData
from ..core.errors import UserError, did_you_mean, named
from ..core.paths import feature_path
from . import corpora, corpus_files
from .corpus_set import Pooled, Source, corpus_keys, pool
from .feature_files import extract_command, features_digest, load_features, validate_features


@dataclass
class Features:
    """A feature file, read and checked: its arrays, speakers, corpus and what a run records of it."""

    x: object
    y: object
    speakers: object
    corpus: corpora.Corpus
    info: TrainingData
    pooled: Optional[Pooled] = None  # several corpora (--data A+B): how they were pooled; None for one corpus

    @property
    def parts(self) -> list:
        """corpus_set.Part per corpus of ``--data A+B``, in order; empty for one corpus."""
        return self.pooled.parts if self.pooled is not None else []


def check_corpus_key(data: str, api: bool = False) -> None:
    """A key that differs from a known corpus' in case only is refused with the known one (``emodb``: EMODB)."""
    known = {key.upper(): key for key in corpora.CORPORA}
    for key in corpus_keys(data):
        if key not in corpora.CORPORA and key.upper() in known:
            raise UserError(f"{named('data', data, api)} is not a known corpus ({', '.join(corpora.CORPORA)}) "
                            f"(did you mean {data.replace(key, known[key.upper()])}?)")


def corpus_of(data: str, stored: dict, path: str, api: bool = False) -> corpora.Corpus:
    """The Corpus of ``data``: a known one (checked against the feature file's labels), or the file's own labels."""
    classes = [str(c) for c in stored["classes"]] if "classes" in stored else None
    if data in corpora.CORPORA:
        corpus = corpora.CORPORA[data]
        if classes is not None and classes != list(corpus.classes):
            flag = named("data", data, api, quoted=False)
            raise UserError(f"{path}: made for labels {', '.join(classes)}, not those of {flag} "
                            f"({', '.join(corpus.classes)})")
        return corpus
    if classes is None or "signal_length" not in stored:
        flag = named("data", data, api, quoted=False)
        raise UserError(f"{path}: has no 'classes'/'signal_length' keys, so {flag} (not one of "
                        f"{', '.join(corpora.CORPORA)}) cannot be read from it; make it with --mode extract")
    return corpora.custom_corpus(data, classes, int(stored["signal_length"]))


def _unknown(data: str, path: str, api: bool, purpose: str) -> UserError:
    return UserError(f"{named('data', data, api)} is not a known corpus ({', '.join(corpora.CORPORA)})"
                     f"{did_you_mean(data, corpora.CORPORA)} and has no feature file at {path}{purpose}")


def feature_paths(data: str, kind: str, path: Optional[str] = None) -> list[str]:
    """The feature file of each corpus of ``data``: ``path`` ('+'-joined for several corpora, in their order), else
    each corpus' default."""
    keys = corpus_keys(data)
    if path is None:
        return [feature_path(key, kind) for key in keys]
    paths = path.split("+") if len(keys) > 1 else [path]
    if len(paths) != len(keys):
        raise UserError(f"--feature_path {path}: {len(paths)} feature file(s) for the {len(keys)} corpora of --data "
                        f"{data}; give one per corpus, in the same order, joined by '+'")
    if not all(paths):  # "A.npy+": the empty one was the corpus' default file, unsaid
        raise UserError(f"--feature_path {path}: an empty feature file name between the '+'; give one per corpus of "
                        f"--data {data}")
    return paths


def recorded_feature_path(data: str, kind: str, path: Optional[str] = None) -> str:
    """The feature file(s) a run records: absolute, '+'-joined for several corpora."""
    return "+".join(os.path.abspath(p) for p in feature_paths(data, kind, path))


def load_data(data: str, kind: str, path: Optional[str] = None, model: Optional[str] = None,
              speakers_needed: bool = False, label_map: Union[str, dict, None] = None, api: bool = False) -> Features:
    """The features of ``data``: for one corpus, its feature file (``path``, else its default); for several
    (``A+B``), each one's, pooled over their common classes (by name, or by ``label_map``: a file, or a run's
    recorded {corpus: {class: common class or None}}), with ``parts`` saying which rows are whose."""
    keys = corpus_keys(data)
    if len(keys) == 1:
        return load_corpus(data, kind, path, model, speakers_needed, api)
    paths = feature_paths(data, kind, path)
    loaded = [load_corpus(key, kind, p, model, speakers_needed, api) for key, p in zip(keys, paths)]
    sources = [Source(key, p, f.x, f.y, list(f.corpus.classes), f.speakers, f.info.files, f.info.signal_length,
                      f.info.size, f.info.sha256) for key, p, f in zip(keys, paths, loaded)]
    pooled = pool(sources, label_map, data)
    first = loaded[0]
    corpus = replace(corpora.custom_corpus(data, pooled.classes, first.info.signal_length),
                     tab_count=max(f.corpus.tab_count for f in loaded),
                     synthetic=any(f.corpus.synthetic for f in loaded))
    info = replace(first.info, size=sum(f.info.size for f in loaded), sha256=features_digest(pooled.x, pooled.y),
                   files=pooled.files)
    return Features(pooled.x, pooled.y, pooled.speakers, corpus, info, pooled)


def load_corpus(data: str, kind: str, path: Optional[str] = None, model: Optional[str] = None,
                speakers_needed: bool = False, api: bool = False) -> Features:
    """The feature file of corpus ``data`` (``path``, else its default), every check done: known corpus or own
    labels, ``kind`` features (``model``: who reads them, for the message), a speaker per row if needed."""
    check_corpus_key(data, api)
    path = feature_path(data, kind, path)
    if data not in corpora.CORPORA and not os.path.exists(path):  # a folder: load_features says so
        raise _unknown(data, path, api, "; for a dataset of your own run "
                                        f"{extract_command(data, kind, path, '<folder or manifest.csv>')} first")
    stored = load_features(path, data_key=data, kind=kind)
    corpus = corpus_of(data, stored, path, api)
    x, y = validate_features(stored, path, corpus, kind, model, api)
    speakers = [str(s) for s in stored["speakers"]] if "speakers" in stored else None
    if speakers_needed and (speakers is None or len(speakers) != len(x) or "" in speakers):
        raise UserError(f"{path}: no speaker for every row (key 'speakers'), which --cv speaker needs; re-extract "
                        f"it with --mode extract ({corpus_files.SPEAKERS_FROM})")
    info = TrainingData(
        signal_length=int(stored.get("signal_length", corpus.signal_length)), features=kind,
        input_shape=tuple(x.shape[1:]), size=os.path.getsize(path), sha256=features_digest(x, y),
        files=[str(f) for f in stored["files"]] if "files" in stored else None)
    return Features(x, y, speakers, corpus, info)


def corpus_for_weights(data: str, kind: str, path: Optional[str] = None, api: bool = False) -> corpora.Corpus:
    """The Corpus a weights folder without ``run.json`` was trained on: a known corpus, or a dataset of your own
    whose labels and signal length are stored in its feature file."""
    check_corpus_key(data, api)
    if data in corpora.CORPORA:
        return corpora.CORPORA[data]
    path = feature_path(data, kind, path)
    if not os.path.exists(path):  # a folder: load_features says so
        raise _unknown(data, path, api, " to read its labels from")
    stored = load_features(path, data_key=data, kind=kind)
    if "classes" not in stored or "signal_length" not in stored:
        raise UserError(f"{path}: has no 'classes'/'signal_length' keys; make it with --mode extract")
    return corpora.custom_corpus(data, [str(c) for c in stored["classes"]], int(stored["signal_length"]))
