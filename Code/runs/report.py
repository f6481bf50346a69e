"""The papers' results table, regenerated from the JSON records that runs wrote under ``Results/``, with statistics.

One row per (model, corpus, feature file, protocol, cross-validation, training settings): our UAR and WAR as
mean ± std over the distinct runs (seeds) found, next to the published numbers where the run repeats the papers'
experiment (``published``). A row counts each seed once: records of the same row and seed (re-tests, copies, the
same run trained again bit for bit) are one sample, and the report lists what it merged (``merge_notices``; the
rows and their names: runs/report_rows.py). Per
run, WAR is the mean of the per-fold accuracies (the authors' "Average ACC") and UAR the macro recall pooled over
all folds (what the authors' UAR matches). Over the r seeds x k folds of a row, the per-fold UAR and WAR also get
their mean ± std and a 95 % confidence interval that never leaves [0, 100] (``significance.CI_METHOD``); the
formulae and their sources are in docs/statistics.md. A second table compares, with paired tests
(Wilcoxon, McNemar), every two rows run on the same corpus, feature file, seeds and test folds; a figure shows each
corpus' UAR with its interval per row. Written as Markdown, LaTeX, CSV and PNG; the notes report.md and report.tex
print under the table are carried by the CSV's rows they concern (``with_row_notes``). Knows nothing about TensorFlow.

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

from ..core.atomic_file import atomic_write, one_commit
from ..core.errors import UserError
from ..core.figures import plain_text
from ..core.paths import shown
from . import results, significance
from .report_rows import (
    PAPER_LABEL,
    PUBLISHED_FOLDS,
    RowNote,
    corpus_label,
    features_unchecked,
    group_runs,
    merge_notices,
    model_label,
    published,
    row_label,
    run_settings,
    settings_text,
    shown_in,
    shown_settings,
    with_smoothing_history,
)
from .results_records import load_records
from .table_formats import to_csv, to_latex, to_markdown

CROSS_NOTE = ("Each test scores the utterances of the test corpus whose class the label map puts among the run's "
              "classes, by the mean probability of the run's fold models (a cross-corpus figure only where they "
              "never saw those utterances); UAR and WAR pooled over those utterances. Never averaged with the "
              "within-corpus rows above.")


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * float(np.mean(values))
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {100 * float(np.std(values)):.2f}"


def _published(value) -> str:
    return "–" if value is None else f"{value:.2f}"


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


def row_lines(groups: list) -> list[RowNote]:
    """The lines under the table about one row each, of ``groups`` (``group_runs``): first each row some of whose
    folds predicted a single class for a test fold of several (``results.constant_folds``: their UAR is chance,
    whatever the classes), then each row that re-tested a folder without run.json (the authors' weights,
    ``features_unchecked``: nothing records the features its weights trained on, so a published figure for them
    is no yardstick here)."""
    varying = shown_in(groups)
    one_class, unchecked = [], []
    for key, runs in groups:
        row = f"{row_label(key, varying)} on {corpus_label(key)} {key.features}"
        folds = [fold for run in runs for fold in run["folds"]]
        constant = results.constant_folds(folds)
        if constant:
            one_class.append(RowNote(key, "one_class", f"{row}: {constant} of {len(folds)} folds predicted one class "
                                     "for every utterance (a constant prediction)"))
        if any(features_unchecked(run) for run in runs):
            unchecked.append(RowNote(key, "features_not_checked", f"{row}: {results.features_not_checked(key.data)}"))
    return one_class + unchecked


class TableNote(NamedTuple):
    """A sentence of the note under the results table: its key (report.csv's ``note keys``), its text, and the
    rows (positions in the table) it is about; ``rows`` None: a definition that holds for every row, said once under
    the table and in docs/statistics.md, and carried by no row of report.csv."""

    key: str
    text: str
    rows: frozenset | None = None


def table_notes(table: pd.DataFrame, groups: list) -> list[TableNote]:
    """The note under the results ``table`` of ``groups`` (``group_runs``), sentence by sentence; those about some
    rows only are there where a row has them (the population std, where every row has one run, still defines its
    column)."""
    def rows(test) -> frozenset:
        return frozenset(i for i, (key, runs) in enumerate(groups) if test(i, key, runs))

    def chosen_by(runs: list[dict]) -> set:  # what chose the weights: a re-test's run's protocol, or its own
        return {run["config"].get("protocol") if run.get("mode") == "test" else run.get("protocol") for run in runs}
    # the column is there only where a row names a setting (report footnote named a column the table lacked)
    settings_said = ("`settings` names those that are not" if "settings" in table.columns else
                     "here every row's are, so the table has no `settings` column")
    cells = [table[column].tolist() for column in ("UAR % 95% CI", "WAR % 95% CI")]
    notes = [
        TableNote("runs", "`runs`: distinct runs, one per seed: re-tests, copies and repeats of a run with the same "
                  "settings, seed and feature file count once (merged records are listed below the table)."),
        TableNote("population_std", "UAR % (pooled): macro recall pooled over folds; WAR % (mean of folds): mean of "
                  "per-fold accuracies; there ± is the population std (1/r) over the r runs.",
                  rows(lambda i, key, runs: len(runs) > 1)),
        TableNote("interval", "`mean ± std` and `95% CI`: over the per-fold values of every seed and fold of a row, "
                  f"± the sample std; the interval is the {significance.CI_METHOD}."),
        TableNote("published", "Published figures (TIM-Net: Ye et al., ICASSP 2023; GM-TCNet: Ye et al., Speech "
                  "Communication 2022; DCNN-BLSTMwA: Zhang et al. 2021, speaker-independent) appear only beside "
                  "training runs that repeat the papers' experiment: the same protocol, "
                  f"{PUBLISHED_FOLDS}-fold shuffled KFold (or one fold per speaker), on the full corpus, i.e. the "
                  "default feature file `MFCC/<KEY>.npy` with the corpus' number of utterances, every setting at the "
                  f"model's default ({settings_said}, `epochs` gives the epochs)."),
        TableNote("selected_on_test_fold", "A `paper` row's weights are those of each fold's epoch best on its test "
                  "fold (SELECTED ON THE TEST FOLD): an optimistic figure.",
                  rows(lambda i, key, runs: "paper" in chosen_by(runs))),
        TableNote("selected_on_validation", "An `inner_val` row's weights are those of each fold's epoch best on a "
                  "validation split of its training fold.", rows(lambda i, key, runs: "inner_val" in chosen_by(runs))),
        TableNote("sources", "Formulae, merging and sources: docs/statistics.md in the repository."),
        TableNote("clipped_interval", f"`*`: the {significance.CLIPPED_METHOD}.",
                  rows(lambda i, key, runs: any(column[i].endswith("*") for column in cells))),
        TableNote("no_spread", f"`no spread`: {significance.NO_SPREAD_METHOD}.",
                  rows(lambda i, key, runs: any(column[i] == "no spread" for column in cells))),
    ]
    return [note for note in notes if note.rows is None or note.rows or note.key == "population_std"]


def with_row_notes(table: pd.DataFrame, groups: list, notes: list[TableNote], lines: list[RowNote]) -> pd.DataFrame:
    """``table`` (``build_table`` of ``groups``) with the notes of each row, for report.csv, where no note sits
    under the table: ``note keys`` and ``notes``, JSON lists of the keys and the texts of the sentences of the
    table's note about that row (``TableNote.rows``) and of the lines under the table that name it (``RowNote``),
    each text as report.md prints it; ``[]`` where none."""
    keyed = []
    for i, (key, _) in enumerate(groups):
        row = [(note.key, note.text) for note in notes if note.rows is not None and i in note.rows]
        keyed.append(row + [(line.key, line.text) for line in lines if line.row == key])
    return table.assign(**{"note keys": [json.dumps([k for k, _ in row]) for row in keyed],
                           "notes": [json.dumps([text for _, text in row], ensure_ascii=False) for row in keyed]})


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
    default (``settings_text``); a "per corpus" column
    (each corpus' pooled UAR / WAR) when some row trained on several corpora (--data A+B).
    """
    groups = group_runs(records)
    varying = shown_in(groups)
    rows = []
    for key, runs in groups:
        # shown only when every run of the row repeats the same published experiment
        figures = {published(run) for run in runs}
        uar, war = figures.pop() if len(figures) == 1 else (None, None)
        uar_interval, war_interval = significance.run_interval(runs, "uar"), significance.run_interval(runs, "war")
        row = {"model": model_label(key), "corpus": corpus_label(key), "features": key.features,
               "protocol": key.protocol, "settings": settings_text(key.model, key.data, key.settings, varying) or "–"}
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
        protocol = with_smoothing_history(PAPER_LABEL if protocol == "paper" else protocol, config)
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
    varying = shown_settings([(key.network, key.train, key.settings) for key in keys])
    rows = []
    for key in keys:
        row = {"model": key.model, "trained on": key.train, "features": key.features, "protocol": key.protocol,
               "settings": settings_text(key.network, key.train, key.settings, varying) or "–"}
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
    varying = shown_in(groups)
    same_data = defaultdict(list)
    for key, runs in groups:
        same_data[(key.data, key.features, key.cv, key.folds, key.synthetic)].append((key, runs))
    rows, refused, tests = [], [], []
    for members in same_data.values():
        for (key_a, runs_a), (key_b, runs_b) in itertools.combinations(members, 2):
            a, b = row_label(key_a, varying), row_label(key_b, varying)
            try:
                result = significance.compare(*_shared_seeds(runs_a, runs_b))
            except significance.PairingError as exc:
                refused.append(f"{a} vs {b} on {corpus_label(key_a)} {key_a.features}: {exc}")
                continue
            tests.append(result)
            rows.append([corpus_label(key_a), key_a.features, key_a.cv, key_a.folds, " ".join(map(str, result.seeds)),
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
    varying = shown_in(groups)
    panels = defaultdict(list)
    for key, runs in groups:
        interval = significance.run_interval(runs, "uar")
        # the table's marks: a dot alone read as "no interval", a clipped interval as one on the logit scale
        mark = {significance.CLIPPED_METHOD: " *",
                significance.NO_SPREAD_METHOD: " (no spread)"}.get(interval.method, "")
        label = f"{row_label(key, varying)} [{key.features}, {key.cv} {key.folds}-fold]{mark}"
        panels[corpus_label(key)].append((label, interval))
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
    groups = group_runs(records)
    notes = table_notes(table, groups) if records else []
    note = " ".join(sentence.text for sentence in notes)
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
    lines = merge_notices(records) + row_lines(groups)
    notices = [line.text for line in lines]
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
    csv_table = with_row_notes(table, groups, notes, lines) if records else table
    texts = {"md": markdown, "tex": latex, "csv": to_csv(csv_table), "paired_csv": to_csv(comparisons)}
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
