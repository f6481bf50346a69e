"""Peak memory of extraction and training at IEMOCAP shapes, on generated data.

    .venv/bin/python bench/memory.py [--files 400] [--steps 5]

Extraction: N generated 14 s files (IEMOCAP's longest utterances, signal length 310 000 samples)
are extracted with all cores; run for N and 2N files, the peak grows only by the features
(N x 606 x 39 float32), never by the audio. Training: a TIM-Net fold (10 blocks, 4 classes) on a
generated (5 531, 606, 39) feature tensor, the full IEMOCAP size, for a few steps. Each figure is
the peak resident memory of a fresh process (ru_maxrss), so measurements do not mix.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

EXTRACT = """
import sys
from timnet_ser.data import corpora, extraction, feature_files
corpus = corpora.custom_corpus("IEMOCAP_SHAPE", ("a", "b"), 310000)
data = extraction.extract_corpus({folder!r}, corpus, progress=False)
feature_files.save_features({out!r}, data)
print(data["x"].shape)
"""

TRAIN = """
import os, sys, time; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.core.config import RunConfig
from timnet_ser.engine.protocol import make_folds
from timnet_ser.Model import MODELS, build_model
from timnet_ser.core.config import Hyper
configure_tensorflow(MODELS["TIMNET"])  # as main.py does
rng = np.random.default_rng(0)
x = rng.standard_normal((5531, 606, 39), dtype=np.float32)  # (N, T, 39): IEMOCAP's size
y = np.eye(4, dtype="float32")[rng.integers(0, 4, 5531)]
config = RunConfig(model="TIMNET", data="IEMOCAP", classes=list("abcd"), feature_path="-",
                   hyper=Hyper(dilation_size=10))
trainer = Trainer(lambda: build_model(MODELS["TIMNET"], (606, 39), 4, config.hyper), config)
train_idx, _ = make_folds(len(x), 10, 46)[0]
trainer.reset(0)
start = time.time()
trainer.train_epoch(x, y, train_idx[:64 * {steps}], 64)
print(f"{{(time.time() - start) / {steps}:.2f}} s per step of 64")
"""


PEAK = """
import resource
print(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
"""


def peak_of(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; (its peak resident MB, or its largest worker's, and its result line)."""
    done = subprocess.run([sys.executable, "-c", code + PEAK], capture_output=True, text=True, check=True)
    *_, result, peak_kb = done.stdout.strip().splitlines()
    return int(peak_kb) / 1024, result


def write_files(folder: str, count: int) -> None:
    import numpy as np
    import soundfile as sf
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        os.makedirs(os.path.join(folder, label), exist_ok=True)
    for i in range(count):
        t = np.arange(14 * 22050) / 22050
        signal = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.normal(size=t.size)
        sf.write(os.path.join(folder, "ab"[i % 2], f"{i:05d}.wav"), signal, 22050, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=400, help="files of the smaller extraction run")
    parser.add_argument("--steps", type=int, default=5, help="training steps to time")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (args.files, 2 * args.files):
            folder = os.path.join(tmp, f"wav{count}")
            write_files(folder, count)
            peak, shape = peak_of(EXTRACT.format(folder=folder, out=os.path.join(tmp, f"{count}.npy")))
            features_mb = count * 606 * 39 * 4 / 2 ** 20
            audio_mb = count * 310000 * 4 / 2 ** 20
            rows.append((f"extract {count} files of 14 s, all cores", f"{peak:.0f} MB",
                         f"features {features_mb:.0f} MB, audio would be {audio_mb:.0f} MB; x {shape}"))
    peak, step = peak_of(TRAIN.format(steps=args.steps))
    rows.append(("train TIM-Net fold, x (5531, 606, 39)", f"{peak:.0f} MB",
                 f"features {5531 * 606 * 39 * 4 / 2 ** 20:.0f} MB; {step}"))
    print("| measurement | peak resident memory | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
