"""Fine-tuning (``--init_from``): where every fold of a new run starts, checked before anything is trained, and
the start weights put in place when the fold starts.

The source is a run folder (its run.json names the model, the feature kind and shape, the network settings, the
classes and every fold's test rows) or the authors' folder of ``<k>-fold_weights_best_<i>.hdf5`` files named
``<KEY>_<seed>`` (the corpus KEY's classes; the model and network flags are the new run's). Fold k starts from
the source's fold k where it has one, else from its fold ``--init_fold``. The weights are read through the one
fold-weights loader (engine/fold_weights.py), which checks the file against the network first. The backbone
(every layer but the softmax ``dense``) is copied; the head too when both class sets are the same (its columns
put in the new run's class order), otherwise the head keeps the values the fold's seed drew for it.

Leak: refused when a new test fold holds an utterance that its source fold trained on. An utterance is the same
when its file name (without folder) is, where both feature files record names (a recording heard through another
channel, or cut again, keeps its name), or when its features are (``row_signatures`` within ``SEEN_TOLERANCE``,
what prediction uses to recognise a training file). The authors' folders record no rows: refused when the new
corpus is the one the folder is named after or a test file is named as that corpus names its recordings (their
folds trained on nearly all of it), any other corpus taken on trust (and the output says so).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..core.config import RunConfig, TrainingData
from ..core.errors import UserError, named
from ..core.flags import RUN_FLAGS
from ..core.paths import shown
from ..data.corpora import CORPORA, named_recordings
from ..data.features import row_signatures, signature_matches
from ..data.label_map import lookup
from ..Model import MODELS
from ..runs import run_folder
from .fold_weights import FoldWeights

if TYPE_CHECKING:
    import keras

HEAD = "dense"  # the softmax layer (Model.build_model): the one layer not copied when the class sets differ
FREE_HYPER = ("dropout", "backbone_weights")  # network settings that do not change what the weights mean


@dataclass(frozen=True)
class Source:
    """A fine-tuning source: its folder, model, corpus, classes, weight files and run (None: the authors')."""

    folder: str
    model: str
    data: str
    classes: tuple
    files: tuple  # (fold number from 1, path) of every fold's weights
    run: Optional[run_folder.RunFolder]

    @property
    def k(self) -> int:
        return len(self.files)

    def same_classes(self, classes) -> bool:
        """Whether ``classes`` are the source's, in any order (names compared by label_map.lookup)."""
        return len(classes) == len(self.classes) and {lookup(c, self.classes) for c in classes} == set(self.classes)


def open_source(folder: str, model: str, weights: bool = True, flag: str = "--init_from") -> Source:
    """The source in ``folder`` (a run folder, or the authors' folder named ``<KEY>_<seed>``); one line if neither,
    beginning with ``flag`` and the folder, the setting that named it. ``weights=False``: its record only, the
    weight files neither listed nor checked (what the leak check reads of a run further back)."""
    run = run_folder.open_run(folder, flag)
    if run is not None:
        return Source(run.path, run.config.model, run.config.data, tuple(run.config.classes),
                      tuple(run.checked_weight_files()) if weights else (), run)
    files = run_folder.fold_weight_files(folder, flag) if weights else ()
    key = run_folder.authors_name(folder)[0]
    if key is None:
        raise UserError(f"{flag} {folder}: has no run.json, and its name is not <KEY>_<seed> "
                        f"({', '.join(CORPORA)}), so the classes of its weights are unknown")
    return Source(os.path.abspath(folder), model, key, tuple(CORPORA[key].classes), tuple(files), None)


def source_fold(source: Source, fold: int, init_fold: Optional[int]) -> int:
    """The source fold (from 1) that fold ``fold`` (from 0) starts from: the same where the source has it."""
    return fold + 1 if fold < source.k else init_fold


def check_source(source: Source, config: RunConfig, data: TrainingData) -> None:
    """One line for a source of another model, feature kind or shape, or network; for a missing fold."""
    where = f"--init_from {shown(source.folder)}"
    if source.model != config.model:
        raise UserError(f"{where}: holds {source.model} weights; the new run trains {config.model}")
    if config.init_fold is not None and not 1 <= config.init_fold <= source.k:
        raise UserError(f"--init_fold {config.init_fold}: {shown(source.folder)} has folds 1 to {source.k}")
    if config.split_fold > source.k and config.init_fold is None:
        raise UserError(f"{where}: has {source.k} folds, the new run {config.split_fold}: folds {source.k + 1} to "
                        f"{config.split_fold} have no fold to start from; give --init_fold i (1 to {source.k})")
    theirs_normalize = "none" if source.run is None else source.run.config.hyper.normalize  # the authors': none
    if config.hyper.normalize != theirs_normalize:  # its weights learnt inputs scaled otherwise
        raise UserError(f"{where}: trained with --normalize {theirs_normalize}, the new run has --normalize "
                        f"{config.hyper.normalize}: another network; fine-tune with --normalize {theirs_normalize}")
    if source.run is None:
        return  # the authors' weights: the files are checked against the new run's network (FoldWeights)
    run = source.run
    if run.feature_kind != data.features or tuple(run.input_shape) != tuple(data.input_shape):
        raise UserError(f"{where}: trained on {run.feature_kind} features of shape {tuple(run.input_shape)}; the new "
                        f"run's are {data.features} of shape {tuple(data.input_shape)}")
    ours, theirs = asdict(config.hyper), asdict(run.config.hyper)
    differ = [name for name in ours if name not in FREE_HYPER and ours[name] != theirs[name]]
    if differ:
        flag_of = {flag.run: flag.name for flag in RUN_FLAGS}  # "hyper.backbone_alpha" -> "backbone_alpha"
        flags = " ".join(f"--{flag_of.get('hyper.' + name, name)} {theirs[name]}" for name in differ)
        raise UserError(f"{where}: another network: "
                        f"{', '.join(f'{name} {theirs[name]} (new run {ours[name]})' for name in differ)}; give the "
                        f"new run the source's: {flags}")


MAX_CHAIN = 16  # runs fine-tuned from runs fine-tuned from ...: followed this far (a hand-edited loop is named)


def _chain(source: Source, config: RunConfig, folds: int) -> tuple[list[tuple[Source, list]], str]:
    """The source and the runs it goes back to by fine-tuning (``back_from``), each with the fold (from 1, None
    where not known) that every new fold's weights go back to there; and what ended the chain short ("" where
    nothing did). A fine-tuned run's weights hold what its own source trained on too: a frozen backbone is its
    source's, bit for bit."""
    levels = [(source, [source_fold(source, fold, config.init_fold) for fold in range(folds)])]
    if source.run is None:
        return levels, ""
    steps, cut = back_from(source.run, MAX_CHAIN - 1, lambda folder: (f"--init_from {shown(source.folder)}: it goes "
                                                                       f"back by fine-tuning to {folder}, which"))
    for _, by_fold, level in steps:
        if level is not None:
            levels.append((level, [by_fold.get(number) for number in levels[-1][1]]))
    return levels, cut


def back_from(run: run_folder.RunFolder, limit: int, where) -> tuple[list[tuple[dict, dict, Optional[Source]]], str]:
    """The runs that ``run`` goes back to by fine-tuning, nearest first, at most ``limit``: each as (the
    ``init_from`` record that names it, {fold: its fold} of that record, its Source; None where its folder is gone,
    which ends the chain); and what ended the chain short ("" where nothing did). Only each run's record is read
    (its weights need not be whole); a run of the chain that is there but cannot be read is one line beginning
    with ``where(folder)``, since what it trained on cannot be compared."""
    steps, seen = [], {os.path.realpath(run.path)}
    while run is not None:
        record = run.init_from
        if record is None:
            return steps, ""  # trained from scratch
        by_fold = _source_folds(run, record)
        if len(steps) == limit:
            return steps, f"the chain goes back further than {limit + 1} runs: the rest not compared"
        folder = record["folder"]
        if not os.path.exists(folder):
            steps.append((record, by_fold, None))
            return steps, f"{folder}, which it goes back to by fine-tuning, is gone: not compared"
        if os.path.realpath(folder) in seen:  # only a hand edit makes one: a run starts from a finished run
            return steps, (f"{shown(os.path.join(run.path, run_folder.RUN_FILE))} names {folder}, a run already on "
                           "the chain, as its init_from: the records go round in a loop")
        seen.add(os.path.realpath(folder))
        try:  # named by the run.json of the run fine-tuned from it, not by a flag the user typed
            level = open_source(folder, run.config.model, weights=False,
                                flag=f"{shown(os.path.join(run.path, run_folder.RUN_FILE))}: init_from")
        except UserError as exc:
            raise UserError(f"{where(folder)} cannot be read ({exc})") from None
        steps.append((record, by_fold, level))
        run = level.run
    return steps, ""


def _source_folds(run: run_folder.RunFolder, record) -> dict:
    """{fold: source fold} of a fine-tuned run's ``init_from`` record (run.json); one line where a hand edit left
    it in another shape."""
    folds = record.get("folds") if isinstance(record, dict) else None
    if (not isinstance(record, dict) or not isinstance(record.get("folder"), str) or not isinstance(folds, list)
            or not isinstance(record.get("data", ""), str)  # the source's corpus, which a cross-corpus test compares
            or not all(isinstance(item, dict) and type(item.get("fold")) is int
                       and type(item.get("source_fold")) is int for item in folds)):
        raise UserError(f"{os.path.join(run.path, run_folder.RUN_FILE)}: damaged run file ('init_from' must name "
                        "the folder it started from, its corpus and, per fold, its 'fold' and 'source_fold' numbers)")
    return {item["fold"]: item["source_fold"] for item in folds}


def check_leak(source: Source, config: RunConfig, data: TrainingData, x: np.ndarray, test_rows: list) -> str:
    """One line when a new test fold holds an utterance that its source fold trained on, or that the fold it
    started from there trained on, back along the chain of fine-tuned runs (``_chain``); else what was compared."""
    levels, cut = _chain(source, config, len(test_rows))
    names = [os.path.basename(f) for f in data.files] if data.files else None
    signatures = row_signatures(x)
    said = []
    for depth, (level, numbers) in enumerate(levels):
        # the source's own words; further back, the run it was (in turn) fine-tuned from
        where = (f"--init_from {shown(source.folder)}:" if not depth else
                 f"--init_from {shown(source.folder)}: it goes back by fine-tuning to {shown(level.folder)}, and")
        said.append(_check_level(level, numbers, config, data, names, signatures, test_rows, where))
    further = [f"{shown(level.folder)}: {text}" for (level, _), text in zip(levels[1:], said[1:])]
    return "; ".join([said[0], *(f"back along the chain, {text}" for text in further), *([cut] if cut else [])])


def _check_level(level: Source, numbers: list, config: RunConfig, data: TrainingData, names, signatures,
                 test_rows: list, where: str) -> str:
    """``check_leak`` for one run of the chain, whose folds ``numbers`` (one per new fold) the new folds go back
    to."""
    if level.run is None:
        if config.data.lower() == level.data.lower():
            raise UserError(f"{where} the authors' {level.data} weights trained on {level.data}, the corpus the new "
                            "test folds hold (a leak)")
        named = named_recordings(level.data, [f for rows in test_rows for f in np.asarray(data.files)[rows]]) \
            if data.files else []
        if named:  # their folds trained on (nearly) all of that corpus, which rows is not known
            raise UserError(f"{where} the authors' {level.data} weights "
                            f"trained on {level.data}, and {len(named)} test utterance(s) of the new run are named "
                            f"as its recordings are (e.g. {named[0]}): a leak")
        return (f"the authors' folder records no training rows: no test utterance named as a {level.data} "
                f"recording; taken on trust that {config.data} holds none of its utterances")
    run = level.run
    their_rows = run.folds(sum(len(t) for t in run.test_rows))
    their_names = run.training_files
    their_signatures = run.training_signatures()
    names = names if their_names else None
    if their_signatures is not None and their_signatures.shape[1:] != signatures.shape[1:]:
        their_signatures = None
    compared = 0
    for fold, test in enumerate(test_rows):
        number = numbers[fold]
        if not isinstance(number, int) or not 1 <= number <= len(their_rows):
            continue  # a fold its fine-tuned run does not say it started from: the others are still compared
        compared += 1
        trained = their_rows[number - 1][0]
        shared = set()
        if names is not None:
            seen = {os.path.basename(their_names[r]) for r in trained}
            shared |= {names[r] for r in test if names[r] in seen}
        if their_signatures is not None:
            matches = signature_matches(signatures[test], their_signatures[trained])
            shared |= {names[r] if names else f"row {r}" for r, m in zip(test, matches) if len(m)}
        if shared:
            raise UserError(f"{where} its fold {number} trained on "
                            f"{len(shared)} utterance(s) that test fold {fold + 1} of the new run holds (e.g. "
                            f"{min(shared)}): a leak; fine-tune on other utterances than the source trained on")
    if not compared:
        return "no fold of the new run goes back to one of its folds: not compared"
    what = "file names and features" if names is not None else "features"
    return f"no test utterance of the new run among its source fold's training utterances (compared: {what})"


def plan(config: RunConfig, data: TrainingData, x: np.ndarray, test_rows: list) -> dict:
    """Every check of a fine-tuning run before anything is trained (the source, its network, the leak, every fold's
    weight file against the network); printed, and returned as run.json's ``init_from`` record."""
    source = open_source(config.init_from, config.model)
    check_source(source, config, data)
    leak = check_leak(source, config, data, x, test_rows)
    numbers = [source_fold(source, fold, config.init_fold) for fold in range(len(test_rows))]
    files = dict(source.files)
    used = sorted(set(numbers))
    FoldWeights(MODELS[config.model], config.hyper, data.input_shape, len(source.classes),
                [(n, files[n]) for n in used], source.data,  # every file checked against the network
                name_model=partial(named, "model", quoted=False))  # the authors' TIM-Net read as GMTCN's: --model
    head = "kept" if source.same_classes(config.classes) else "new"
    record = {"folder": source.folder, "model": source.model, "data": source.data, "classes": list(source.classes),
              "head": head, "freeze_backbone": config.freeze_backbone,
              "folds": [{"fold": fold + 1, "source_fold": n, "weights_sha256": run_folder.file_sha256(files[n])}
                        for fold, n in enumerate(numbers)]}
    print(f"fine-tuning from {shown(source.folder)} ({source.model} on {source.data}, {source.k} folds): "
          + ", ".join(f"fold {fold + 1} <- its fold {n}" for fold, n in enumerate(numbers)))
    heads = ("kept (the same classes)" if head == "kept" else
             f"new, drawn from each fold's seed (classes {', '.join(source.classes)} -> {', '.join(config.classes)})")
    backbone = "frozen (only the head trains)" if config.freeze_backbone else "trained"
    print(f"  head: {heads}; backbone: {backbone}; {leak}")
    return record


def start_fold(model: keras.Model, config: RunConfig, fold: int, expected_sha256: Optional[str] = None) -> dict:
    """Put fold ``fold``'s start weights into ``model`` (which holds the fold seed's fresh weights): the source
    fold's backbone, and its head when the classes are the same; returns what the fold record keeps.
    ``expected_sha256``: the weights file's hash as the run recorded it when it began (``plan``); a file changed
    since (a resumed run whose source was retrained or replaced) is refused: the run's record would name weights it
    did not start from, and the leak check was made on those."""
    from ..Model import legacy_weight_groups
    from ..nn.legacy_weights import assign_weight_arrays
    source = open_source(config.init_from, config.model)
    number = source_fold(source, fold, config.init_fold)
    path = dict(source.files)[number]
    if expected_sha256 is not None and run_folder.file_sha256(path) != expected_sha256:
        raise UserError(f"--init_from {shown(source.folder)}: its fold {number} weights changed since this run "
                        f"began ({os.path.basename(path)} is not the file its run.json recorded); put that file back, "
                        "or train a new run from the folder as it is now")
    loaded = FoldWeights(MODELS[config.model], config.hyper, model.input_shape[1:], len(source.classes),
                         [(number, path)], source.data)
    arrays = loaded.folds[0][2]  # [(layer name, [array, ...])] in legacy order; the head last
    groups = legacy_weight_groups(model)
    keep_head = source.same_classes(config.classes)
    if keep_head:  # the source's columns in the new run's class order
        columns = [source.classes.index(lookup(c, source.classes)) for c in config.classes]
        name, (kernel, bias) = arrays[-1]
        arrays = [*arrays[:-1], (name, [kernel[:, columns], bias[columns]])]
    assert groups[-1][0] == HEAD, groups[-1][0]
    assign_weight_arrays(arrays if keep_head else arrays[:-1], groups if keep_head else groups[:-1])
    print(f"fold {fold + 1}: starts from {shown(source.folder)} fold {number} "
          f"({'backbone and head' if keep_head else 'backbone; new head'})")
    return {"folder": source.folder, "source_fold": number, "head": "kept" if keep_head else "new"}


def freeze_backbone(model: keras.Model) -> keras.Model:
    """``model`` with every layer but the head frozen: not trained, and its BatchNorm layers in inference mode
    (Keras 3), so that the backbone's weights, moving statistics included, stay the source's."""
    for layer in model.layers:
        if layer.name != HEAD:
            layer.trainable = False
    return model
