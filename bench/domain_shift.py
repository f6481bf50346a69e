"""Two "corpora" and another recording setup from emodb_2s, and the domain-shift distances that set the threshold.

    .venv/bin/python bench/domain_shift.py --wav ../shared/data/emodb_2s --out xc

Writes, under ``--out``, four feature files of datasets of their own (classes, signal length, speakers, files):
``EMODB_A.npy`` (speakers 03 08 09 10 11), ``EMODB_B.npy`` (speakers 12 13 14 15 16), and ``EMODB_Ach.npy`` and
``EMODB_Bch.npy``: their audio through data/channel.py's Channel (-6 dB, 300-3400 Hz band pass, white noise at
20 dB SNR), the stand-in for another recording setup. Then prints, for
A's statistics (what a run trained on A keeps in run.json), the distance (data/feature_statistics.py) of n
utterances taken together, drawn from A itself, from B (held-out speakers, same setup) and from B through the
channel, with the share above the threshold for n: docs/cross_corpus.md shows the output.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from fresh_process import checkout_package, one_line_errors

SPEAKERS_A = ("03", "08", "09", "10", "11")
SIGNAL_LENGTH = 96000  # EMODB's, as EMODB_2s.npy
GROUPS = 500


def subset(data: dict, rows: np.ndarray, x: np.ndarray | None = None) -> dict:
    return {**data, "x": data["x"][rows] if x is None else x, "y": data["y"][rows], "files": data["files"][rows],
            "speakers": data["speakers"][rows]}


def build(wav: str, out: str) -> dict:
    """The three feature dicts, written under ``out``."""
    from timnet_ser.data import corpora, extraction, feature_files
    from timnet_ser.data.audio import load_audio
    from timnet_ser.data.channel import Channel
    from timnet_ser.data.features import signal_features
    data = extraction.extract_corpus(wav, corpora.CORPORA["EMODB"], SIGNAL_LENGTH, workers=2)
    in_a = np.isin(data["speakers"], SPEAKERS_A)
    a, b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    def through(rows: np.ndarray) -> np.ndarray:
        return np.stack([signal_features(Channel().apply(load_audio(os.path.join(wav, f))), SIGNAL_LENGTH)
                         for f in data["files"][rows]])
    sets = {"EMODB_A": subset(data, a), "EMODB_B": subset(data, b), "EMODB_Ach": subset(data, a, through(a)),
            "EMODB_Bch": subset(data, b, through(b))}
    os.makedirs(out, exist_ok=True)
    for name, part in sets.items():
        feature_files.save_features(os.path.join(out, f"{name}.npy"), part)
        print(f"wrote {os.path.join(out, name)}.npy: {len(part['x'])} utterances, speakers "
              f"{' '.join(sorted(set(part['speakers'])))}")
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the emodb_2s folder")
    parser.add_argument("--out", required=True, help="folder for EMODB_A.npy, EMODB_B.npy, EMODB_Ach.npy, EMODB_Bch.npy")
    args = parser.parse_args()
    checkout_package()
    from timnet_ser.data.feature_statistics import corpus_statistics, shift_distance, threshold
    sets = build(args.wav, args.out)
    statistics = corpus_statistics(sets["EMODB_A"]["x"], "mfcc")
    print(f"\nstatistics of EMODB_A ({statistics['utterances']} utterances): distance of n utterances together "
          f"(random groups of one corpus, {GROUPS} per n; every utterance alone for n = 1)")
    print(f"{'utterances of':<34} {'n':>3} {'threshold':>9} {'p5':>6} {'median':>6} {'p95':>6} {'p99':>6} "
          f"{'above':>7}")
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 20):
        for name, label in (("EMODB_A", "EMODB_A (the training corpus)"), ("EMODB_B", "EMODB_B (held-out speakers)"),
                            ("EMODB_Bch", "EMODB_Bch (B through the channel)")):
            x = sets[name]["x"]
            groups = [[i] for i in range(len(x))] if n == 1 else [rng.choice(len(x), n, replace=False)
                                                                    for _ in range(GROUPS)]
            d = np.array([shift_distance(x[g], statistics) for g in groups])
            print(f"{label:<34} {n:>3} {threshold(n):>9.2f} {np.percentile(d, 5):>6.2f} {np.median(d):>6.2f} "
                  f"{np.percentile(d, 95):>6.2f} {np.percentile(d, 99):>6.2f} {np.mean(d > threshold(n)):>7.1%}")

if __name__ == "__main__":
    one_line_errors(main)
