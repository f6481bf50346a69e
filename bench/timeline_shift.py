"""The domain-shift threshold of a timeline's windows: long recordings of one speaker, window by window.

    .venv/bin/python bench/timeline_shift.py --wav ../shared/data/emodb_2s --features xc/EMODB_A.npy [--write DIR]

A timeline (deploy/timeline.py) scores the windows of one long recording: one speaker, one setup, so its windows
do not vary as independent utterances do, and bench/domain_shift.py's ``max(1, 2 / sqrt(n))`` (measured on random
groups of utterances) does not carry over. Here every emodb_2s speaker's clips, in file order with 0.5 s of silence
between them, make one recording (about 100 s); the same recording through data/channel.py's Channel (-6 dB,
300-3400 Hz, noise at 20 dB SNR) stands in for another setup. Its voiced windows (the timeline's windows and
silence rule, default hop) are compared with EMODB_A's statistics (``--features``: bench/domain_shift.py's
EMODB_A.npy, what a run trained on it keeps): the distance of n consecutive windows together (every start), for
recordings of EMODB_A's speakers (the training corpus), EMODB_B's (held-out speakers, same setup) and EMODB_B's
through the channel. docs/timeline.md shows the output.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from domain_shift import SIGNAL_LENGTH, SPEAKERS_A  # noqa: E402
from fresh_process import checkout_package, one_line_errors  # noqa: E402

GAP = 0.5  # seconds of silence between two clips of a recording


def recording(files: list[str]) -> np.ndarray:
    from timnet_ser.data.audio import load_audio
    from timnet_ser.data.corpora import SAMPLE_RATE
    gap = np.zeros(int(GAP * SAMPLE_RATE), np.float32)
    return np.concatenate([part for f in files for part in (load_audio(f), gap)])


def window_features(signal: np.ndarray) -> np.ndarray:
    """(W, T, 39): the MFCCs of the timeline's voiced windows of ``signal`` (default hop)."""
    from timnet_ser.data.features import signal_features
    from timnet_ser.deploy import timeline
    levels, samples = timeline.frame_levels([signal])[:2]
    starts = timeline.window_starts(samples, SIGNAL_LENGTH, SIGNAL_LENGTH // 2)
    ends = np.minimum(starts + SIGNAL_LENGTH, samples)
    voiced = timeline.voiced_windows(timeline.voiced_frames(levels), starts, ends)
    return np.stack([signal_features(signal[s:e], SIGNAL_LENGTH) for s, e in zip(starts[voiced], ends[voiced])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the emodb_2s folder")
    parser.add_argument("--features", required=True, help="EMODB_A.npy of bench/domain_shift.py")
    parser.add_argument("--write", help="also write speaker 12's recording and its channel version here "
                                        "(speaker12.wav, speaker12_channel.wav)")
    args = parser.parse_args()
    checkout_package()
    from timnet_ser.data.channel import Channel
    from timnet_ser.data.feature_files import load_features
    from timnet_ser.data.feature_statistics import corpus_statistics, shift_distance, window_threshold
    statistics = corpus_statistics(np.asarray(load_features(args.features)["x"]), "mfcc")
    files = sorted(glob.glob(os.path.join(args.wav, "*.wav")))
    speakers = sorted({os.path.basename(f)[:2] for f in files})
    windows = {"A": [], "B": [], "Bch": []}
    for speaker in speakers:
        signal = recording([f for f in files if os.path.basename(f).startswith(speaker)])
        if speaker in SPEAKERS_A:
            windows["A"].append(window_features(signal))
        else:
            windows["B"].append(window_features(signal))
            windows["Bch"].append(window_features(Channel().apply(signal)))
        if args.write and speaker == "12":
            import soundfile as sf
            os.makedirs(args.write, exist_ok=True)
            sf.write(os.path.join(args.write, "speaker12.wav"), signal, 22050, subtype="FLOAT")
            sf.write(os.path.join(args.write, "speaker12_channel.wav"), Channel().apply(signal), 22050,
                     subtype="FLOAT")
    print(f"statistics of EMODB_A ({statistics['utterances']} utterances); one recording per speaker "
          f"({', '.join(f'{len(w)}' for w in windows['A'] + windows['B'])} voiced windows); distance of n "
          "consecutive windows of one recording together, every start")
    print(f"{'recordings of':<34} {'n':>4} {'threshold':>9} {'min':>6} {'median':>6} {'max':>6} {'above':>7}")
    labels = {"A": "EMODB_A speakers (training corpus)", "B": "EMODB_B speakers (held out)",
              "Bch": "EMODB_B through the channel"}
    for n in (1, 2, 5, 10, 20, 0):
        for key, label in labels.items():
            d = np.array([shift_distance(w[s:s + (n or len(w))], statistics) for w in windows[key]
                          for s in range(0, len(w) - (n or len(w)) + 1)])
            limit = window_threshold(n or min(len(w) for w in windows[key]))
            print(f"{label:<34} {n or 'all':>4} {limit:>9.2f} {d.min():>6.2f} {np.median(d):>6.2f} {d.max():>6.2f} "
                  f"{np.mean(d > limit):>7.1%}")
    for key, label in labels.items():
        per = [f"{shift_distance(w, statistics):.2f}" for w in windows[key]]
        print(f"{label}: each whole recording {' '.join(per)}")


if __name__ == "__main__":
    one_line_errors(main)
