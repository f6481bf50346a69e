"""Test mode: every fold's saved weights evaluated on its test fold, for a run folder or the authors' weights.

A run folder's re-test uses the run's own test rows (its ``run.json``) and its own features (their content hash
checked), so it prints exactly the training run's figures. Re-testing on another split or other features is
possible only when asked for by name (``--retest_other_split``, ``--retest_other_features``: cli/command_line.py),
and is then labelled in every printout, file name and JSON record (``retest``): the report never averages it with a
re-test on the run's own split. The authors' folders have no record: their split is rebuilt from the flags, and
their features are checked against nothing, which every output says (``results.FEATURES_NOT_CHECKED``): the
authors' published figure was measured on their own feature file.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..core.config import UNKNOWN_PROTOCOL, RunConfig
from ..core.paths import shown
from ..Model import ModelSpec, inference_function
from ..runs import results
from .fold_weights import FoldWeights

# what chose a fold's weights under each of core/config.PROTOCOL_NAMES (tests/test_protocols.py ties them)
WEIGHTS_CHOSEN = {"last_epoch": "its last epoch", "paper": "the epoch best on its test fold",
                  "inner_val": "the epoch best on a validation split of its training fold"}


def retest_label(own_split: bool, own_features: bool, config: RunConfig,
                 signal_lengths: tuple[int, int] | None = None, split_as_run: bool = False) -> dict:
    """The ``retest`` entry of a re-test's record: whether split ("own", "other", "unchecked") and features are the
    run's own, and a label;
    ``signal_lengths``: (the features', the run's) where other features were cut to another length;
    ``split_as_run``: the split's settings are the run's, over other features, whose rows cannot be matched with
    the run's test rows (such a split is not known to be the run's, nor known to be another)."""
    notes = []
    scheme = f"seed {config.random_seed}, {config.split_fold}-fold {config.cv}"
    if not own_split and split_as_run:  # "OTHER SPLIT ... the figures are inflated" said more than is known
        notes.append(f"SPLIT NOT CHECKED (the run's {scheme}, over other features: their rows cannot be matched "
                     "with the run's test rows; where they are other files, a test fold may hold rows the fold "
                     "models trained on, and the figures are then inflated)")
    elif not own_split:
        notes.append(f"OTHER SPLIT ({scheme}): its test folds hold rows the fold models trained on, the figures "
                     "are inflated")
    if not own_features:
        length = (f"; utterances of {signal_lengths[0]} samples, the run's {signal_lengths[1]}"
                  if signal_lengths and signal_lengths[0] != signal_lengths[1] else "")
        notes.append(f"OTHER FEATURES ({os.path.basename(config.feature_path)}, not the run's{length})")
    split = "own" if own_split else "unchecked" if split_as_run else "other"
    return {"split": split, "features": "own" if own_features else "other", "label": "; ".join(notes)}


def authors_retest(config: RunConfig, other_split: bool) -> dict:
    """The ``retest`` entry of a re-test of a folder without run.json (the authors' weights): its split the flags'
    (``OTHER SPLIT`` where another than the folder's name gives), its features "unchecked": nothing records what the
    weights trained on, so the features cannot be told to be theirs or another's (``results.FEATURES_NOT_CHECKED``;
    it was recorded as None, or as the authors' own features on another split)."""
    return {**retest_label(not other_split, True, config), "features": "unchecked"}


def file_suffix(retest: dict | None) -> str:
    """What a re-test on another split or other features appends to its results file names."""
    if not retest:
        return ""
    return {"other": "_other-split", "unchecked": "_unchecked-split"}.get(retest["split"], "") + \
        ("_other-features" if retest["features"] == "other" else "")


def retest_weights(spec: ModelSpec, config: RunConfig, x: np.ndarray, y: np.ndarray, folds: list,
                   weight_files: list[str], weights_folder: str, result_path: str, description: str,
                   retest: dict | None = None, parts: list = (), protocol_unknown: str = "",
                   name_model: Callable[[str], str] | None = None) -> dict:
    """Load fold i's weights, evaluate them on test fold i, write and print the results.

    Args:
        spec, config: the model and the settings it is re-tested under.
        x, y: the features and one-hot labels.
        folds: (train rows, test rows) per fold; ``weight_files[i]`` belongs to ``folds[i]``.
        weights_folder: the folder re-tested, for the printout and the record.
        result_path: the results folder.
        description: what split the re-test uses, as printed and recorded.
        retest: ``retest_label``'s entry (a folder without run.json: ``authors_retest``'s).
        parts: a run on several corpora: each one (data/corpus_set.Part), for the per-corpus figures.
        protocol_unknown: why nothing records what chose the weights of a folder without run.json (not named as
            the published ones, or of a model without published weights), where ``config.protocol`` is
            ``UNKNOWN_PROTOCOL``.
        name_model: for a folder without run.json, how a message names the model setting (FoldWeights).
    """
    # what chose the weights, said in the protocol line as in the training's (a re-test named no protocol but paper)
    if config.protocol == UNKNOWN_PROTOCOL:  # the authors' weights renamed read as "those of its last epoch"
        description += f"; nothing records what chose each fold's weights ({protocol_unknown})"
    else:
        description += (f"; each fold's weights are those of {WEIGHTS_CHOSEN[config.protocol]} "
                        f"(--protocol {config.protocol})")
        if config.protocol == "paper":  # a paper-protocol run's weights, or the authors' published ones
            description += ": an optimistic figure"
    if retest and retest["features"] == "unchecked":  # said last, beside the figures a published one is set against
        description += f"; {results.features_not_checked(config.data)}"
    # every file checked before anything is written
    weights = FoldWeights(spec, config.hyper, x.shape[1:], y.shape[1], list(enumerate(weight_files, start=1)),
                          config.data, config.mixed_precision, name_model)
    results.prepare_folder(result_path)
    print(f"{results.run_title(config, 'test', retest)}\nweights <- {shown(weights_folder)}")
    records = []
    infer = inference_function(weights.model, config.fused_kernels)  # traced once; each fold's weights loaded into it
    for i, ((_, test_idx), path) in enumerate(zip(folds, weight_files)):
        with weights.loaded(i):
            probs = infer(x[test_idx])
        metrics = results.fold_metrics(y[test_idx].argmax(1), probs.argmax(1), config.classes)
        records.append({**metrics, "weights": path, "y_true": y[test_idx].argmax(1).tolist(),
                        "y_pred": probs.argmax(1).tolist(), "test_rows": test_idx.tolist()})
        print(results.format_fold_line(i, len(folds), records[-1]))
    record = results.run_record(config, spec.describe(config.hyper, trained=False), "test", records, weights_folder,
                                "test", description, retest, parts)
    return results.write_run_results(record, result_path, results.time_stamp(),
                                     config.selection_suffix + config.variant_suffix + file_suffix(retest))
