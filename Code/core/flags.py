"""The one table of the command line: every flag and its setting (type, default, help, choices, range check,
where ``run.json`` records it, whether it is a grid key and a report column). The parser (cli/command_line.py), the
typed ``Settings`` (core/settings.py), the reading of a run's settings, the grid file's keys (cli/grid_file.py)
and the report's settings columns (runs/report_rows.py) are all derived from it. Plain data: no TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import json_fields, paths, precision
from .config import LABEL_SMOOTHING_HISTORIES, MAX_DILATION_SIZE, MAX_STACKS, MAX_WIDTH, PROTOCOL_NAMES

MODES = ("train", "test", "extract", "predict", "export", "grid", "report", "download", "demo")
EXPORT_FORMATS = ("onnx", "tflite", "savedmodel")
MODEL_NAMES = ("TIMNET", "GMTCN", "DCNN_BLSTMwA")  # Model.MODELS' keys, in its order (tests/test_flags_table.py)
NORMALIZE = ("none", "utterance", "speaker", "corpus")
TRAINING_MODES = ("train", "grid", "demo")  # the modes that train (a grid's points are train commands)
# the modes that train, or open a run or the authors' folder: they alone read a setting that run.json records (typed
# next to a run folder, it must agree with the run), and they alone start TensorFlow (--gpu)
RUN_MODES = (*TRAINING_MODES, "test", "predict", "export")
FEATURE_MODES = ("extract", *RUN_MODES)  # the modes that read or write a feature file
GROUPS = ("common", "training", "model-specific", "feature extraction", "test, predict, export", "grid on Ray",
          "output folders, download")


@dataclass(frozen=True)
class Flag:
    """One flag ``--<name>`` and the setting ``Settings.<name>`` it fills."""

    name: str
    type: type  # str, int, float, or bool: a switch (--balance) that is off unless typed
    default: Any
    group: str  # its group in --help (GROUPS)
    help: str
    choices: tuple = ()
    check: str = ""  # a range check of CHECKS, applied when the value is not None
    run: str = ""  # the RunConfig field that run.json records it as ("epochs", "hyper.dropout"); "" if none
    grid: bool = False  # a grid file key although run.json does not record it (every recorded flag is one)
    report: bool = False  # a settings column of the report (named by ``run``): runs differing in it never average
    words: dict | None = None  # a switch that may also take a word: {word: the setting}; bare, it is True
    modes: tuple = ()  # the only modes that read it (typed with another, it is refused); () for every mode
    trained: bool = False  # a recorded setting of how weights train, not of what they compute (epochs, lr, ...)
    models: tuple = ()  # the only models whose network reads it (typed with another, it is refused); () for all
    protocols: tuple = ()  # the only protocols that read it, likewise
    required: tuple = ()  # the modes that cannot start without it (refused before anything loads)
    needed_as: str = ""  # what a required flag names, for its refusal: "an audio file or a folder of them"


def _shown_g(value) -> str:
    return f"{value:g}"


def _shown_number(value) -> str:
    """An int as it is, a float as typed (``0``, ``-1.5``, not ``0.0``)."""
    return _shown_g(value) if isinstance(value, float) else str(value)


# check -> (passes, what the one-line error says, how the value is shown in it)
CHECKS: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], str]]] = {
    "positive": (lambda v: v > 0, "must be positive", _shown_number),
    "at_least_2": (lambda v: v >= 2, "must be at least 2", str),
    "fraction": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)", str),
    "not_negative": (lambda v: v >= 0, "must be 0 or more", _shown_g),
    # a network's width and taps, and its stacks: bounded, so that a run.json from elsewhere cannot have a model of
    # filter_size 30000 (a 7 GB tensor) or stack_size 100000 (a crash) built before any weights are read
    "width": (lambda v: 1 <= v <= MAX_WIDTH, f"must be between 1 and {MAX_WIDTH}", str),
    "stacks": (lambda v: 1 <= v <= MAX_STACKS, f"must be between 1 and {MAX_STACKS}", str),
    "block_count": (lambda v: 1 <= v <= MAX_DILATION_SIZE,
                    f"must be between 1 and {MAX_DILATION_SIZE} (the last block dilates by 2^(n - 1))", str),
}


def _rows(group: str, *rows: tuple) -> list[Flag]:
    """The group's flags; a recorded one (``run``) is read by RUN_MODES, unless its row names its modes."""
    return [Flag(name, kind, default, group, text, **({"modes": RUN_MODES} if "run" in extra else {}) | extra)
            for name, kind, default, text, extra in rows]


def row(name: str, kind: type, default, text: str, **extra) -> tuple:
    return name, kind, default, text, extra


FLAGS: tuple[Flag, ...] = tuple([
    *_rows(
        "common",
        row("mode", str, "train",
          "extract: audio -> feature file; train: k-fold training; test: re-test saved weights; predict: classify "
          "audio files; export: ONNX/TFLite/SavedModel; grid: many runs on Ray; report: results table; download: "
          "fetch EMODB or RAVDE; demo: the whole pipeline on a generated synthetic corpus", choices=MODES),
        row("model", str, "TIMNET",
          "network: TIMNET (default), GMTCN (both read MFCC features) or DCNN_BLSTMwA (reads logmel3 features); "
          "each brings its paper's recipe. A run folder knows its own", choices=MODEL_NAMES, run="model",
          modes=(*TRAINING_MODES, "test", "predict", "export")),  # extract: --features says the kind
        row("data", str, "EMODB",
          "corpus key: CASIA EMODB EMOVO IEMOCAP RAVDE SAVEE SYNTH, or a name of your own; several joined by '+' "
          "(EMODB+RAVDE) train on their common classes (docs/several_corpora.md). A run folder knows its own",
          run="data", modes=tuple(mode for mode in MODES if mode not in ("report", "demo"))),  # demo: SYNTH
        row("feature_path", str, None,
          "feature file to read or write (default ./MFCC/<DATA>.npy for MFCCs, ./MFCC/<DATA>_logmel3.npy for "
          "log-Mel segments; several corpora: a.npy+b.npy in --data's order; a run folder knows its own)", grid=True,
          modes=FEATURE_MODES),
        row("test_path", str, paths.AUTHORS_WEIGHTS,
          "test/predict/export: a run folder (Models/<run>) or the authors' folder of "
          "<k>-fold_weights_best_<i>.hdf5 files (then --data and --model say what they are)",
          modes=("test", "predict", "export")),
        row("random_seed", str, "46",
          "seed of the fold split, the initial weights and the shuffling; several train runs: 46,47,48",
          run="random_seed"),
        row("split_fold", int, 10, "number of cross-validation folds", check="at_least_2", run="split_fold"),
        row("cv", str, "kfold",
          "folds: kfold (the original's shuffled KFold), speaker (whole speakers held out) or, with several "
          "corpora, corpus (leave one corpus out; --split_fold is their number)",
          choices=("kfold", "speaker", "corpus"), run="cv"),
        row("gpu", str, "0", "CUDA_VISIBLE_DEVICES value; -1 runs on the CPU", modes=RUN_MODES),
    ),
    *_rows(
        "training",
        row("protocol", str, "last_epoch",
          "model selection: last_epoch (default), inner_val (best epoch on a validation split of the training "
          "fold) or paper (best epoch on the TEST fold, as the published numbers)",
          choices=PROTOCOL_NAMES, run="protocol", trained=True),
        row("val_fraction", float, 0.1, "inner_val: share of each training fold used for validation",
          check="fraction", run="val_fraction", trained=True, report=True, protocols=("inner_val",)),
        row("resume", str, None, "train: the folder of an interrupted run to continue (its own settings)",
            modes=("train",)),
        row("epoch", int, None, "training epochs (default: the model's recipe, TIMNET 500, GMTCN 300, DCNN_BLSTMwA 50)",
          check="positive", run="epochs", trained=True, report=True),
        row("batch_size", int, None, "mini-batch size (default: the recipe, 64; DCNN_BLSTMwA 32; the demo 16)",
          check="positive", run="batch_size", trained=True, report=True),
        row("lr", float, None, "Adam learning rate (default: the recipe, 0.001; DCNN_BLSTMwA 1e-4)",
          check="positive", run="lr", trained=True, report=True),
        row("beta1", float, None, "Adam beta_1 (default: the recipe, 0.93; DCNN_BLSTMwA 0.9)",
          check="fraction", run="beta1", trained=True, report=True),
        row("beta2", float, None, "Adam beta_2 (default: the recipe, 0.98; DCNN_BLSTMwA 0.999)",
          check="fraction", run="beta2", trained=True, report=True),
        row("label_smoothing", float, None,
          "label smoothing of the training labels (default: the recipe, TIMNET 0.1, GMTCN and DCNN_BLSTMwA 0)",
          check="fraction", run="label_smoothing", trained=True, report=True),
        row("label_smoothing_history", str, "per_fold",
          "per_fold (default): each fold smooths a copy of its training labels; cumulative: the labels are "
          "smoothed in place fold after fold, as the code behind the ICASSP table and the published weights did "
          "(fold k trains on labels smoothed up to k times)", choices=LABEL_SMOOTHING_HISTORIES,
          run="label_smoothing_history", trained=True),
        row("training", str, "sequential",
          "sequential (default): one fold after the other, each saved when trained (the reference path); "
          "stacked: TIMNET/GMTCN's unfinished folds train together in one compiled step (the same training, "
          "saved when the stack is done; docs/speed.md has where it is faster)", choices=("sequential", "stacked"),
          modes=TRAINING_MODES),
        row("stack_members", int, None,
          "--training stacked: at most this many folds (of all --seeds) in one stack; the rest follow in further "
          "stacks of that size (default: all in one; docs/speed.md has the memory a member needs)",
          modes=TRAINING_MODES),
        row("balance", bool, False,
          "oversample every class of each training fold to the size of the largest (off by default)",
          run="balance", trained=True, report=True),
        row("xla", bool, False,
          "compile the training step with XLA (on our CPU slower than the default; see docs/speed.md)", run="xla",
          trained=True),
        row("fused_kernels", str, "auto",
          "auto (default): TIM-Net's and GM-TCNet's float32 training runs each block's element-wise work through "
          "the fused kernels setup.sh builds with the machine's C++ compiler, where it built them (on the CPU, "
          "sequential or stacked; not with --xla or --mixed_precision), and TIM-Net's and GM-TCNet's inference "
          "wherever the run trained with them (its folds' evaluation, a re-test, the API); off: the pure-TensorFlow "
          "path. run.json records which trained (docs/speed.md)", choices=("auto", "off"), grid=True,
          modes=TRAINING_MODES),
        row("mixed_precision", bool, False,
          "compute in float16 with float32 weights and loss scaling (Keras mixed_float16), for GPUs; "
          "--mixed_precision bf16: in bfloat16 (Keras mixed_bfloat16, no loss scaling; docs/speed.md); off by "
          "default", run="mixed_precision", report=True, words=precision.WORDS),
        row("init_from", str, None,
          "train: fine-tune: every fold starts from the weights of this run folder or authors' folder (fold k from "
          "its fold k; a new head when the classes differ); refused when it trained on the new test folds' "
          "utterances (docs/fine_tuning.md)", run="init_from", trained=True, report=True),
        row("init_fold", int, None,
          "--init_from: the source fold that the new run's folds beyond the source's fold count start from",
          check="positive", run="init_fold", trained=True, report=True),
        row("freeze_backbone", bool, False,
          "--init_from: train the softmax head only; the copied backbone stays as it is (off by default)",
          run="freeze_backbone", trained=True, report=True),
    ),
    *_rows(
        "model-specific",
        row("dropout", float, 0.1, "TIMNET: SpatialDropout1D rate in each temporal-aware block", check="fraction",
          run="hyper.dropout", report=True, models=("TIMNET",)),
        row("activation", str, "relu", "TIMNET: activation in each temporal-aware block", run="hyper.activation",
          report=True, models=("TIMNET",)),
        row("filter_size", int, 39, "TIMNET, GMTCN: channels of every convolution", check="width",
          run="hyper.filter_size", report=True, models=("TIMNET", "GMTCN")),
        row("dilation_size", int, None,
          "TIMNET: temporal-aware blocks per direction (default: the corpus' value, 8; IEMOCAP 10)",
          check="block_count", run="hyper.dilation_size", report=True, models=("TIMNET",)),
        row("kernel_size", int, 2, "TIMNET, GMTCN: taps of the dilated causal convolutions", check="width",
          run="hyper.kernel_size", report=True, models=("TIMNET", "GMTCN")),
        row("stack_size", int, 1, "TIMNET: repetitions of the block stack", check="stacks", run="hyper.stack_size",
          report=True, models=("TIMNET",)),
        row("backbone", str, "mobilenetv2",
          "DCNN_BLSTMwA: the CNN applied to every segment: mobilenetv2 (default) or resnet50v2 (Keras "
          "Applications)", run="hyper.backbone", models=("DCNN_BLSTMwA",)),
        row("backbone_alpha", float, 1.0,
          "DCNN_BLSTMwA: MobileNetV2's width multiplier (ImageNet weights exist for 0.35 0.5 0.75 1.0 1.3 1.4)",
          check="positive", run="hyper.backbone_alpha", models=("DCNN_BLSTMwA",)),
        row("backbone_weights", str, "imagenet",
          "DCNN_BLSTMwA: the CNN's initial weights: imagenet (downloaded once into ~/.keras/models), none "
          "(random), or a weights file (.weights.h5, or the _no_top.h5 file Keras downloads)",
          run="hyper.backbone_weights", models=("DCNN_BLSTMwA",)),
        row("image_size", int, 64,
          "DCNN_BLSTMwA: resize the 64x64 segments to this size before the CNN (the paper: 227 for AlexNet)",
          check="positive", run="hyper.image_size", models=("DCNN_BLSTMwA",)),
        row("normalize", str, "none",
          "TIMNET, GMTCN: none (default, the papers'); standardise each MFCC coefficient over non-padded frames "
          "with the mean and variance of: utterance (each utterance's own), speaker (all its speaker's utterances; "
          "predict: one call's inputs are one speaker) or corpus (the training fold's, kept by the network); "
          "against another recording setup, docs/cross_corpus.md",
          choices=NORMALIZE, run="hyper.normalize", report=True),
        row("augment", int, 0,
          "DCNN_BLSTMwA: add this many copies of every training utterance with a random frequency and time mask "
          "(default 0: none)", check="not_negative", run="augment", trained=True, report=True),
    ),
    *_rows(
        "feature extraction",
        row("wav_path", str, None,
          "extract: folder of audio files (<folder>/<class>/*.wav or the corpus' own naming) or a CSV manifest "
          "path,label[,speaker]", modes=("extract", "demo"),
          required=("extract",), needed_as="the folder or manifest of the audio files"),
        row("features", str, None,
          "extract: mfcc (default; TIMNET, GMTCN) or logmel3 (DCNN_BLSTMwA: 64-band log-Mel, delta, delta-delta "
          "in 64-frame segments); other modes: the model's kind", grid=True,
          modes=FEATURE_MODES),
        row("mean_signal_length", int, None,
          "extract: samples every utterance is centred to (default: the corpus' value; own data: the mean length)",
          check="positive", modes=("extract", "demo")),
        row("workers", int, None,
          "extract: parallel processes (default: all cores); grid: Ray workers on a local Ray (default: one per "
          "2 cores, docs/grid.md)", check="positive", modes=("extract", "grid", "demo")),
        row("skip_bad_files", bool, False,
          "extract: leave out files that cannot be decoded and list them (default: stop at the first, because "
          "leaving files out changes the folds)", modes=("extract", "demo")),
    ),
    *_rows(
        "test, predict, export",
        row("retest_other_split", bool, False,
          "test: allow a --random_seed/--split_fold/--cv other than the run's; its test folds then hold rows the "
          "fold models trained on, so the figures are inflated; labelled OTHER SPLIT everywhere", modes=("test",)),
        row("retest_other_features", bool, False,
          "test: allow a --feature_path whose content differs from the run's; labelled OTHER FEATURES everywhere",
          modes=("test",)),
        row("wav", str, None, "predict: an audio file (wav, flac, ogg, opus, aiff, aif, mp3), a folder of them, or a "
            "CSV list of files (first line: path[,speaker]; a run trained with --normalize speaker standardises "
            "each speaker with their own files, docs/predict.md)", modes=("predict",),
            required=("predict",), needed_as="an audio file or a folder of them"),
        row("timeline", bool, False,
          "predict: one long file window by window (windows of the model's length, silence skipped, each scored "
          "by the fold mean): a CSV (or JSON) table and a PNG, see docs/timeline.md", modes=("predict",)),
        row("hop", float, None, "predict --timeline: seconds between window starts (default: half the model's window)",
          check="positive", modes=("predict",)),
        row("fold", int, None,
          "predict/export: use only fold i's weights (default: the mean of all folds' probabilities)",
          check="positive", modes=("predict", "export")),
        row("format", str, None, "export: onnx, tflite or savedmodel (default: what --output names: .onnx, .tflite, "
            "a folder for savedmodel)", choices=EXPORT_FORMATS, modes=("export",)),
        row("output", str, None,
          "predict: also write the predictions to this .csv or .json file (--timeline: the window table, and the "
          "picture beside it, the table's name with .png added: t.csv.png); export: the exported file or folder",
          modes=("predict", "export"), required=("export",), needed_as="e.g. --output model.onnx"),
        row("cross_corpus", bool, False,
          "test: score the fold models of --test_path (their mean probability) on ANOTHER corpus: --data OTHER "
          "--feature_path OTHER.npy; labelled CROSS-CORPUS (trained on A, tested on B) everywhere "
          "(docs/cross_corpus.md)"),
        row("label_map", str, None,
          "--cross_corpus: a .toml (their_class = \"our_class\", \"\" drops it) or .csv (their_class,our_class) "
          "file mapping the other corpus' classes onto the run's (default: equal names, case-insensitive); "
          "train --data A+B (also a grid's): onto common classes ([KEY] tables per corpus)", grid=True),
    ),
    *_rows(
        "grid on Ray",
        row("grid", str, None, "grid: a TOML file; keys are flag names, a list is an axis of the grid",
            modes=("grid",), required=("grid",), needed_as="a TOML file of flags; a list is an axis"),
        row("address", str, None,
          "grid: Ray cluster to use: default a local Ray on this machine; 'auto' or ray://host:port for a cluster",
          modes=("grid",)),
        row("gpus_per_task", float, 0.0,
          "grid: GPUs per fold task (fractions pack several folds on one GPU); 0 trains on CPUs",
          check="not_negative", modes=("grid",)),
    ),
    *_rows(
        "output folders, download",
        row("model_path", str, paths.MODELS, "folder that receives each run's folder", grid=True,
            modes=TRAINING_MODES),
        row("result_path", str, paths.RESULTS,
          "folder that receives results (xlsx, json, png); a resumed or re-tested run uses its own by default",
          grid=True, modes=(*TRAINING_MODES, "test", "report")),
        row("download_path", str, paths.CORPORA, "download: folder that receives the corpus", modes=("download",)),
        row("url", str, None, "download: a mirror of the archive (give its MD5 with --md5)", modes=("download",)),
        row("md5", str, None, "download: the MD5 of the mirror's archive", modes=("download",)),
    ),
])

BY_NAME: dict[str, Flag] = {flag.name: flag for flag in FLAGS}
# the flags run.json records, in the table's order: typed next to a run folder they must agree with it
RUN_FLAGS: tuple[Flag, ...] = tuple(flag for flag in FLAGS if flag.run)
# the split flags, which a re-test may change with --retest_other_split
SPLIT_FLAGS = ("random_seed", "split_fold", "cv")
# the keys of a grid file (cli/grid_file.py): every recorded flag, then the feature file and the output folders
GRID_KEYS: tuple[str, ...] = (*(f.name for f in RUN_FLAGS), *(f.name for f in FLAGS if f.grid))


def report_columns(network: bool) -> tuple[str, ...]:
    """The report's settings columns (run.json names): the network's (``hyper.``) or the training's."""
    return tuple(f.run.removeprefix("hyper.") for f in FLAGS
                 if f.report and f.run.startswith("hyper.") == network)


def unread_by(flag: Flag, model: str, protocol: str | None = None) -> str:
    """Why nothing reads ``flag`` in a run of ``model`` under ``protocol`` (None: not known yet): the models or
    protocols that do; "" where it is read. Typed, such a flag was recorded, and split the report into rows of one
    and the same training."""
    for setting, value, readers in (("model", model, flag.models), ("protocol", protocol, flag.protocols)):
        if readers and value is not None and value not in readers:
            return (f"--{setting} {value} does not read it (only {' and '.join(readers)} "
                    f"{'does' if len(readers) == 1 else 'do'})")
    return ""


def recorded(config, flag: Flag):
    """The value ``run.json``'s ``config`` (a RunConfig) records for ``flag``."""
    value = config
    for part in flag.run.split("."):
        value = getattr(value, part)
    return value


def first_recorded_refusal(config: dict, nullable: frozenset, skip: frozenset = frozenset()) -> str:
    """The first setting of a recorded ``config`` (a run.json's or a results record's, as JSON objects) that the
    table refuses (``recorded_refusal``); "" where each passes. A setting the object lacks is passed over (an older
    record lacks a later setting), as are switches that take words and the settings in ``skip``; null only for the
    settings in ``nullable``."""
    for flag in RUN_FLAGS:
        *parents, name = flag.run.split(".")  # "hyper.dropout": config["hyper"]["dropout"]
        table = config
        for part in parents:
            table = table.get(part) if isinstance(table, dict) else None
        if flag.words or flag.run in skip or not isinstance(table, dict) or name not in table:
            continue
        refused = recorded_refusal(flag, table[name], flag.run in nullable)
        if refused:
            return refused
    return ""


def recorded_refusal(flag: Flag, value, nullable: bool) -> str:
    """Why the table refuses ``value``, a recorded setting of ``flag`` that came from a ``run.json``, not through the
    parser: its JSON type, its choices or its range check, as ``'config.<field>' ...``; "" where it passes. Null
    only where ``nullable`` (a setting a run may leave unset, such as ``init_from``); a switch that takes words
    (--mixed_precision) is the caller's."""
    field = f"'config.{flag.run}'"
    if value is None:
        return "" if nullable else f"{field} must be set, it is null"
    kind = int if flag.name == "random_seed" else flag.type  # recorded as the number, typed as text ("46,47")
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float) if kind is float else kind):
        return f"{field} must be {json_fields.expected(kind)}, it is {json.dumps(value)}"
    if kind is float and not math.isfinite(value):  # json reads Infinity and NaN
        return f"{field} is {json.dumps(value)}: must be a finite number"
    if flag.choices and value not in flag.choices:
        return f"{field} is {json.dumps(value)}: choose one of {', '.join(flag.choices)}"
    if flag.check and not CHECKS[flag.check][0](value):
        return f"{field} is {json.dumps(value)}: {CHECKS[flag.check][1]}"
    return ""

