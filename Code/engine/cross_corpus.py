"""Cross-corpus test: a run's fold models on the utterances of another corpus, labelled as such everywhere.

Every utterance of the other corpus is unseen by every fold model, so the prediction is the fold models' mean
probability (not fold i on test fold i). The other corpus' classes are mapped onto the run's (data/label_map.py);
only utterances of a mapped class are scored: WAR, UAR (over the classes present), the confusion matrix over the
run's classes and each class' recall. Every printout, results file name and results JSON says
``CROSS-CORPUS (trained on A, tested on B)``; the JSON's ``cross_corpus`` entry keeps the report from ever putting
it among the within-corpus rows (runs/report.py has its own table for it). ``--mode test --cross_corpus`` and
``Run.evaluate`` go through here.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Optional, Union

import numpy as np

from ..core.errors import UserError
from ..core.paths import shown
from ..data.label_map import LabelMap, build_label_map
from ..runs import results


def title(train: str, test: str) -> str:
    return f"CROSS-CORPUS (trained on {train}, tested on {test})"


def file_label(train: str, test: str) -> str:
    return f"CROSS-CORPUS_trained-on-{train}_tested-on-{test}"


@dataclass(frozen=True)
class TestSet:
    """The other corpus' utterances of a mapped class, with their labels as the run's class indices."""

    train: str  # the run's corpus
    test: str  # the other corpus
    x: np.ndarray  # the scored utterances' features
    truth: np.ndarray  # their class, as an index into the run's classes
    label_map: LabelMap
    utterances: int  # of the other corpus, scored or not
    feature_file: Optional[str]
    sha256: Optional[str]


def load_test_corpus(data: str, kind: str, path: Optional[str], api: bool = False):
    """The other corpus' features (data/resolve.py's checks); ``data`` defaults to the file's name."""
    from ..data.resolve import load_data
    if path is not None and not os.path.exists(path):  # it said "--data 'nope' is not a known corpus" (the file's name)
        raise UserError(f"{'features=' if api else '--feature_path '}{path}: no such feature file")
    if data is None:
        if path is None:
            raise UserError("data: name the other corpus (or give its feature file)" if api else
                            "--data: name the other corpus (--data KEY --feature_path FILE)")
        data = os.path.splitext(os.path.basename(path))[0]
    return load_data(data, kind, path, api=api)


def prepare(classes: list, train: str, input_shape: tuple, x: np.ndarray, y: np.ndarray, their_classes: list,
            test: str, given_map: Union[str, dict, None], feature_file: Optional[str] = None,
            sha256: Optional[str] = None, api: bool = False) -> TestSet:
    """The utterances of ``x`` (one-hot ``y`` over ``their_classes``) that a label map puts in ``classes``
    (``api``: errors name Run.evaluate's arguments, not the flags)."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        where = feature_file or test
        raise UserError(f"{where}: utterances of shape {tuple(x.shape[1:])}, but the run trained on {train} reads "
                        f"{tuple(input_shape)}; extract the other corpus with the run's signal length "
                        "(--mean_signal_length)")
    label_map = build_label_map(list(classes), list(their_classes), given_map, train, test, api)
    their = np.asarray(y).argmax(axis=1)
    index = {c: i for i, c in enumerate(classes)}
    ours = np.array([index.get(label_map.pairs.get(their_classes[t]), -1) for t in their])
    kept = np.flatnonzero(ours >= 0)
    return TestSet(train, test, x[kept], ours[kept], label_map, len(x), feature_file, sha256)


def score(test_set: TestSet, probabilities: np.ndarray, classes: list, model: dict, config: dict,
          weights_folder: str) -> dict:
    """The results record of the fold models' ``probabilities`` (F, N, C) on ``test_set``'s utterances."""
    predicted = probabilities.mean(axis=0).argmax(axis=1)
    fold = {**results.fold_metrics(test_set.truth, predicted, classes), "y_true": test_set.truth.tolist(),
            "y_pred": predicted.tolist()}
    present = sorted(set(test_set.truth.tolist()))
    recall = {classes[c]: fold["report"][classes[c]]["recall"] for c in present}
    name = title(test_set.train, test_set.test)
    description = (f"{name}: the mean probability of {len(probabilities)} fold models on the "
                   f"{len(test_set.truth)} utterances of {test_set.test} with a mapped class "
                   f"(of {test_set.utterances})")
    return {"title": f"{name}: {model['model']}, mean of {len(probabilities)} fold models", "mode": "cross_corpus",
            **model, "protocol": "cross_corpus", "protocol_description": description, "synthetic": False,
            "weights_folder": weights_folder, "config": config,
            "cross_corpus": {"label": name, "train_corpus": test_set.train, "test_corpus": test_set.test,
                             "test_feature_file": test_set.feature_file, "test_sha256": test_set.sha256,
                             "label_map": test_set.label_map.as_dict(), "utterances": test_set.utterances,
                             "scored": len(test_set.truth), "fold_models": len(probabilities),
                             "per_class_recall": recall},
            "retest": None, "versions": results.library_versions(), "folds": [fold],
            "summary": results.summarize([fold])}


def config_of(run, data: str, model: str, classes: list, hyper, seed: int | None = None) -> dict:
    """The record's ``config``: a run folder's RunConfig, or what is known of the authors' weights (``seed``: the
    one their folder's name gives, else None; their fold count is not known)."""
    if run is not None:
        return asdict(run.config)
    return {"model": model, "data": data, "classes": list(classes), "hyper": asdict(hyper), "random_seed": seed,
            "split_fold": None}


def describe_result(record: dict) -> str:
    """The printout after the label map: WAR, UAR, each class' recall, the confusion matrix."""
    cross, summary = record["cross_corpus"], record["summary"]
    classes = record["config"]["classes"]
    lines = [f"{cross['label']}: WAR {summary['war_pooled'] * 100:.2f}%  UAR {summary['uar_pooled'] * 100:.2f}%  "
             f"({cross['scored']} of {cross['utterances']} utterances scored, {len(cross['per_class_recall'])} "
             f"class{'es' if len(cross['per_class_recall']) > 1 else ''}; one class always: UAR "
             f"{100 / len(cross['per_class_recall']):.2f}%)",
             "recall per class: " + "  ".join(f"{c} {r * 100:.1f}%" for c, r in cross["per_class_recall"].items()),
             "confusion (rows: true class, columns: predicted):",
             " " * 12 + "".join(f"{c[:8]:>9}" for c in classes)]
    lines += [f"{c[:12]:<12}" + "".join(f"{n:>9}" for n in row)
              for c, row in zip(classes, summary["confusion_pooled"]) if sum(row)]
    return "\n".join(lines)


def write_results(record: dict, result_path: str) -> dict:
    """The xlsx, confusion picture and JSON of a cross-corpus test: ``CROSS-CORPUS_trained-on-A_tested-on-B_...``."""
    cross, config = record["cross_corpus"], record["config"]
    seed = "" if config.get("random_seed") is None else f"_{config['random_seed']}"
    stem = (f"{file_label(cross['train_corpus'], cross['test_corpus'])}_{record['summary']['war_pooled'] * 100:.2f}"
            f"{seed}_{results.time_stamp()}_{record['model']}")
    paths = results.write_results(result_path, stem, record, config["classes"])
    for kind, path in paths.items():
        print(f"wrote {kind}: {shown(path)}")
    return paths
