"""Emotion of single wav files from saved fold weights: the training pipeline's features, the folds' votes averaged.

Each file goes through exactly what training saw (librosa at 22 050 Hz, centred to the corpus' signal
length, then the model's features: 39 MFCCs, or DCNN-BLSTMwA's log-Mel segments); every fold model of the
weights folder gives softmax probabilities, and their mean is the prediction (or one fold's, with ``--fold``).
"""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np

import legacy_weights
from atomic_file import atomic_write
from corpora import Corpus, natural_key
from errors import UserError
from extract_feature import extract_file
from Model import Hyper, ModelSpec, build_model, legacy_weight_groups, predict_in_batches, without_pretrained


def weight_files(folder: str, fold: int | None = None) -> list[tuple[int, str]]:
    """(fold number, path) of every ``<k>-fold_weights_best_<i>.hdf5`` in ``folder``, or only fold ``fold``."""
    if not os.path.isdir(folder):
        raise UserError(f"--test_path {folder}: no such folder of weight files")
    found = []
    for name in os.listdir(folder):
        match = re.fullmatch(r"\d+-fold_weights_best_(\d+)\.hdf5", name)
        if match:
            found.append((int(match.group(1)), os.path.join(folder, name)))
    if not found:
        raise UserError(f"--test_path {folder}: holds no <k>-fold_weights_best_<i>.hdf5 files")
    if fold is not None:
        found = [(i, p) for i, p in found if i == fold]
        if not found:
            raise UserError(f"--fold {fold}: {folder} has no weights for fold {fold}")
    return sorted(found)


def wav_list(wav: str) -> list[str]:
    if os.path.isfile(wav):
        return [wav]
    if os.path.isdir(wav):
        files = sorted((os.path.join(wav, n) for n in os.listdir(wav) if n.lower().endswith(".wav")),
                       key=lambda p: natural_key(os.path.basename(p)))
        if files:
            return files
        raise UserError(f"--wav {wav}: the folder holds no .wav files")
    raise UserError(f"--wav {wav}: no such file or folder")


def _write_output(path: str, rows: list[dict], classes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if path.lower().endswith(".json"):
                json.dump(rows, f, indent=1)
            else:
                writer = csv.writer(f)
                writer.writerow(["file", "prediction", *classes])
                writer.writerows([[r["file"], r["prediction"], *(f"{r['probabilities'][c]:.6f}" for c in classes)]
                                  for r in rows])
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot be written ({exc.strerror or exc})") from None


def predict_files(spec: ModelSpec, hyper: Hyper, corpus: Corpus, wav: str, test_path: str, fold: int | None = None,
                  output: str | None = None) -> list[dict]:
    """Print and return, per file, the predicted emotion and every class probability."""
    folds = weight_files(test_path, fold)
    files = wav_list(wav)
    x = np.stack([extract_file(f, corpus.signal_length, spec.features) for f in files])  # (N, T, 39), (N, S, 64, 64, 3)
    model = build_model(spec, x.shape[1:], corpus.num_classes, without_pretrained(hyper))  # weights from the folds
    groups = legacy_weight_groups(model)
    probs = np.zeros((len(files), corpus.num_classes))
    for _, path in folds:
        legacy_weights.load_legacy_weights(path, groups)
        probs += predict_in_batches(model, x) / len(folds)
    used = "fold " + str(folds[0][0]) if fold is not None else f"mean of {len(folds)} folds"
    print(f"{spec.name} {corpus.key} weights {test_path} ({used})")
    rows = []
    for path, p in zip(files, probs):
        label = corpus.classes[int(p.argmax())]
        rows.append({"file": path, "prediction": label,
                     "probabilities": {c: float(v) for c, v in zip(corpus.classes, p)}})
        shares = "  ".join(f"{c} {v:.3f}" for c, v in zip(corpus.classes, p))
        print(f"{os.path.basename(path)}: {label}   ({shares})")
    if output:
        _write_output(output, rows, corpus.classes)
        print(f"wrote {output}")
    return rows
