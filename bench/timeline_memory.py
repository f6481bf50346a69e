"""Peak memory of ``--mode predict --timeline`` on generated long files: does it grow with the file's length?

    python bench/timeline_memory.py --test_path ../shared/reference/Test_Models/EMODB_46 --data EMODB --minutes 5 60

For every length it writes a file of synthetic "speech" (the demo corpus' utterances, 0.3 to 1.5 s pauses between
them, 5 s of silence every minute) as 16-bit PCM into the temporary folder, and in a fresh process each:

- loads the weights, then runs the timeline (the API's ``Run.timeline``, what the command runs): the process' peak
  resident memory (``ru_maxrss``) after loading and after the timeline, and the timeline's wall time;
- for comparison, ``librosa.load`` of the whole file (what predict does with one file): its peak.

The file is deleted afterwards. Prints one Markdown table.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from fresh_process import checkout_package


def write_file(path: str, minutes: float, rate: int) -> None:
    """Synthetic utterances of every class with pauses, 5 s of silence every minute, written block by block."""
    import librosa
    import soundfile as sf
    checkout_package()
    from timnet_ser.data import synthetic_corpus as synthetic
    pool = [synthetic.utterance(c, np.random.default_rng([7, i, k])) for i, c in enumerate(synthetic.CORPUS.classes)
            for k in range(10)]
    if rate != synthetic.SAMPLE_RATE:
        pool = [librosa.resample(u, orig_sr=synthetic.SAMPLE_RATE, target_sr=rate) for u in pool]
    rng = np.random.default_rng(0)
    total, written, minute = round(minutes * 60 * rate), 0, 0
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        while written < total:
            if written // (60 * rate) > minute:  # a long silence: windows to skip
                minute, part = minute + 1, np.zeros(5 * rate, np.float32)
            else:
                part = np.concatenate([pool[rng.integers(len(pool))], np.zeros(round(rng.uniform(0.3, 1.5) * rate),
                                                                                np.float32)])
            part = part[:total - written]
            f.write(part)
            written += len(part)


def child(args) -> None:
    """In a fresh process: the measurement of one file, printed as JSON."""
    if args.child == "load":
        import librosa
        signal, _ = librosa.load(args.wav)
        print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "samples": len(signal)}))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run = checkout_package().load_run(args.test_path, data=args.data)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = run.timeline(args.wav)
    print(json.dumps({"loaded_mb": loaded, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - start, "windows": len(result["windows"]),
                      "voiced": sum(w["voiced"] for w in result["windows"])}))


def measure(args, mode: str, wav: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--wav", wav, "--test_path",
               args.test_path, "--data", args.data]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test_path", required=True, help="a run folder or the authors' weights folder")
    parser.add_argument("--data", default="EMODB", help="the corpus of a weights folder without run.json")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 60])
    parser.add_argument("--rate", type=int, default=22050, help="the generated files' sample rate")
    parser.add_argument("--folder", default=tempfile.gettempdir(), help="where the files are written (and deleted)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--wav", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(f"| file | size on disk | windows (voiced) | timeline wall time | peak RSS after loading the weights | "
          f"peak RSS after the timeline | peak RSS of librosa.load of the whole file |\n|{'---|' * 7}", flush=True)
    for minutes in args.minutes:
        wav = os.path.join(args.folder, f"timeline_memory_{minutes:g}min.wav")
        try:
            write_file(wav, minutes, args.rate)
            size = os.path.getsize(wav) / 2 ** 20
            timed, loaded = measure(args, "timeline", wav), measure(args, "load", wav)
        finally:
            if os.path.exists(wav):
                os.remove(wav)
        print(f"| {minutes:g} min, {args.rate} Hz 16-bit | {size:.0f} MiB | {timed['windows']} ({timed['voiced']}) | "
              f"{timed['seconds']:.0f} s | {timed['loaded_mb']:.0f} MiB | {timed['peak_mb']:.0f} MiB | "
              f"{loaded['peak_mb']:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
