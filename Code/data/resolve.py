"""Which corpus and which feature file: the one resolver that train, test, predict, export, the grid and the API
use. A corpus key is a known corpus (case-sensitive, with a suggestion for a near miss) or a dataset of your own
whose labels and signal length its feature file records; a feature file is read, checked against the corpus and
the model's feature kind, and described as a run records it (``TrainingData``).

Messages name the command line's flags, or the API's arguments when ``api`` is true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..core.config import TrainingData
from ..core.errors import UserError, did_you_mean, named
from ..core.paths import feature_path
from . import corpora
from .feature_files import features_digest, load_features, validate_features


@dataclass
class Features:
    """A feature file, read and checked: its arrays, speakers, corpus and what a run records of it."""

    x: object
    y: object
    speakers: object
    corpus: corpora.Corpus
    info: TrainingData


def check_corpus_key(data: str, api: bool = False) -> None:
    """A key that differs from a known corpus' in case only is refused with the known one (``emodb``: EMODB)."""
    known = {key.upper(): key for key in corpora.CORPORA}
    if data not in corpora.CORPORA and data.upper() in known:
        raise UserError(f"{named('data', data, api)} is not a known corpus ({', '.join(corpora.CORPORA)}) "
                        f"(did you mean {known[data.upper()]}?)")


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


def load_data(data: str, kind: str, path: Optional[str] = None, model: Optional[str] = None,
              speakers_needed: bool = False) -> Features:
    """The feature file of corpus ``data`` (``path``, else its default), every check done: known corpus or own
    labels, ``kind`` features (``model``: who reads them, for the message), a speaker per row if needed."""
    check_corpus_key(data)
    path = feature_path(data, kind, path)
    if data not in corpora.CORPORA and not os.path.isfile(path):
        raise _unknown(data, path, False, f"; for a dataset of your own run --mode extract --data {data} --wav_path "
                                          "<folder or manifest.csv> first")
    stored = load_features(path, data_key=data)
    corpus = corpus_of(data, stored, path)
    x, y = validate_features(stored, path, corpus, kind, model)
    speakers = [str(s) for s in stored["speakers"]] if "speakers" in stored else None
    if speakers_needed and (speakers is None or len(speakers) != len(x) or "" in speakers):
        raise UserError(f"{path}: no speaker for every row (key 'speakers'), which --cv speaker needs; re-extract "
                        "it with --mode extract (speakers come from the file names or the manifest)")
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
    if not os.path.isfile(path):
        raise _unknown(data, path, api, " to read its labels from")
    stored = load_features(path, data_key=data)
    if "classes" not in stored or "signal_length" not in stored:
        raise UserError(f"{path}: has no 'classes'/'signal_length' keys; make it with --mode extract")
    return corpora.custom_corpus(data, [str(c) for c in stored["classes"]], int(stored["signal_length"]))
