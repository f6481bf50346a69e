"""Which results records make one row of the report, and how a row is named: the published experiments a run
repeats (``published``), the protocol as a row shows it (``protocol_label``), the settings that keep rows apart
(``group_key``) and the merge of records that are one sample (``group_runs``, ``merge_notices``). The report's
tables, tests and figure (runs/report.py) are built on these rows. Knows nothing about TensorFlow.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import NamedTuple

from ..core import precision
from ..core.config import UNKNOWN_PROTOCOL, default_settings
from ..core.flags import report_columns
from ..core.paths import feature_path
from ..data.corpora import CORPORA, authors_name
from ..data.features import FEATURE_KINDS
from . import results

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
    return with_smoothing_history(label, record["config"])


def features_unchecked(record: dict) -> bool:
    """Whether ``record`` re-tested a folder without run.json (the authors' weights), whose features nothing
    records, so that a published figure is no yardstick for them (``results.features_not_checked``): its ``retest``
    says so (``"features": "unchecked"``); a record written before it did, by what only such a folder has: weights
    whose choice nothing records, or, where the record has no ``retest`` at all (a run folder's re-test records
    whether its features were its own), a folder named as the published ones are (``<KEY>_<seed>``: a run folder
    copied to ``Test_Models/EMODB_46`` for the authors' code keeps its run.json, and its features are checked)."""
    if record.get("mode") != "test" or record.get("cross_corpus"):
        return False
    retest = record.get("retest")
    features = (retest or {}).get("features")
    return features == "unchecked" or (features != "other" and record["config"].get("protocol") == UNKNOWN_PROTOCOL) \
        or (not retest and authors_name(record["weights_folder"])[1] is not None)


def with_smoothing_history(label: str, config: dict) -> str:
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


class RowNote(NamedTuple):
    """A line under the results table about one row: the row (its ``group_key``), the note's kind (report.csv's
    ``note keys``: "merged", "not_merged", "one_class", "features_not_checked") and its text, as report.md and
    report.tex print it and report.csv's row carries it."""

    row: GroupKey
    key: str
    text: str


def merge_notices(records: list[dict]) -> list[RowNote]:
    """One line per sample that several records gave: which records were merged, and whether their per-fold
    results are identical (else the largest per-fold UAR difference, and which record the report used); and one
    per row and seed whose records ran on other feature content under one file name, which are kept apart."""
    varying = shown_in(group_runs(records))
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
        notices.append(RowNote(key, "merged", f"merged {len(same)} records of the same run/seed: "
                               f"{row_label(key, varying)} on {corpus_label(key)} {key.features}, {key.cv} "
                               f"{key.folds}-fold, seed {seed} ({names}): {how}; counted once"))
    for (key, seed), count in contents.items():
        if count > 1:
            notices.append(RowNote(key, "not_merged", f"not merged: {row_label(key, varying)} on {corpus_label(key)} "
                                   f"{key.features}, seed {seed}: {count} runs whose test folds hold other labels, so "
                                   "other feature content under one file name; each is counted as a run of its own "
                                   "(name the files apart to keep them in rows of their own)"))
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


class Shown(dict):
    """``shown_settings``' answer: {(model, corpus): names of the settings shown}, and ``sources``: {a fine-tuning
    source's folder (``init_from``): the name the rows give it}."""

    def __init__(self, names: dict, sources: dict):
        super().__init__(names)
        self.sources = sources


def source_names(folders) -> dict:
    """{folder: its name in a report} for the fine-tuning sources ``folders``: its basename, with as many of the
    folders above it as tell it from the others (``a/Models/EMODB_46`` and ``b/Models/EMODB_46``): two base runs of
    one name in different folders read as one, their rows labelled alike. No more of a machine's path than that."""
    parts = {}
    for folder in {os.path.normpath(folder) for folder in folders}:
        names = folder.split(os.sep)
        parts[folder] = [os.sep if not name and i == 0 else name for i, name in enumerate(names) if name or i == 0]
    shown = {}
    for folder, names in parts.items():
        depth = next((d for d in range(1, len(names)) if all(other[-d:] != names[-d:]
                                                             for key, other in parts.items() if key != folder)),
                     len(names))
        shown[folder] = os.path.join(*names[-depth:])
    return shown


def shown_settings(rows: list[tuple[str, str, tuple]]) -> Shown:
    """{(model, corpus): names} of the settings whose values differ between the rows of one model and corpus
    ((model, corpus, settings), ...) where some row's value is not told by ``_changed``: the epochs (the within-corpus
    table has their column, the cross-corpus one not), a setting without a default known here (a dataset's own
    block count, a several-corpora run's label map), one an older record lacks (None). A row names them as it names
    those it holds off its model's defaults (``settings_text``), so that no two rows read alike."""
    seen, untold = defaultdict(set), defaultdict(set)
    for model, data, settings in rows:
        defaults = _defaults(model, data)
        for name, value in settings:
            seen[(model, data, name)].add(repr(value))
            if name == "epochs" or name not in defaults or (value is None and defaults[name] is not None):
                untold[(model, data)].add(name)
    sources = source_names(value for _, _, settings in rows for name, value in settings
                           if name == "init_from" and isinstance(value, str))
    return Shown({pair: {name for name in names if len(seen[(*pair, name)]) > 1} for pair, names in untold.items()},
                 sources)


def shown_in(groups: list[tuple[GroupKey, list[dict]]]) -> Shown:
    """``shown_settings`` of the within-corpus rows ``groups`` (``group_runs``)."""
    return shown_settings([(key.model, key.data, key.settings) for key, _ in groups])


def settings_text(model: str, data: str, settings: tuple, varying: Shown) -> str:
    """A row's settings cell: each of its settings at another value than its model's default on its corpus (a lone
    bf16 row said nothing of it; a default row listed its defaults where another row differed), the epochs only
    where rows of its model differ in them, and those of ``varying`` (``shown_settings``); "" where none."""
    changed = _changed(model, data, settings) - {"epochs"}
    shown = changed | varying.get((model, data), set())
    return ", ".join(f"{name}={_shown_value(name, value, varying.sources)}" for name, value in settings
                     if name in shown)


def _shown_value(name: str, value, sources: dict) -> str:
    """A setting's value as a row names it: mixed precision by its flag's word, a fine-tuning source by its
    folder's name (``sources``: ``source_names`` of the rows ``shown_settings`` read, this one's among them; no
    machine's path in a report)."""
    if name == "mixed_precision":
        return precision.flag_word(value)
    if name == "init_from" and isinstance(value, str):
        return sources[os.path.normpath(value)]
    return str(value)


def model_label(key: GroupKey) -> str:
    return key.model + (f" ({key.variant})" if key.variant else "")


def corpus_label(key: GroupKey) -> str:
    return key.data + (" (synthetic)" if key.synthetic else "")


def row_label(key: GroupKey, varying: Shown) -> str:
    """Model, protocol and the settings cell: what tells two rows of one corpus and fold scheme apart."""
    text = settings_text(key.model, key.data, key.settings, varying)
    return f"{model_label(key)}, {key.protocol}" + (f" ({text})" if text else "")
