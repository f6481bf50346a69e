"""The papers' results table, regenerated from the JSON records that runs wrote under ``Results/``, with statistics.

One row per (model, corpus, feature file, protocol, cross-validation, training settings): our UAR and WAR as
mean ± std over the distinct runs (seeds) found, next to the published numbers where the run repeats the papers'
experiment (``published``). A row counts each seed once: records of the same row and seed (re-tests, copies, the
same run trained again bit for bit) are one sample, and the report lists what it merged (``merge_notices``). Per
run, WAR is the mean of the per-fold accuracies (the authors' "Average ACC") and UAR the macro recall pooled over
all folds (what the authors' UAR matches). Over the r seeds x k folds of a row, the per-fold UAR and WAR also get
their mean ± std and a 95 % confidence interval that never leaves [0, 100] (``significance.CI_METHOD``); the
formulae and their sources are in docs/statistics.md. A second table compares, with paired tests
(Wilcoxon, McNemar), every two rows run on the same corpus, feature file, seeds and test folds; a figure shows each
corpus' UAR with its interval per row. Written as Markdown, LaTeX, CSV and PNG. Knows nothing about TensorFlow.

A row never mixes runs that differ in model or variant, corpus, feature file, protocol (with the label smoothing
history and, for a re-test, whether it used the run's own split and features), fold scheme, synthetic data or
training settings, or, on several corpora, in the label map that pooled them. Cross-corpus tests (``--mode test
--cross_corpus``, records with a ``cross_corpus`` entry) are never among those rows: they have their own table,
training corpus x test corpus (``build_cross_corpus_table``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections import defaultdict
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..core import precision
from ..core.atomic_file import atomic_write, one_commit
from ..core.config import UNKNOWN_PROTOCOL, default_settings
from ..core.errors import UserError
from ..core.figures import plain_text
from ..core.flags import report_columns
from ..core.paths import feature_path, shown
from ..data.corpora import CORPORA
from ..data.features import FEATURE_KINDS
from . import results, significance
from .results_records import load_records
from .table_formats import to_csv, to_latex, to_markdown

# (model, corpus key, protocol) -> (UAR %, WAR %) as published; None where a paper gives no figure.
PUBLISHED = {
    ("TIMNET", "CASIA", "paper"): (94.67, 94.67), ("TIMNET", "CASIA", "last_epoch"): (91.08, 91.08),
    ("TIMNET", "EMODB", "paper"): (95.17, 95.70), ("TIMNET", "EMODB", "last_epoch"): (89.19, 90.28),
    ("TIMNET", "EMOVO", "paper"): (92.00, 92.00), ("TIMNET", "EMOVO", "last_epoch"): (None, 86.56),
    ("TIMNET", "IEMOCAP", "paper"): (72.50, 71.65), ("TIMNET", "IEMOCAP", "last_epoch"): (None, 68.29),
    ("TIMNET", "RAVDE", "paper"): (91.93, 92.08), ("TIMNET", "RAVDE", "last_epoch"): (90.04, 90.07),
    ("TIMNET", "SAVEE", "paper"): (86.31, 87.71), ("TIMNET", "SAVEE", "last_epoch"): (77.26, 79.36),
    ("GMTCN", "CASIA", "paper"): (90.17, 90.17), ("GMTCN", "CASIA", "last_epoch"): (85.50, 85.50),
    ("GMTCN", "EMODB", "paper"): (90.45, 91.40), ("GMTCN", "EMODB", "last_epoch"): (86.17, 85.70),
    ("GMTCN", "RAVDE", "paper"): (87.30, 87.64), ("GMTCN", "RAVDE", "last_epoch"): (82.78, 82.62),
    ("GMTCN", "SAVEE", "paper"): (84.40, 86.01), ("GMTCN", "SAVEE", "last_epoch"): (75.83, 73.57),
}
# The papers' experiments ran on the full-length corpora with shuffled 10-fold KFold; their number of utterances
# (data/corpora.Corpus.utterances, one row of the feature file each) is what tells a full corpus from a subset.
PUBLISHED_FOLDS = 10
# Speaker-independent results: (model, corpus, protocol) -> (folds, (UAR %, WAR %)), shown for --cv speaker runs
# with one fold per speaker (EMO-DB: 10) or per IEMOCAP session (5). DCNN-BLSTMwA (Zhang et al., 2021) reports
# UAR only; that its protocol is speaker-independent and its epoch fixed is our reading, not verified (README).
PUBLISHED_SPEAKER = {
    ("DCNN_BLSTMwA", "EMODB", "last_epoch"): (10, (87.86, None)),
    ("DCNN_BLSTMwA", "IEMOCAP", "last_epoch"): (5, (68.50, None)),
}


CROSS_NOTE = ("Each test scores the utterances of the test corpus whose class the label map puts among the run's "
              "classes, by the mean probability of the run's fold models (a cross-corpus figure only where they "
              "never saw those utterances); UAR and WAR pooled over those utterances. Never averaged with the "
              "within-corpus rows above.")

# Settings that change what a run learns: runs that differ in one are never averaged, and a "settings" column names
# those that vary within a report. A re-test trains nothing: only the network's hyper-parameters count there.
# Both are core/flags.py's report columns (named as run.json names them), and the recipe's Adam epsilon (no flag).
NETWORK_SETTINGS = report_columns(network=True)
TRAINING_SETTINGS = (*report_columns(network=False), "epsilon")
# The value in effect for records written before the option existed (each was added switched off).
LEGACY_SETTINGS = {"val_fraction": 0.1, "balance": False, "augment": 0, "mixed_precision": False, "normalize": "none",
                   "init_from": None, "init_fold": None, "freeze_backbone": False}


class GroupKey(NamedTuple):
    """Everything that must be equal for runs to be averaged in one row."""

    model: str
    variant: str
    data: str
    features: str
    protocol: str
    cv: str
    folds: int
    synthetic: bool
    settings: tuple  # ((name, value), ...) from ``run_settings`` and ``label_map_setting``


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * float(np.mean(values))
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {100 * float(np.std(values)):.2f}"


def _published(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def full_corpus(record: dict) -> bool:
    """Whether ``record`` ran on the full-length corpus the papers used, as far as a record can tell.

    Its feature file must be the program's default one for the corpus, ``MFCC/<KEY>.npy`` (``MFCC/<KEY>_<kind>.npy``
    for another feature kind), where ``--mode extract`` writes a downloaded corpus and the authors' feature files
    go, and hold the corpus' rows (``Corpus.utterances``). A cut of the audio under its own name (``EMODB_2s.npy``,
    535 rows too) never passes; the record cannot tell what audio a file under the default name came from.
    """
    data, path = record["config"]["data"], record["config"].get("feature_path") or ""
    defaults = {os.path.normpath(feature_path(data, kind)) for kind in FEATURE_KINDS}  # MFCC/<KEY>[_<kind>].npy
    rows = sum(fold["n"] for fold in record["folds"])
    return (os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path)) in defaults
            and data in CORPORA and rows == CORPORA[data].utterances)


def published(record: dict) -> tuple:
    """(UAR %, WAR %) published for the experiment ``record`` repeats; (None, None) unless it is a training run on
    real data with the same model and protocol, on the full corpus (``full_corpus``), with the papers' folds:
    shuffled KFold with ``PUBLISHED_FOLDS`` folds, or for "speaker" one fold per speaker (``PUBLISHED_SPEAKER``),
    and every setting at the model's default (its recipe: the epochs, the network, float32 ...; ``_changed``).
    The smoothing history does not matter: the code behind the ICASSP table smoothed cumulatively."""
    config = record["config"]
    # bf16, 8 filters, 2 epochs ...: every setting, DCNN-BLSTMwA's backbone too (its variant names it, no column)
    settings = (*run_settings(record), *(config.get("hyper") or {}).items())
    if (record.get("mode", "train") != "train" or record.get("synthetic") or not full_corpus(record)
            or _changed(record["model"], config["data"], settings)):
        return None, None
    key = (record["model"], config["data"], record["protocol"])
    if config.get("cv", "kfold") == "kfold":
        return PUBLISHED.get(key, (None, None)) if config["split_fold"] == PUBLISHED_FOLDS else (None, None)
    speaker_folds, figures = PUBLISHED_SPEAKER.get(key, (None, (None, None)))
    return figures if config["split_fold"] == speaker_folds else (None, None)


# the paper protocol as every row, paired test and picture names it: the bare word read as the papers' method
PAPER_LABEL = "paper (SELECTED ON THE TEST FOLD)"


def protocol_label(record: dict) -> str:
    """The protocol as the table shows it.

    A training run: its ``--protocol`` (``PAPER_LABEL`` for paper). A re-test: the weights folder it re-tested,
    with ``OTHER SPLIT`` / ``SPLIT NOT CHECKED`` / ``OTHER FEATURES`` and the record's ``retest["label"]`` when it
    did not use the run's own split or features, ``, PAPER_LABEL`` where those weights were selected on the test
    fold (a paper-protocol run, the authors'), ``, weights' choice unknown`` where nothing records what chose them (a
    folder without run.json not named as the published ones). Either followed by the label smoothing history when
    it is not the default per-fold smoothing, e.g. ``last_epoch, cumulative smoothing``. Fields missing from older
    records take their defaults.
    """
    if record.get("mode") == "test":
        label = f"test of {os.path.basename(os.path.normpath(record['weights_folder']))}"
        retest = record.get("retest") or {}
        other = [word for part, word in (("split", "OTHER SPLIT"), ("features", "OTHER FEATURES"))
                 if retest.get(part) == "other"] + ["SPLIT NOT CHECKED"] * (retest.get("split") == "unchecked")
        if other:
            text = retest.get("label") or ""
            # the capitals always show, whether or not the record's own label already says it
            label += f" ({'; '.join([flag for flag in other if flag not in text] + ([text] if text else []))})"
        if record["config"].get("protocol") == "paper":  # the weights re-tested were selected on the test fold
            label += f", {PAPER_LABEL}"
        elif record["config"].get("protocol") == UNKNOWN_PROTOCOL:  # perhaps on the test fold: nothing says
            label += ", weights' choice unknown"
    else:
        label = PAPER_LABEL if record["protocol"] == "paper" else record["protocol"]
    return _with_smoothing_history(label, record["config"])


def _with_smoothing_history(label: str, config: dict) -> str:
    """``label`` followed by the label smoothing history where it is not the default per-fold smoothing."""
    history = config.get("label_smoothing_history") or "per_fold"
    return label if history == "per_fold" else f"{label}, {history} smoothing"


def run_settings(record: dict) -> tuple:
    """((name, value), ...) of the network and (for a training run) training settings of ``record``."""
    config = record["config"]
    hyper = config.get("hyper") or {}
    values = [(name, hyper.get(name, LEGACY_SETTINGS.get(name))) for name in NETWORK_SETTINGS]
    if record.get("mode") != "test":
        values += [(name, config.get(name, LEGACY_SETTINGS.get(name))) for name in TRAINING_SETTINGS]
    return tuple(values)


def label_map_setting(record: dict) -> tuple:
    """A run on several corpora (its record's ``corpora``): ``(("label_map", text),)``, the text naming every class
    that pooling renamed or dropped (``TA sad->dropped; TB calm->sad``; a class without a partner in the other
    corpora is dropped by name too), "by name" where every class kept its name; () otherwise. It is the map in
    effect, not its file's name: runs pooled by different maps learn different classes from different rows and are
    never one row of the report."""
    parts = record.get("corpora") or []
    if not parts:
        return ()
    changes = []
    for part in parts:
        moved = [f"{name}->{target or 'dropped'}" for name, target in part["mapping"].items()
                 if target is None or target.casefold() != name.casefold()]
        if moved:
            changes.append(" ".join([part["data"], *moved]))
    return (("label_map", "; ".join(changes) or "by name"),)


def group_key(record: dict) -> GroupKey:
    config = record["config"]
    # Runs on different feature files (the full corpus, 2-s cuts, another extraction) are never averaged; a run on
    # several corpora (--data A+B) names each one's, joined by '+'
    paths = (config.get("feature_path") or "").split("+") if "+" in config["data"] else [config.get("feature_path")]
    features = "+".join(os.path.basename(path or "") for path in paths) or "–"
    return GroupKey(record["model"], record.get("variant", ""), config["data"], features, protocol_label(record),
                    config.get("cv", "kfold"), config["split_fold"], bool(record.get("synthetic")),
                    run_settings(record) + label_map_setting(record))


def _labels_fingerprint(record: dict) -> tuple:
    """The true class of every row its folds tested, in row order: the same for every record of one feature
    file's content whatever the seed; records of the same row and seed that differ in it ran on other content
    under one file name (rows reordered, re-extracted), so they are no copies of one run."""
    labels = {}
    for fold in record["folds"]:
        rows = fold.get("test_rows") or range(len(labels), len(labels) + len(fold.get("y_true") or []))
        labels.update(zip(rows, fold.get("y_true") or []))
    return tuple(labels[row] for row in sorted(labels))


def _samples(records: list[dict]) -> dict[tuple, list[dict]]:
    """(``group_key``, seed, ``_labels_fingerprint``) -> the records of that one sample, the oldest run folder first
    (its name begins with its time), and of one folder (its re-tests) the oldest results file (``written_at``),
    whatever their results: ordered by file name, the record whose mean WAR sorted first as text was the one used.

    Within a row, model, corpus, feature file, protocol (a re-test's: its weights folder, split and features),
    folds and settings are equal; with the seed, so are the split and the initial weights. Several records of
    such a (row, seed) are re-tests or copies of one run, or the same run trained again; they are one sample.
    """
    samples = defaultdict(list)
    for record in sorted(records, key=lambda r: (os.path.basename(os.path.normpath(r["weights_folder"])),
                                                 results.written_at(os.path.basename(r.get("path") or "")),
                                                 r.get("path") or "")):
        key = (group_key(record), record["config"]["random_seed"], _labels_fingerprint(record))
        samples[key].append(record)
    return samples


def group_runs(records: list[dict]) -> list[tuple[GroupKey, list[dict]]]:
    """One record per sample (the first of ``_samples``) grouped by ``group_key``, ordered by model, corpus,
    features, protocol, cv and folds."""
    groups = defaultdict(list)
    for (key, _, _), same in _samples(records).items():
        groups[key].append(same[0])
    # settings may hold None (a record without a field): ordered by their text, never compared as values
    return sorted(groups.items(), key=lambda item: (*item[0][:-1], repr(item[0].settings)))


def _fold_results(record: dict) -> list[tuple]:
    return [(fold.get("test_rows"), fold.get("y_pred"), fold["uar"], fold["war"]) for fold in record["folds"]]


def merge_notices(records: list[dict]) -> list[str]:
    """One line per sample that several records gave: which records were merged, and whether their per-fold
    results are identical (else the largest per-fold UAR difference, and which record the report used); and one
    per row and seed whose records ran on other feature content under one file name, which are kept apart."""
    varying = _shown_in(group_runs(records))
    notices, contents = [], defaultdict(int)
    for (key, seed, _), same in _samples(records).items():
        contents[(key, seed)] += 1
        if len(same) < 2:
            continue
        names = ", ".join(os.path.basename(record.get("path") or record["weights_folder"]) for record in same)
        if all(_fold_results(record) == _fold_results(same[0]) for record in same):
            how = "identical per-fold results"
        else:
            gap = max(abs(a["uar"] - b["uar"]) for record in same for a, b in zip(record["folds"], same[0]["folds"]))
            how = (f"per-fold UAR differs by up to {100 * gap:.2f} points; the oldest run's is used "
                   f"({os.path.basename(same[0].get('path') or same[0]['weights_folder'])})")
        notices.append(f"merged {len(same)} records of the same run/seed: {_row_label(key, varying)} on "
                       f"{_corpus_label(key)} {key.features}, {key.cv} {key.folds}-fold, seed {seed} ({names}): "
                       f"{how}; counted once")
    for (key, seed), count in contents.items():
        if count > 1:
            notices.append(f"not merged: {_row_label(key, varying)} on {_corpus_label(key)} {key.features}, seed "
                           f"{seed}: {count} runs whose test folds hold other labels, so other feature content under "
                           "one file name; each is counted as a run of its own (name the files apart to keep them in "
                           "rows of their own)")
    return notices


def _defaults(model: str, data: str) -> dict:
    """The settings a run of ``model`` on ``data`` has where no flag changes them (core/config.default_settings),
    TIM-Net's block count its corpus' (left out for a corpus not known here: its count follows its length)."""
    values = default_settings(model)
    if data in CORPORA:
        values["dilation_size"] = CORPORA[data].tab_count
    else:
        del values["dilation_size"]
    return values


def _changed(model: str, data: str, settings: tuple) -> set[str]:
    """Names of ``settings`` ((name, value), ...) at another value than ``model``'s default on ``data``; a setting a
    record lacks (None) is not."""
    defaults = _defaults(model, data)
    return {name for name, value in settings if name in defaults and value is not None and value != defaults[name]}


def _shown_settings(rows: list[tuple[str, str, tuple]]) -> dict:
    """{(model, corpus): names} of the settings whose values differ between the rows of one model and corpus
    ((model, corpus, settings), ...) where some row's value is not told by ``_changed``: the epochs (the within-corpus
    table has their column, the cross-corpus one not), a setting without a default known here (a dataset's own
    block count, a several-corpora run's label map), one an older record lacks (None). A row names them as it names
    those it holds off its model's defaults (``_settings_text``), so that no two rows read alike."""
    seen, untold = defaultdict(set), defaultdict(set)
    for model, data, settings in rows:
        defaults = _defaults(model, data)
        for name, value in settings:
            seen[(model, data, name)].add(repr(value))
            if name == "epochs" or name not in defaults or (value is None and defaults[name] is not None):
                untold[(model, data)].add(name)
    return {pair: {name for name in names if len(seen[(*pair, name)]) > 1} for pair, names in untold.items()}


def _shown_in(groups: list[tuple[GroupKey, list[dict]]]) -> dict:
    """``_shown_settings`` of the within-corpus rows ``groups`` (``group_runs``)."""
    return _shown_settings([(key.model, key.data, key.settings) for key, _ in groups])


def _settings_text(model: str, data: str, settings: tuple, varying: dict) -> str:
    """A row's settings cell: each of its settings at another value than its model's default on its corpus (a lone
    bf16 row said nothing of it; a default row listed its defaults where another row differed), the epochs only
    where rows of its model differ in them, and those of ``varying`` (``_shown_settings``); "" where none."""
    changed = _changed(model, data, settings) - {"epochs"}
    shown = changed | varying.get((model, data), set())
    return ", ".join(f"{name}={_shown_value(name, value)}" for name, value in settings if name in shown)


def _shown_value(name: str, value) -> str:
    """A setting's value as a row names it: mixed precision by its flag's word, a fine-tuning source by its
    folder's name (no machine's path in a report)."""
    if name == "mixed_precision":
        return precision.flag_word(value)
    if name == "init_from" and isinstance(value, str):
        return os.path.basename(os.path.normpath(value))
    return str(value)


def _model_label(key: GroupKey) -> str:
    return key.model + (f" ({key.variant})" if key.variant else "")


def _corpus_label(key: GroupKey) -> str:
    return key.data + (" (synthetic)" if key.synthetic else "")


def _row_label(key: GroupKey, varying: dict) -> str:
    """Model, protocol and the settings cell: what tells two rows of one corpus and fold scheme apart."""
    text = _settings_text(key.model, key.data, key.settings, varying)
    return f"{_model_label(key)}, {key.protocol}" + (f" ({text})" if text else "")


def _mean_std(interval: significance.Interval) -> str:
    if interval.n == 1:
        return f"{100 * interval.mean:.2f}"
    return f"{100 * interval.mean:.2f} ± {100 * interval.std:.2f}"


def _ci(interval: significance.Interval) -> str:
    """``[low, high]`` in %, marked ``*`` where it is the plain interval clipped (a fold at 0 or 100 %); "no spread"
    where every per-fold value is the same, "–" for one value."""
    if interval.method == significance.NO_SPREAD_METHOD:
        return "no spread"
    clipped = "*" if interval.method == significance.CLIPPED_METHOD else ""
    return "–" if math.isnan(interval.low) else f"[{100 * interval.low:.2f}, {100 * interval.high:.2f}]{clipped}"


def one_class_folds(records: list[dict]) -> list[str]:
    """A line per row some of whose folds predicted a single class for a test fold of several
    (``results.constant_folds``): their UAR is chance, whatever the classes."""
    groups = group_runs(records)
    varying = _shown_in(groups)
    lines = []
    for key, runs in groups:
        folds = [fold for run in runs for fold in run["folds"]]
        constant = results.constant_folds(folds)
        if constant:
            lines.append(f"{_row_label(key, varying)} on {_corpus_label(key)} {key.features}: {constant} of "
                         f"{len(folds)} folds predicted one class for every utterance (a constant prediction)")
    return lines


def _per_corpus(runs: list[dict]) -> str:
    """A run on several corpora: each corpus' pooled UAR % / WAR % (mean ± std over the runs); "–" otherwise."""
    found = [run["summary"].get("per_corpus") for run in runs]
    if not all(found):
        return "–"
    return "; ".join(f"{key} {_cell([f[key]['uar'] for f in found])} / {_cell([f[key]['war'] for f in found])}"
                     for key in found[0])


def build_table(records: list[dict]) -> pd.DataFrame:
    """One row per ``group_key`` with our figures, their statistics over seeds and folds, and the published ones.

    A "settings" column (after "protocol") appears when some row has a setting at another value than its model's
    default (``_settings_text``); a "per corpus" column
    (each corpus' pooled UAR / WAR) when some row trained on several corpora (--data A+B).
    """
    groups = group_runs(records)
    varying = _shown_in(groups)
    rows = []
    for key, runs in groups:
        # shown only when every run of the row repeats the same published experiment
        figures = {published(run) for run in runs}
        uar, war = figures.pop() if len(figures) == 1 else (None, None)
        uar_interval, war_interval = significance.run_interval(runs, "uar"), significance.run_interval(runs, "war")
        row = {"model": _model_label(key), "corpus": _corpus_label(key), "features": key.features,
               "protocol": key.protocol, "settings": _settings_text(key.model, key.data, key.settings, varying) or "–"}
        rows.append({
            **row, "cv": key.cv, "runs": len(runs),
            "seeds": " ".join(str(seed) for seed in sorted(r["config"]["random_seed"] for r in runs)),
            "folds": key.folds, "epochs": "–" if runs[0].get("mode") == "test" else runs[0]["config"]["epochs"],
            "UAR % (pooled)": _cell([r["summary"]["uar_pooled"] for r in runs]),
            "WAR % (mean of folds)": _cell([r["summary"]["war_mean_of_folds"] for r in runs]),
            "UAR % mean ± std": _mean_std(uar_interval), "UAR % 95% CI": _ci(uar_interval),
            "WAR % mean ± std": _mean_std(war_interval), "WAR % 95% CI": _ci(war_interval),
            "published UAR %": _published(uar), "published WAR %": _published(war),
        })
        if any(run["summary"].get("per_corpus") for _, group in groups for run in group):
            rows[-1]["per corpus: UAR / WAR % (pooled)"] = _per_corpus(runs)
    return _settings_where_any(pd.DataFrame(rows))


class CrossKey(NamedTuple):
    """A row of the cross-corpus table: never mixes models, training corpora, their feature files, protocols or
    settings."""

    model: str
    train: str
    features: str  # the training feature file's name
    protocol: str  # the trained run's --protocol (and label smoothing history): paper selected on its test folds
    settings: tuple  # ((name, value), ...) from ``run_settings``, the values a record has
    network: str  # the model's registry name, whose recipe the settings are told from (``model`` has its variant)


def build_cross_corpus_table(records: list[dict]) -> pd.DataFrame:
    """CROSS-CORPUS tests: one row per model, training corpus, feature file, protocol and settings, one column per
    test corpus; a cell is the pooled UAR % / WAR % of the tests found (mean ± std over the runs tested when
    several, their number in brackets). The same run tested again on the same test file, under the same settings and
    corpus name, is one test (the first record by path): a repeat moved the mean and shrank the std."""
    cells, tested_runs, maps = defaultdict(list), set(), defaultdict(set)
    for record in records:
        cross, config = record["cross_corpus"], record["config"]
        column, mapping = _test_column(cross)
        maps[column].add(mapping)
        settings = tuple((name, value) for name, value in run_settings(record) if value is not None)
        # the same test of the same weights, under the same settings and corpus name (the same content under another
        # name, or weights of a folder without run.json tested under other settings, was dropped without a word)
        repeat = (os.path.normpath(record["weights_folder"]), cross.get("test_sha256") or cross["test_corpus"],
                  cross.get("fold_models"), mapping, column, settings)
        if repeat in tested_runs:
            continue
        tested_runs.add(repeat)
        protocol = config.get("protocol", "paper")
        protocol = _with_smoothing_history(PAPER_LABEL if protocol == "paper" else protocol, config)
        key = CrossKey(record["model"] + (f" ({record['variant']})" if record.get("variant") else ""),
                       cross["train_corpus"], os.path.basename(config.get("feature_path") or "") or "–", protocol,
                       settings, record["model"])
        cells[(key, (column, mapping))].append(record["summary"])
    keys = sorted({key for key, _ in cells}, key=lambda k: (k.model, k.train, k.features, k.protocol,
                                                             repr(k.settings)))
    tested = sorted({test for _, test in cells})
    # two maps under one file name (another folder's map.toml, an edited file, two API dicts): told apart; only a
    # "<corpus> (map <file>)" column can hold two (a test by class names has no map)
    shown_as = {(column, mapping): column if len(maps[column]) == 1 else
                f"{column[:-1]} {hashlib.sha256(mapping.encode()).hexdigest()[:6]})" for column, mapping in tested}
    varying = _shown_settings([(key.network, key.train, key.settings) for key in keys])
    rows = []
    for key in keys:
        row = {"model": key.model, "trained on": key.train, "features": key.features, "protocol": key.protocol,
               "settings": _settings_text(key.network, key.train, key.settings, varying) or "–"}
        for test in tested:
            found = cells.get((key, test), [])
            row[f"tested on {shown_as[test]}: UAR / WAR %"] = "–" if not found else (
                f"{_cell([s['uar_pooled'] for s in found])} / {_cell([s['war_pooled'] for s in found])}"
                + (f" ({len(found)})" if len(found) > 1 else ""))
        rows.append(row)
    return _settings_where_any(pd.DataFrame(rows))


def _settings_where_any(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without its settings column where no row names a setting (every run at its model's defaults)."""
    return table.drop(columns="settings") if "settings" in table and (table["settings"] == "–").all() else table


def _test_column(cross: dict) -> tuple[str, str]:
    """(the column of a cross-corpus test, its class map as text, "" by class names): the test corpus, and where
    a label map file (or the API's dict) paired the classes, its name beside it: a test under another map scores
    other utterances (the same run tested on one file under two maps showed one of them, unsaid)."""
    label_map = cross.get("label_map") if isinstance(cross.get("label_map"), dict) else {}
    source = label_map.get("source")
    if not isinstance(source, str) or source.startswith("class names"):  # matched by name (older records: no map)
        return cross["test_corpus"], ""
    return (f"{cross['test_corpus']} (map {os.path.basename(source)})",
            json.dumps(label_map.get("pairs"), sort_keys=True))


def _signed(fraction: float) -> str:
    """A difference in percentage points with its sign; rounding noise such as -1e-17 shows as +0.00, not -0.00."""
    return f"{round(100 * fraction, 2) + 0.0:+.2f}"


PAIRED_COLUMNS = ["corpus", "features", "cv", "folds", "seeds", "A", "B", "pairs (seed, fold)",
                  "UAR % A - B (mean of pairs)", "Wilcoxon p", "Wilcoxon p (Holm)", "McNemar b (A right, B wrong)",
                  "McNemar c (A wrong, B right)", "McNemar p", "McNemar p (Holm)"]


def _shared_seeds(runs_a: list[dict], runs_b: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both sides restricted to the seeds they share: only those give paired cells."""
    seeds_a, seeds_b = ({r["config"]["random_seed"] for r in runs} for runs in (runs_a, runs_b))
    shared = seeds_a & seeds_b
    if not shared:
        raise significance.PairingError(f"different seeds: {sorted(seeds_a)} against {sorted(seeds_b)}")
    return ([r for r in runs_a if r["config"]["random_seed"] in shared],
            [r for r in runs_b if r["config"]["random_seed"] in shared])


def build_comparisons(records: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """Paired tests of every two rows on the same corpus, feature file, fold scheme and synthetic flag, over the
    seeds they share; and, for each such pair that cannot be paired, a line saying why (``significance.compare``
    checks the seeds and every fold's test rows). Training runs only: a re-test repeats a run's predictions, and
    a test of it against that run would test nothing."""
    groups = group_runs([r for r in records if r.get("mode", "train") == "train"])
    varying = _shown_in(groups)
    same_data = defaultdict(list)
    for key, runs in groups:
        same_data[(key.data, key.features, key.cv, key.folds, key.synthetic)].append((key, runs))
    rows, refused, tests = [], [], []
    for members in same_data.values():
        for (key_a, runs_a), (key_b, runs_b) in itertools.combinations(members, 2):
            a, b = _row_label(key_a, varying), _row_label(key_b, varying)
            try:
                result = significance.compare(*_shared_seeds(runs_a, runs_b))
            except significance.PairingError as exc:
                refused.append(f"{a} vs {b} on {_corpus_label(key_a)} {key_a.features}: {exc}")
                continue
            tests.append(result)
            rows.append([_corpus_label(key_a), key_a.features, key_a.cv, key_a.folds, " ".join(map(str, result.seeds)),
                         a, b, result.cells, _signed(result.mean_difference)])
    # every two rows are tested: each test's p adjusted for the table's number of tests (Holm), beside its own
    wilcoxon = significance.holm([t.wilcoxon_p for t in tests])
    mcnemar = significance.holm([t.mcnemar_p for t in tests])
    table = [dict(zip(PAIRED_COLUMNS, [*row, f"{t.wilcoxon_p:.3g}", f"{w:.3g}", t.mcnemar_b, t.mcnemar_c,
                                       f"{t.mcnemar_p:.3g}", f"{m:.3g}"]))
             for row, t, w, m in zip(rows, tests, wilcoxon, mcnemar)]
    return pd.DataFrame(table, columns=PAIRED_COLUMNS), refused


@plain_text
def plot_uar_ci(records: list[dict], path: str) -> None:
    """One panel per corpus: each row's mean per-fold UAR with its 95 % interval as error bars (none for a row
    with a single fold value or without spread, marked so), rendered with the Agg canvas and written atomically to
    ``path``."""
    groups = group_runs(records)
    varying = _shown_in(groups)
    panels = defaultdict(list)
    for key, runs in groups:
        interval = significance.run_interval(runs, "uar")
        # the table's marks: a dot alone read as "no interval", a clipped interval as one on the logit scale
        mark = {significance.CLIPPED_METHOD: " *",
                significance.NO_SPREAD_METHOD: " (no spread)"}.get(interval.method, "")
        label = f"{_row_label(key, varying)} [{key.features}, {key.cv} {key.folds}-fold]{mark}"
        panels[_corpus_label(key)].append((label, interval))
    sizes = [len(rows) for rows in panels.values()]
    longest = max(len(label) for rows in panels.values() for label, _ in rows)
    # the labels sit left of the axes: about 0.06 inch per character at font size 7, next to 6 inches of plot
    figure = Figure(figsize=(6 + 0.06 * longest, 1.0 + 0.4 * sum(sizes) + 0.8 * len(panels)))
    FigureCanvasAgg(figure)  # before tight_layout, which measures the labels with the canvas' renderer
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=[size + 1 for size in sizes])[:, 0]
    for ax, (corpus, rows) in zip(axes, panels.items()):
        places = np.arange(len(rows))
        # the interval is drawn from its own ends: from the logits, it need not be symmetric about the mean;
        # a row without an interval (NaN) draws no line
        ax.hlines(places, [100 * interval.low for _, interval in rows], [100 * interval.high for _, interval in rows])
        ax.plot([100 * interval.mean for _, interval in rows], places, "o")
        ax.set_yticks(np.arange(len(rows)), [label for label, _ in rows], fontsize=7)
        ax.invert_yaxis()  # the table's order, top down
        ax.set_title(corpus, fontsize=9)
        ax.set_xlabel("UAR % (mean of the per-fold UAR over seeds and folds)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle("UAR with its 95% CI (corrected repeated k-fold t-interval on the logit scale, Nadeau & Bengio "
                    "2003;\n*: on the plain scale, clipped, where a fold is at 0 or 100 %; docs/statistics.md)",
                    fontsize=9)
    figure.tight_layout()
    # bbox_inches="tight": the longest row label is never cut at the left edge
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_report(result_path: str) -> dict:
    """``report.md``, ``report.tex``, ``report.csv`` (the results table), ``report_paired.csv`` (the paired
    comparisons), ``report_uar_ci.png`` and, where there are cross-corpus tests, ``report_cross_corpus.csv`` (their
    own table, also in the Markdown and LaTeX) in ``result_path``; returns their paths."""
    if os.path.isfile(result_path):  # said "no results JSON found; train or test first" before
        raise UserError(f"--result_path {result_path}: is a file, not the folder of results files")
    if not os.path.isdir(result_path):  # said "no results JSON found" too
        raise UserError(f"--result_path {result_path}: no such folder")
    found = load_records(result_path)
    if not found:
        raise UserError(f"{result_path}: no results JSON found; train or test first (--mode train / --mode test)")
    records = [r for r in found if not r.get("cross_corpus")]
    crossed = [r for r in found if r.get("cross_corpus")]
    table = build_table(records)
    comparisons, refused = build_comparisons(records)
    paths = {kind: os.path.join(result_path, f"report.{kind}") for kind in ("md", "tex", "csv")}
    paths["paired_csv"] = os.path.join(result_path, "report_paired.csv")
    # the column is there only where a row names a setting (report footnote named a column the table lacked)
    settings_said = ("`settings` names those that are not" if "settings" in table.columns else
                     "here every row's are, so the table has no `settings` column")
    note = ("`runs`: distinct runs, one per seed: re-tests, copies and repeats of a run with the same settings, "
            "seed and feature file count once (merged records are listed below the table). UAR % (pooled): macro "
            "recall pooled over folds; WAR % (mean of folds): mean of per-fold accuracies; there ± is the population "
            "std (1/r) over the r runs. `mean ± std` and `95% CI`: over the per-fold values of every seed and fold of "
            f"a row, ± the sample std; the interval is the {significance.CI_METHOD}. Published figures (TIM-Net: Ye "
            "et al., ICASSP 2023; GM-TCNet: Ye et al., Speech Communication 2022; DCNN-BLSTMwA: Zhang et al. 2021, "
            "speaker-independent) appear only beside training runs that repeat the papers' experiment: the same "
            f"protocol, {PUBLISHED_FOLDS}-fold shuffled KFold (or one fold per speaker), on the full corpus, i.e. "
            "the default feature file `MFCC/<KEY>.npy` with the corpus' number of utterances, every setting at the "
            f"model's default ({settings_said}, `epochs` gives the epochs; a `paper` or `inner_val` row's weights "
            "are those of the best of them). Formulae, merging and sources: docs/statistics.md in the repository.")
    cells = table[["UAR % 95% CI", "WAR % 95% CI"]] if records else pd.DataFrame()
    if cells.map(lambda cell: cell.endswith("*")).any(axis=None):
        note += f" `*`: the {significance.CLIPPED_METHOD}."
    if (cells == "no spread").any(axis=None):
        note += f" `no spread`: {significance.NO_SPREAD_METHOD}."
    paired_note = (f"Rows on the same corpus, feature file and folds, over the seeds they share. "
                   f"{significance.WILCOXON_METHOD}; {significance.MCNEMAR_METHOD} (an utterance counts once per "
                   "seed, which makes that p optimistic over several seeds). Every two rows are tested: `(Holm)` is "
                   "each p adjusted for the table's number of tests (Holm 1979), the one to read against 0.05.")
    if comparisons.empty:
        paired = ("No two training rows share a corpus, feature file, seeds and test folds (a re-test repeats its "
                  "run's predictions, so re-tests are not paired).")
    else:
        paired = f"{to_markdown(comparisons)}\n\n{paired_note}"
    paired += "".join(f"\n- not paired: {line}" for line in refused)
    notices = merge_notices(records) + one_class_folds(records)
    merged = "".join(f"\n- {line}" for line in notices)
    within = f"{to_markdown(table)}\n\n{note}\n{merged}" if records else "No within-corpus results."
    markdown = f"{within}\n\n## Paired comparisons\n\n{paired}\n"
    if crossed:
        cross_table = build_cross_corpus_table(crossed)
        markdown += (f"\n## CROSS-CORPUS tests (trained on a row's corpus, tested on a column's)\n\n"
                     f"{to_markdown(cross_table)}\n\n{CROSS_NOTE}\n")
        paths["cross_corpus_csv"] = os.path.join(result_path, "report_cross_corpus.csv")
    not_paired = [f"Not paired: {line}." for line in refused]  # in the paired table's caption, else the results'
    latex = to_latex(table, " ".join([note, *(f"{line[0].upper()}{line[1:]}." for line in notices),
                                      *(not_paired if comparisons.empty else [])]))
    if not comparisons.empty:
        latex += to_latex(comparisons, " ".join([f"Paired comparisons. {paired_note}", *not_paired]),
                          label="tab:ser-paired")
    texts = {"md": markdown, "tex": latex, "csv": to_csv(table), "paired_csv": to_csv(comparisons)}
    if crossed:
        latex += to_latex(cross_table, f"CROSS-CORPUS tests. {CROSS_NOTE}", label="tab:ser-cross-corpus")
        texts.update(tex=latex, cross_corpus_csv=to_csv(cross_table))
    try:
        with one_commit():  # the report's files together: an interrupt left a new report.md beside an old report.tex
            for kind, text in texts.items():
                atomic_write(paths[kind], lambda tmp, text=text: _write_text(tmp, text))
            if records:
                paths["figure"] = os.path.join(result_path, "report_uar_ci.png")
                plot_uar_ci(records, paths["figure"])
    except OSError as exc:  # a folder it may not write into: a PermissionError traceback before
        name = exc.filename2 or exc.filename  # a rename's target, else the file
        raise UserError(f"--result_path {result_path}: the report cannot be written there ({exc.strerror or exc}"
                        f"{f': {shown(name)}' if name else ''})") from None
    print(markdown)
    for kind, path in paths.items():
        print(f"wrote {kind}: {shown(path)}")
    return paths
