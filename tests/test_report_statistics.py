"""Statistics of ``--mode report``: the corrected CV interval (plain and on the logit scale, never outside [0, 100]),
Wilcoxon and McNemar against scipy on hand-made fold results, refusal of unpaired runs, and a report over
hand-written result JSONs (columns, paired table, figure, rows that must stay apart, repeats of a run counted once,
published figures only beside the papers' experiment, references that exist in the repository)."""

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import recall_score
from sklearn.model_selection import KFold

from timnet_ser.runs import report, report_rows, results, results_records, significance, table_formats

CLASSES = ["angry", "happy", "sad"]
LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]  # 12 utterances, 4 per class
FEATURES = "/data/TOY_features.npy"


# --- the interval ------------------------------------------------------------------------------------------------

def test_corrected_interval_is_the_nadeau_bengio_t_interval():
    values = [0.80, 0.85, 0.78, 0.90, 0.82, 0.88]  # r = 2 seeds x k = 3 folds
    ratio = 1 / 2  # 3-fold: each test fold is half the size of its training set
    interval = significance.corrected_t_interval(values, ratio)
    scale = math.sqrt(np.var(values, ddof=1) * (1 / 6 + ratio))
    low, high = stats.t.interval(0.95, df=5, loc=np.mean(values), scale=scale)
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.std == pytest.approx(np.std(values, ddof=1))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.high - interval.low == pytest.approx(2 * stats.t.ppf(0.975, 5) * scale)
    assert "Nadeau & Bengio" in interval.method
    # the plain t-interval over folds (variance s^2 / n) is narrower: the correction widens it
    plain = stats.t.interval(0.95, df=5, loc=np.mean(values), scale=np.std(values, ddof=1) / math.sqrt(6))
    assert plain[1] - plain[0] < interval.high - interval.low


def test_one_value_has_no_interval():
    interval = significance.corrected_t_interval([0.7], 1 / 9)
    assert interval.mean == pytest.approx(0.7) and interval.n == 1
    assert math.isnan(interval.std) and math.isnan(interval.low) and math.isnan(interval.high)


def _logit_interval(values, ratio):
    """The report's interval computed by hand: the values' logits, the corrected t-interval of those, mapped
    back."""
    z = [math.log(q / (1 - q)) for q in values]
    scale = math.sqrt(np.var(z, ddof=1) * (1 / len(z) + ratio))
    low, high = stats.t.interval(0.95, df=len(z) - 1, loc=np.mean(z), scale=scale)
    return 1 / (1 + math.exp(-low)), 1 / (1 + math.exp(-high))


def test_interval_of_runs_takes_the_test_train_ratio_from_the_fold_sizes():
    runs = [{"folds": [{"uar": 0.5, "n": 40}, {"uar": 0.7, "n": 40}, {"uar": 0.6, "n": 50}]},
            {"folds": [{"uar": 0.9, "n": 40}, {"uar": 0.8, "n": 40}, {"uar": 0.4, "n": 50}]}]
    ratio = np.mean([40 / 90, 40 / 90, 50 / 80] * 2)  # 130 utterances: a fold of 40 trains on 90, one of 50 on 80
    values = [0.5, 0.7, 0.6, 0.9, 0.8, 0.4]
    interval = significance.run_interval(runs, "uar")
    assert interval == significance.logit_t_interval(values, ratio)
    assert (interval.mean, interval.std, interval.n) == pytest.approx((np.mean(values), np.std(values, ddof=1), 6))
    assert (interval.low, interval.high) == pytest.approx(_logit_interval(values, ratio))
    assert "logit" in interval.method and "Nadeau & Bengio" in interval.method


@pytest.mark.parametrize("values", [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 1.0, 0.5, 0.0, 0.0],
                                    [0.0, 0.40, 0.02, 0.45, 0.0, 0.38]])
def test_folds_at_0_or_100_percent_get_the_plain_interval_clipped(values):
    """A 0 or 1 has no logit. Held half an utterance inside [0, 1], leave-one-out folds' 0 and 1 both became 0.5 and
    the interval collapsed onto [50, 50], outside its own mean of 16.67 (six folds, one right); and the larger the
    folds, the further out a held 0 went: one set of values gave an upper bound of 53 % with folds of 10 utterances,
    86 % with folds of 10000."""
    interval = significance.logit_t_interval(values, 1 / 5)
    plain = significance.corrected_t_interval(values, 1 / 5)
    assert interval.method == significance.CLIPPED_METHOD
    assert (interval.low, interval.high) == (max(plain.low, 0.0), min(plain.high, 1.0))
    assert 0 <= interval.low < interval.mean < interval.high <= 1
    assert report._ci(interval).endswith("]*")


# every case: per-fold values of a 5-fold split (n_test / n_train = 1/4)
EXTREMES = {
    "all folds 0 %": [0.0] * 10,
    "near 0 %": [0.0, 0.02, 0.0, 0.0, 0.04, 0.0, 0.0, 0.02, 0.0, 0.0],
    "all folds 100 %": [1.0] * 10,
    "near 100 %": [1.0, 0.98, 1.0, 1.0, 0.96, 1.0, 1.0, 0.98, 1.0, 1.0],
    # two seeds of a near-chance 5-fold run: the plain interval goes below 0 (the issue's [-1.49, 36.83])
    "near chance, wide spread": [0.0, 0.40, 0.02, 0.45, 0.0, 0.38, 0.01, 0.42, 0.0, 0.36],
    "near chance, no fold at 0": [0.01, 0.40, 0.02, 0.45, 0.01, 0.38, 0.01, 0.42, 0.02, 0.36],
    "near 100 %, no fold at 100": [0.99, 0.98, 0.995, 0.99, 0.96, 0.99, 0.995, 0.98, 0.99, 0.99],
    "one fold at 0, one at 100": [0.0, 1.0],
}


@pytest.mark.parametrize("case", EXTREMES)
def test_no_interval_leaves_0_to_100(case):
    values = EXTREMES[case]
    ratio = 1 / 4
    interval = significance.logit_t_interval(values, ratio)
    assert interval.mean == pytest.approx(np.mean(values))
    if len(set(values)) == 1:  # no spread: no interval (a zero-width [x, x] read as certainty)
        assert math.isnan(interval.low) and math.isnan(interval.high)
        assert interval.method == significance.NO_SPREAD_METHOD and report._ci(interval) == "no spread"
    elif {0.0, 1.0} & set(values):
        assert interval.method == significance.CLIPPED_METHOD and 0 <= interval.low <= interval.high <= 1
    else:
        assert (interval.low, interval.high) == pytest.approx(_logit_interval(values, ratio))
        assert 0 < interval.low < interval.mean < interval.high < 1


def test_the_plain_interval_of_a_near_chance_grid_would_leave_0_to_100():
    """What the logit scale is for: the same values on the plain scale give a negative percentage."""
    values = EXTREMES["near chance, no fold at 0"]
    assert significance.corrected_t_interval(values, 1 / 4).low < 0
    assert significance.corrected_t_interval(EXTREMES["near 100 %, no fold at 100"], 1 / 4).high > 1


@pytest.mark.parametrize("values, ratio, confidence", [([], 0.5, 0.95), ([0.5, 0.6], -1, 0.95),
                                                       ([0.5, 0.6], 0.5, 1.0)])
def test_interval_refuses_bad_arguments(values, ratio, confidence):
    with pytest.raises(ValueError):
        significance.corrected_t_interval(values, ratio, confidence)


# --- paired tests --------------------------------------------------------------------------------------------------

def test_wilcoxon_matches_scipy_and_identical_sides_give_p_one():
    a = [0.81, 0.77, 0.90, 0.85, 0.70, 0.88, 0.79]
    b = [0.75, 0.78, 0.84, 0.80, 0.71, 0.80, 0.72]
    expected = stats.wilcoxon(a, b)
    assert significance.wilcoxon_signed_rank(a, b) == pytest.approx((expected.statistic, expected.pvalue))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy divides by zero here; ours must not get that far
        assert significance.wilcoxon_signed_rank(a, a) == (0.0, 1.0)


def test_mcnemar_counts_the_discordant_pairs_and_matches_binomtest():
    correct_a = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    correct_b = [1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1]
    # A right and B wrong: positions 1, 2, 5, 7, 9 -> b = 5; A wrong and B right: position 6 -> c = 1
    b, c, p = significance.mcnemar_exact(correct_a, correct_b)
    assert (b, c) == (5, 1)
    assert p == pytest.approx(stats.binomtest(5, 6, 0.5, alternative="two-sided").pvalue)
    assert significance.mcnemar_exact([1, 0], [1, 0]) == (0, 0, 1.0)


# --- hand-made runs ------------------------------------------------------------------------------------------------

def _predict(model: str, seed: int, rows) -> list[int]:
    """Hand-made predictions: ``A`` errs on every fourth utterance, ``B`` on every third (shifted by the seed), ``C``
    says the first class of every utterance, ``P`` is right on every one."""
    if model in ("C", "P"):
        return [0 if model == "C" else LABELS[row] for row in rows]
    step = {"A": 4, "B": 3}[model]
    return [(LABELS[row] + 1) % 3 if (row + seed) % step == 0 else LABELS[row] for row in rows]


def _run(model: str, seed: int, predictor: str = "", **extra) -> dict:
    """A results record as the training code writes it, on 3 KFold folds of the 12 utterances."""
    folds = []
    for _, test_rows in KFold(3, shuffle=True, random_state=seed).split(np.arange(len(LABELS))):
        y_true = [LABELS[row] for row in test_rows]
        y_pred = _predict(predictor or model[-1], seed, test_rows)
        folds.append({**results.fold_metrics(y_true, y_pred, CLASSES), "y_true": y_true, "y_pred": y_pred,
                      "test_rows": test_rows.tolist()})
    config = {"model": model, "data": "TOY", "feature_path": FEATURES, "split_fold": 3, "random_seed": seed,
              "cv": "kfold", "protocol": "last_epoch", "epochs": 5, "classes": CLASSES, **extra.pop("config", {})}
    return {"mode": "train", "model": model, "protocol": config["protocol"], "variant": "", "synthetic": False,
            "weights_folder": f"/models/TOY_{seed}_{model}", "config": config, "folds": folds,
            "summary": results.summarize(folds), **extra}


def _uar(y_true, y_pred) -> float:
    return recall_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro")


def test_compare_matches_scipy_on_the_paired_cells():
    runs_a, runs_b = [_run("MODEL_A", s) for s in (1, 2)], [_run("MODEL_B", s) for s in (2, 1)]
    result = significance.compare(runs_a, runs_b)
    uar_a, uar_b, correct_a, correct_b = [], [], [], []
    for seed in (1, 2):
        for _, rows in KFold(3, shuffle=True, random_state=seed).split(np.arange(len(LABELS))):
            y_true = [LABELS[row] for row in rows]
            pred_a, pred_b = _predict("A", seed, rows), _predict("B", seed, rows)
            uar_a.append(_uar(y_true, pred_a))
            uar_b.append(_uar(y_true, pred_b))
            correct_a += [p == t for p, t in zip(pred_a, y_true)]
            correct_b += [p == t for p, t in zip(pred_b, y_true)]
    b = sum(x and not y for x, y in zip(correct_a, correct_b))
    c = sum(y and not x for x, y in zip(correct_a, correct_b))
    assert result.seeds == (1, 2) and result.cells == 6
    assert result.mean_difference == pytest.approx(np.mean(np.subtract(uar_a, uar_b)))
    assert (result.wilcoxon_statistic, result.wilcoxon_p) == pytest.approx(tuple(stats.wilcoxon(uar_a, uar_b)))
    assert (result.mcnemar_b, result.mcnemar_c) == (b, c) and b + c > 0
    assert result.mcnemar_p == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)


def _other_rows(run: dict) -> dict:
    folds = [{**fold, "test_rows": fold["test_rows"][::-1]} for fold in run["folds"]]
    return {**run, "folds": folds}


@pytest.mark.parametrize("change, message", [
    (lambda run: _run("MODEL_B", 3), "different seeds"),
    (lambda run: {**run, "config": {**run["config"], "data": "OTHER"}}, "different corpus"),
    (lambda run: {**run, "config": {**run["config"], "feature_path": "/data/TOY_full.npy"}}, "different feature file"),
    (_other_rows, "different test rows"),
    (lambda run: {**run, "folds": [{k: v for k, v in f.items() if k != "test_rows"} for f in run["folds"]]},
     "without test_rows"),
])
def test_compare_refuses_runs_that_are_not_on_the_same_cells(change, message):
    with pytest.raises(significance.PairingError, match=message):
        significance.compare([_run("MODEL_A", 1)], [change(_run("MODEL_B", 1))])


def test_compare_refuses_a_seed_twice():
    with pytest.raises(significance.PairingError, match="two runs of seed 1"):
        significance.compare([_run("MODEL_A", 1), _run("MODEL_A", 1)], [_run("MODEL_B", 1)])


# --- the report ----------------------------------------------------------------------------------------------------

def _write(folder, name: str, record: dict) -> None:
    with open(folder / f"{name}.json", "w") as f:
        json.dump(record, f)


def _retest(seed: int, trained_seed: int, retest) -> dict:
    record = _run("MODEL_A", seed, retest=retest)
    return {**record, "mode": "test", "protocol": "test", "weights_folder": f"/models/TOY_{trained_seed}_MODEL_A"}


def test_report_statistics_paired_table_figure_and_rows_kept_apart(tmp_path, capsys):
    for seed in (1, 2):
        _write(tmp_path, f"a{seed}", _run("MODEL_A", seed))
        _write(tmp_path, f"b{seed}", _run("MODEL_B", seed))
    _write(tmp_path, "cumulative", _run("MODEL_A", 1, config={"label_smoothing_history": "cumulative"}))
    _write(tmp_path, "own", _retest(1, 1, None))  # an older re-test record: no "retest" field
    _write(tmp_path, "other", _retest(47, 1, {"split": "other", "features": "own", "label": "seed 47"}))
    # other features under the same file name: told apart by the record's "retest", never by the name
    _write(tmp_path, "features", _retest(1, 1, {"split": "own", "features": "other",
                                                 "label": "OTHER FEATURES (TOY_features.npy, not the run's)"}))
    paths = report.write_report(str(tmp_path))
    printed = capsys.readouterr().out

    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert {"UAR % 95% CI", "WAR % 95% CI", "UAR % mean ± std", "WAR % mean ± std", "UAR % (pooled)"} <= set(table[0])
    by_protocol = {(row["model"], row["protocol"]): row for row in table}
    assert len(table) == 6
    assert by_protocol[("MODEL_A", "last_epoch")]["runs"] == "2"
    assert by_protocol[("MODEL_A", "last_epoch, cumulative smoothing")]["seeds"] == "1"
    assert by_protocol[("MODEL_A", "test of TOY_1_MODEL_A")]["seeds"] == "1"
    assert by_protocol[("MODEL_A", "test of TOY_1_MODEL_A (OTHER SPLIT; seed 47)")]["seeds"] == "47"
    assert by_protocol[("MODEL_A", "test of TOY_1_MODEL_A (OTHER FEATURES (TOY_features.npy, not the run's))")][
        "runs"] == "1"
    # the CI cell is the corrected interval of the 6 per-fold UAR values of MODEL_A (3-fold of 12: folds of 4,
    # ratio 4/8), on the plain scale clipped to [0, 100] and marked: a fold at 100 % has no logit
    values = [fold["uar"] for seed in (1, 2) for fold in _run("MODEL_A", seed)["folds"]]
    scale = math.sqrt(np.var(values, ddof=1) * (1 / 6 + 4 / 8))
    low, high = stats.t.interval(0.95, df=5, loc=np.mean(values), scale=scale)
    assert by_protocol[("MODEL_A", "last_epoch")]["UAR % 95% CI"] == \
        f"[{100 * max(low, 0):.2f}, {100 * min(high, 1):.2f}]*"
    assert f"`*`: the {significance.CLIPPED_METHOD}." in open(paths["md"]).read()

    with open(paths["paired_csv"]) as f:
        paired = {(row["A"], row["B"]): row for row in csv.DictReader(f)}
    row = paired[("MODEL_A, last_epoch", "MODEL_B, last_epoch")]
    expected = significance.compare([_run("MODEL_A", s) for s in (1, 2)], [_run("MODEL_B", s) for s in (1, 2)])
    uar_a = [fold["uar"] for s in (1, 2) for fold in _run("MODEL_A", s)["folds"]]
    uar_b = [fold["uar"] for s in (1, 2) for fold in _run("MODEL_B", s)["folds"]]
    assert row["seeds"] == "1 2" and row["pairs (seed, fold)"] == "6"
    assert row["Wilcoxon p"] == f"{stats.wilcoxon(uar_a, uar_b).pvalue:.3g}"
    b, c = expected.mcnemar_b, expected.mcnemar_c
    assert (row["McNemar b (A right, B wrong)"], row["McNemar c (A wrong, B right)"]) == (str(b), str(c))
    assert row["McNemar p"] == f"{stats.binomtest(b, b + c, 0.5).pvalue:.3g}"
    # three tests in the table: each p beside its Holm adjustment, the smallest one times three
    assert len(paired) == 3
    for test in ("Wilcoxon", "McNemar"):
        raw = {pair: float(cells[f"{test} p"]) for pair, cells in paired.items()}
        adjusted = {pair: float(cells[f"{test} p (Holm)"]) for pair, cells in paired.items()}
        assert all(raw[pair] <= adjusted[pair] <= 1 for pair in paired)
        smallest = min(raw, key=raw.get)
        assert adjusted[smallest] == pytest.approx(min(1.0, 3 * raw[smallest]), rel=1e-2)
    # training runs only: a re-test repeats a run's predictions, so pairing it with the run would test nothing
    assert ("MODEL_A, last_epoch", "MODEL_A, last_epoch, cumulative smoothing") in paired
    assert not any("test of" in a + b for a, b in paired)

    with open(paths["md"]) as f:
        markdown = f.read()
    assert "| UAR % 95% CI |" in markdown and "Nadeau & Bengio 2003" in markdown
    assert "## Paired comparisons" in markdown and "Wilcoxon p" in markdown
    assert "Wilcoxon p" in printed and "wrote figure" in printed
    with open(paths["tex"]) as f:
        assert "tab:ser-paired" in f.read()
    with open(paths["figure"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(paths["figure"]) > 5000


def test_holm_adjusts_as_holm_1979():
    # sorted 0.005 0.01 0.03 0.04, times 4 3 2 1: 0.02 0.03 0.06 0.04, the last kept from falling below 0.06
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert significance.holm([0.5, 0.9]) == [1.0, 1.0] and significance.holm([]) == []


def test_a_row_whose_folds_predict_one_class_is_said_and_has_no_interval(tmp_path, capsys):
    """A model that says one class for everything scores chance in every fold: 1 / (the classes in the fold), above
    1/3 here where a fold of 4 utterances lacks a class; said below the table. Where every fold scores the same
    (every fold right, or a constant model's folds that each hold every class), the interval was [x, x],
    certainty: now none."""
    for seed in (1, 2):
        _write(tmp_path, f"c{seed}", _run("MODEL_C", seed))
        _write(tmp_path, f"a{seed}", _run("MODEL_A", seed))
        _write(tmp_path, f"d{seed}", _run("MODEL_D", seed, predictor="P"))
    rows = _table_of(tmp_path)
    assert rows[("MODEL_D", "last_epoch")]["UAR % 95% CI"] == "no spread"
    assert rows[("MODEL_D", "last_epoch")]["UAR % mean ± std"] == "100.00 ± 0.00"
    assert rows[("MODEL_A", "last_epoch")]["UAR % 95% CI"] != "no spread"
    with open(tmp_path / "report.md") as f:
        markdown = f.read()
    assert "MODEL_C, last_epoch on TOY TOY_features.npy: 6 of 6 folds predicted one class for every utterance" \
        in markdown
    assert "MODEL_A, last_epoch on TOY TOY_features.npy:" not in markdown
    assert f"`no spread`: {significance.NO_SPREAD_METHOD}." in markdown


def test_a_paper_row_is_labelled_as_selected_on_the_test_fold(tmp_path, capsys):
    _write(tmp_path, "paper", _run("MODEL_A", 1, config={"protocol": "paper"}))
    assert list(_table_of(tmp_path)) == [("MODEL_A", "paper (SELECTED ON THE TEST FOLD)")]


def test_rows_that_cannot_be_paired_are_said_in_the_markdown_and_the_latex(tmp_path, capsys):
    """report.tex left out the report.md's "not paired" lines: a LaTeX reader never learnt why two rows had no
    comparison."""
    for seed in (1, 2):
        _write(tmp_path, f"a{seed}", _run("MODEL_A", seed))
    _write(tmp_path, "b1", _run("MODEL_B", 3))  # no seed shared with MODEL_A: no pair
    _write(tmp_path, "c1", _run("MODEL_C", 1, predictor="A"))
    paths = report.write_report(str(tmp_path))
    capsys.readouterr()
    markdown, latex = (open(paths[kind]).read() for kind in ("md", "tex"))
    assert "- not paired: MODEL_A, last_epoch vs MODEL_B, last_epoch on TOY TOY_features.npy: different seeds: " \
           "[1, 2] against [3]" in markdown, markdown
    assert "tab:ser-paired" in latex  # A against C pairs: the refusal is in that table's caption
    caption = next(line for line in latex.splitlines() if line.startswith("\\caption{Paired comparisons."))
    assert "Not paired: MODEL\\_A, last\\_epoch vs MODEL\\_B, last\\_epoch on TOY TOY\\_features.npy: different " \
           "seeds: [1, 2] against [3]." in caption, caption
    os.remove(tmp_path / "c1.json")  # no pair at all: the refusal goes in the results table's caption
    latex = open(report.write_report(str(tmp_path))["tex"]).read()
    capsys.readouterr()
    assert "tab:ser-paired" not in latex and "Not paired: MODEL\\_A, last\\_epoch vs MODEL\\_B" in latex, latex


def test_differing_training_settings_are_separate_rows_with_a_settings_column(tmp_path, capsys):
    _write(tmp_path, "short", _run("MODEL_A", 1))
    _write(tmp_path, "long", _run("MODEL_A", 2, config={"epochs": 50}))
    table = report.build_table(results_records.load_records(str(tmp_path)))
    # two rows of one model that differ in their epochs alone: named, or the paired table and the figure would
    # label them alike (the cross-corpus table has no epochs column)
    assert list(table["epochs"]) == [5, 50] and list(table["runs"]) == [1, 1]
    assert list(table["settings"]) == ["epochs=5", "epochs=50"]
    _write(tmp_path, "fast", _run("MODEL_A", 3, config={"lr": 0.01, "init_from": "/home/u/Models/SRC_1_run"}))
    table = report.build_table(results_records.load_records(str(tmp_path)))
    # a row names what it holds off the defaults (a default row listed its defaults before), a fine-tuning source
    # by its folder's name (no machine's path in a report); these hand-made records lack lr: said where it differs
    assert sorted(table["settings"]) == ["epochs=5, lr=0.01, init_from=SRC_1_run", "epochs=5, lr=None",
                                         "epochs=50, lr=None"]
    capsys.readouterr()


def test_report_does_not_import_tensorflow():
    check = "import sys, timnet_ser.runs.report; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# --- one sample per distinct run -------------------------------------------------------------------------------

def _table_of(folder) -> dict:
    """{(model, protocol): row} of the report written in ``folder``."""
    with open(report.write_report(str(folder))["csv"]) as f:
        return {(row["model"], row["protocol"]): row for row in csv.DictReader(f)}


def test_a_run_retested_three_times_and_trained_twice_gives_the_interval_of_the_run_alone(tmp_path, capsys):
    alone, repeated = tmp_path / "alone", tmp_path / "repeated"
    alone.mkdir()
    repeated.mkdir()
    _write(alone, "run", _run("MODEL_A", 1))
    _write(alone, "retest", _retest(1, 1, {"split": "own", "features": "own", "label": ""}))
    # the same run trained again bit for bit (another run folder, another results file) and re-tested three times
    _write(repeated, "run", _run("MODEL_A", 1))
    _write(repeated, "run_again", {**_run("MODEL_A", 1), "weights_folder": "/models/TOY_1_again_MODEL_A"})
    for i in range(3):
        _write(repeated, f"retest{i}", _retest(1, 1, {"split": "own", "features": "own", "label": ""}))
    expected, rows = _table_of(alone), _table_of(repeated)
    printed = capsys.readouterr().out
    assert set(rows) == set(expected) == {("MODEL_A", "last_epoch"), ("MODEL_A", "test of TOY_1_MODEL_A")}
    for key, row in rows.items():
        assert row["runs"] == "1" and row["seeds"] == "1"
        for column in ("UAR % 95% CI", "WAR % 95% CI", "UAR % mean ± std", "WAR % mean ± std", "UAR % (pooled)"):
            assert row[column] == expected[key][column]
    assert "merged 2 records of the same run/seed: MODEL_A, last_epoch on TOY TOY_features.npy, kfold 3-fold, " \
           "seed 1 (run.json, run_again.json): identical per-fold results; counted once" in printed
    assert "merged 3 records of the same run/seed: MODEL_A, test of TOY_1_MODEL_A" in printed
    assert "(retest0.json, retest1.json, retest2.json)" in printed
    assert not re.search(r"^- merged", (alone / "report.md").read_text(), re.M)
    assert re.search(r"^- merged 2 records", (repeated / "report.md").read_text(), re.M)


def test_other_seeds_stay_samples_and_a_differing_repeat_is_named(tmp_path, capsys):
    _write(tmp_path, "a1", _run("MODEL_A", 1))
    _write(tmp_path, "a2", _run("MODEL_A", 2))
    # the same seed and settings with other predictions (another feature file under the same name, or a
    # non-deterministic device): still one seed, one sample; the first file's results are used
    _write(tmp_path, "a2_other", _run("MODEL_A", 2, predictor="B"))
    rows = _table_of(tmp_path)
    printed = capsys.readouterr().out
    assert rows[("MODEL_A", "last_epoch")]["runs"] == "2" and rows[("MODEL_A", "last_epoch")]["seeds"] == "1 2"
    expected = significance.run_interval([_run("MODEL_A", 1), _run("MODEL_A", 2)], "uar")
    assert rows[("MODEL_A", "last_epoch")]["UAR % 95% CI"] == report._ci(expected)
    gap = max(abs(a["uar"] - b["uar"]) for a, b in zip(_run("MODEL_A", 2)["folds"],
                                                      _run("MODEL_A", 2, predictor="B")["folds"]))
    assert gap > 0
    assert f"seed 2 (a2.json, a2_other.json): per-fold UAR differs by up to {100 * gap:.2f} points; the oldest " \
           "run's is used (a2.json); counted once" in printed


def test_the_record_kept_of_a_repeat_does_not_depend_on_its_result_and_other_content_is_kept_apart(tmp_path,
                                                                                                  capsys):
    """The first by file name was kept, and a file name holds the run's mean WAR: the outcome chose the record.
    Records of one seed whose test folds hold other labels (rows reordered under one file name) were merged."""
    newer = {**_run("MODEL_A", 2, predictor="B"), "weights_folder": "/models/TOY_2_2026-02-01_MODEL_A"}
    older = {**_run("MODEL_A", 2), "weights_folder": "/models/TOY_2_2026-01-01_MODEL_A"}
    _write(tmp_path, "TOY_3fold_10.00", newer)  # sorts first by name
    _write(tmp_path, "TOY_3fold_90.00", older)
    rows = _table_of(tmp_path)
    assert rows[("MODEL_A", "last_epoch")]["UAR % (pooled)"] == f"{100 * older['summary']['uar_pooled']:.2f}"
    assert "the oldest run's is used (TOY_3fold_90.00.json)" in capsys.readouterr().out
    other = _run("MODEL_A", 2)  # the same seed on other content: every true label another
    for fold in other["folds"]:
        fold["y_true"] = [(t + 1) % len(CLASSES) for t in fold["y_true"]]
        fold.update(results.fold_metrics(fold["y_true"], fold["y_pred"], CLASSES))
    other["summary"] = results.summarize(other["folds"])
    _write(tmp_path, "reordered", {**other, "weights_folder": "/models/TOY_2_2026-03-01_MODEL_A"})
    rows = _table_of(tmp_path)
    assert rows[("MODEL_A", "last_epoch")]["runs"] == "2"
    assert "not merged: MODEL_A, last_epoch on TOY TOY_features.npy, seed 2: 2 runs whose test folds hold other " \
           "labels" in capsys.readouterr().out


def test_of_one_runs_retests_the_oldest_results_file_is_kept_whatever_its_result(tmp_path, capsys):
    """Re-tests share their weights folder, so the file name decided, and it begins with the mean WAR: a later
    re-test with other predictions (a non-deterministic device) was used because its WAR sorted first."""
    own = {"split": "own", "features": "own", "label": ""}
    older, newer = _retest(1, 1, own), {**_run("MODEL_A", 1, predictor="B", retest=own), "mode": "test",
                                        "protocol": "test", "weights_folder": "/models/TOY_1_MODEL_A"}
    _write(tmp_path, "TOY_3fold_90.00_1_2026-01-02_10-00-00_MODEL_A_test", older)
    _write(tmp_path, "TOY_3fold_10.00_1_2026-01-02_11-00-00_MODEL_A_test", newer)  # sorts first by name
    row = _table_of(tmp_path)[("MODEL_A", "test of TOY_1_MODEL_A")]
    assert row["UAR % (pooled)"] == f"{100 * older['summary']['uar_pooled']:.2f}" != \
        f"{100 * newer['summary']['uar_pooled']:.2f}"
    assert "the oldest run's is used (TOY_3fold_90.00_1_2026-01-02_10-00-00_MODEL_A_test.json)" in \
        capsys.readouterr().out


def test_merged_repeats_can_be_paired(tmp_path, capsys):
    """A repeat of a run is one sample for the paired tests too, not 'two runs of seed 1'."""
    _write(tmp_path, "a", _run("MODEL_A", 1))
    _write(tmp_path, "a_again", {**_run("MODEL_A", 1), "weights_folder": "/models/again"})
    _write(tmp_path, "b", _run("MODEL_B", 1))
    comparisons, refused = report.build_comparisons(results_records.load_records(str(tmp_path)))
    assert refused == [] and list(comparisons["pairs (seed, fold)"]) == [3]
    capsys.readouterr()


def test_no_interval_of_a_near_chance_grid_leaves_0_to_100(tmp_path, capsys):
    """Runs that err on most utterances, as a short grid gives: every interval cell of the report in [0, 100]."""
    for seed in range(1, 5):
        record = _run("MODEL_A", seed)
        for fold in record["folds"]:  # wrong on every utterance but one (seed 1: all of them)
            fold["y_pred"] = [(t + 1) % 3 for t in fold["y_true"]]
            fold["y_pred"][0] = fold["y_true"][0] if seed > 1 else fold["y_pred"][0]
            fold.update(results.fold_metrics(fold["y_true"], fold["y_pred"], CLASSES))
        _write(tmp_path, f"a{seed}", {**record, "summary": results.summarize(record["folds"])})
    rows = _table_of(tmp_path)
    capsys.readouterr()
    cells = [row[column] for row in rows.values() for column in ("UAR % 95% CI", "WAR % 95% CI")]
    bounds = [float(x) for cell in cells for x in re.findall(r"-?\d+\.\d+", cell)]
    assert len(bounds) == 4 and all(0 <= x <= 100 for x in bounds)
    # on the plain scale the WAR interval of these folds would be negative
    values, ratio = significance.fold_values(report_rows.group_runs(results_records.load_records(str(tmp_path)))[0][1], "war")
    assert significance.corrected_t_interval(values, ratio).low < 0


# --- published figures -------------------------------------------------------------------------------------------

def _emodb(folds=10, feature_path="/home/u/Code/MFCC/EMODB.npy", rows=535, **extra) -> dict:
    """A TIM-Net training record on EMO-DB with ``rows`` utterances in ``folds`` folds (sizes as KFold makes them)."""
    sizes = [len(test) for _, test in KFold(folds).split(np.arange(rows))]
    config = {"model": "TIMNET", "data": "EMODB", "feature_path": feature_path, "split_fold": folds,
              "random_seed": 46, "cv": "kfold", "protocol": "last_epoch", "epochs": 500, **extra.pop("config", {})}
    return {"mode": "train", "model": "TIMNET", "protocol": config["protocol"], "variant": "", "synthetic": False,
            "weights_folder": "/models/EMODB_46", "config": config,
            "folds": [{"n": n, "uar": 0.8, "war": 0.8} for n in sizes],
            "summary": {"uar_pooled": 0.8, "war_mean_of_folds": 0.8}, **extra}


def test_a_lone_row_names_every_setting_that_is_not_its_models_default():
    """The settings column appeared only where settings differed between rows: a report of one bfloat16 run, or one
    with --normalize corpus and 8 filters, showed a row that read as the papers' TIM-Net."""
    table = report.build_table([_emodb(config={"mixed_precision": "bf16", "epochs": 3, "batch_size": 64,
                                               "hyper": {"filter_size": 8, "normalize": "corpus", "dilation_size": 8}})])
    assert table["settings"].tolist() == ["filter_size=8, normalize=corpus, mixed_precision=bf16"]
    assert report.build_table([_emodb()]).columns.tolist().count("settings") == 0  # at the recipe: no column
    # TIM-Net's block count is its corpus' (IEMOCAP: 10): its default there, not a setting to show
    iemocap = _emodb(rows=5531, feature_path="/u/MFCC/IEMOCAP.npy", config={"data": "IEMOCAP", "hyper": {
        "dilation_size": 10}})
    assert "settings" not in report.build_table([iemocap]).columns
    # float16 is recorded as true (what run.json held before the flag took a word): named as the flag names it
    assert report.build_table([_emodb(config={"mixed_precision": True})])["settings"].tolist() == [
        "mixed_precision=float16"]


@pytest.mark.parametrize("record, shown", [
    (_emodb(), True),  # the papers' experiment: full corpus, 10-fold, last_epoch
    # another setting than the model's recipe is another experiment: the figures were shown beside a 2-epoch,
    # 8-filter or bfloat16 run, which a lone row did not even name
    (_emodb(config={"epochs": 3}), False),
    (_emodb(config={"mixed_precision": "bf16"}), False),
    (_emodb(config={"hyper": {"filter_size": 8}}), False),
    (_emodb(config={"hyper": {"normalize": "corpus"}}), False),
    (_emodb(config={"lr": 0.01}), False),
    (_emodb(config={"hyper": {"backbone_weights": "none"}}), False),  # DCNN-BLSTMwA from random weights
    (_emodb(config={"hyper": {"filter_size": 39, "dilation_size": 8, "dropout": 0.1}, "lr": 0.001}), True),
    (_emodb(config={"label_smoothing_history": "cumulative"}), True),
    (_emodb(folds=5, config={"epochs": 3}), False),  # the 5-fold, 3-epoch run
    (_emodb(feature_path="/data/EMODB_2s.npy"), False),  # the 2 s cuts: 535 rows and T = 188 as well
    (_emodb(feature_path="/data/EMODB.npy"), False),  # not the default feature file MFCC/EMODB.npy
    (_emodb(rows=300), False),  # the default name, but a subset of the corpus
    (_emodb(config={"cv": "speaker"}), False),  # TIM-Net published no speaker-independent figures
    (_emodb(mode="test", protocol="test"), False),  # a re-test is not the training experiment
    (_emodb(synthetic=True), False),
    (_emodb(config={"protocol": "inner_val"}, protocol="inner_val"), False),  # no published figure
])
def test_published_figures_only_beside_the_papers_experiment(record, shown):
    assert report_rows.full_corpus(_emodb()) and not report_rows.full_corpus(_emodb(feature_path="/data/EMODB_2s.npy"))
    row = report.build_table([record]).iloc[0]
    assert (row["published UAR %"], row["published WAR %"]) == (("89.19", "90.28") if shown else ("–", "–"))


def test_a_row_shows_published_figures_only_when_all_its_runs_match():
    full = _emodb()
    subset = {**_emodb(rows=300, config={"random_seed": 47}), "weights_folder": "/models/EMODB_47"}
    table = report.build_table([full, subset])
    assert list(table["runs"]) == [2] and list(table["published UAR %"]) == ["–"]


# --- references ----------------------------------------------------------------------------------------------------

def test_every_reference_the_report_prints_is_in_the_repository(tmp_path, capsys):
    _write(tmp_path, "a", _run("MODEL_A", 1))
    paths = report.write_report(str(tmp_path))
    printed = capsys.readouterr().out
    text = printed + "".join(open(paths[kind], encoding="utf-8").read() for kind in ("md", "tex"))
    assert "SPEC" not in text
    cited = set(re.findall(r"docs/[\w./-]+\.md", text))
    assert cited == {"docs/statistics.md"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert all(os.path.isfile(os.path.join(root, path)) for path in cited)


# --- damaged records -----------------------------------------------------------------------------------------------

def _damaged(change) -> dict:
    record = json.loads(json.dumps(_run("MODEL_A", 1)))
    change(record)
    return record


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("folds"), "'folds' must be a JSON array, it is missing"),
    (lambda r: r.update(folds=[]), "'folds' is empty"),
    (lambda r: r.update(config=[]), "'config' must be a JSON object, it is an array"),
    (lambda r: r["config"].update(random_seed="1"), "'config.random_seed' must be a JSON integer, it is a string"),
    (lambda r: r["summary"].pop("uar_pooled"), "'summary.uar_pooled' must be a JSON number, it is missing"),
    (lambda r: r["folds"][2].update(uar=True), "'folds[2].uar' must be a JSON number, it is true or false"),
    (lambda r: r["folds"][0].pop("y_pred"), "'folds[0].y_pred' must be a JSON array, it is missing"),
    (lambda r: r["folds"][1]["y_pred"].__setitem__(0, len(r["config"]["classes"])),  # was pooled into the UAR
     "'folds[1].y_pred' must hold its {n} utterances' class indices, 0 to {last}"),
    (lambda r: r["folds"][1]["y_true"].pop(), "'folds[1].y_true' must hold its {n} utterances' class indices, 0 to {last}"),
    (lambda r: r.pop("protocol"), "'protocol' must be a JSON string, it is missing"),
    # figures its own predictions contradict (hand edits the report used as they were)
    (lambda r: r["folds"][1].update(war=1.5), "'folds[1].war' is 1.5, its predictions give {war1}"),
    (lambda r: r["folds"][0].update(uar=float("nan")), "'folds[0].uar' is NaN, its predictions give {uar0}"),
    (lambda r: r["summary"].update(war_mean_of_folds=0.4411), "'summary.war_mean_of_folds' is 0.4411, its folds give "
                                                              "{war_mean}"),
    (lambda r: r["folds"].pop(), "'folds' holds 2 folds of its 3-fold run"),
    # fields read further on: a KeyError, TypeError ('<' between int and str), AttributeError, ZeroDivisionError
    (lambda r: r.pop("weights_folder"), "'weights_folder' must be a JSON string, it is missing"),
    (lambda r: r["config"].pop("epochs"), "'config.epochs' must be a JSON integer, it is missing"),
    (lambda r: r["config"].update(cv=5), "'config.cv' must be a JSON string, it is 5"),
    (lambda r: r.update(variant=3), "'variant' must be a JSON string, it is an integer"),
    (lambda r: r["folds"][0].update(test_rows="abc"), "'folds[0].test_rows' must hold its 4 test rows' numbers, "
                                                      "each once"),
    (lambda r: r["folds"][0]["test_rows"].__setitem__(0, r["folds"][0]["test_rows"][1]),
     "'folds[0].test_rows' must hold its 4 test rows' numbers, each once"),
    (lambda r: r["config"].update(hyper=[1]), "'config.hyper' must be a JSON object, it is [1]"),
    (lambda r: r["config"].update(feature_path=5), "'config.feature_path' must be a JSON string, it is 5"),
    (lambda r: r["config"].update(split_fold=1), "'config.split_fold' is 1: must be at least 2"),
])
def test_a_damaged_results_record_is_one_line_naming_the_file_and_field(tmp_path, change, message):
    """A record of ours (its keys say so) whose fields the report reads are missing or of another type: each was a
    KeyError or TypeError from deep inside the report; the other files of the folder are fine."""
    _write(tmp_path, "a", _run("MODEL_A", 2))
    damaged = _damaged(change)
    _write(tmp_path, "b", damaged)
    if "{" in message:  # the fold's utterance count and last class index; the figures its predictions give
        folds = _run("MODEL_A", 1)["folds"]
        message = message.format(n=damaged["folds"][1]["n"], last=len(damaged["config"]["classes"]) - 1,
                                 war1=f"{folds[1]['war']:.6g}", uar0=f"{folds[0]['uar']:.6g}",
                                 war_mean=f"{np.mean([fold['war'] for fold in folds]):.6g}")
    with pytest.raises(report.UserError, match=f"^{re.escape(str(tmp_path / 'b.json'))}: damaged results file "
                                               f"\\({re.escape(message)}\\); move it out of the results folder"):
        report.write_report(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json"]  # nothing written


@pytest.mark.parametrize("content, why", [('{"a":', "not readable JSON: "), ("[]", "not a results record")])
def test_a_results_file_of_ours_that_does_not_read_is_named_not_skipped(tmp_path, capsys, content, why):
    """A file named as the program names results (a truncated copy, an emptied one) was skipped: its run was left
    out of the table without a word. A JSON of another name is still someone else's, and skipped."""
    _write(tmp_path, "a", _run("MODEL_A", 2))
    (tmp_path / "notes.json").write_text(content)
    assert len(results_records.load_records(str(tmp_path))) == 1
    # one of ours renamed and damaged would leave the table unsaid: an unreadable one is named, and left out
    said = capsys.readouterr().err
    assert (f"report: left out {tmp_path / 'notes.json'}: not readable JSON (" in said) == (why != "not a results record")
    name = "TOY_3fold_50.00_1_2026-12-06_19-39-07_2_MODEL_A_last_epoch.json"
    (tmp_path / name).write_text(content)
    with pytest.raises(report.UserError, match=f"^{re.escape(str(tmp_path / name))}: damaged results file "
                                               f"\\({re.escape(why)}"):
        results_records.load_records(str(tmp_path))


def test_the_latex_table_escapes_every_special_character_and_sets_code_in_typewriter():
    """The caption's `MFCC/<KEY>.npy` printed as ¡KEY¿ between curly quotes, and braces or a $ broke the file."""
    tex = table_formats.to_latex(pd.DataFrame({"a_b": ["1 ± 2 %", "x\\y{z}^~"]}),
                          "features in `MFCC/<KEY>.npy` & 50% $ # and an odd ` quote")
    assert "\\caption{features in \\texttt{MFCC/\\textless{}KEY\\textgreater{}.npy} \\& 50\\% \\$ \\# and an odd ' " \
           "quote}" in tex
    assert "a\\_b \\\\" in tex and "1 $\\pm$ 2 \\% \\\\" in tex
    assert "x\\textbackslash{}y\\{z\\}\\textasciicircum{}\\textasciitilde{} \\\\" in tex


def test_names_from_elsewhere_are_never_formulas_nor_markup_in_the_tables(tmp_path):
    """A class or corpus name of a downloaded run reached predict's CSV, the xlsx and the report as a formula
    (=HYPERLINK(...)), and report.md as raw HTML and extra columns."""
    from timnet_ser.core.atomic_file import spreadsheet_safe, write_table
    assert [spreadsheet_safe(v) for v in ("=HYPERLINK(1)", "+1+1", "@SUM(A1)", "-0.25", "-", "angry", 0.5)] == [
        "'=HYPERLINK(1)", "'+1+1", "'@SUM(A1)", "-0.25", "'-", "angry", 0.5]
    path = str(tmp_path / "t.csv")
    write_table(path, None, ["file", "=cmd|' /C calc'!A0"], [["a.wav", "=1+1"]])
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["file", "'=cmd|' /C calc'!A0"], ["a.wav", "'=1+1"]]
    table = pd.DataFrame({"corpus": ["X <img src=x onerror=alert(1)> | injected"], "UAR": ["=2+2"]})
    assert table_formats.to_markdown(table).splitlines()[2] == ("| X &lt;img src=x onerror=alert(1)&gt; \\| injected | "
                                                         "=2+2 |")
    assert table_formats.to_csv(table).splitlines()[1] == "X <img src=x onerror=alert(1)> | injected,'=2+2"


def test_the_report_does_not_follow_linked_folders(tmp_path):
    """Two links to '.' in a results bundle made the report's walk exponential (it was killed after 60 s)."""
    _write(tmp_path, "a1", _run("MODEL_A", 1))
    os.symlink(".", tmp_path / "a")
    os.symlink(".", tmp_path / "b")
    assert [os.path.basename(r["path"]) for r in results_records.load_records(str(tmp_path))] == ["a1.json"]


def test_the_reports_files_replace_links_at_their_names_never_their_targets(tmp_path):
    """report.md and report_uar_ci.png planted in a shared results folder as links to someone's files: the report
    replaced those files (and their mode) through the links."""
    _write(tmp_path, "a", _run("MODEL_A", 1))
    victim = tmp_path.parent / f"{tmp_path.name}_victim.md"
    victim.write_text("precious")
    os.chmod(victim, 0o600)
    for name in ("report.md", "report_uar_ci.png"):
        os.symlink(victim, tmp_path / name)
    paths = report.write_report(str(tmp_path))
    assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o600
    assert not any(os.path.islink(path) for path in paths.values())
    assert open(paths["md"]).read().startswith("| ")


def test_a_report_that_cannot_be_written_is_one_line_and_writes_none_of_its_files(tmp_path):
    """A folder it may not write into, or a folder named report.md, ended in a PermissionError or IsADirectoryError
    traceback; and the report's files are renamed into place together, so a failure leaves none of the new ones."""
    _write(tmp_path, "a", _run("MODEL_A", 1))
    (tmp_path / "report.md").mkdir()
    with pytest.raises(report.UserError, match=f"^{re.escape(str(tmp_path / 'report.md'))}: is a folder; nothing was "
                                               "written$"):  # found before the first rename
        report.write_report(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["a.json", "report.md"]  # no report.tex, .csv or picture, no temporary


def test_a_ctrl_c_during_the_reports_renames_waits_for_them_and_says_the_files_are_written(tmp_path, capsys,
                                                                                           monkeypatch):
    """Held back until the report's files were all in place, the Ctrl-C then printed "nothing was written"."""
    import signal

    from timnet_ser.core import atomic_file
    from timnet_ser.main import main
    _write(tmp_path, "a", _run("MODEL_A", 1))
    real_commit, sent = atomic_file._commit, []

    def commit(tmp, path, folder):  # Ctrl-C at the first rename
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
        real_commit(tmp, path, folder)
    monkeypatch.setattr(atomic_file, "_commit", commit)
    assert main(["--mode", "report", "--result_path", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: ") and "written first, complete" in err and "nothing" not in err, err
    assert {"report.md", "report.tex", "report.csv", "report_paired.csv", "report_uar_ci.png"} <= \
        set(os.listdir(tmp_path))
    assert not [name for name in os.listdir(tmp_path) if ".partial-" in name]


def test_the_wilcoxon_floor_the_paired_note_states_is_scipys():
    """The note says that under 6 pairs the Wilcoxon p cannot fall below 0.05 (2 pairs: 0.5): a reader saw p = 1 or
    0.5 beside a McNemar p of 3e-08 and took the tests for contradicting each other."""
    assert "under 6 pairs its p cannot fall below 0.05, with 2 pairs not below 0.5" in significance.WILCOXON_METHOD
    for n, floor in ((2, 0.5), (5, 0.0625), (6, 0.03125)):  # every difference of one sign: the smallest p of n pairs
        assert stats.wilcoxon(np.arange(1, n + 1), np.zeros(n)).pvalue == pytest.approx(floor)


def test_two_rows_that_differ_only_where_a_record_is_silent_are_told_apart():
    """An older record lacks a network setting (None); a newer one holds the default: two rows, which the settings
    cell, naming only what is off the defaults, would have labelled alike."""
    old = _emodb(config={"hyper": {"normalize": "none"}})
    new = _emodb(config={"hyper": {"normalize": "none", "filter_size": 39}})
    table = report.build_table([old, new])
    assert len(table) == 2 and sorted(table["settings"]) == ["filter_size=39", "filter_size=None"]


# --- each row's notes in report.csv --------------------------------------------------------------------------------

def test_each_csv_row_carries_the_notes_under_the_table_that_are_about_it_and_no_others(tmp_path, capsys):
    """report.csv had none of the notes report.md and report.tex print below the table: a row whose weights were
    chosen on the test fold, clipped or missing intervals, folds that predicted one class, merged records, a
    re-test of the authors' weights on features nothing checks. Each row now carries those about it (``note keys``,
    ``notes``: JSON lists), in the words report.md prints, and a plain ``pandas.read_csv`` reads them."""
    for seed in (1, 2):
        _write(tmp_path, f"a{seed}", _run("MODEL_A", seed))  # two runs: the population std; a fold at 100 %: `*`
    _write(tmp_path, "c", _run("MODEL_C", 1))  # one class for every utterance
    _write(tmp_path, "d", _run("MODEL_D", 1, predictor="P"))  # every fold right: no spread
    _write(tmp_path, "paper", _run("MODEL_B", 1, predictor="A", config={"protocol": "paper"}))  # on the test fold
    _write(tmp_path, "inner", _run("MODEL_B", 1, predictor="A", config={"protocol": "inner_val"}))
    _write(tmp_path, "e", _run("MODEL_E", 1, predictor="A"))
    _write(tmp_path, "e_again", {**_run("MODEL_E", 1, predictor="A"), "weights_folder": "/models/again"})  # merged
    authors = {"split": "own", "features": "unchecked", "label": ""}  # a folder without run.json re-tested
    _write(tmp_path, "authors", {**_run("MODEL_F", 1, predictor="A", retest=authors), "mode": "test",
                                 "protocol": "test", "weights_folder": "/shared/Test_Models/TOY_1"})
    paths = report.write_report(str(tmp_path))
    capsys.readouterr()
    table = pd.read_csv(paths["csv"])  # no options
    assert list(table.columns[-2:]) == ["note keys", "notes"]
    keys = {(m, p): json.loads(k) for m, p, k in zip(table["model"], table["protocol"], table["note keys"])}
    notes = {(m, p): json.loads(n) for m, p, n in zip(table["model"], table["protocol"], table["notes"])}
    assert all(len(keys[row]) == len(notes[row]) for row in keys)

    def rows_with(key: str) -> set:
        return {row for row, found in keys.items() if key in found}
    assert rows_with("population_std") == {("MODEL_A", "last_epoch")}
    assert ("MODEL_A", "last_epoch") in rows_with("clipped_interval")
    assert rows_with("no_spread") >= {("MODEL_D", "last_epoch")} and ("MODEL_A", "last_epoch") not in \
        rows_with("no_spread")
    assert rows_with("one_class") == {("MODEL_C", "last_epoch")}
    assert rows_with("selected_on_test_fold") == {("MODEL_B", "paper (SELECTED ON THE TEST FOLD)")}
    assert rows_with("selected_on_validation") == {("MODEL_B", "inner_val")}
    assert rows_with("merged") == {("MODEL_E", "last_epoch")}
    assert rows_with("features_not_checked") == {("MODEL_F", "test of TOY_1")}
    # in the words report.md prints: a sentence of the note under the table, or a line of its own below it
    markdown = open(paths["md"]).read()
    paragraph, lines = markdown.split("\n\n")[1], markdown.split("## Paired comparisons")[0].splitlines()
    for row, texts in notes.items():
        for key, text in zip(keys[row], texts):
            assert (text in paragraph) if key not in ("one_class", "merged", "features_not_checked") else \
                (f"- {text}" in lines), (key, text)
    [line] = notes[("MODEL_F", "test of TOY_1")][-1:]
    assert line == f"MODEL_F, test of TOY_1 on TOY TOY_features.npy: {results.features_not_checked('TOY')}"
    assert "FEATURES NOT CHECKED against the authors'" in line and "MFCC/TOY.npy" in line
    assert notes[("MODEL_C", "last_epoch")][-1].startswith("MODEL_C, last_epoch on TOY TOY_features.npy: 3 of 3 "
                                                           "folds predicted one class")
    assert f"`*`: the {significance.CLIPPED_METHOD}." in notes[("MODEL_A", "last_epoch")]
    assert notes[("MODEL_B", "inner_val")][0] == \
        "An `inner_val` row's weights are those of each fold's epoch best on a validation split of its training fold."
    # the table's own columns are as they were: the notes are report.csv's alone
    assert "notes" not in report.build_table(results_records.load_records(str(tmp_path))).columns
    assert "| notes |" not in markdown and "note keys" not in open(paths["tex"]).read()


def test_a_row_without_notes_has_empty_lists():
    record = _emodb()
    record["folds"] = [{**fold, "uar": 0.7 + 0.02 * i, "war": 0.75 + 0.01 * i} for i, fold in enumerate(record["folds"])]
    table, groups = report.build_table([record]), report_rows.group_runs([record])
    notes = report.table_notes(table, groups)
    assert [note.key for note in notes] == ["runs", "population_std", "interval", "published", "sources"]
    written = pd.read_csv(io.StringIO(table_formats.to_csv(report.with_row_notes(table, groups, notes, []))))
    assert written["note keys"].tolist() == ["[]"] and written["notes"].tolist() == ["[]"]


def test_a_retest_of_a_folder_without_run_json_is_said_to_be_on_features_not_checked(tmp_path, capsys):
    """The authors' weights re-tested on other features than theirs sat in the report as any re-test, beside the
    published figure's model and corpus; records written before the re-test said so are told by what only such a
    folder has (a name as the published ones', or weights whose choice nothing records); a run folder's re-test,
    whose features are checked, never."""
    older = {**_run("MODEL_A", 1, retest=None), "mode": "test", "protocol": "test",
             "weights_folder": "/Test_Models/EMODB_46"}
    unknown = {**_run("MODEL_B", 1, retest=None, config={"protocol": "unknown"}), "mode": "test", "protocol": "test",
               "weights_folder": "/Models/EMODB_46_2023-09-01_10-00-00"}
    own = _retest(1, 1, {"split": "own", "features": "own", "label": ""})
    assert [report_rows.features_unchecked(r) for r in (older, unknown, own, _run("MODEL_A", 1))] == \
        [True, True, False, False]
    _write(tmp_path, "older", older)
    _write(tmp_path, "unknown", unknown)
    _write(tmp_path, "own", own)
    rows = _table_of(tmp_path)
    printed = capsys.readouterr().out
    assert [row for row, cells in rows.items() if "features_not_checked" in cells["note keys"]] == [
        ("MODEL_A", "test of EMODB_46"), ("MODEL_B", "test of EMODB_46_2023-09-01_10-00-00, weights' choice unknown")]
    assert f"- MODEL_A, test of EMODB_46 on TOY TOY_features.npy: {results.features_not_checked('TOY')}" in printed


def test_a_run_folder_named_as_the_authors_name_theirs_is_not_said_to_be_on_features_not_checked():
    """A run folder copied to ``Test_Models/EMODB_46`` (the authors' code reads our weights) keeps its run.json, and
    its re-test checks its features (``retest`` says "own"): the report said FEATURES NOT CHECKED of it, by its name;
    the name tells only a record that has no ``retest``."""
    named = {**_run("MODEL_A", 1, retest={"split": "own", "features": "own", "label": ""}), "mode": "test",
             "protocol": "test", "weights_folder": "/Test_Models/EMODB_46"}
    other_split = {**named, "retest": {"split": "other", "features": "own", "label": "OTHER SPLIT"}}
    assert [report_rows.features_unchecked(r) for r in (named, other_split, {**named, "retest": None})] == \
        [False, False, True]


def test_rows_fine_tuned_from_two_runs_of_one_name_are_told_apart(tmp_path, capsys):
    """A fine-tuning source was named by its folder's name alone: two base runs named alike in different folders
    gave two rows of one label, which read as one."""
    for i, parent in enumerate(("/home/u/a/Models", "/home/u/b/Models")):
        _write(tmp_path, f"tuned{i}", _run("MODEL_A", 1, config={"init_from": f"{parent}/SRC_1_run"},
                                           weights_folder=f"/models/tuned{i}"))
    _write(tmp_path, "other", _run("MODEL_A", 1, config={"init_from": "/home/u/c/Models/OTHER_1_run"},
                                   weights_folder="/models/tuned_other"))
    table = report.build_table(results_records.load_records(str(tmp_path)))
    assert sorted(table["settings"]) == ["init_from=OTHER_1_run", "init_from=a/Models/SRC_1_run",
                                         "init_from=b/Models/SRC_1_run"]
    paths = report.write_report(str(tmp_path))
    capsys.readouterr()
    with open(paths["paired_csv"]) as f:
        pairs = {(row["A"], row["B"]) for row in csv.DictReader(f)}
    assert ("MODEL_A, last_epoch (init_from=a/Models/SRC_1_run)",
            "MODEL_A, last_epoch (init_from=b/Models/SRC_1_run)") in pairs
    # the folders above a name only as far as they tell it apart, the root where nothing else does
    assert report_rows.source_names(["/x/a/R", "/y/a/R", "/a/R/", "/S"]) == {
        "/x/a/R": "x/a/R", "/y/a/R": "y/a/R", "/a/R": "/a/R", "/S": "S"}
