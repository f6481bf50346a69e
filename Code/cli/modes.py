"""Command line of the TIM-Net / GM-TCNet / DCNN-BLSTMwA reference implementation: dispatch one mode.

The flags and their defaults live in core/flags.py's table, read and checked by command_line.py; a run folder
(``Models/<run>``) is created and opened through run_folder.py, which every mode that uses one goes through (its
settings and features checked against the flags in mode_inputs.py, as the authors' folders' names are). Bad
input ends with one line ``error: <file or flag>: <what is wrong>`` and exit status 2; Ctrl-C says what was kept
and how to go on.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from ..core import precision
from ..core.atomic_file import check_writable_folder
from ..core.config import BACKBONE_WEIGHT_WORDS, UNKNOWN_PROTOCOL
from ..core.errors import (
    DiskFull,
    InterruptedAfterWriting,
    TrainingInterrupted,
    UserError,
    interrupt_behind,
    named,
    printable,
)
from ..core.paths import SYNTHETIC_WAV, check_outside_weights, feature_path, shown
from ..core.settings import Settings
from ..engine.run_config import hyper_of, run_config
from . import command_line
from .mode_inputs import (
    authors_split,
    check_resumed,
    network_rows,
    open_run_settings,
    read_corpus_features,
    refuse_normalize_for_authors,
    run_features,
    run_results_folder,
    settings_with_authors_corpus,
    test_path_flag,
)

if TYPE_CHECKING:  # imported where a run starts: its results module brings scikit-learn, pandas and matplotlib
    from ..runs.run_folder import RunFolder


_COLLECTOR = {"in_main": False, "frozen": False}  # main() is running; it froze the collector (undone at its end)


def start_tensorflow_in_main() -> None:
    """TensorFlow started (core/tensorflow_setup.py) where a mode first needs it, after the mode's own files are
    checked: a missing feature file or folder answers at once, not after TensorFlow's seconds of start-up.

    Within ``main()``, TensorFlow's and Keras' modules then leave the cyclic collector's sight: the full collections
    during a run (a model is built per fold) no longer walk them (docs/speed.md). Only where nothing is frozen yet,
    so that a caller's own frozen objects stay as they are; the Python API (train()) leaves the collector alone.
    """
    from ..core.tensorflow_setup import start_tensorflow
    start_tensorflow()
    if _COLLECTOR["in_main"] and not _COLLECTOR["frozen"] and gc.get_freeze_count() == 0:
        gc.freeze()
        _COLLECTOR["frozen"] = True


def configure_tensorflow_for(model: str, mixed_precision: bool | str) -> None:
    """TensorFlow started, then threads, graph optimiser and precision for ``model``, before it runs anything."""
    start_tensorflow_in_main()
    from ..Common_Model import configure_run
    from ..Model import MODELS
    configure_run(MODELS[model], mixed_precision)


def run_extract(settings: Settings) -> dict:
    from ..core.atomic_file import check_writable
    from ..data import corpora, corpus_files, extraction, feature_files
    if "+" in settings.data:  # a name with '+' was written, then read back as two corpora
        raise UserError(f"--data {settings.data}: extract makes one corpus' feature file, and '+' joins the names of "
                        "several for training; extract each corpus on its own, under a name without '+'")
    path = feature_path(settings.data, settings.features, settings.feature_path)
    if os.path.abspath(path) == os.path.abspath(settings.wav_path):  # the features would replace the manifest
        kind = "manifest" if path.lower().endswith(".csv") else "folder"
        raise UserError(f"--feature_path {path}: is the --wav_path {kind} itself; name another file for the features")
    from ..data.audio import AUDIO_EXTENSIONS
    if path.lower().endswith(AUDIO_EXTENSIONS):  # one of the recordings, replaced by the features (it was)
        raise UserError(f"--feature_path {path}: names an audio file, which the feature file would replace; name it "
                        ".npy")
    if os.path.isfile(path) and not feature_files.is_npy_file(path):  # a manifest, or a run's run.json, was replaced
        raise UserError(f"--feature_path {path}: an existing file that is not a feature file (.npy); the features "
                        "would replace it: name another file")
    check_writable(path, "--feature_path")  # before the work, not after it
    if settings.data in corpora.CORPORA:
        corpus = corpora.CORPORA[settings.data]
    else:  # a dataset of your own: labels from its folders or manifest, length from its files
        classes = corpus_files.dataset_classes(settings.wav_path)
        provisional = corpora.custom_corpus(settings.data, classes, 1)
        paths = [p for p, _, _ in corpus_files.list_corpus_files(settings.wav_path, provisional)]
        length = settings.mean_signal_length or corpus_files.mean_signal_length(paths, settings.skip_bad_files)
        corpus = corpora.custom_corpus(settings.data, classes, length)
        print(f"dataset {settings.data} of your own: labels {', '.join(classes)}; signal length {length} samples")
        for folder in corpus_files.folders_without_audio(settings.wav_path):  # an empty class folder was dropped unsaid
            print(f"warning: {os.path.join(settings.wav_path, folder)}: holds no audio file, so it is no label",
                  file=sys.stderr)
    data = extraction.extract_corpus(settings.wav_path, corpus, settings.mean_signal_length, settings.workers,
                                          kind=settings.features, skip_bad_files=settings.skip_bad_files)
    try:
        feature_files.save_features(path, data, follow_link=bool(settings.feature_path))
    except OSError as exc:
        raise UserError(f"{path}: cannot write the feature file ({exc.strerror or exc})") from None
    print(f"wrote {path}: x {data['x'].shape}, y {data['y'].shape} ({', '.join(corpus.classes)})")
    return data


def run_train(settings: Settings) -> list[dict]:
    if settings.resume:  # everything comes from the interrupted run's own record
        run, settings = open_run_settings(settings, settings.resume, "--resume")
        if run is None:
            raise UserError(f"--resume {settings.resume}: no run.json there (not a run folder written by this program)")
        check_resumed(settings, run)
        run.check_not_diverged()
        run.remove_partials()
        written = run.results_file() if len(run.finished_folds()) == run.k else None
        if written:  # nothing to train and nothing to write: say so rather than rewrite the results
            print(f"the run in {shown(run.path)} is complete: its {run.k} folds are trained and its results are in "
                  f"{shown(written)}; nothing to resume (re-test it with --mode test --test_path {shown(run.path)})")
            return []
        source = run.config.init_from
        if source and not os.path.isdir(source):  # it ended in "--init_from ...: no such folder", a flag not typed
            raise UserError(f"--resume {settings.resume}: the run was fine-tuned from {source}, which is gone; its "
                            "folds not trained yet start from that folder's weights: put it (or a copy) back there to "
                            "resume")
        backbone = run.config.hyper.backbone_weights
        if (backbone not in BACKBONE_WEIGHT_WORDS and not os.path.isfile(backbone)  # "does not fit" said Keras
                and len(run.finished_folds()) < run.k):  # every fold trained: only its results are left to write
            raise UserError(f"--resume {settings.resume}: the run's backbone started from {backbone}, which is gone; "
                            "its folds not trained yet start from that file: put it (or a copy) back there to resume "
                            "(test, predict and export do not read it)")
        features, _ = run_features(settings, run)  # every corpus' file checked before a network is built
        configure_tensorflow_for(run.config.model, run.config.mixed_precision)
        from ..engine.cross_validation import cross_validate
        from ..Model import MODELS
        x = network_rows(settings, features, run.config.feature_path)
        return cross_validate(MODELS[run.config.model], [run], x, features.y, stacked=settings.training == "stacked",
                              max_members=settings.stack_members)
    features = read_corpus_features(settings)  # every check of the corpora and their files before a network is built
    from ..data.features import warn_of_identical_rows
    warn_of_identical_rows(features.x, features.info.files, f"--data {settings.data}")
    if settings.init_from is not None:
        # the source folder is there (its run.json readable) before TensorFlow starts; the engine checks the rest
        # (fine_tune.open_source, which hashes every fold's weights, so that this is done once)
        from ..runs.run_folder import open_run
        open_run(settings.init_from, "--init_from")
    check_writable_folder(settings.model_path, "--model_path")
    check_writable_folder(settings.result_path, "--result_path")
    configure_tensorflow_for(settings.model, settings.mixed_precision)
    from ..Common_Model import build_trainer
    from ..engine.cross_validation import cross_validate, planned_folds, start_run
    from ..Model import MODELS
    for seed in settings.seeds[1:]:  # each seed's folds (a fine-tuning leak ...) refused before the first seed trains
        planned_folds(run_config(settings, features.corpus, seed)[1], features.info, features.x, features.speakers,
                      features.parts)
    spec, x = MODELS[settings.model], network_rows(settings, features)  # start_run keeps the raw rows' statistics

    def new_run(seed: int) -> RunFolder:
        return start_run(run_config(settings, features.corpus, seed)[1], features.info, features.x, features.speakers,
                         settings.model_path, settings.result_path, features.parts)
    if settings.training == "stacked":  # the folds of every seed in one stack (or stacks of --stack_members)
        return cross_validate(spec, [new_run(seed) for seed in settings.seeds], x, features.y, stacked=True,
                              max_members=settings.stack_members)
    summaries, trainer = [], build_trainer(spec, run_config(settings, features.corpus, settings.seeds[0])[1],
                                           features.x.shape[1:], features.y.shape[1])
    # a seed's run folder is made when its turn comes (one step serves all)
    for turn, seed in enumerate(settings.seeds):
        seeds = ",".join(str(later) for later in settings.seeds[turn + 1:])
        later = f"seed(s) {seeds} had not started: train them with the same command and --random_seed {seeds}"
        try:
            summaries += cross_validate(spec, [new_run(seed)], x, features.y, trainer)
        except TrainingInterrupted as stop:
            stop.later = later if seeds else ""
            raise
        except DiskFull as exc:
            raise (DiskFull(f"{exc}; {later}") if seeds else exc) from None
    return summaries


def run_cross_corpus(settings: Settings) -> dict:
    """--mode test --cross_corpus: the fold models of --test_path (a run folder, or the authors' folder named
    <KEY>_<seed>) on the corpus of --data/--feature_path; the label map first, then the figures, then the files."""
    from ..data.corpora import CORPORA
    from ..engine import cross_corpus
    from ..runs import run_folder
    run = run_folder.open_run(settings.test_path, test_path_flag(settings))
    command_line.check_unread_by_weights(settings, run is not None)
    result_path = settings.result_path if run is None else run_results_folder(settings, run)
    check_writable_folder(result_path, "--result_path")
    if run is None:
        refuse_normalize_for_authors(settings)
        train = run_folder.authors_name(settings.test_path)[0]
        if train is None:
            raise UserError(f"--test_path {settings.test_path}: has no run.json, and its name is not <KEY>_<seed> "
                            f"({', '.join(CORPORA)}), so the corpus its weights were trained on is unknown")
        configure_tensorflow_for(settings.model, False)
        from ..deploy import api
        # every weight comes from the folds
        hyper = replace(hyper_of(settings, CORPORA[train]), backbone_weights="none")
        weights = api.load_run(settings.test_path, train, settings.model, hyper)
    else:
        if "model" in settings.given and settings.model != run.config.model:
            raise UserError(f"--model {settings.model}: the run in {shown(run.path)} has {run.config.model}")
        configure_tensorflow_for(run.config.model, False)
        from ..deploy import api
        weights = api.load_run(settings.test_path)
    data = settings.data if "data" in settings.given else None
    test_set = weights.cross_corpus_set(settings.feature_path, settings.label_map, data)
    print(f"=== {cross_corpus.title(test_set.train, test_set.test)} ===")
    print(f"{weights.model_name} weights <- {shown(weights.folder)}: each utterance scored by the mean probability of "
          f"the {len(weights.folds)} fold models")
    print(f"features <- {shown(test_set.feature_file) if test_set.feature_file else test_set.test}: "
          f"{test_set.utterances} utterances, {len(test_set.truth)} of a mapped class")
    print("\n".join(test_set.label_map.describe(test_set.train, test_set.test)))
    record = weights.score_cross_corpus(test_set)
    print(cross_corpus.describe_result(record))
    paths = cross_corpus.write_results(record, result_path)
    return {"record": record, "paths": paths}


def run_test(settings: Settings) -> dict:
    from ..core import config
    from ..data.corpus_set import corpus_rows
    from ..data.resolve import recorded_feature_path
    from ..engine.protocol import run_folds, split_folds
    from ..engine.retest import authors_retest, retest_label, retest_weights
    from ..Model import MODELS
    from ..runs import run_folder
    from ..runs.run_folder import authors_name, authors_protocol
    if settings.cross_corpus:
        return run_cross_corpus(settings)
    run, settings = open_run_settings(settings, settings.test_path, test_path_flag(settings),
                                      allow_other_split=settings.retest_other_split)
    command_line.check_unread_by_weights(settings, run is not None)
    if run is None:  # the authors' folder: its settings come from the flags (and its name)
        settings, other_split = authors_split(settings_with_authors_corpus(settings))
        features = read_corpus_features(settings)
        folds = split_folds(len(features.x), settings.split_fold, settings.seed, settings.cv, settings.data,
                            features.speakers)
        files = [os.path.join(settings.test_path, run_folder.weights_name(len(folds), i + 1))
                 for i in range(len(folds))]
        missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
        if missing:  # said before TensorFlow starts
            raise UserError(f"{settings.test_path}: missing weight files {', '.join(missing)} "
                            f"(expected {len(folds)} files for --split_fold {len(folds)})")
        check_writable_folder(settings.result_path, "--result_path")
        configure_tensorflow_for(settings.model, settings.mixed_precision)
        spec, config = run_config(settings, features.corpus, settings.seed)  # its split is the flags' (folds above)
        # the published folders' epochs were chosen on their test folds, as every output of the re-test says
        protocol = authors_protocol(settings.test_path, spec.published_protocol)
        config = replace(config, protocol=protocol or UNKNOWN_PROTOCOL)
        unknown = ("" if protocol else f"{spec.name} has no published weights" if spec.published_protocol is None
                   else "a folder without run.json, not named <KEY>_<seed> as the published ones are")
        scheme = {"speaker": "speaker", "corpus": "corpus"}.get(config.cv, "KFold")
        retest = authors_retest(config, other_split)  # its features unchecked: nothing records the weights' own
        trained_on = ("the split they were trained on, as the folder's name says" if authors_name(settings.test_path)[1]
                      is not None else "the split they were trained on only if that is the seed they were trained with")
        description = (f"re-test of the weights in {settings.test_path} on the {scheme} split of seed "
                       f"{config.random_seed}" + (f": {retest['label']}" if other_split else f" ({trained_on})"))
        return retest_weights(spec, config, features.x, features.y, folds, files, settings.test_path,
                              settings.result_path, description, retest, protocol_unknown=unknown,
                              name_model=partial(named, "model", quoted=False))
    features, own_features = run_features(settings, run)
    if list(features.corpus.classes) != list(run.config.classes):  # it named --data, which was the run's, before
        raise UserError(f"--feature_path {settings.feature_path}: holds the classes "
                        f"{', '.join(features.corpus.classes)}, "
                        f"the run in {shown(run.path)} classifies {', '.join(run.config.classes)}; a re-test scores "
                        "the run's classes (another corpus: --cross_corpus)")
    result_path = run_results_folder(settings, run)
    check_writable_folder(result_path, "--result_path")
    config = replace(run.config, random_seed=settings.seed, split_fold=settings.split_fold, cv=settings.cv,
                     feature_path=recorded_feature_path(settings.data, settings.features, settings.feature_path)
                     if "feature_path" in settings.given else run.config.feature_path)
    folds = run.folds(len(features.x)) if own_features else None
    if folds is None or (config.random_seed, config.split_fold, config.cv) != (
            run.config.random_seed, run.config.split_fold, run.config.cv):
        folds = run_folds(config, len(features.x), features.speakers, corpus_rows(features.parts, len(features.x)))
    if len(folds) != run.k:  # fold model i is re-tested on test fold i: another split needs as many folds
        raise UserError(f"--split_fold {config.split_fold}: the run in {shown(run.path)} has {run.k} fold models, "
                        f"one per test fold; re-test it on {run.k} folds (--split_fold {run.k})")
    own_split = own_features and [t.tolist() for _, t in folds] == run.test_rows
    split_as_run = (config.random_seed, config.split_fold, config.cv) == (run.config.random_seed,
                                                                          run.config.split_fold, run.config.cv)
    retest = retest_label(own_split, own_features, config, (features.info.signal_length, run.signal_length),
                          split_as_run)
    description = (f"re-test of the run in {shown(run.path)} on its own split (the test rows of its run.json)"
                   if own_split and own_features else f"re-test of the run in {shown(run.path)}: {retest['label']}")
    files = [path for _, path in run.checked_weight_files()]
    # the split and the weight files checked first
    configure_tensorflow_for(run.config.model, run.config.mixed_precision)
    return retest_weights(MODELS[config.model], config, network_rows(settings, features, config.feature_path),
                          features.y, folds, files, run.path, result_path, description, retest, features.parts)


def load_weights(settings: Settings):
    """The api.Run of ``--test_path``: a run folder (flags checked against it) or the authors' folder (--data,
    --model and the network flags say what it is)."""
    from ..data.corpora import CORPORA
    from ..data.resolve import corpus_for_weights
    from ..deploy import api
    from ..Model import MODELS
    from ..runs.run_folder import chosen_folds, fold_weight_files
    run, settings = open_run_settings(settings, settings.test_path, test_path_flag(settings))
    command_line.check_unread_by_weights(settings, run is not None)
    model = run.config.model if run is not None else settings.model
    numbers = list(range(1, run.k + 1)) if run is not None else [n for n, _ in fold_weight_files(settings.test_path)]
    chosen_folds(settings.fold, settings.test_path, numbers)  # before TF; the folder as typed
    if run is None:
        settings = settings_with_authors_corpus(settings)  # before TF too
    # it was taken, and unused
    unread = ("feature_path" in settings.given and (settings.data in CORPORA if run is None else
              os.path.abspath(settings.feature_path) != os.path.abspath(run.config.feature_path)))
    if unread:
        said = "its run.json" if run is not None else f"--data {settings.data}, a known corpus,"
        raise UserError(f"--feature_path {settings.feature_path}: --mode {settings.mode} reads no features; {said} "
                        "gives the classes and length of the weights; leave it out")
    configure_tensorflow_for(model, False)
    if run is not None:
        return api.load_run(settings.test_path)
    corpus = corpus_for_weights(settings.data, MODELS[settings.model].features, settings.feature_path)
    hyper = replace(hyper_of(settings, corpus), backbone_weights="none")  # every weight comes from the folds
    return api.authors_run(settings.test_path, MODELS[settings.model], hyper, settings.data, corpus, api=False)


def weights_used(weights, settings: Settings) -> str:
    """The first line of predict and export: the model, corpus, --test_path and the folds that score."""
    return f"{weights.model_name} {weights.data} weights {settings.test_path} ({weights.folds_used(settings.fold)})"


def run_predict(settings: Settings) -> dict:
    from ..core.atomic_file import check_writable
    from ..deploy import predict, timeline
    if settings.output and not settings.output.lower().endswith((".csv", ".json")):  # a .txt or .xlsx got CSV in it
        raise UserError(f"--output {settings.output}: predict writes a table as CSV or JSON; name the file .csv or "
                        ".json")
    # the table would replace the list
    if settings.output and os.path.abspath(settings.output) == os.path.abspath(settings.wav):
        raise UserError(f"--output {settings.output}: is the --wav list itself; name another file for the predictions")
    if settings.output:
        check_outside_weights(settings.output, settings.test_path)
        check_writable(settings.output, "--output")
    # --wav is checked before the weights load: the one file of --timeline, or every input, listed once (counted,
    # then predicted)
    if settings.timeline:
        timeline.checked_source(settings.wav, api=False)
    inputs = None if settings.timeline else predict.list_inputs(settings.wav, api=False)
    unread = predict.files_not_read(inputs) if inputs is not None else ""
    if unread:
        print(printable(f"note: --wav {settings.wav}: {unread}"))
    weights = load_weights(settings)
    print(weights_used(weights, settings))
    for note in predict.unchecked(weights, settings.test_path):
        print(f"note: {note}")
    if weights.normalize == "speaker":  # engine/normalization.py
        if inputs is not None and inputs.speakers is not None:
            print(f"--normalize speaker: each input standardised with the statistics of its speaker's files "
                  f"({len(set(inputs.speakers))} speakers in {settings.wav})")
        else:
            print(f"--normalize speaker: {'the file' if settings.timeline else 'every input of --wav'} taken as one "
                  "speaker (standardised with the statistics of all of it; a CSV list of files with a speaker "
                  "column standardises by speaker)")
    if settings.timeline:
        return timeline.run_cli(weights, settings.wav, settings.hop, settings.output, settings.fold)
    from ..data.extraction import Progress
    total, skipped = predict.input_count(inputs), []
    folder = settings.wav if os.path.isdir(settings.wav) else None  # rows named by their path inside it
    bar = Progress("predict", total, total > predict.CHUNK)  # many files: a bar on stderr, chunk by chunk

    def rows():  # printed, and written to --output, chunk by chunk: nothing grows with the number of files
        for chunk in weights.predict_chunks(inputs, settings.fold):
            shift = next((row["domain_shift"] for row in chunk if row.get("domain_shift")), None)
            if shift and shift["warning"]:  # the inputs of a chunk (all of them, up to predict.CHUNK) together
                print(f"warning: {shift['warning']}", file=sys.stderr)
            for row in chunk:
                if row.get("warning"):
                    print(f"warning: {printable(row['warning'])}", file=sys.stderr)
                if row.get("error"):
                    skipped.append(row["error"])
                else:
                    print(predict.format_row(row, weights.classes, folder))
                yield row
            bar.step(len(chunk))
        if len(skipped) == total:  # raised inside the write: an --output file is left as it was, never replaced
            raise UserError(f"--wav {settings.wav}: none of its {total} file(s) could be decoded"
                            f"{f'; {settings.output} was not written' if settings.output else ''}")
    try:
        if settings.output:
            predict.write_output(settings.output, rows(), weights.classes)
        else:
            for _ in rows():
                pass
    finally:
        bar.close()
        if skipped:
            print(f"skipped {len(skipped)} file(s) that could not be decoded:", file=sys.stderr)
            for error in skipped:
                print(f"  {printable(error)}", file=sys.stderr)
    if settings.output:
        print(f"wrote {settings.output}")
    return {"files": total, "skipped": len(skipped)}


def run_export(settings: Settings) -> list[str]:
    from ..deploy.export_output import check_output
    # --format, or the one --output names; creates nothing (the export makes the folder)
    fmt = check_output(os.path.normpath(settings.output), settings.format, settings.test_path, api=False)
    weights = load_weights(settings)  # starts TensorFlow once the folder's weights are found
    # before the long conversion
    print(f"{weights_used(weights, settings)} -> {fmt} {settings.output}", flush=True)
    if weights.mixed_precision:  # the exported graph is float32 (its sidecar's "compute" says so too)
        print(f"note: the run trained in {precision.title_note(weights.mixed_precision).lower()}; the export computes "
              "in float32, so a prediction near a class boundary can differ from the run's and from predict's")
    paths = weights.export(settings.output, fmt, settings.fold)
    for path in paths:
        print(f"wrote {path}")
    return paths


def run_grid(settings: Settings) -> dict:
    from ..grid.pool import Pool, only_grid_on, train_points
    from . import grid_file
    points = grid_file.expand(settings.grid, grid_file.read_grid(settings.grid), grid_file.command_line_flags(settings))
    with only_grid_on(settings.grid):  # before TensorFlow's seconds of start-up
        # the plan starts its runs (engine/cross_validation.py), and --address none trains here
        start_tensorflow_in_main()
        return train_points(settings.grid, points, Pool(settings.address, settings.workers, settings.gpus_per_task))


def run_report(settings: Settings) -> dict:
    from ..runs import report
    return report.write_report(settings.result_path)


def run_download(settings: Settings) -> str:
    from ..data import download
    return download.download(settings.data, settings.download_path, settings.url, settings.md5)


def run_demo(settings: Settings) -> dict:
    """The embedded default: synthetic wavs -> MFCC -> k-fold training -> results -> re-test of the saved weights."""
    from ..data import synthetic_corpus
    # 108 training utterances per fold: batches of 16 give BatchNorm's moving statistics (momentum 0.99)
    # about 200 updates in 30 epochs; with batches of 64 they would barely leave their initial values.
    settings = replace(settings, data="SYNTH", wav_path=settings.wav_path or SYNTHETIC_WAV,
                       epoch=settings.epoch or 30, batch_size=settings.batch_size or 16)
    print("=== SYNTHETIC DEMO: generated harmonic signals, not speech; its numbers say nothing about any corpus ===")
    paths = synthetic_corpus.generate(settings.wav_path)
    print(f"generated {len(paths)} synthetic utterances in {settings.wav_path}")
    run_extract(settings)
    [trained] = run_train(settings)
    # the re-test takes every setting from the run folder
    settings = replace(settings, test_path=trained["record"]["weights_folder"], given=frozenset())
    tested = run_test(settings)
    same = [f["y_pred"] for f in trained["record"]["folds"]] == [f["y_pred"] for f in tested["record"]["folds"]]
    print(f"test mode on the saved weights reproduces every fold's predictions: {'yes' if same else 'NO'}")
    if not same:
        raise UserError(f"{settings.test_path}: re-tested predictions differ from the training run's")
    return tested


INTERRUPTED = {
    "extract": "interrupted: no feature file was written",
    "grid": "interrupted: every finished fold is saved; run the same grid command again to continue",
    "demo": "interrupted: what the demo wrote so far is kept; run the same command again to start it over",
}


def main(argv=None) -> int:
    mode = None
    _COLLECTOR["in_main"] = True
    try:
        settings = command_line.parse(argv)
        mode = settings.mode
        # every flag checked before TensorFlow is imported: a wrong one answers at once
        settings = command_line.validate(settings)
        os.environ["CUDA_VISIBLE_DEVICES"] = settings.gpu  # before anything imports TensorFlow (start_tensorflow)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        {"extract": run_extract, "train": run_train, "test": run_test, "predict": run_predict, "export": run_export,
         "grid": run_grid, "report": run_report, "download": run_download, "demo": run_demo}[settings.mode](settings)
    except UserError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except InterruptedAfterWriting as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(INTERRUPTED.get(mode, "interrupted: nothing was written"), file=sys.stderr)
        return 130
    except Exception as exc:
        if not interrupt_behind(exc):  # a Ctrl-C or SIGTERM that TensorFlow reported as another error
            raise
        print(INTERRUPTED.get(mode, "interrupted: nothing was written"), file=sys.stderr)
        return 130
    finally:
        if _COLLECTOR["frozen"]:  # a caller in the same process (the tests) gets its collector back as it was
            gc.unfreeze()
        _COLLECTOR.update(in_main=False, frozen=False)
    return 0


def _terminated(signum, frame) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt  # the path of Ctrl-C: the finished folds kept, the command that continues printed


_TERMINATED: list[int] = []  # SIGTERM received by this process (process_main)


def process_main() -> int:
    """``main()`` as a process of its own (``python main.py``, the installed ``timnet-ser``).

    SIGTERM, the stop of a job scheduler (Slurm before its SIGKILL, Kubernetes, ``kill``), ends it as Ctrl-C does:
    the finished folds kept, the command that continues printed, exit status 143 (128 + SIGTERM) instead of 130;
    without the handler it ended at once, printing nothing. Before the interpreter ends, every object leaves the
    cyclic collector's sight: its collections at exit would walk TensorFlow's whole object graph (docs/speed.md has
    the time) to free memory the ending process gives back anyway. Every file is written and closed by then. A
    grid stopped while Ray ran ends at once after its message (Ray's threads crashed at the interpreter's end).
    """
    signal.signal(signal.SIGTERM, _terminated)
    code = main()
    gc.freeze()
    code = 128 + signal.SIGTERM if _TERMINATED and code == 130 else code
    if "ray" in sys.modules and code in (130, 128 + signal.SIGTERM):
        # a grid stopped while Ray started: Ray's io thread crashed as the interpreter tore down (a segmentation
        # fault, status 139, after "interrupted: ..."); Ray is shut down and every file written, so end here
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
