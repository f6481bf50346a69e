"""Metrics and results files of ``results``: WAR/UAR by hand and by sklearn, xlsx layout, JSON, PNGs, atomicity."""

import json
import os
import pathlib
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, recall_score
from sklearn.model_selection import KFold

from conftest import ROOT
from timnet_ser.core.errors import UserError
from timnet_ser.runs import results

CLASSES = ["angry", "happy", "sad"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fold(y_true, y_pred, classes=CLASSES, **extra) -> dict:
    """A fold record as the training code builds it: metrics plus the predictions themselves."""
    return {**results.fold_metrics(y_true, y_pred, classes), "y_true": list(y_true), "y_pred": list(y_pred), **extra}


def _two_folds() -> list[dict]:
    """Fold 0: 4 utterances, all classes, 3 right. Fold 1: 8 utterances, class 2 absent, 4 right.

    Fold 0 confusion (rows true): [[1,1,0],[0,1,0],[0,0,1]] -> WAR 3/4, UAR (1/2 + 1 + 1)/3 = 5/6.
    Fold 1 confusion: [[3,1,0],[3,1,0],[0,0,0]] -> WAR 4/8, UAR over present classes (3/4 + 1/4)/2 = 1/2.
    Pooled confusion [[4,2,0],[3,2,0],[0,0,1]] -> WAR 7/12, UAR (4/6 + 2/5 + 1)/3 = 31/45.
    Means of folds: WAR (3/4 + 1/2)/2 = 5/8, UAR (5/6 + 1/2)/2 = 2/3.
    """
    return [_fold([0, 0, 1, 2], [0, 1, 1, 2]),
            _fold([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0, 0, 1])]


def _record(folds: list[dict]) -> dict:
    return {"title": "TIMNET on TEST, 2-fold, SYNTHETIC DATA", "protocol": "last_epoch",
            "config": {"seed": np.int64(46), "shape": (188, 39)}, "versions": {"numpy": np.__version__},
            "folds": folds, "summary": results.summarize(folds)}


def _is_png(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(8) == PNG_MAGIC and os.path.getsize(path) > 5000


# --- metrics ---------------------------------------------------------------------------------------------------

def test_fold_metrics_by_hand_all_classes_present():
    fold = results.fold_metrics([0, 0, 1, 2], [0, 1, 1, 2], CLASSES)
    assert fold["war"] == pytest.approx(3 / 4)
    assert fold["uar"] == pytest.approx(5 / 6)
    assert fold["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert fold["n"] == 4
    assert fold["report"]["angry"]["recall"] == pytest.approx(0.5)
    assert fold["report"]["happy"]["precision"] == pytest.approx(0.5)


def test_fold_metrics_class_absent_from_fold_is_left_out_of_uar():
    y_true, y_pred = [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0, 0, 2]
    fold = results.fold_metrics(y_true, y_pred, CLASSES)
    assert fold["uar"] == pytest.approx((3 / 4 + 0 / 4) / 2)  # not divided by 3: "sad" has no recall here
    assert fold["war"] == pytest.approx(3 / 8)
    assert fold["confusion"] == [[3, 1, 0], [3, 0, 1], [0, 0, 0]]  # all classes kept in the matrix
    assert list(fold["report"])[:3] == CLASSES
    assert fold["report"]["sad"]["support"] == 0


def test_fold_metrics_agree_with_sklearn_on_random_folds():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 5, 40)
        y_pred = np.where(rng.random(40) < 0.6, y_true, rng.integers(0, 6, 40))
        fold = results.fold_metrics(y_true, y_pred, [f"c{c}" for c in range(6)])
        assert fold["war"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert fold["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro",
                                                         labels=np.unique(y_true), zero_division=0))
        assert np.array(fold["confusion"]).shape == (6, 6)
        assert np.sum(fold["confusion"]) == fold["n"] == 40


def test_summarize_pooled_and_mean_of_folds_differ_and_are_both_right():
    summary = results.summarize(_two_folds())
    assert summary["war_mean_of_folds"] == pytest.approx(5 / 8)
    assert summary["war_pooled"] == pytest.approx(7 / 12)
    assert summary["uar_mean_of_folds"] == pytest.approx(2 / 3)
    assert summary["uar_pooled"] == pytest.approx(31 / 45)
    assert summary["war_std_of_folds"] == pytest.approx(np.std([3 / 4, 1 / 2]))  # population std
    assert summary["uar_std_of_folds"] == pytest.approx(1 / 6)
    assert summary["confusion_pooled"] == [[4, 2, 0], [3, 2, 0], [0, 0, 1]]
    assert summary["n_pooled"] == 12


def test_pooled_uar_is_macro_recall_of_summed_confusion():
    rng = np.random.default_rng(1)
    folds = []
    for _ in range(5):
        y_true = rng.integers(0, 4, 30)
        folds.append(_fold(y_true, np.where(rng.random(30) < 0.5, y_true, rng.integers(0, 4, 30)), list("abcd")))
    summary = results.summarize(folds)
    summed = np.sum([fold["confusion"] for fold in folds], axis=0)
    assert summary["confusion_pooled"] == summed.tolist()
    assert summary["uar_pooled"] == pytest.approx(np.mean(np.diag(summed) / summed.sum(axis=1)))
    assert summary["war_pooled"] == pytest.approx(np.trace(summed) / summed.sum())


def test_golden_fold_metrics_from_original_probabilities(shared):
    """The original code's softmax outputs of the EMODB_46 weights give the original test mode's figures."""
    reference = os.path.join(shared, "reference")
    y = np.load(os.path.join(reference, "EMODB_2s.npy"), allow_pickle=True).item()["y"].argmax(1)
    probs = np.load(os.path.join(reference, "golden_timnet_emodb46.npz"))["probs"]
    with open(os.path.join(reference, "golden_timnet_emodb46.json")) as file:
        golden = json.load(file)
    classes = [f"c{c}" for c in range(probs.shape[2])]
    folds = [_fold(y[test].tolist(), probs[i][test].argmax(1).tolist(), classes)
             for i, (_, test) in enumerate(KFold(10, shuffle=True, random_state=golden["seed"]).split(y))]
    assert [fold["war"] for fold in folds] == pytest.approx(golden["fold_war"], abs=1e-6)
    assert [fold["uar"] for fold in folds] == pytest.approx(golden["fold_uar"], abs=1e-6)
    summary = results.summarize(folds)
    for key in ("war_mean_of_folds", "uar_mean_of_folds", "war_pooled", "uar_pooled"):
        assert summary[key] == pytest.approx(golden[key], abs=1e-6)


# --- names and console -------------------------------------------------------------------------------------------

def test_results_stem():
    stem = results.results_stem("EMODB", 10, 0.809224, 46, "2024-01-02_03-04-05", "TIMNET", "last_epoch")
    assert stem == "EMODB_10fold_80.92_46_2024-01-02_03-04-05_TIMNET_last_epoch"


def test_console_lines():
    fold = {"war": 44 / 54, "uar": 0.817177, "n": 54}
    assert results.format_fold_line(2, 10, fold) == "fold 3/10: WAR 81.48%  UAR 81.72%  (54 test utterances)"
    text = results.format_summary(results.summarize(_two_folds()), "last epoch of 500, no selection")
    lines = text.splitlines()
    assert lines[0] == "protocol: last epoch of 500, no selection"
    assert lines[1].startswith("mean of folds:")
    assert "WAR 62.50% ± 12.50" in lines[1] and "UAR 66.67% ± 16.67" in lines[1]
    assert lines[2].startswith("pooled over folds:") and "WAR 58.33%" in lines[2] and "UAR 68.89%" in lines[2]
    assert len(lines) == 3  # no fold said one class
    # a fold that says one class for every utterance of several classes: its UAR is chance, and it is said
    folds = _two_folds()
    folds[1] = {**folds[1], "y_pred": [0] * len(folds[1]["y_true"])}
    assert len(set(folds[1]["y_true"])) > 1
    lines = results.format_summary(results.summarize(_two_folds()), "p", folds).splitlines()
    assert lines[-1] == ("note: 1 of 2 folds predicted one class for every utterance (a constant prediction: its UAR "
                         "is chance)")


# --- files ------------------------------------------------------------------------------------------------------

def test_write_results_files(tmp_path):
    folds = _two_folds()
    folds[1]["history"] = {"loss": [1.0, 0.5], "accuracy": [0.4, 0.6]}
    record = _record(folds)
    target = tmp_path / "new" / "Results"  # created on demand
    paths = results.write_results(str(target), "STEM", record, CLASSES)
    assert paths == {"xlsx": str(target / "STEM.xlsx"), "confusion": str(target / "STEM_confusion.png"),
                     "json": str(target / "STEM.json")}
    assert sorted(os.listdir(target)) == ["STEM.json", "STEM.xlsx", "STEM_confusion.png"]  # no temp files
    assert _is_png(paths["confusion"])
    umask = os.umask(0o022)
    os.umask(umask)
    assert all(os.stat(path).st_mode & 0o777 == 0o666 & ~umask for path in paths.values())  # not mkstemp's 0600


def test_xlsx_layout_is_the_originals(tmp_path):
    folds = _two_folds()
    paths = results.write_results(str(tmp_path), "STEM", _record(folds), CLASSES)
    assert openpyxl.load_workbook(paths["xlsx"]).sheetnames == ["0", "0_evaluate", "1", "1_evaluate"]
    for i, fold in enumerate(folds):
        sheet = pd.read_excel(paths["xlsx"], sheet_name=str(i), index_col=0)
        assert list(sheet.columns) == CLASSES and list(sheet.index) == CLASSES
        # transposed: column = true class, row = predicted class
        assert sheet.to_numpy().tolist() == np.array(fold["confusion"]).T.tolist()
        report = pd.read_excel(paths["xlsx"], sheet_name=f"{i}_evaluate", index_col=0)
        assert list(report.columns) == ["precision", "recall", "f1-score", "support"]
        assert report.loc["angry", "recall"] == pytest.approx(fold["report"]["angry"]["recall"])
        assert report.loc["macro avg", "support"] == fold["n"]
    # fold 1, true "angry" column: 3 predicted angry, 1 predicted happy
    assert pd.read_excel(paths["xlsx"], sheet_name="1", index_col=0)["angry"].tolist() == [3, 1, 0]


def test_json_round_trip(tmp_path):
    record = _record(_two_folds())
    record["folds"][0]["history"] = {"loss": np.array([0.9, 0.4], dtype=np.float32)}
    paths = results.write_results(str(tmp_path), "STEM", record, CLASSES)
    with open(paths["json"]) as file:
        loaded = json.load(file)
    assert loaded["config"] == {"seed": 46, "shape": [188, 39]}
    assert loaded["summary"] == record["summary"]
    assert loaded["folds"][1] == record["folds"][1]
    assert loaded["folds"][0]["history"]["loss"] == pytest.approx([0.9, 0.4])
    assert loaded["title"] == record["title"]


def test_training_curves_png(tmp_path):
    histories = [{"loss": [1.2, 0.8, 0.5], "accuracy": [0.3, 0.5, 0.7],
                  "val_loss": [1.3, 1.0, 0.9], "val_accuracy": [0.3, 0.4, 0.5]},
                 {"loss": [1.1, 0.7, 0.6], "accuracy": [0.35, 0.55, 0.6]}]
    path = tmp_path / "curves.png"
    results.plot_training_curves(histories, str(path), "TIMNET on TEST, SYNTHETIC DATA")
    assert _is_png(str(path))
    assert os.listdir(tmp_path) == ["curves.png"]


def test_unwritable_folder_names_it_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "Results"
    with pytest.raises(UserError, match=f"^{re.escape(str(target))}: results folder is not writable \\(.+\\)$"):
        results.write_results(str(target), "STEM", _record(_two_folds()), CLASSES)
    with pytest.raises(UserError, match="results folder is not writable"):
        results.plot_training_curves([{"loss": [1.0], "accuracy": [0.5]}], str(target / "c.png"), "t")
    assert os.listdir(tmp_path) == ["a_file"]


def test_failed_write_leaves_no_partial_or_temp_files(tmp_path, monkeypatch):
    """A full disk while writing the last file: one line naming that file; its temporary and the files already
    written are removed."""
    def broken_dump(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(results.json, "dump", broken_dump)
    message = (f"^{re.escape(str(tmp_path / 'STEM.json'))}: cannot be written \\(No space left on device\\); "
               "nothing was written under this name")
    with pytest.raises(UserError, match=message):
        results.write_results(str(tmp_path), "STEM", _record(_two_folds()), CLASSES)
    assert os.listdir(tmp_path) == []


def test_atomic_write_writes_through_a_symbolic_link(tmp_path):
    """``--output latest.csv`` where latest.csv links to a dated file: the rename replaced the link with a file."""
    from timnet_ser.core.atomic_file import atomic_write
    target, link = tmp_path / "2026-12-06.csv", tmp_path / "latest.csv"
    target.write_text("old")
    os.symlink(target.name, link)
    atomic_write(str(link), lambda tmp: pathlib.Path(tmp).write_text("new"), follow_link=True)
    assert os.path.islink(link) and target.read_text() == "new" and sorted(os.listdir(tmp_path)) == [
        "2026-12-06.csv", "latest.csv"]


def test_atomic_write_replaces_a_link_at_a_name_the_program_chose(tmp_path):
    """A name of the program's (a results, report or run file): a link there, planted after the name was chosen, is
    replaced by the file; its target, someone's file, stays as it was, mode and all."""
    from timnet_ser.core.atomic_file import atomic_write
    victim, link = tmp_path / "victim.txt", tmp_path / "report.md"
    victim.write_text("precious")
    os.chmod(victim, 0o600)
    os.symlink(victim, link)
    atomic_write(str(link), lambda tmp: pathlib.Path(tmp).write_text("new"))
    assert not os.path.islink(link) and link.read_text() == "new"
    assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o600


def test_results_take_another_stem_where_a_link_has_a_name_of_their_set(tmp_path):
    """Links planted in a shared results folder: <stem>.xlsx to someone's workbook was replaced by the results
    (its mode too); a <stem>.json that leads nowhere passed the check for a set already there (os.path.exists),
    and the JSON was written at its target. Every name of the set, a link too, now makes the stem take _2, _3."""
    shared, victim = tmp_path / "shared", tmp_path / "victim.xlsx"
    shared.mkdir()
    victim.write_text("precious")
    os.chmod(victim, 0o600)
    os.symlink(victim, shared / "STEM.xlsx")
    os.symlink(tmp_path / "nowhere.json", shared / "STEM.json")
    os.symlink(victim, shared / "STEM_2_curves.png")  # write_run_results' curves, written with the set
    paths = results.write_results(str(shared), "STEM", _record(_two_folds()), CLASSES)
    assert paths["json"] == str(shared / "STEM_3.json")
    assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "nowhere.json").exists()
    assert sorted(os.listdir(shared)) == ["STEM.json", "STEM.xlsx", "STEM_2_curves.png", "STEM_3.json",
                                          "STEM_3.xlsx", "STEM_3_confusion.png"]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "STEM.json"
    path.write_text("old")

    def half_write(tmp: str) -> None:
        with open(tmp, "w") as file:
            file.write("half")
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        results._atomic_write(str(path), half_write)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["STEM.json"]


# a prediction's output written item by item (write_table), killed by SIGKILL after its first item
_KILLED_WRITER = """
import sys, time
from Code.core.atomic_file import write_table
def rows():
    yield {"file": "a.wav"}
    print("writing", flush=True)
    time.sleep(60)
    yield {"file": "b.wav"}
write_table(sys.argv[1], rows(), [], [])
"""


def _killed_mid_write(path: str) -> int:
    """Run ``_KILLED_WRITER`` on ``path`` in a child process, SIGKILL it mid-write (60 s at most); its pid."""
    import select
    import signal
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, path], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline() == "writing\n", "the child never began its write"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()
    return child.pid


def test_a_temporary_names_the_pid_namespace_its_writer_ran_in(monkeypatch):
    """Containers may share the host's name but not its pids (Ray's often do): a pid of another namespace means
    nothing here, so a temporary named with the host alone could be taken for a dead writer's and removed while
    its writer lived. Its tag is of the host and the pid namespace."""
    from timnet_ser.core import atomic_file
    here = atomic_file._pid_space()
    monkeypatch.setattr(os, "readlink", lambda path: "pid:[1]" if path == "/proc/self/ns/pid" else path)
    elsewhere = atomic_file._pid_space()
    assert re.fullmatch(r"h[0-9a-f]{6}", here) and elsewhere != here


def test_the_temporaries_of_a_killed_write_do_not_pile_up(tmp_path):
    """A write killed by SIGKILL (an extraction, a prediction, an export, a report) left its temporary, the size of
    its feature file or output, and each run of the same command killed again left one more beside it; only a
    resumed run or a planned grid removed those of its own run folder. The next write of the same file removes the
    temporaries of that file whose process is gone; a live process', another file's, another host's and another
    user's stay."""
    from timnet_ser.core import atomic_file
    out = tmp_path / "out.json"
    _killed_mid_write(str(out))
    second = _killed_mid_write(str(out))
    left = os.listdir(tmp_path)  # the first one's was removed when the second began
    assert len(left) == 1 and re.fullmatch(rf"\.out\.json\.partial-{second}h[0-9a-f]{{6}}_\w+\.json", left[0]), left
    host = atomic_file._HOST
    kept = [f".out.json.partial-{os.getpid()}{host}_live.json",  # a write in progress
            f".other.json.partial-{second}{host}_other.json",  # another file's
            f".out.json.partial-{second}hffffff_elsewhere.json",  # another host's (a network file system)
            f".out.csv.partial-{second}{host}_csv.csv"]  # another file's: out.json's temporaries end in .json
    if os.getuid() == 0:  # another user's: only root can give a file away
        kept.append(f".out.json.partial-{second}{host}_theirs.json")
    for name in kept:
        (tmp_path / name).write_text("x")
    if os.getuid() == 0:
        os.chown(tmp_path / kept[-1], 65534, 65534)
    atomic_file.write_table(str(out), [{"file": "a.wav"}], [], [])
    assert sorted(os.listdir(tmp_path)) == sorted(["out.json", *kept])
    assert json.loads(out.read_text()) == [{"file": "a.wav"}]
    stale_folder = tmp_path / f".model.partial-{second}{host}_folder"  # a SavedModel export's, killed
    (stale_folder / "variables").mkdir(parents=True)
    atomic_file.atomic_directory(str(tmp_path / "model"), lambda tmp: pathlib.Path(tmp, "saved_model.pb").touch())
    assert not stale_folder.exists() and os.listdir(tmp_path / "model") == ["saved_model.pb"]


def test_the_curves_of_a_paper_run_name_its_dashed_lines_the_test_fold(tmp_path, monkeypatch):
    """'dashed: the protocol's validation data' hid that a paper run's validation data is its test fold."""
    titles = []
    original = results.Figure.suptitle
    monkeypatch.setattr(results.Figure, "suptitle", lambda self, text, **kw: (titles.append(text),
                                                                              original(self, text, **kw))[1])
    history = {"loss": [1.0, 0.5], "accuracy": [0.4, 0.6], "val_loss": [1.1, 0.9], "val_accuracy": [0.3, 0.5]}
    results.plot_training_curves([history], str(tmp_path / "p.png"), "t", "paper")
    results.plot_training_curves([{"loss": [1.0], "accuracy": [0.5]}], str(tmp_path / "l.png"), "t", "last_epoch")
    assert titles == ["t\nprotocol paper; solid: training, dashed: the TEST FOLD (the paper protocol validates, and "
                      "selects, on it)", "t\nprotocol last_epoch; training (no validation data)"]


def test_the_reports_macro_average_is_the_folds_uar_when_a_class_is_absent():
    """A test fold without class 'c' printed UAR 75 % and its sheet's macro recall 50 %: the absent class as 0."""
    metrics = results.fold_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    assert metrics["uar"] == pytest.approx(0.75) and metrics["report"]["macro avg"]["recall"] == pytest.approx(0.75)
    assert set(metrics["report"]) >= {"a", "b", "c"}  # every class keeps its row


def test_a_dollar_in_a_name_is_drawn_as_it_is(tmp_path):
    """A class named '$\\undefinedcmd$' (a downloaded run's) ended the results' pictures in a matplotlib
    ParseFatalException."""
    results.plot_confusion([[2, 0], [1, 1]], ["$\\undefinedcmd$", "b"], str(tmp_path / "c.png"), "$x$ $\\bad$")
    assert os.path.getsize(tmp_path / "c.png") > 0
