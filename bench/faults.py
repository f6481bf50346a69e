"""Fault campaign: interrupt, starve and corrupt tiny runs N times each, then check what survived.

    .venv/bin/python bench/faults.py [--tries 3] [--faults sigkill,sigint,...] [--seed 0] [--keep DIR]

Every fault works on a 3-fold TIM-Net run of a few epochs on 30 generated utterances (a grid: 2 seeds of it) and
is compared with the same run left alone. The faults, each at a random moment or place drawn from ``--seed``:

  sigkill, sigint   the training process gets SIGKILL / SIGINT (Ctrl-C) between its run.json and its end; then
                    ``--resume`` (a run killed after its last fold is complete: resume says so)
  disk_full         the training process may write no file larger than a random size below a fold's weights
                    (RLIMIT_FSIZE: a full disk as the process sees it); then ``--resume`` with the limit lifted
  ray_worker        a local grid's Ray worker is SIGKILLed inside a fold; the grid retries the fold
  grid_driver       a local grid's driver (main.py) is SIGKILLed; none of its processes may outlive it by
                    OUTLIVE_S; the same grid command is run again
  fold_weights      a finished run's fold weights are truncated or overwritten with random bytes; ``--mode test``
                    must name the file; ``--resume`` must train that fold again
  run_json          a run's run.json is truncated or overwritten; test and resume must name it and change nothing;
                    the original put back, the run is tested again
  feature_file      an unfinished run's feature file is truncated or changed; resume must name it and train
                    nothing; the original put back, the run is resumed

Columns: ``recovered`` the commands after the fault ended as they should (named the damaged file in one
``error:`` line with no traceback where one was damaged, exit 0 after recovery); ``results equal`` every fold's
predictions and weights equal the undisturbed run's; ``lost / half-written`` files complete before the fault and
gone or changed after it (other than the file the fault damaged), plus files left under a real name that cannot
be read, plus temporaries (``.<name>.partial-*``) still there after recovery.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "Code", "main.py")
sys.path.insert(0, ROOT)  # the project's package, read here only to compare weight files (h5py, no TensorFlow)
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
RUN = ["--data", "TOY", "--split_fold", "3", "--epoch", "3", "--batch_size", "8", "--dilation_size", "2",
       "--filter_size", "8"]
GRID = """data = "TOY"
feature_path = "{features}"
model = "TIMNET"
random_seed = [1, 2]
split_fold = 3
epoch = 2
batch_size = 8
dilation_size = 2
filter_size = 8
"""
FAULTS = ("sigkill", "sigint", "disk_full", "ray_worker", "grid_driver", "fold_weights", "run_json", "feature_file")
TIMEOUT_S = 600
OUTLIVE_S = 10  # a killed grid driver's processes must be gone by then (Ray alone kept its agents some 60 s)


@dataclass
class Try:
    recovered: bool
    equal: bool
    lost: int
    note: str = ""


# --- the toy corpus, commands and what a run left -------------------------------------------------------------

def toy_features(path: str, n: int = 30, frames: int = 24, seed: int = 0) -> str:
    """Three classes of MFCC-like frames that differ in mean (as tests/test_grid.py's)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, frames, 39)).astype("float32") + labels[:, None, None].astype("float32")
    np.save(path, {"x": x, "y": np.eye(3, dtype="float32")[labels], "classes": np.array(["a", "b", "c"]),
                   "signal_length": np.int64((frames - 1) * 512)}, allow_pickle=True)
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, MAIN, *args]


def run(*args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    """main.py with ``args`` to its end; ``limit``: the largest file it may write (bytes)."""
    return subprocess.run(command(*args), env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S,
                          preexec_fn=None if limit is None else lambda: resource.setrlimit(
                              resource.RLIMIT_FSIZE, (limit, limit)))


def train_args(features: str, models: str, results: str, seed: int = 5) -> list[str]:
    return ["--mode", "train", *RUN, "--feature_path", features, "--random_seed", str(seed), "--model_path", models,
            "--result_path", results]


def one_line_error(result: subprocess.CompletedProcess, names: str) -> bool:
    """Exit status 2, the last line ``error: ...`` naming ``names``, no traceback."""
    lines = result.stderr.strip().splitlines()
    return (result.returncode == 2 and bool(lines) and lines[-1].startswith("error: ") and names in lines[-1]
            and "Traceback" not in result.stderr)


def run_folders(models: str) -> list[str]:
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(models, "*", "run.json")))


def weights_digest(path: str) -> str:
    """The arrays of a legacy weight file (the file's bytes hold HDF5 time stamps)."""
    from Code.nn.legacy_weights import read_weight_arrays
    digest = hashlib.sha256()
    for name, arrays in read_weight_arrays(path):
        digest.update(name.encode())
        for array in arrays:
            digest.update(array.tobytes())
    return digest.hexdigest()


def outcome(models: str) -> dict:
    """{(seed, fold file): (test predictions, weight arrays)} of every run under ``models``."""
    found = {}
    for folder in run_folders(models):
        with open(os.path.join(folder, "run.json")) as f:
            seed = json.load(f)["config"]["random_seed"]
        for path in sorted(glob.glob(os.path.join(folder, "*-fold_record_*.json"))):
            with open(path) as f:
                record = json.load(f)
            weights = path.replace("_record_", "_weights_best_").replace(".json", ".hdf5")
            found[(seed, os.path.basename(path))] = (record["y_pred"], weights_digest(weights))
    return found


def summaries(results: str) -> list:
    """The summaries of the training results JSONs in ``results``, by run."""
    found = []
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        with open(path) as f:
            record = json.load(f)
        if record.get("mode") == "train":
            found.append((record["config"]["random_seed"], record["summary"]))
    return sorted(found, key=lambda item: item[0])


def files(*folders: str) -> dict:
    """{path: digest} of every file below ``folders``: the sha256 of its bytes or, for an xlsx that reads whole, of
    its sheets' cells (a results file written again with the same figures is the same file, although its bytes hold
    the moment it was written)."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                if name.startswith(".") and name.endswith(".lock"):  # a fold's lock, the training process's own
                    continue
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
                if name.endswith(".xlsx") and ".partial-" not in name:
                    found[path] = xlsx_digest(path) or found[path]
    return found


def xlsx_digest(path: str) -> str | None:
    """The sha256 of every sheet's name and cells, or None where the file does not read as an xlsx."""
    import pandas as pd
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None)
    except Exception:  # a damaged file: its bytes stand for it
        return None
    text = "".join(f"{name}\n{sheet.to_csv()}" for name, sheet in sorted(sheets.items()))
    return "cells:" + hashlib.sha256(text.encode()).hexdigest()


def half_written(*folders: str) -> int:
    """Temporaries left (``.partial-``) plus files under a real name that cannot be read whole."""
    from Code.core.errors import UserError
    from Code.nn.legacy_weights import read_weight_arrays
    bad = 0
    for path in files(*folders):
        name = os.path.basename(path)
        if ".partial-" in name:
            bad += 1
            continue
        try:
            if name.endswith(".json"):
                with open(path) as f:
                    json.load(f)
            elif name.endswith(".hdf5"):
                read_weight_arrays(path)
        except (ValueError, UserError):
            bad += 1
    return bad


LOST = []  # the paths ``lost`` counted, printed at the end


def lost(before: dict, folders: tuple, damaged: str | None = None) -> int:
    """Files complete before the fault (temporaries are not) that are gone or changed now in ``folders`` (but the
    one it damaged)."""
    now = files(*folders)
    gone = [path for path, digest in before.items()
            if path != damaged and ".partial-" not in path and now.get(path) != digest]
    LOST.extend(gone)
    return len(gone)


def corrupt(path: str, rng: random.Random) -> str:
    """Truncate ``path`` at a random length, or overwrite a random span of it with random bytes (not text)."""
    size = os.path.getsize(path)
    if rng.random() < 0.5:
        length = rng.randrange(size)
        os.truncate(path, length)
        return f"truncated to {length} of {size} bytes"
    start, span = rng.randrange(size), rng.randint(1, 64)
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(rng.randrange(128, 256) for _ in range(span)))  # never valid UTF-8 text on its own
    return f"{span} bytes overwritten at {start}"


# --- the campaign ---------------------------------------------------------------------------------------------

class Campaign:
    """The toy corpus, the undisturbed run and grid, and a fresh folder for every try."""

    def __init__(self, folder: str, rng: random.Random, grid: bool):
        self.folder, self.rng, self.count = folder, rng, 0
        self.features = toy_features(os.path.join(folder, "TOY.npy"))
        models, results = self.fresh("reference")
        self.train_seconds = undisturbed(train_args(self.features, models, results), models)
        self.reference_run = run_folders(models)[0]
        self.reference = (outcome(models), summaries(results))
        self.weights_size = os.path.getsize(glob.glob(os.path.join(self.reference_run, "*.hdf5"))[0])
        if grid:
            with open(os.path.join(folder, "grid.toml"), "w") as f:
                f.write(GRID.format(features=self.features))
            models, results = self.fresh("grid-reference")
            self.grid_seconds = undisturbed(self.grid_args(models, results), models)
            self.grid_reference = (outcome(models), summaries(results))

    def fresh(self, name: str) -> tuple[str, str]:
        self.count += 1
        base = os.path.join(self.folder, f"{self.count:03d}-{name}")
        return os.path.join(base, "M"), os.path.join(base, "R")

    def grid_args(self, models: str, results: str) -> list[str]:
        return ["--mode", "grid", "--grid", os.path.join(self.folder, "grid.toml"), "--gpu", "-1", "--workers", "2",
                "--model_path", models, "--result_path", results]

    def copy_of_reference(self, name: str) -> tuple[str, str, str]:
        """A copy of the undisturbed run (its run.json pointed at a results folder of its own): folder, results."""
        models, results = self.fresh(name)
        folder = os.path.join(models, os.path.basename(self.reference_run))
        shutil.copytree(self.reference_run, folder)
        os.makedirs(results)
        run_file = os.path.join(folder, "run.json")
        with open(run_file) as f:
            description = json.load(f)
        description["result_path"] = os.path.abspath(results)  # a hand edit run.json allows
        with open(run_file, "w") as f:
            json.dump(description, f, indent=1)
        return models, folder, results

    def equal(self, models: str, results: str, reference=None) -> bool:
        return (outcome(models), summaries(results)) == (reference or self.reference)

    # --- the faults -------------------------------------------------------------------------------------------

    def interrupt(self, sig: signal.Signals) -> Try:
        # A signal that arrives after the run has ended tests nothing (the undisturbed run, timed first, can be
        # slower than the later ones): such a try starts over with the window halved, up to five times.
        for attempt in range(5):
            models, results = self.fresh(sig.name)
            process = subprocess.Popen(command(*train_args(self.features, models, results)), env=ENV,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + TIMEOUT_S
            while not glob.glob(os.path.join(models, "*", "run.json")) and process.poll() is None:
                if time.time() > deadline:
                    process.kill()
                    return Try(False, False, 0, "no run.json in time")
                time.sleep(0.01)
            delay = self.rng.uniform(0, self.train_seconds / 2 ** attempt)
            time.sleep(delay)
            before = files(models, results)
            if process.poll() is None:
                break
            process.communicate(timeout=TIMEOUT_S)
        else:
            return Try(False, False, 0, f"the run always ended within {delay:.2f} s of its run.json")
        process.send_signal(sig)
        _, err = process.communicate(timeout=TIMEOUT_S)
        note = (f"{sig.name} {delay:.2f} s after run.json, while it ran (exit {process.returncode}"
                f"{f'; {attempt} earlier draw(s) came after the end' if attempt else ''})")
        # SIGINT: 130 from our handler, 0 where the run had ended, -2 where it came as the interpreter exited (its
        # default action restored); the resume and the comparison below say whether anything was lost
        if (sig == signal.SIGINT and process.returncode not in (0, 130, -signal.SIGINT)) or "Traceback" in err:
            return Try(False, False, lost(before, (models, results)), note + ": " + err.strip().splitlines()[-1])
        [folder] = run_folders(models)
        resumed = run("--mode", "train", "--resume", folder)
        return Try(resumed.returncode == 0, self.equal(models, results),
                   lost(before, (models, results)) + half_written(models, results), note)

    def sigkill(self) -> Try:
        return self.interrupt(signal.SIGKILL)

    def sigint(self) -> Try:
        return self.interrupt(signal.SIGINT)

    def disk_full(self) -> Try:
        models, results = self.fresh("disk_full")
        limit = self.rng.randrange(8_000, self.weights_size)  # above run.json and the row signatures
        starved = run(*train_args(self.features, models, results), limit=limit)
        named = one_line_error(starved, "cannot be written")
        before = files(models, results)
        partials_now = half_written(models, results)
        [folder] = run_folders(models)
        resumed = run("--mode", "train", "--resume", folder)
        return Try(named and resumed.returncode == 0, self.equal(models, results),
                   partials_now + lost(before, (models, results)) + half_written(models, results),
                   f"files limited to {limit} bytes: {starved.stderr.strip().splitlines()[-1].replace(folder, '')}")

    def fold_weights(self) -> Try:
        models, folder, results = self.copy_of_reference("fold_weights")
        target = self.rng.choice(sorted(glob.glob(os.path.join(folder, "*.hdf5"))))
        how = corrupt(target, self.rng)
        before = files(models, results)
        tested = run("--mode", "test", "--test_path", folder)
        resumed = run("--mode", "train", "--resume", folder)
        retrained = os.path.basename(target) in resumed.stdout and "trained again" in resumed.stdout
        retested = run("--mode", "test", "--test_path", folder)
        return Try(one_line_error(tested, os.path.basename(target)) and resumed.returncode == 0 and retrained
                   and retested.returncode == 0, self.equal(models, results),
                   lost(before, (models, results), target) + half_written(models, results), f"{os.path.basename(target)} {how}")

    def run_json(self) -> Try:
        models, folder, results = self.copy_of_reference("run_json")
        target = os.path.join(folder, "run.json")
        original = open(target, "rb").read()
        how = corrupt(target, self.rng)
        before = files(models, results)
        tested = run("--mode", "test", "--test_path", folder)
        resumed = run("--mode", "train", "--resume", folder)
        untouched = files(models, results) == before
        with open(target, "wb") as f:
            f.write(original)
        retested = run("--mode", "test", "--test_path", folder)
        [path] = glob.glob(os.path.join(results, "*.json"))
        with open(path) as f:
            predictions = [fold["y_pred"] for fold in json.load(f)["folds"]]
        return Try(one_line_error(tested, target) and one_line_error(resumed, target) and untouched
                   and retested.returncode == 0,
                   outcome(models) == self.reference[0] and predictions == [p for p, _ in self.reference[0].values()],
                   lost(before, (models, results), target) + half_written(models, results), how)

    def feature_file(self) -> Try:
        models, folder, results = self.copy_of_reference("feature_file")
        features = os.path.join(os.path.dirname(models), "TOY.npy")
        shutil.copy(self.features, features)
        run_file = os.path.join(folder, "run.json")
        with open(run_file) as f:
            description = json.load(f)
        description["config"]["feature_path"] = features  # the run's own copy, damaged below
        with open(run_file, "w") as f:
            json.dump(description, f, indent=1)
        last = sorted(glob.glob(os.path.join(folder, "*-fold_*_3.*")))  # fold 3 unfinished: an interrupted run
        for path in last:
            os.remove(path)
        how = corrupt(features, self.rng)
        before = files(models, results)
        resumed = run("--mode", "train", "--resume", folder)
        untouched = files(models, results) == before
        shutil.copy(self.features, features)
        again = run("--mode", "train", "--resume", folder)
        return Try(one_line_error(resumed, features) and untouched and again.returncode == 0,
                   self.equal(models, results), lost(before, (models, results)) + half_written(models, results), how)

    def grid_fault(self, name: str, kill) -> Try:
        """A local grid, ``kill(process)`` during it, then the grid to its end (run again if the driver died).
        ``kill`` returns the files before, a note and how many of the grid's processes outlived it (a failure)."""
        models, results = self.fresh(name)
        process = subprocess.Popen(command(*self.grid_args(models, results)), env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        before, note, outlived = kill(process, models, results)
        _, err = process.communicate(timeout=TIMEOUT_S)
        note += f" (exit {process.returncode})"
        status = process.returncode
        if status != 0:
            status = run(*self.grid_args(models, results)).returncode
        return Try(status == 0 and not outlived, self.equal(models, results, self.grid_reference),
                   lost(before, (models, results)) + half_written(models, results), note)

    def ray_worker(self) -> Try:
        def kill(process, models, results):
            deadline = time.time() + TIMEOUT_S
            while time.time() < deadline and process.poll() is None:
                workers = [pid for pid in training_workers() if descends(pid, process.pid)]
                if workers:
                    delay = self.rng.uniform(0, 1.0)
                    time.sleep(delay)
                    before = files(models, results)
                    try:
                        os.kill(workers[0], signal.SIGKILL)
                    except ProcessLookupError:  # its fold ended meanwhile: try the next one
                        continue
                    return before, f"worker SIGKILLed {delay:.2f} s into a fold", 0
                time.sleep(0.02)
            return {}, "no worker seen", 0
        return self.grid_fault("ray_worker", kill)

    def grid_driver(self) -> Try:
        def kill(process, models, results):
            while not glob.glob(os.path.join(models, "*", "run.json")) and process.poll() is None:
                time.sleep(0.01)
            delay = self.rng.uniform(0, self.grid_seconds)
            time.sleep(delay)
            family = [pid for pid in all_pids() if descends(pid, process.pid)]
            before = files(models, results)
            process.kill()
            process.wait()
            deadline, left = time.time() + OUTLIVE_S, family
            while left and time.time() < deadline:  # Ray's processes share the driver's fate (grid/fate_sharing.py)
                left = [pid for pid in left if alive(pid)]
                time.sleep(0.2)
            names = sorted({title(pid) for pid in left})
            for pid in left:  # we started them: none may outlive the campaign
                os.kill(pid, signal.SIGKILL)
            return before, (f"driver SIGKILLed {delay:.1f} s after the first run.json; {len(left)} of its "
                            f"{len(family)} processes outlived it by {OUTLIVE_S} s{': ' + ', '.join(names) if names else ''}"
                            ), len(left)
        return self.grid_fault("grid_driver", kill)


def undisturbed(args: list[str], models: str) -> float:
    """Run main.py with ``args`` undisturbed; the seconds from its first run.json to its end (the faults' window)."""
    process = subprocess.Popen(command(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not glob.glob(os.path.join(models, "*", "run.json")) and process.poll() is None:
        time.sleep(0.01)
    started = time.time()
    _, err = process.communicate(timeout=TIMEOUT_S)
    if process.returncode != 0:
        raise SystemExit(f"the undisturbed {args[1]} failed:\n{err}")
    return time.time() - started


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


def title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")[:40]
    except OSError:
        return "?"


def training_workers() -> list[int]:
    """Ray worker processes inside FoldWorker.train (Ray titles them so meanwhile)."""
    found = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::FoldWorker.train"):
                    found.append(pid)
        except OSError:
            continue
    return found


def table(rows: list[tuple[str, list[Try]]]) -> str:
    lines = [f"{'fault':<14}{'tries':>6}{'recovered':>11}{'results equal':>15}{'lost / half-written':>21}"]
    for fault, tries in rows:
        lines.append(f"{fault:<14}{len(tries):>6}{sum(t.recovered for t in tries):>11}"
                     f"{sum(t.equal for t in tries):>15}{sum(t.lost for t in tries):>21}")
    return "\n".join(lines)


def campaign(faults, tries: int, seed: int, folder: str) -> list[tuple[str, list[Try]]]:
    rng = random.Random(seed)
    the_campaign = Campaign(folder, rng, grid=bool({"ray_worker", "grid_driver"} & set(faults)))
    grid = f", grid {the_campaign.grid_seconds:.1f} s" if hasattr(the_campaign, "grid_seconds") else ""
    print(f"undisturbed, from the first run.json to the end: run {the_campaign.train_seconds:.1f} s{grid}",
          flush=True)
    rows = []
    for fault in faults:
        done = []
        for i in range(tries):
            started = time.time()
            result = getattr(the_campaign, fault)()
            done.append(result)
            print(f"{fault} {i + 1}/{tries}: recovered {result.recovered}, equal {result.equal}, lost {result.lost}"
                  f" - {result.note} ({time.time() - started:.0f} s)", flush=True)
        rows.append((fault, done))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--faults", default=",".join(FAULTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = p.parse_args()
    faults = args.faults.split(",")
    unknown = set(faults) - set(FAULTS)
    if unknown:
        p.error(f"--faults: unknown {', '.join(sorted(unknown))}; choose from {', '.join(FAULTS)}")
    started = time.time()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        rows = campaign(faults, args.tries, args.seed, args.keep)
    else:
        with tempfile.TemporaryDirectory() as folder:
            rows = campaign(faults, args.tries, args.seed, folder)
    for path in LOST:
        print(f"lost or changed: {path}")
    print(table(rows))
    print(f"{time.time() - started:.0f} s")
    good = all(t.recovered and t.equal and not t.lost for _, tries in rows for t in tries)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
