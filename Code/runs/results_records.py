"""The results folder read back: every results JSON below it, each record checked before the report reads it.

A record is ours by its keys (``summary``, ``config``, ``model``) or its name (``results.is_results_name``). Ours
are refused in one line naming the file and the field where the fields the report reads are missing, of another
type, refused by core/flags.py's table, or contradicted by the record's own predictions (a damaged or hand-edited
file would end deep in the report otherwise); anything else is left out, and a JSON that cannot be read is said.
Knows nothing about TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from ..core.config import NULLABLE_SETTINGS, UNKNOWN_PROTOCOL
from ..core.errors import UserError
from ..core.flags import first_recorded_refusal
from ..core.json_fields import NUMBER, wrong_field, wrong_predictions
from ..core.paths import shown
from . import results

# The fields of a results record that the report reads, with their JSON types (results.py writes them). Fields
# read with a default (``mode``, ``variant``, a fold's ``test_rows`` ...) are those older records may lack.
_RECORD_FIELDS = {"model": str, "config": dict, "summary": dict, "folds": list, "weights_folder": str}
_OPTIONAL_RECORD_FIELDS = {"mode": str, "variant": str}  # where a record has them
_CONFIG_FIELDS = {"data": str, "random_seed": int, "split_fold": int}
_FOLD_FIELDS = {"uar": NUMBER, "war": NUMBER, "n": int, "y_true": list, "y_pred": list}
_SUMMARY_FIELDS = {"uar_pooled": NUMBER, "war_pooled": NUMBER, "war_mean_of_folds": NUMBER}
_CROSS_FIELDS = {"train_corpus": str, "test_corpus": str}


def check_record(path: str, record: dict) -> None:
    """Refuse, in one line naming the file and the field, a results record (ours by its keys) whose fields the
    report reads are missing or of another type: a damaged or hand-edited file, which would end deep in the report
    otherwise."""
    cross = "cross_corpus" in record  # a cross-corpus test, a re-test, a training run
    own = ({"cross_corpus": dict} if cross else {} if record.get("mode") == "test" else {"protocol": str})
    classes = record["config"].get("classes") if isinstance(record.get("config"), dict) else None  # older: none
    # a cross-corpus test scores the mean of the fold models: the authors' folders record no seed or fold count
    config_fields = ({"data": str} if cross else _CONFIG_FIELDS if record.get("mode") == "test"
                     else {**_CONFIG_FIELDS, "epochs": int})  # a training run's row says its epochs
    wrong = (wrong_field(record, {**_RECORD_FIELDS, **own})
             or wrong_field(record, {k: v for k, v in _OPTIONAL_RECORD_FIELDS.items() if k in record})
             or wrong_field(record["config"], config_fields, "config.")
             or _wrong_setting(record["config"], ("split_fold", "random_seed") if cross else (),
                               # a re-test of weights whose choice nothing records (engine/retest.py)
                               record.get("mode") == "test" and record["config"].get("protocol") == UNKNOWN_PROTOCOL)
             or wrong_field(record["summary"], _SUMMARY_FIELDS, "summary.")
             or ("'folds' is empty" if not record["folds"] else None)
             or next(filter(None, (wrong_field(fold, _FOLD_FIELDS, f"folds[{i}].")  # its fields, then predictions
                                   or (wrong_predictions(fold, len(classes), f"folds[{i}].")
                                       if isinstance(classes, list) else None)
                                   or _wrong_test_rows(fold, f"folds[{i}].")
                                   for i, fold in enumerate(record["folds"]))), None)
             or ("cross_corpus" in record and wrong_field(record["cross_corpus"], _CROSS_FIELDS, "cross_corpus."))
             or (_contradicted(record) if isinstance(classes, list) else None))
    if wrong:
        raise _damaged(path, wrong)


def _wrong_setting(config: dict, unset: tuple = (), unknown_protocol: bool = False) -> str | None:
    """The first setting of a record's config that core/flags.py's table refuses (type, choices, range), where the
    config has it, as run.json's are checked (runs/run_folder.refused_setting): a hand edit such as ``"cv": 5`` or
    ``"hyper": [1]`` ended in a TypeError or AttributeError deep in the report. ``unset``: settings the record may
    hold as null besides the nullable ones (an authors' folder's cross-corpus test: no seed or fold count);
    ``unknown_protocol``: the protocol is ``UNKNOWN_PROTOCOL``, no --protocol's choice."""
    if "hyper" in config and not isinstance(config["hyper"], dict):
        return f"'config.hyper' must be a JSON object, it is {json.dumps(config['hyper'])}"
    if config.get("feature_path") is not None and not isinstance(config["feature_path"], str):  # no flag's field
        return f"'config.feature_path' must be a JSON string, it is {json.dumps(config['feature_path'])}"
    # the model is only a row's name here (any text: the report's tests name theirs MODEL_A)
    skip = {"model"} | ({"protocol"} if unknown_protocol else set())
    return first_recorded_refusal(config, NULLABLE_SETTINGS | frozenset(unset), frozenset(skip)) or None


def _wrong_test_rows(fold: dict, where: str) -> str | None:
    """A fold's ``test_rows`` (older records lack them) must name its ``n`` rows, each once: the paired tests and
    the merge of repeats match folds by them."""
    rows = fold.get("test_rows")
    if rows is None:
        return None
    if (not isinstance(rows, list) or len(rows) != fold["n"] or len(set(map(repr, rows))) != len(rows)
            or not all(type(row) is int and row >= 0 for row in rows)):
        return f"'{where}test_rows' must hold its {fold['n']} test rows' numbers, each once"
    return None


def _damaged(path: str, why: str) -> UserError:
    return UserError(f"{path}: damaged results file ({why}); move it out of the results folder, or put back the copy "
                     "its run wrote")


def _contradicted(record: dict) -> str | None:
    """The first figure of a record (its fields well formed) that its own predictions contradict, as a hand edit
    would: a fold's WAR, UAR or size, the summary's mean of folds and pooled figures, a training run's fold count;
    None where each agrees (NaN never does)."""
    folds, summary, config = record["folds"], record["summary"], record["config"]
    if record.get("mode") == "train" and len(folds) != config["split_fold"]:
        return f"'folds' holds {len(folds)} folds of its {config['split_fold']}-fold run"
    for i, fold in enumerate(folds):
        war, uar = results.war_uar(fold["y_true"], fold["y_pred"])
        for name, value in (("war", war), ("uar", uar), ("n", len(fold["y_true"]))):
            if not math.isclose(fold[name], value, rel_tol=0, abs_tol=1e-9):
                return f"'folds[{i}].{name}' is {json.dumps(fold[name])}, its predictions give {value:.6g}"
    war, uar = results.war_uar(np.concatenate([fold["y_true"] for fold in folds]),
                               np.concatenate([fold["y_pred"] for fold in folds]))
    for name, value in (("war_mean_of_folds", float(np.mean([fold["war"] for fold in folds]))),
                        ("war_pooled", war), ("uar_pooled", uar)):
        if not math.isclose(summary[name], value, rel_tol=0, abs_tol=1e-9):
            return f"'summary.{name}' is {json.dumps(summary[name])}, its folds give {value:.6g}"
    return None


def _json_files(result_path: str) -> list[str]:
    """Every ``*.json`` below ``result_path``, sorted; linked folders are not followed (two links to '.' made the
    walk exponential, and a link to / read every JSON on the disk)."""
    found = []
    for root, dirs, names in os.walk(result_path):  # os.walk follows no link by default
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden ones left out, as glob left them
        found += [os.path.join(root, name) for name in names if name.endswith(".json") and not name.startswith(".")]
    return sorted(found)


def load_records(result_path: str) -> list[dict]:
    """Every results JSON below ``result_path`` (training and test runs), skipping files that are not ours and
    refusing ours where they are damaged (``check_record``): a file named as ours (``results.is_results_name``)
    that is not JSON, or not a record, is refused too (it was skipped, and its run left out of the table)."""
    records = []
    for path in _json_files(result_path):
        ours = results.is_results_name(os.path.basename(path))
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested 200 000 deep
            if ours:
                raise _damaged(shown(path), f"not readable JSON: {exc}") from None
            # someone else's, or one of ours renamed and damaged: its run would leave the table without a word
            print(f"report: left out {shown(path)}: not readable JSON ({exc})", file=sys.stderr)
            continue
        if isinstance(record, dict) and {"summary", "config", "model"} <= set(record):
            check_record(shown(path), record)
            records.append({**record, "path": path})
        elif ours:
            raise _damaged(shown(path), "not a results record: it lacks 'summary', 'config' or 'model'")
    return records
