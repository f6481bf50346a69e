"""The run folder ``Models/<DATA>_<seed>_<time>_<MODEL>/``: its layout, its record ``run.json``, create and open.

Layout (the original's fold files, plus what makes the folder usable on its own)::

    run.json                          what the run is, written once when it is created: its settings (RunConfig),
                                      the corpus' classes, signal length, sample rate and feature kind, the feature
                                      file (absolute path, size, content hash), the training corpus' file list, every
                                      fold's test rows, the results folder, the library versions and the corpus'
                                      MFCC statistics (data/feature_statistics.py; absent in older runs); a
                                      fine-tuned run's start: source folder, head, each fold's source fold and the
                                      sha256 of its weights (``init_from``, engine/fine_tune.py); for a run on
                                      several corpora (--data A+B), ``corpora``: each one's feature file (path,
                                      size, hash), classes, map onto the common classes and rows
    <k>-fold_weights_best_<i>.hdf5    fold i's weights (i from 1), Keras-2 legacy layout: the authors' load_weights
                                      reads them
    <k>-fold_record_<i>.json          fold i's record (metrics, predictions, history, kept epoch, the sha256 of its
                                      weights file), written after its weights: a fold with a record whose weights
                                      still have that sha256 is finished; one whose weights differ is damaged: named
                                      in one line, trained again on resume, refused by test, predict and export
    training_rows.npy                 one feature signature per training row, so that prediction can tell a file the
                                      run trained on from a new one

Every mode goes through this module: training creates a run and saves each fold through ``save_fold`` (one file
per fold, so that folds trained in parallel never write the same file); test, predict, resume, report and export
open it. A folder without ``run.json`` (the authors' published weights) has fold files only: its settings must
come from flags (``fold_weight_files`` finds its files).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from typing import Optional

import numpy as np

from ..core import precision
from ..core.atomic_file import partial_prefix, remove_partials
from ..core.config import NULLABLE_SETTINGS, RunConfig, TrainingData
from ..core.errors import UserError, first_few, named
from ..core.flags import first_recorded_refusal
from ..core.json_fields import NUMBER, wrong_field, wrong_predictions
from ..core.paths import MAIN, not_a_folder, shown, source_digest
from ..core.settings import CONTROL_CHARACTERS, DATA_NAME, MAX_SEED, seed_in_range
from ..data.corpora import SAMPLE_RATE, authors_name
from ..data.corpus_set import Part
from ..data.features import N_MFCC
from ..nn import legacy_weights
from ..nn.layer_args import BLOCK_ACTIVATIONS, BackboneArgumentError, check_backbone
from . import results
from .fold_locks import FoldLocks

RUN_FILE = "run.json"
SIGNATURES_FILE = "training_rows.npy"
FORMAT = 2  # run.json layout; an earlier layout (format 1: "folds_done" inside run.json) is read as fold files only
# what run.json must hold, and of which JSON type (checked when it is opened; any other key may be edited freely)
REQUIRED = {"created": str, "config": dict, "corpus": dict, "feature_file": dict, "test_rows": list,
            "result_path": str}
REQUIRED_CORPUS = {"signal_length": int, "features": str, "input_shape": list}
_STATISTICS = {"utterance_mean": list, "utterance_std": list}  # of run.json's feature_statistics, read by predict
# the fields of a fold's record that its run's results are made of (runs/results.py)
FOLD_RECORD = {"uar": NUMBER, "war": NUMBER, "n": int, "confusion": list, "report": dict, "y_true": list,
               "y_pred": list}


def weights_name(k: int, fold: int) -> str:
    """The original's name of fold ``fold``'s weights (folds numbered from 1): ``<k>-fold_weights_best_<i>.hdf5``."""
    return f"{k}-fold_weights_best_{fold}.hdf5"


def _record_name(k: int, fold: int) -> str:
    return f"{k}-fold_record_{fold}.json"


def _diverged_name(k: int, fold: int) -> str:
    return f"{k}-fold_diverged_{fold}.json"


def diverged_advice(config, grid: bool = False) -> str:
    """What to do about a run whose fold diverged: its own settings would train the fold to the same end. A grid's
    point is changed in its grid file (``grid``), a run of the command line by a new command."""
    if grid:
        precision = " or without mixed_precision" if config.mixed_precision else ""
        return (f"the grid would diverge again at this point: give it a lower lr in the grid file (this one's: "
                f"{config.lr:g}){precision}")
    precision = " or in float32 (without --mixed_precision)" if config.mixed_precision else ""
    return (f"--resume would diverge again: train a new run with a lower --lr (this one's: {config.lr:g})"
            f"{precision}")


def chosen_folds(fold: Optional[int], folder: str, numbers: list[int], api: bool = False) -> list[int]:
    """The fold numbers that score: all of ``numbers`` (the folds of the weights in ``folder``), or ``--fold``'s one
    (the API's ``fold=``), refused in one line where the folder does not have it."""
    if fold is None:
        return numbers
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)):
        raise UserError(f"fold={fold!r}: give a fold number, {numbers[0]} to {numbers[-1]}, or None for all")
    if fold not in numbers:
        raise UserError(f"{named('fold', fold, api, quoted=False)}: {folder} has folds {numbers[0]} to {numbers[-1]}")
    return [fold]


def authors_corpus(folder: str, given: Optional[str], api: bool = False) -> Optional[str]:
    """The corpus of a weights folder without run.json: ``given`` (the data flag or argument; None where not
    given), refused in one line where the folder's name gives another (``authors_name``: EMOVO's class names were
    put on EMODB_46's weights); else the name's; None where neither says."""
    key = authors_name(folder)[0]
    if given is not None and key is not None and given != key:
        raise UserError(f"{named('data', given, api, quoted=False)}: the weights in {folder} were trained on {key}, as "
                        f"its name (<KEY>_<seed>) says; leave {'data' if api else '--data'} out")
    return key if given is None else given


def authors_protocol(folder: str, published: Optional[str]) -> Optional[str]:
    """The --protocol that chose the weights of a folder without run.json: ``published`` (its model's
    ``ModelSpec.published_protocol``) where the folder is named as the published ones are (``<KEY>_<seed>``:
    Test_Models/EMODB_46), else None: nothing says (the original's own Models/<KEY>_<seed>_<time> of TIM-Net since
    Aug 2023 kept the last epoch)."""
    return published if authors_name(folder)[1] is not None else None


def fold_weight_files(folder: str, flag: str = "--test_path") -> list[tuple[int, str]]:
    """(fold number from 1, path) of every ``<k>-fold_weights_best_<i>.hdf5`` in ``folder``, in fold order.

    For folders without ``run.json`` (the authors'); one k only, every fold 1..k present.
    """
    if not os.path.isdir(folder):
        raise not_a_folder(f"{flag} {folder}", folder, "folder of weight files")
    found = {}
    for name in os.listdir(folder):
        match = re.fullmatch(r"(\d+)-fold_weights_best_(\d+)\.hdf5", name)
        if match:
            found.setdefault(int(match.group(1)), {})[int(match.group(2))] = os.path.join(folder, name)
    if not found:
        raise UserError(f"{flag} {folder}: holds no <k>-fold_weights_best_<i>.hdf5 files")
    if len(found) > 1:
        raise UserError(f"{flag} {folder}: holds weight files of several fold counts ({', '.join(map(str, found))})")
    [(k, files)] = found.items()
    missing = [weights_name(k, i) for i in range(1, k + 1) if i not in files]
    if missing:
        raise UserError(f"{folder}: missing weight files {', '.join(missing)} (expected {k} files)")
    return sorted(files.items())


class RunFolder:
    """An open run folder: its description (``run.json``) and its fold files.

    Folds are numbered from 0 in code and from 1 in file names and printouts, as the original's files.
    """

    def __init__(self, path: str, description: dict):
        self.path = path
        self.description = description
        self.config = RunConfig.from_dict(description["config"])
        # what the run is, read once from its run.json
        corpus = description["corpus"]
        self.test_rows = description["test_rows"]  # per fold, the feature file's rows it tests on
        self.k = len(self.test_rows)
        # the file names of the feature file's rows (None: a feature file that records none, an older run)
        self.training_files = description.get("training_files")
        self.init_from = description.get("init_from")  # fine-tuning: the source folder and each fold's start
        self.created = description["created"]
        self.result_path = description["result_path"]
        self.signal_length = int(corpus["signal_length"])
        self.feature_kind = corpus["features"]
        self.input_shape = tuple(corpus["input_shape"])
        self.feature_sha256 = description["feature_file"]["sha256"]
        self.feature_statistics = description.get("feature_statistics")  # None: log-Mel, or an older run
        # several corpora (--data A+B): each one's file, classes, map and rows; empty for a run on one corpus
        self.parts = [Part.from_dict(part) for part in description.get("corpora") or []]
        self.locks = FoldLocks(path, self.k)  # which process trains which fold

    def folds(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, test rows) of every fold of the run, over the ``n`` rows of its feature file."""
        last = max((row for test in self.test_rows for row in test), default=-1)
        if last >= n:  # a hand-edited run.json (its own features are checked by their hash)
            raise UserError(f"{os.path.join(self.path, RUN_FILE)}: damaged run file ('test_rows' holds row {last}; "
                            f"the feature file has {n} rows)")
        rows = np.arange(n)
        return [(np.setdiff1d(rows, test), np.asarray(test, dtype=np.int64)) for test in self.test_rows]

    # --- fold files -------------------------------------------------------------------------------------------

    def training(self, folds: Iterable[int]) -> contextlib.AbstractContextManager:
        """The locks of ``folds`` held while they train (``FoldLocks.training``): one line naming the fold and the
        process that trains it where another does."""
        return self.locks.training(folds)

    def weights_file(self, fold: int) -> str:
        return os.path.join(self.path, weights_name(self.k, fold + 1))

    def _record_file(self, fold: int) -> str:
        return os.path.join(self.path, _record_name(self.k, fold + 1))

    def _diverged_file(self, fold: int) -> str:
        return os.path.join(self.path, _diverged_name(self.k, fold + 1))

    def note_diverged(self, fold: int, why: str) -> None:
        """Record that fold ``fold``'s training diverged (``why``: when), for the commands that open the run later;
        a fold saved since removes the note."""
        results.write_json(self._diverged_file(fold), {"diverged": why})

    def check_not_diverged(self, grid: bool = False) -> None:
        """One line naming the first fold whose training diverged (``note_diverged``), which has no weights; the
        note's file is named too: deleting it lets --resume (or a grid) train the fold again with its settings.
        ``grid``: the advice is a grid file's (``diverged_advice``)."""
        for fold in range(self.k):
            path = self._diverged_file(fold)
            if os.path.isfile(path):
                try:
                    why = _read_json(path).get("diverged", "")
                except (UserError, AttributeError):  # a damaged note still says that the fold diverged
                    why = ""
                raise UserError(f"{shown(self.path)}: fold {fold + 1}/{self.k} diverged in training"
                                f"{f' ({why})' if isinstance(why, str) and why else ''}, so it has no weights; "
                                f"{diverged_advice(self.config, grid)} "
                                f"(to train it again anyway, delete {shown(path)})")

    def _fold_state(self, fold: int) -> tuple[Optional[dict], str]:
        """(record, '') of a finished fold; (None, '') of one not trained yet; (None, why) of a damaged one."""
        path, weights = self._record_file(fold), self.weights_file(fold)
        if not (os.path.isfile(path) and os.path.isfile(weights)):
            return None, ""
        try:
            record = _read_json(path)
        except UserError as exc:
            return None, str(exc)
        wrong = ((wrong_field(record, FOLD_RECORD) if isinstance(record, dict) else "not a JSON object")
                 or wrong_predictions(record, len(self.config.classes)))  # the report pools them
        if wrong:  # the run's results are made from these fields: a fold without them is trained again
            return None, f"{path}: damaged fold record ({wrong})"
        recorded = record.get("weights_sha256")
        if recorded is not None and file_sha256(weights) != recorded:  # records of older runs carry no hash
            return None, (f"{weights}: damaged fold weights (their sha256 differs from the one {os.path.basename(path)}"
                          " recorded when they were written)")
        return record, ""

    def finished_folds(self) -> dict[int, dict]:
        """{fold: record} of the folds whose weights and record are on disk and intact (``damaged_folds``: others)."""
        states = {fold: self._fold_state(fold)[0] for fold in range(self.k)}
        return {fold: record for fold, record in states.items() if record is not None}

    def damaged_folds(self) -> dict[int, str]:
        """{fold: one line naming the damaged file} of the folds whose record or weights are on disk but damaged."""
        states = {fold: self._fold_state(fold)[1] for fold in range(self.k)}
        return {fold: why for fold, why in states.items() if why}

    def checked_weight_files(self) -> list[tuple[int, str]]:
        """(fold number from 1, path) of every fold's weights, each on disk and intact; one line naming the first
        missing or damaged file and the command that retrains it otherwise."""
        for fold in range(self.k):
            if not os.path.isfile(self.weights_file(fold)):
                self.check_not_diverged()
                holder = self.locks.holder(fold)
                if holder:  # the advice to --resume named the command already running
                    raise self.locks.busy(fold, holder)
                raise UserError(f"{self.path}: missing weight file {weights_name(self.k, fold + 1)}; an unfinished "
                                f"run continues with: {self.resume_command}")
            why = self._fold_state(fold)[1]
            if why:
                raise UserError(f"{why}; it is never used: train it again with {self.resume_command}")
        return [(fold + 1, self.weights_file(fold)) for fold in range(self.k)]

    def remove_if_untrained(self) -> bool:
        """Remove this folder where it holds only what ``create`` wrote (run.json and the training signatures), so a
        command that made it and then failed before training (a grid whose Ray cannot be reached) leaves no run
        that never ran; anything else in it (a fold's file, a lock, a user's file) keeps it. Whether it was
        removed.

        Another command may have found the folder meanwhile (another grid file with the same point: ``find_run``).
        Its folds' locks are held from the look inside to the removal (``training``), so a command training one of
        them keeps it and one about to start is told the fold is busy; the folder is renamed aside first, so no
        command ever finds it without its run.json. Before, the files were removed one by one and a lock taken
        between the look and the last removal left a run without run.json, and a traceback instead of the error
        that stopped the grid."""
        folder = os.path.normpath(self.path)
        locks = {os.path.basename(self.locks.lock_file(fold)) for fold in range(self.k)}
        try:
            with self.training(range(self.k)):
                if set(os.listdir(self.path)) - {RUN_FILE, SIGNATURES_FILE} - locks:
                    return False
                aside = tempfile.mkdtemp(prefix=partial_prefix(folder), dir=os.path.dirname(folder))
                try:
                    os.replace(self.path, aside)  # onto the empty folder: one rename
                except OSError:
                    os.rmdir(aside)
                    raise
        except (UserError, OSError):  # a fold another command trains, or a folder that cannot be renamed: kept
            return False
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def remove_partials(self) -> None:
        """Remove the temporaries of writes that a killed process left here and, of this run's results files only,
        in its results folder, which other runs share (before resuming or planning a run)."""
        config = self.config
        own_results = results.results_names(config.data, config.split_fold, config.random_seed, self.created,
                                            config.model, config.protocol)
        for folder, names in ((self.path, None), (self.result_path, own_results)):
            removed = remove_partials(folder, names)
            if removed:
                print(f"removed {len(removed)} partial file(s) left by an interrupted write in {shown(folder)}")
        self.locks.remove_stale()

    def results_file(self) -> str | None:
        """The results JSON this run's training wrote into its results folder, or None (not finished yet)."""
        for path in sorted(glob.glob(os.path.join(glob.escape(self.result_path), f"*_{self.created}_*.json"))):
            try:
                record = _read_json(path)
            except (OSError, ValueError, UserError):
                continue
            if record.get("mode") == "train" and record.get("weights_folder") == self.path:
                return path
        return None

    def fold_records(self) -> list[dict]:
        """Every fold's record, in order; a ``UserError`` naming the unfinished folds otherwise."""
        done = self.finished_folds()
        missing = [str(i + 1) for i in range(self.k) if i not in done]
        if missing:
            raise UserError(f"{self.path}: fold(s) {', '.join(missing)} of {self.k} are not finished; continue the "
                            f"run with: {self.resume_command}")
        return [done[i] for i in range(self.k)]

    def save_fold(self, fold: int, weight_groups: list, record: dict) -> None:
        """Fold ``fold``'s weights, then its record with their sha256 and the program's (``source_digest``), each
        written atomically: a fold with a record is complete, weights changed since are recognised, and a resume
        by another version of the program is told which folds that version did not train."""
        legacy_weights.save_legacy_weights(self.weights_file(fold), weight_groups)
        results.write_json(self._record_file(fold), {**record, "weights_sha256": file_sha256(self.weights_file(fold)),
                                                     "program_source": source_digest()})
        with contextlib.suppress(FileNotFoundError):  # another process's note, written after this one checked
            os.unlink(self._diverged_file(fold))

    def another_program_note(self, done: dict[int, dict]) -> str:
        """The line a run being continued gets where some of its finished folds (``done``: ``finished_folds``) were
        trained by another version of the program, or by one that recorded none; "" where none or nothing is left.
        The two programs' folds may differ (a mended step, another rounding), as a resume of an older version's
        run showed."""
        other = [fold + 1 for fold, record in sorted(done.items()) if record.get("program_source") != source_digest()]
        if not other or len(done) == self.k:
            return ""
        return (f"fold(s) {', '.join(map(str, other))} were trained by another version of this program (its source "
                "differs, or went unrecorded); the folds trained now may differ from what that version would have "
                "given them (each fold records the program that trained it: program_source)")

    @property
    def records_training_rows(self) -> bool:
        """Whether the folder keeps its training rows' signatures (what tells a file it trained on), read or not."""
        return os.path.isfile(os.path.join(self.path, SIGNATURES_FILE))

    def training_signatures(self) -> Optional[np.ndarray]:
        """The training rows' feature signatures (N, D), or None when the folder has none."""
        return np.load(os.path.join(self.path, SIGNATURES_FILE), allow_pickle=False) \
            if self.records_training_rows else None

    @property
    def resume_command(self) -> str:
        """The exact command that continues this run, from any folder and any shell: this interpreter (a plain
        ``python`` was another one outside the activated .venv) and absolute paths."""
        return f"{sys.executable} {os.path.abspath(MAIN)} --mode train --resume {os.path.abspath(self.path)}"


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: arrays nested 200 000 deep
        raise UserError(f"{path}: damaged run file ({type(exc).__name__}: {exc})") from None


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (a fold's weights file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_description(path: str, description) -> None:
    """One line naming ``path`` and the first required key of run.json that is missing or of the wrong type."""
    if not isinstance(description, dict):
        raise UserError(f"{path}: damaged run file (not a JSON object)")
    wrong = (wrong_field(description, REQUIRED) or wrong_field(description["corpus"], REQUIRED_CORPUS, "corpus.")
             or wrong_field(description["feature_file"], {"sha256": str}, "feature_file."))
    if wrong:
        raise UserError(f"{path}: damaged run file ({wrong})")
    if not results.RUN_TIME.fullmatch(description["created"]):  # it names the results files: "../x/" wrote elsewhere
        raise UserError(f"{path}: damaged run file ('created' is {json.dumps(description['created'])}, not a time "
                        "as the run's folder name has it, such as 2026-01-31_12-00-00)")
    folds = description["test_rows"]
    if not all(isinstance(test, list) and all(type(row) is int and row >= 0 for row in test) for test in folds):
        raise UserError(f"{path}: damaged run file ('test_rows' must hold each fold's list of row numbers)")
    rows = [row for test in folds for row in test]
    if len(set(rows)) != len(rows):  # the folds' test rows partition the corpus
        raise UserError(f"{path}: damaged run file ('test_rows' holds a row in two folds)")
    statistics = description.get("feature_statistics")  # None: log-Mel features, or an older run
    if statistics is not None:  # what prediction measures its inputs' domain shift against
        wrong = (wrong_field(statistics, _STATISTICS, "feature_statistics.") if isinstance(statistics, dict)
                 else "'feature_statistics' must be a JSON object")
        wrong = wrong or next((f"'feature_statistics.{key}' must hold {N_MFCC} numbers" for key in _STATISTICS
                               if len(statistics[key]) != N_MFCC
                               or not all(isinstance(v, NUMBER) and not isinstance(v, bool) for v in statistics[key])),
                              None)
        if wrong:
            raise UserError(f"{path}: damaged run file ({wrong})")
    mixed = description["config"].get("mixed_precision", False)
    if not precision.is_setting(mixed):  # true/false (float16 or not) or "bf16"
        raise UserError(f"{path}: damaged run file ('config.mixed_precision' must be true, false or \"bf16\", "
                        f"it is {json.dumps(mixed)})")


def _new_folder(parent: str, name: str) -> str:
    """Create ``parent/name`` (or ``name_2``, ``name_3`` ...): a run never writes into another run's folder."""
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{parent}: cannot create the folder ({exc.strerror})") from None
    for suffix in [""] + [f"_{i}" for i in range(2, 1000)]:
        path = os.path.join(parent, name + suffix)
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot create the folder ({exc.strerror})") from None
    raise UserError(f"{parent}: too many runs named {name}")


def create(parent: str, config: RunConfig, data: TrainingData, test_rows: list, signatures: np.ndarray,
           result_path: str, feature_statistics: Optional[dict] = None, init_from: Optional[dict] = None,
           corpora: Optional[list] = None) -> RunFolder:
    """A new run folder under ``parent`` with its ``run.json`` and training signatures; no fold trained yet.
    ``init_from``: a fine-tuned run's start (engine/fine_tune.py's record), kept in run.json as ``init_from``;
    ``corpora``: a run on several corpora's (data/corpus_set.Part as dicts), kept as ``corpora``."""
    created = results.time_stamp()
    config = RunConfig.from_dict({**asdict(config), "feature_path": os.path.abspath(config.feature_path)})
    suffix = config.selection_suffix + config.variant_suffix  # "_paper", "_cumulative-smoothing", ...
    name = f"{config.data}_{config.random_seed}_{created}_{config.model}{suffix}"
    path = os.path.abspath(_new_folder(parent, name))
    # a run made in the same second with the same seed (a grid's points) has its folder's suffix (_2, ...) in its
    # time too, which names its results files: they never share a name with another run's
    created += path[len(os.path.abspath(os.path.join(parent, name))):]
    files = None if data.files is None else [str(f) for f in data.files]
    description = {
        "format": FORMAT, "created": created, "config": asdict(config),
        "corpus": {"signal_length": int(data.signal_length), "sample_rate": SAMPLE_RATE, "features": data.features,
                   "input_shape": [int(s) for s in data.input_shape], "synthetic": config.synthetic},
        "feature_file": {"path": config.feature_path, "size": int(data.size), "sha256": data.sha256},
        "training_files": files,
        "training_files_sha256": None if files is None else hashlib.sha256("\n".join(files).encode()).hexdigest(),
        "test_rows": [[int(r) for r in rows] for rows in test_rows],
        "result_path": os.path.abspath(result_path), "versions": results.library_versions(),
        "feature_statistics": feature_statistics,
        **({"init_from": init_from} if init_from else {}),
    }
    if corpora:
        description["corpora"] = corpora
    np.save(os.path.join(path, SIGNATURES_FILE), np.asarray(signatures, dtype=np.float32), allow_pickle=False)
    results.write_json(os.path.join(path, RUN_FILE), description)
    return RunFolder(path, description)


def open_run(folder: str, flag: str = "--test_path") -> Optional[RunFolder]:
    """The run in ``folder``, or None for a folder of fold files without a ``run.json`` of this layout."""
    if not os.path.isdir(folder):
        raise not_a_folder(f"{flag} {folder}", folder)
    path = os.path.join(folder, RUN_FILE)
    if not os.path.isfile(path):
        return None
    links = sorted(entry.name for entry in os.scandir(folder) if entry.is_symlink())
    if links:  # a downloaded run's link had a resume write its weights, records and locks over the user's files
        raise UserError(f"{shown(folder)}: holds symbolic links ({first_few(links)}); a run folder holds its own "
                        "files, and a link would have the run read or write elsewhere: replace each by the file it "
                        "points to, or remove it")
    description = _read_json(path)
    if isinstance(description, dict) and description.get("format", FORMAT) != FORMAT:
        return None
    _check_description(path, description)
    try:
        run = RunFolder(os.path.abspath(folder), description)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: damaged run file ({type(exc).__name__}: {exc})") from None
    refused = refused_setting(run.config)
    if refused:  # a hand-edited file, or one of a version that took what this one refuses: never a Keras traceback
        raise UserError(f"{path}: a recorded setting this version refuses ({refused}); edit it back or retrain")
    return run


def refused_setting(config: RunConfig) -> str:
    """The first of a run's recorded settings that a command line could not have given: what core/flags.py's table
    refuses of it (type, choices, range), a seed out of range, or an activation or backbone the layers refuse
    (nn/layer_args.py); "" where each passes."""
    # --mixed_precision (true, false or "bf16") is checked with the file (_check_description)
    refused = first_recorded_refusal(asdict(config), NULLABLE_SETTINGS)
    if refused:
        return refused
    if not DATA_NAME.fullmatch(config.data):  # it began the results files' names: "/elsewhere/x" wrote there
        return f"'config.data' is {json.dumps(config.data)}: a corpus name is letters, digits, '_', '-' (and '+')"
    odd = next((c for c in config.classes if CONTROL_CHARACTERS.search(c)), None)
    if odd is not None:
        return f"'config.classes' holds {json.dumps(odd)}: a class name holds no control character"
    if not seed_in_range(config.random_seed):
        return f"'config.random_seed' is {config.random_seed}: must be between 0 and {MAX_SEED}"
    hyper = config.hyper
    if hyper.activation not in BLOCK_ACTIVATIONS:
        return (f"'config.hyper.activation' is {json.dumps(hyper.activation)}: not one of Keras' element-wise "
                "activations")
    try:
        check_backbone("run.json", hyper.backbone, hyper.backbone_alpha, hyper.backbone_weights, hyper.image_size)
    except BackboneArgumentError as error:
        return f"'config.hyper.{error.setting}' is {json.dumps(error.value)}: {error.reason}"
    return ""


def require_run(folder: str, flag: str) -> RunFolder:
    """The run in ``folder``; a one-line error when it has no ``run.json`` (``flag`` names where it came from)."""
    run = open_run(folder, flag)
    if run is None:
        raise UserError(f"{flag} {folder}: no {RUN_FILE} there (not a run folder written by this program)")
    return run


def _comparable(config: RunConfig) -> dict:
    """A RunConfig as run.json stores it (JSON types), less the feature file's path: its content is what counts."""
    values = json.loads(json.dumps(asdict(config)))
    values.pop("feature_path")
    return values


def find_run(parent: str, config: RunConfig, sha256: str, result_path: str) -> Optional[RunFolder]:
    """The run under ``parent`` made with ``config`` on features of content ``sha256`` that writes its results to
    ``result_path``, so that a repeated grid continues it rather than starting over; None when there is none.

    Of several such runs (the same command run twice) the one with the most finished folds, then the oldest name.
    """
    if not os.path.isdir(parent):
        return None
    wanted, target = _comparable(config), os.path.abspath(result_path)
    found = []
    for name in sorted(os.listdir(parent)):
        if not os.path.isfile(os.path.join(parent, name, RUN_FILE)):
            continue
        try:
            run = open_run(os.path.join(parent, name))
        except UserError:  # a damaged run.json is another run's problem, shown when that run is opened
            continue
        if (run is not None and run.feature_sha256 == sha256 and run.result_path == target
                and _comparable(run.config) == wanted):
            found.append(run)
    return max(found, key=lambda run: len(run.finished_folds()), default=None)
