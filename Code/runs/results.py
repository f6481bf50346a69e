"""Metrics and results files: WAR and UAR per fold and pooled, the original's xlsx, a JSON record, pictures.

WAR (weighted average recall) is accuracy. UAR (unweighted average recall) is the mean of the
per-class recalls. Every run reports both two ways, each labelled: the mean of the per-fold figures
(the authors' "Average ACC") and the figure pooled over the predictions of all folds (the authors'
UAR matches the macro recall of the confusion matrix summed over folds, SPEC §4).

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted or failed run never leaves a half-written results file behind. Knows nothing about
TensorFlow: it only sees integer class indices.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, recall_score

from ..core import precision
from ..core.atomic_file import atomic_write, one_commit, spreadsheet_safe
from ..core.errors import UserError
from ..core.figures import plain_text
from ..core.paths import shown, source_digest


def war_uar(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[float, float]:
    """Accuracy and macro recall over the classes present in ``y_true``.

    A class absent from the true labels has no recall (0 of 0), so it is left out of the mean rather
    than counted as 0; this is what reproduces the authors' per-fold UAR.
    """
    present = np.unique(np.asarray(y_true))
    war = accuracy_score(y_true, y_pred)
    uar = recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return float(war), float(uar)


def fold_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """WAR, UAR, confusion matrix (rows true, columns predicted), classification report and size of one fold.

    ``y_true`` and ``y_pred`` are integer class indices into ``classes``. UAR averages the recall of
    the classes present in ``y_true`` only (see ``war_uar``), and so does the report's macro average; the
    confusion matrix and the report's rows always cover all ``len(classes)`` classes so that folds can be summed and
    compared.
    """
    labels = list(range(len(classes)))
    war, uar = war_uar(y_true, y_pred)
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes),
                                   output_dict=True, zero_division=0)
    present = sorted(set(int(c) for c in y_true))
    if len(present) < len(classes):  # the macro average over the classes present, as UAR: it counted absent ones as 0
        rows = [report[classes[c]] for c in present]
        report["macro avg"] = {**{key: float(np.mean([row[key] for row in rows]))
                                  for key in ("precision", "recall", "f1-score")},
                               "support": report["macro avg"]["support"]}
    return {"war": war, "uar": uar, "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "report": report, "n": len(y_true)}


def summarize(folds: list[dict], parts: Sequence = ()) -> dict:
    """Mean and population std of the per-fold WAR/UAR, and WAR/UAR/confusion pooled over all folds.

    Each fold dict comes from ``fold_metrics`` and also carries its ``y_true`` and ``y_pred`` lists;
    the pooled figures are computed from those predictions concatenated, which equals the macro
    recall of the confusion matrix summed over folds. For a run on several corpora (``parts``, data/corpus_set.Part,
    and every fold's ``test_rows``), ``per_corpus`` has each corpus' WAR and UAR pooled over its test rows.
    """
    war = np.array([fold["war"] for fold in folds])
    uar = np.array([fold["uar"] for fold in folds])
    y_true = np.concatenate([fold["y_true"] for fold in folds])
    y_pred = np.concatenate([fold["y_pred"] for fold in folds])
    war_pooled, uar_pooled = war_uar(y_true, y_pred)
    labels = list(range(len(folds[0]["confusion"])))
    summary = {"war_mean_of_folds": float(war.mean()), "war_std_of_folds": float(war.std()),
               "uar_mean_of_folds": float(uar.mean()), "uar_std_of_folds": float(uar.std()),
               "war_pooled": war_pooled, "uar_pooled": uar_pooled,
               "confusion_pooled": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
               "n_pooled": int(len(y_true))}
    if parts:
        rows = np.concatenate([fold["test_rows"] for fold in folds])
        summary["per_corpus"] = {}
        for part in parts:
            mine = (rows >= part.start) & (rows < part.start + part.rows)
            war_c, uar_c = war_uar(y_true[mine], y_pred[mine])
            summary["per_corpus"][part.data] = {"war": war_c, "uar": uar_c, "n": int(mine.sum())}
    return summary


def results_stem(data: str, k: int, war_mean: float, seed: int, time_str: str, model: str, protocol: str) -> str:
    """The original's ``<KEY>_<k>fold_<mean acc %>_<seed>_<time>``, with model and protocol appended.

    The appended parts keep runs of different models or selection protocols from ever sharing a name.
    """
    return _stem(data, k, f"{war_mean * 100:.2f}", seed, time_str, model, protocol)


def results_names(data: str, k: int, seed: int, time_str: str, model: str, protocol: str) -> re.Pattern:
    """The names of every results file of one run (``results_stem``, whatever its accuracy, then any suffix and
    extension): how a resumed run finds the temporaries that a killed write of its results left."""
    left, right = _stem(data, k, "\0", seed, time_str, model, protocol).split("\0")
    return re.compile(re.escape(left) + r"(?:[0-9]+\.[0-9]{2}|nan)" + re.escape(right) + r"(?:[_.].*)?")


TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"  # the time in run folder and results file names (the original's)
_TIME = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"  # TIME_FORMAT's
# a run's time as its run.json records it: TIME_FORMAT's, and the suffix (_2, ...) of a folder made in the same second
RUN_TIME = re.compile(rf"{_TIME}(?:_\d+)?")


def time_stamp() -> str:
    """The current time as run folder and results file names hold it (``TIME_FORMAT``)."""
    return time.strftime(TIME_FORMAT)


_TIME_IN_NAME = re.compile(rf".+_({_TIME})(?:_(\d+))?_.+\.json")


def is_results_name(name: str) -> bool:
    """Whether a file's name is one this program gives a results JSON (a run's, a re-test's, a cross-corpus test's:
    a time between the figures and the model), so that one that does not read is damaged, not someone else's."""
    return bool(_TIME_IN_NAME.fullmatch(name))


def written_at(name: str) -> tuple:
    """When the results JSON named ``name`` was written, as its name says: a key that orders files by that time
    (the same second's later files by their counter), any file named otherwise after them all."""
    match = _TIME_IN_NAME.fullmatch(name)
    return (0, match.group(1), int(match.group(2) or 0)) if match else (1, "", 0)


def _stem(data: str, k: int, accuracy: str, seed: int, time_str: str, model: str, protocol: str) -> str:
    return f"{data}_{k}fold_{accuracy}_{seed}_{time_str}_{model}_{protocol}"


def library_versions() -> dict:
    """Versions of the program (``source_digest``: its source's) and of the libraries that make a run's numbers (read
    from the installed packages, nothing imported)."""
    from .. import __version__
    versions = {"timnet_ser": __version__, "timnet_ser_source": source_digest(), "python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "librosa", "scikit-learn"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


SELECTED_ON_TEST = "weights SELECTED ON THE TEST FOLD"  # --protocol paper's, a re-test of them too

# A re-test of a folder without run.json (the authors' published weights): nothing records the features its weights
# trained on, so none are checked against them (a run folder's re-test checks its features' content hash). The flag
# of its title; ``features_not_checked`` the sentence its protocol line, its record's protocol description and the
# report's line under the table about its row give.
FEATURES_NOT_CHECKED = "FEATURES NOT CHECKED against the authors'"


def features_not_checked(data: str) -> str:
    """``FEATURES_NOT_CHECKED`` for a re-test on ``data``'s features, and what it means: the authors' published
    figure (EMODB_46: 95.70 % WAR) was measured on their own feature file of the full-length corpus, which no record
    names, so it is no yardstick for other features (the shared 2 s cuts of EMO-DB score about 81 %)."""
    return (f"{FEATURES_NOT_CHECKED}: nothing records what these weights trained on, so a published figure holds "
            f"only on the authors' own MFCC/{data}.npy (the full-length corpus)")


def run_title(config, mode: str, retest: dict | None = None) -> str:
    """``TIMNET on EMODB, 10-fold, seed 46, train`` with every qualifier a reader must not miss: synthetic data,
    speaker-independent folds, weights selected on the test fold (a paper-protocol run, the authors' published
    weights, and a re-test of either), the original's cumulative label smoothing, mixed precision, a re-test on
    another split or features, or on features not checked against the weights' own (``FEATURES_NOT_CHECKED``)."""
    synthetic = "SYNTHETIC DATA - " if config.synthetic else ""
    folds = f"{config.split_fold}-fold" + {"speaker": " speaker-independent",
                                           "corpus": " leave-one-corpus-out"}.get(config.cv, "")
    notes = [SELECTED_ON_TEST] if getattr(config, "protocol", "") == "paper" else []
    notes += ["CUMULATIVE label smoothing"] if getattr(config, "label_smoothing_history", "") == "cumulative" else []
    notes += [note for note in [precision.title_note(getattr(config, "mixed_precision", False))] if note]
    if retest and retest.get("label"):
        notes.append(retest["label"])
    if retest and retest.get("features") == "unchecked":
        notes.append(FEATURES_NOT_CHECKED)
    return f"{synthetic}{config.model} on {config.data}, {folds}, seed {config.random_seed}, {mode}" + \
        "".join(f", {note}" for note in notes)


def run_record(config, model: dict, mode: str, folds: list[dict], weights_folder: str, protocol: str,
               description: str, retest: dict | None = None, parts: Sequence = ()) -> dict:
    """The results JSON of a training run or a re-test.

    Args:
        config: the RunConfig (a dataclass) that made or re-tests the run.
        model: ``ModelSpec.describe``: model name, paper, variant.
        mode: "train" or "test".
        folds: the fold records (``fold_metrics`` plus predictions).
        weights_folder: the run folder or weights folder.
        protocol: the training protocol, or "test".
        description: the protocol's description as printed.
        retest: for a re-test, whether it used the run's own split and features (and its label); else None.
        parts: a run on several corpora: each one (data/corpus_set.Part): ``corpora`` and the per-corpus figures.
    """
    return {"title": run_title(config, mode, retest), "mode": mode, **model, "protocol": protocol,
            "protocol_description": description, "synthetic": config.synthetic, "weights_folder": weights_folder,
            "config": asdict(config), "retest": retest, "versions": library_versions(), "folds": folds,
            "summary": summarize(folds, parts), **({"corpora": [part.as_dict() for part in parts]} if parts else {})}


def write_run_results(record: dict, result_dir: str, time_str: str, suffix: str = "") -> dict:
    """Write a run's xlsx, JSON and pictures (``write_results``, plus the training curves), print its summary.

    ``suffix`` is appended to the file names (the original's cumulative smoothing, a re-test on another split).
    """
    config = record["config"]
    summary = record["summary"]
    stem = results_stem(config["data"], config["split_fold"], summary["war_mean_of_folds"], config["random_seed"],
                        time_str, config["model"], record["protocol"]) + suffix
    with one_commit():  # the curves with the rest of the set
        paths = write_results(result_dir, stem, record, config["classes"])
        histories = [f["history"] for f in record["folds"] if f.get("history")]
        if histories:
            curves = paths["json"].removesuffix(RESULTS_SET["json"]) + RESULTS_SET["curves"]  # its chosen stem
            plot_training_curves(histories, curves, record["title"], record["protocol"])
            paths["curves"] = curves
    print(format_summary(summary, record["protocol_description"], record["folds"]))
    for kind, path in paths.items():
        print(f"wrote {kind}: {shown(path)}")
    return {"record": record, "paths": paths}


def _not_writable(folder: str, exc: OSError) -> UserError:
    """The one-line error for a results folder that cannot be created or written."""
    return UserError(f"{folder}: results folder is not writable ({exc.strerror or exc})")


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """``atomic_write`` with a file-system failure reported as the results folder's one-line error. The names are
    the program's (results, run files): a link at one is replaced, never written through."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise _not_writable(os.path.dirname(path) or ".", exc) from None


def _jsonable(value):
    """``value`` with numpy arrays and scalars, tuples and non-string keys turned into plain JSON types."""
    if isinstance(value, dict):
        return {str(_jsonable(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str, record: dict) -> None:
    """The whole run record as JSON, indent 1 (readable, yet compact for long per-epoch histories)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(_jsonable(record), file, indent=1, ensure_ascii=False)
    _atomic_write(path, write)


def _write_xlsx(path: str, folds: list[dict], classes: Sequence[str]) -> None:
    """The original's workbook: per fold i (from 0) sheet ``"<i>"`` and sheet ``"<i>_evaluate"``.

    Sheet ``"<i>"`` is the confusion matrix transposed, as the original wrote it: one column per true
    class, one row per predicted class. Sheet ``"<i>_evaluate"`` is the classification report as a table.
    """
    def write(tmp: str) -> None:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            names = [spreadsheet_safe(c) for c in classes]  # a class name is never a formula cell
            for i, fold in enumerate(folds):
                confusion = np.array(fold["confusion"])
                pd.DataFrame(confusion.T, index=names, columns=names).to_excel(writer, sheet_name=str(i))
                report = pd.DataFrame(fold["report"]).transpose()
                report.index = [spreadsheet_safe(name) for name in report.index]
                report.to_excel(writer, sheet_name=f"{i}_evaluate")
    _atomic_write(path, write)


def _save_png(figure: Figure, path: str, dpi: int) -> None:
    """Render ``figure`` with the Agg canvas (no pyplot, no display, no global state) into ``path``."""
    FigureCanvasAgg(figure)
    _atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))


@plain_text
def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str, title: str) -> None:
    """Confusion-matrix picture: counts and row-normalised % (recall on the diagonal), true classes as rows."""
    counts = np.asarray(confusion)
    # a class with no true samples has an all-zero row: divide by 1 to show 0 % rather than NaN
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 1.0 + 0.75 * len(classes)
    figure = Figure(figsize=(side + 1.5, side))
    ax = figure.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for row, col in np.ndindex(counts.shape):
        ax.text(col, row, f"{counts[row, col]}\n{share[row, col]:.0%}", ha="center", va="center", fontsize=7,
                color="white" if share[row, col] > 0.6 else "black")
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title, fontsize=8)
    figure.tight_layout()
    _save_png(figure, path, dpi=120)


# what a protocol's dashed curves are (its validation data), as the curves' picture names it
VALIDATION_DATA = {"paper": "the TEST FOLD (the paper protocol validates, and selects, on it)",
                   "inner_val": "the validation split of each training fold (inner_val)"}


@plain_text
def plot_training_curves(histories: list[dict], path: str, title: str, protocol: str = "") -> None:
    """Loss and accuracy per epoch, one line per fold: training solid, validation (where recorded) dashed, named
    after ``protocol``'s validation data."""
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots(1, 2)
    colours = colormaps["tab10"]
    for i, history in enumerate(histories):
        for ax, key in zip(axes, ("loss", "accuracy")):
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], color=colours(i % 10), lw=1, label=f"fold {i + 1}")
            if history.get(f"val_{key}"):
                ax.plot(epochs, history[f"val_{key}"], color=colours(i % 10), lw=1, ls="--")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    validated = any(history.get("val_loss") for history in histories)
    key = (f"protocol {protocol}; solid: training, dashed: {VALIDATION_DATA.get(protocol, 'validation data')}"
           if validated else f"protocol {protocol}; training (no validation data)")
    figure.suptitle(f"{title}\n{key}", fontsize=8)
    figure.tight_layout()
    _save_png(figure, path, dpi=110)


def prepare_folder(folder: str) -> None:
    """Create ``folder`` if needed and prove it writable before any results file is started."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _not_writable(folder, exc) from None


# the names of a results set after its stem, by kind: write_results' three (its returned paths' keys), and
# write_run_results' curves
RESULTS_SET = {"xlsx": ".xlsx", "confusion": "_confusion.png", "json": ".json", "curves": "_curves.png"}


def write_results(result_dir: str, stem: str, record: dict, classes: Sequence[str]) -> dict:
    """Write ``<stem>.xlsx``, ``<stem>_confusion.png`` and ``<stem>.json`` into ``result_dir``.

    ``record["folds"]`` are fold dicts from ``fold_metrics`` (plus extra keys), ``record["summary"]``
    comes from ``summarize``, and ``record["title"]`` (if present) heads the picture. Each file is
    written atomically, and the set is renamed into place together (``one_commit``): a failure or an interrupt
    leaves either the complete set of results or none. No file already there is replaced: where any name of
    ``<stem>``'s set (``RESULTS_SET``) is taken, by a file or by a link (one that leads nowhere too), the stem
    takes ``_2``, ``_3``, ... (two re-tests in one second with the same figures; a link planted in a shared results
    folder, whose target the set replaced). Returns ``{"xlsx"|"confusion"|"json": path}``.
    """
    prepare_folder(result_dir)
    stem = next(free for free in [stem] + [f"{stem}_{i}" for i in range(2, 10 ** 6)]
                if not any(os.path.lexists(os.path.join(result_dir, free + name)) for name in RESULTS_SET.values()))
    k = len(record["folds"])
    writers = {"xlsx": lambda path: _write_xlsx(path, record["folds"], classes),
               "confusion": lambda path: plot_confusion(record["summary"]["confusion_pooled"], classes, path,
                                                        f"{record.get('title', stem)}\npooled over {k} folds"),
               "json": lambda path: write_json(path, record)}
    paths = {kind: os.path.join(result_dir, stem + RESULTS_SET[kind]) for kind in writers}
    with one_commit():  # all of the set or none of it (a file written just before a Ctrl-C stayed alone)
        for kind, write in writers.items():  # JSON last: its presence means the set is complete
            write(paths[kind])
    return paths


def format_fold_line(i: int, k: int, fold: dict) -> str:
    """Console line of fold ``i`` (numbered from 0, shown from 1) of ``k``."""
    return (f"fold {i + 1}/{k}: WAR {fold['war'] * 100:.2f}%  UAR {fold['uar'] * 100:.2f}%  "
            f"({fold['n']} test utterances)")


def constant_folds(folds: list[dict]) -> int:
    """How many of ``folds`` predicted one class for every utterance of a test fold that holds several: such a
    fold's UAR is 1 / (the classes in it), chance, above 1 / (the corpus' classes) where the fold lacks some."""
    return sum(len(set(fold.get("y_pred") or [])) == 1 < len(set(fold.get("y_true") or [])) for fold in folds)


def format_summary(summary: dict, protocol: str, folds: list[dict] = ()) -> str:
    """Console block: the protocol, the mean ± population std of the folds, the pooled figures, and how many of
    ``folds`` predicted a single class."""
    constant = constant_folds(folds)
    return "\n".join([
        f"protocol: {protocol}",
        f"mean of folds:     WAR {summary['war_mean_of_folds'] * 100:.2f}% ± {summary['war_std_of_folds'] * 100:.2f}"
        f"  UAR {summary['uar_mean_of_folds'] * 100:.2f}% ± {summary['uar_std_of_folds'] * 100:.2f}"
        "  (± population std over folds, percentage points)",
        f"pooled over folds: WAR {summary['war_pooled'] * 100:.2f}%  UAR {summary['uar_pooled'] * 100:.2f}%"
        f"  ({summary['n_pooled']} test utterances)",
        *(f"  of which {key}: WAR {c['war'] * 100:.2f}%  UAR {c['uar'] * 100:.2f}%  ({c['n']} test utterances)"
          for key, c in summary.get("per_corpus", {}).items()),
        *([f"note: {constant} of {len(folds)} folds predicted one class for every utterance (a constant prediction: "
           "its UAR is chance)"] if constant else []),
    ])
