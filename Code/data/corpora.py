"""The six corpora of the TIM-Net and GM-TCNet papers (SPEC §1), plus the synthetic one.

A ``Corpus`` knows its class labels in one-hot column order, the signal length
every utterance is centred to, TIM-Net's number of temporal-aware blocks, the
seed of the authors' published weights, and how a file name (or its folders)
gives the emotion label and the speaker. It knows nothing about TensorFlow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from ..core.errors import UserError

SAMPLE_RATE = 22050  # librosa.load's default rate, used by the original for every corpus

LabelSpeaker = tuple[Optional[str], Optional[str]]


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers ('a2' < 'a10'), and names equal that way ('Angry' and 'angry', '1'
    and '01') by their characters: the order never depends on the order they were found in."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)], name


def _emodb(path: str) -> LabelSpeaker:
    # 03a01Wa.wav: speaker 03, text a01, emotion letter W (6th character), version a
    name = os.path.basename(path)
    letters = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear",
               "F": "happy", "T": "sad", "N": "neutral"}
    if len(name) < 7 or not name[:2].isdigit():
        return None, None
    return letters.get(name[5]), name[:2]


def _ravdess(path: str) -> LabelSpeaker:
    # Actor_12/03-01-05-01-02-01-12.wav: modality-channel-emotion-intensity-statement-repetition-actor
    fields = os.path.splitext(os.path.basename(path))[0].split("-")
    codes = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
             "05": "angry", "06": "fear", "07": "disgust", "08": "surprise"}
    if len(fields) != 7 or fields[:2] != ["03", "01"]:  # audio-only (03) speech (01); not song or video files
        return None, None
    return codes.get(fields[2]), fields[6]


def _savee(path: str) -> LabelSpeaker:
    # DC/a01.wav or DC_a01.wav: speaker initials, emotion prefix a d f h n sa su
    stem = os.path.splitext(os.path.basename(path))[0]
    if "_" in stem:
        speaker, stem = stem.split("_", 1)
    else:
        speaker = os.path.basename(os.path.dirname(path)) or None
    prefixes = {"sa": "sad", "su": "surprise", "a": "angry", "d": "disgust",
                "f": "fear", "h": "happy", "n": "neutral"}
    match = re.match(r"([a-z]+)\d+$", stem)
    return (prefixes.get(match.group(1)) if match else None), speaker


def _emovo(path: str) -> LabelSpeaker:
    # f1/dis-f1-b1.wav: emotion prefix, speaker, sentence
    fields = os.path.splitext(os.path.basename(path))[0].split("-")
    prefixes = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear",
                "rab": "angry", "sor": "surprise", "tri": "sad"}
    if len(fields) != 3:
        return None, None
    return prefixes.get(fields[0]), fields[1]


def _casia(path: str) -> LabelSpeaker:
    # <speaker>/<emotion>/<n>.wav
    emotion_dir = os.path.dirname(path)
    return os.path.basename(emotion_dir) or None, os.path.basename(os.path.dirname(emotion_dir)) or None


def _iemocap(path: str) -> LabelSpeaker:
    # Ses03F_impro02_M011.wav: the label lives in the corpus' label files, not the name;
    # the session is the speaker group used for speaker-independent folds.
    match = re.match(r"Ses(\d\d)", os.path.basename(path))
    return None, (f"Ses{match.group(1)}" if match else None)


@dataclass(frozen=True)
class Corpus:
    """One corpus as the original code sees it (SPEC §1 table).

    Args:
        key: the name typed after ``--data`` (``RAVDE`` is the authors' spelling of RAVDESS).
        classes: labels in one-hot column order.
        signal_length: samples at 22 050 Hz each utterance is centred to.
        tab_count: TIM-Net's number of temporal-aware blocks for this corpus.
        parse_name: file path -> (label or None, speaker or None) from the corpus' own naming.
        synthetic: True for the generated demo corpus; every output says so.
        utterances: the full corpus' utterance count (None where not known): what tells it from a subset of it.
    """

    key: str
    classes: tuple[str, ...]
    signal_length: int
    tab_count: int
    parse_name: Callable[[str], LabelSpeaker] = field(repr=False, compare=False)
    synthetic: bool = False
    utterances: Optional[int] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def frames(self) -> int:
        """MFCC frames T for a centred signal: librosa's centred STFT gives 1 + floor(L / 512)."""
        return 1 + self.signal_length // 512


def _no_name_parser(path: str) -> LabelSpeaker:
    return None, None


CORPORA: dict[str, Corpus] = {c.key: c for c in (
    Corpus("CASIA", ("angry", "fear", "happy", "neutral", "sad", "surprise"), 88000, 8, _casia, utterances=1200),
    Corpus("EMODB", ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"), 96000, 8, _emodb,
           utterances=535),
    Corpus("EMOVO", ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"), 96000, 8, _emovo,
           utterances=588),
    Corpus("IEMOCAP", ("angry", "happy", "neutral", "sad"), 310000, 10, _iemocap, utterances=5531),
    Corpus("RAVDE", ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"), 110000, 8,
           _ravdess, utterances=1440),
    Corpus("SAVEE", ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"), 130000, 8, _savee,
           utterances=480),
    # The embedded default: generated harmonic "speech" (synthetic_corpus.py), 1.5 s per utterance.
    Corpus("SYNTH", ("angry", "happy", "neutral", "sad"), 33075, 6, _no_name_parser, synthetic=True),
)}


def custom_corpus(key: str, classes, signal_length: int) -> Corpus:
    """A user's own dataset: labels and signal length come from its files (and are stored in its feature file).

    TIM-Net gets 8 blocks (receptive field 511 frames) unless the utterances are longer, then 10 (2 047),
    as the authors chose for IEMOCAP.
    """
    frames = 1 + int(signal_length) // 512
    return Corpus(key, tuple(str(c) for c in classes), int(signal_length), 8 if frames <= 511 else 10, _no_name_parser)


def named_recordings(key: str, files) -> list[str]:
    """The names of ``files`` that the known corpus ``key``'s own naming reads as its recordings (EMO-DB's
    03a01Wa.wav), sorted: what the authors' weights of that corpus trained on, which rows is not known. The file's
    name alone is read: a folder (CASIA's emotion folders) says nothing of where a recording comes from."""
    corpus = CORPORA[key]
    return sorted({os.path.basename(f) for f in files if corpus.parse_name(os.path.basename(f))[0] in corpus.classes})


def authors_name(folder: str) -> tuple[Optional[str], Optional[int]]:
    """(corpus key, seed) of a weights folder without run.json named as the authors name theirs, ``<KEY>_<seed>``
    (``EMODB_46``: trained on EMODB with the split of seed 46); None for a part the name does not give (a key that
    is not a known corpus, a seed that is not a number)."""
    name = os.path.basename(os.path.normpath(folder))
    key, _, seed = name.rpartition("_") if "_" in name else (name, "", "")
    return (key if key in CORPORA else None), (int(seed) if key in CORPORA and seed.isdigit() else None)


def get_corpus(key: str) -> Corpus:
    """The corpus named ``key``; a one-line ``UserError`` listing the known keys otherwise."""
    try:
        return CORPORA[key]
    except KeyError:
        raise UserError(f"--data {key!r} is not a known corpus; choose one of {', '.join(CORPORA)}") from None
