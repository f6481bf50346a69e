"""Join audio clips into one wav with a pause between them: the test file of docs/timeline.md.

    python bench/join_clips.py /tmp/joined.wav ../shared/data/emodb_2s/03a01Wa.wav ../shared/data/emodb_2s/03a02Ta.wav

Every clip is read with librosa.load (mono, 22 050 Hz, as training reads it) and written one after the other,
``--pause`` seconds of digital silence between two clips, as 16-bit PCM at 22 050 Hz. Prints each clip's start.
"""

import argparse
import os

import librosa
import numpy as np
import soundfile as sf

RATE = 22050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the wav file to write")
    parser.add_argument("clips", nargs="+", help="audio files, in order")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of silence between two clips")
    args = parser.parse_args()
    pause = np.zeros(round(args.pause * RATE), np.float32)
    parts = []
    for clip in args.clips:
        signal, _ = librosa.load(clip, sr=RATE)
        if parts:
            parts.append(pause)
        print(f"{sum(map(len, parts)) / RATE:7.2f} s  {os.path.basename(clip)}")
        parts.append(signal)
    sf.write(args.output, np.concatenate(parts), RATE, subtype="PCM_16")
    print(f"wrote {args.output}: {sum(map(len, parts)) / RATE:.2f} s")


if __name__ == "__main__":
    main()
