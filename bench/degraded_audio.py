"""EMO-DB weights on EMO-DB clips recorded otherwise: accuracy, and what predict said of it.

    .venv/bin/python bench/degraded_audio.py --wav ../shared/data/emodb_2s \
        --weights ../shared/reference/Test_Models/EMODB_46 [--every 1] [--only 'DC offset']

Every clip of the folder (or every ``--every``-th) is scored by the fold model that held it out, as it is and
through each degradation below, written as a wav and read back by ``Run.predict`` as a user's file would be, a
fold's clips in one call. ``--weights``: the authors' EMODB_46 (their split: KFold of seed 46 over the corpus'
files in the authors' order, the honest re-test, about 81 % on these 2 s cuts), or a run of ours trained on
EMODB features of the same folder (its run.json's test rows and file names). Prints, per condition, the accuracy
(WAR), UAR, the share of the commonest label, and how many clips got a warning (silence, a too-short clip, samples
beyond full scale, a constant offset, or a domain shift of the call's inputs taken together: the authors' folders keep no corpus
statistics, so there is never one with them; a run of ours keeps them).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from fresh_process import checkout_package, one_line_errors

SEED, FOLDS = 46, 10  # the split of the authors' EMODB_46
RATE = 22050


def _noise(signal: np.ndarray, snr_db: float) -> np.ndarray:
    """White noise ``snr_db`` below the signal's mean power added (seeded: every run the same noise)."""
    power = np.mean(np.square(signal)) / 10 ** (snr_db / 10)
    return signal + np.random.default_rng(0).normal(0.0, np.sqrt(power), len(signal))


def conditions() -> dict:
    """{name: (signal at 22 050 Hz -> (degraded signal, its sample rate))}."""
    import librosa
    return {
        "as recorded": lambda s: (s, RATE),
        "telephone band (8 kHz)": lambda s: (librosa.resample(s, orig_sr=RATE, target_sr=8000), 8000),
        "white noise, 20 dB SNR": lambda s: (_noise(s, 20), RATE),
        "white noise, 10 dB SNR": lambda s: (_noise(s, 10), RATE),
        "white noise, 0 dB SNR": lambda s: (_noise(s, 0), RATE),
        "clipped (x50)": lambda s: (np.clip(s * 50, -1, 1), RATE),
        "20 dB quieter": lambda s: (s * 10 ** (-20 / 20), RATE),
        "30 dB quieter": lambda s: (s * 10 ** (-30 / 20), RATE),
        # a constant (DC) offset, a microphone's or converter's bias (EMO-DB's clips' means stay within +-0.0062)
        "DC offset +0.002": lambda s: (s + 0.002, RATE),
        "DC offset +0.003": lambda s: (s + 0.003, RATE),
        "DC offset +0.005": lambda s: (s + 0.005, RATE),
        "DC offset +0.01": lambda s: (s + 0.01, RATE),
        "DC offset +0.02": lambda s: (s + 0.02, RATE),
        "DC offset +0.05": lambda s: (s + 0.05, RATE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the emodb_2s folder (EMO-DB's file names)")
    parser.add_argument("--weights", required=True, help="the authors' EMODB_46 folder")
    parser.add_argument("--every", type=int, default=1, help="score every n-th clip (default 1: all)")
    parser.add_argument("--only", default="", help="only the conditions whose name holds this text ('DC offset')")
    args = parser.parse_args()
    if args.every < 1:
        parser.error(f"--every {args.every}: must be 1 or more")
    timnet_ser = checkout_package()
    import soundfile as sf
    from sklearn.metrics import recall_score

    from timnet_ser.core.errors import UserError
    from timnet_ser.data.audio import load_audio
    from timnet_ser.data.corpora import CORPORA
    from timnet_ser.data.corpus_files import list_corpus_files
    from timnet_ser.engine.protocol import make_folds
    items = list_corpus_files(args.wav, CORPORA["EMODB"])  # (path, label, speaker) in the authors' order
    run = timnet_ser.load_run(args.weights)
    if run.run is None:  # the authors' folder: their split of the files
        test_rows = [test for _, test in make_folds(len(items), FOLDS, SEED)]
    else:  # a run of ours: its own split, its rows' files found by name in --wav
        files, by_name = run.run.training_files, {os.path.basename(i[0]): n for n, i in
                                                                       enumerate(items)}
        if run.data != "EMODB" or not files or any(os.path.basename(f) not in by_name for f in files):
            raise UserError(f"--weights {args.weights}: not a run on EMODB features of the files in {args.wav}")
        test_rows = [[by_name[os.path.basename(files[row])] for row in test]
                     for test in run.run.test_rows]
    chosen = [(fold, int(row)) for fold, test in enumerate(test_rows, start=1) for row in test
              if row % args.every == 0]
    truth = np.array([run.classes.index(items[row][1]) for _, row in chosen])
    signals = {row: load_audio(items[row][0]) for _, row in chosen}
    print(f"{len(chosen)} clips of {args.wav}, each scored by the fold of {args.weights} that held it out")
    print(f"{'condition':<26} {'WAR %':>6} {'UAR %':>6}  {'commonest label':<18} {'warned':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        chosen_conditions = {name: degrade for name, degrade in conditions().items() if args.only in name}
        if not chosen_conditions:
            raise UserError(f"--only {args.only!r}: no condition's name holds it ({', '.join(conditions())})")
        for name, degrade in chosen_conditions.items():
            predicted, warned = np.empty(len(chosen), int), 0
            for fold in range(1, len(test_rows) + 1):
                positions = [i for i, (f, _) in enumerate(chosen) if f == fold]
                paths = []
                for i in positions:
                    signal, rate = degrade(signals[chosen[i][1]])
                    paths.append(os.path.join(scratch, f"{i}.wav"))
                    sf.write(paths[-1], signal.astype(np.float32), rate, subtype="FLOAT")  # as degraded, unclipped
                for i, row in zip(positions, run.predict(paths, fold=fold) if paths else []):
                    predicted[i] = run.classes.index(row["label"])
                    warned += bool(row.get("warning") or (row.get("domain_shift") or {}).get("warning"))
            labels, counts = np.unique(predicted, return_counts=True)
            commonest = f"{run.classes[labels[counts.argmax()]]} {counts.max() / len(chosen):.0%}"
            uar = recall_score(truth, predicted, labels=sorted(set(truth)), average="macro")
            print(f"{name:<26} {100 * np.mean(predicted == truth):>6.2f} {100 * uar:>6.2f}  {commonest:<18} "
                  f"{warned:>3}/{len(chosen)}")


if __name__ == "__main__":
    one_line_errors(main)
