"""Every setting of the command line: the flags, their defaults, their checks, and their agreement with a run.

The original's flags keep their spellings and defaults (``--mode train --data EMODB --split_fold 10
--random_seed 46`` ...). Default folders are relative to the current directory (core/paths.py): ``Code/MFCC`` and
so on when run from ``Code/`` as the original is, the user's own folder for the installed ``timnet-ser``. A
setting is read and checked here, once:

- ``parse`` reads the flags and records which ones were typed (``args.given``): a run folder's own settings
  fill in the others, and a typed flag that contradicts the run is refused (``check_against_run``);
- ``validate`` checks every flag that needs no data and turns each failure into one line naming the flag.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
from collections.abc import Callable

from ..core import paths
from ..core.errors import UserError, did_you_mean

MODES = ("train", "test", "extract", "predict", "export", "grid", "report", "download", "demo")
EXPORT_FORMATS = ("onnx", "tflite", "savedmodel")

EXAMPLES = """default folders (MFCC/, Models/, Results/, Test_Models/, Corpora/) are relative to the current
directory: Code/MFCC ... when run from Code/ as below, your own folder for the installed timnet-ser.

examples (run from Code/):
  python main.py --mode demo                                              # the whole pipeline on a synthetic corpus
  python main.py --mode extract --data EMODB --wav_path <EMO-DB wav folder>   # -> MFCC/EMODB.npy
  python main.py --mode train --data EMODB --split_fold 10 --random_seed 46   # TIM-Net, last epoch of 500
  python main.py --mode train --data EMODB --model GMTCN --protocol inner_val
  python main.py --mode test --test_path Models/<run>                     # everything else from the run's run.json
  python main.py --mode test --data EMODB --random_seed 46 --test_path Test_Models/EMODB_46   # the authors' weights
  python main.py --mode predict --test_path Models/<run> --wav speech.wav
  python main.py --mode predict --test_path Models/<run> --wav call.wav --timeline   # emotion over time
  python main.py --mode export --test_path Models/<run> --format onnx --output model.onnx
  python main.py --mode train --resume Models/<run>                       # continue an interrupted run
  python main.py --mode grid --grid table.toml                            # many runs on Ray (local or a cluster)
  python main.py --mode report                                            # the papers' table from Results/
"""


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors are one line with a suggestion (a UserError) instead of the usage and exit 2."""

    def error(self, message: str):
        raise UserError(_one_line(self, message))


def _one_line(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's message as ``unknown flag --epochs (did you mean --epoch?)``, ``--mode 'tets': choose one of
    ... (did you mean test?)`` or ``--epoch 'x': invalid int value``."""
    flags = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        words = unknown.group(1).split()
        word = next((w for w in words if w.startswith("-")), words[0])
        if not word.startswith("-"):
            return f"{word}: unexpected word (every value follows its flag, e.g. --epoch 2)"
        close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
        return f"unknown flag {word}" + (f" (did you mean {close[0]}?)" if close else "; see --help")
    argument = re.match(r"argument ([^:]+): (.*)", message)
    if not argument:
        return message
    flag = argument.group(1).split("/")[-1]
    action = next((a for a in parser._actions if flag in a.option_strings), None)
    choice = re.match(r"invalid choice: '?([^' ]*)'?", argument.group(2))
    if choice and action is not None and action.choices:
        value = choice.group(1)
        return (f"{flag} {value!r}: choose one of {', '.join(action.choices)}"
                f"{did_you_mean(value, action.choices)}")
    value = re.search(r"invalid \w+ value: '([^']*)'", argument.group(2))
    if value:
        return f"{flag} {value.group(1)!r}: {argument.group(2).split(':')[0]}"
    return f"{flag}: {argument.group(2)}"


def version() -> str:
    from .. import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="TIM-Net, GM-TCNet and DCNN-BLSTMwA speech emotion recognition: extract MFCC or log-Mel "
                    "features, train with k-fold cross-validation, re-test saved weights, predict audio files, export "
                    "models, run grids of runs on Ray, tabulate results.")
    common = p.add_argument_group("common")
    a = common.add_argument
    a("--mode", default="train", choices=MODES,
      help="extract: audio -> feature file; train: k-fold training; test: re-test saved weights; predict: classify "
           "audio files; export: ONNX/TFLite/SavedModel; grid: many runs on Ray; report: results table; download: "
           "fetch EMODB or RAVDE; demo: the whole pipeline on a generated synthetic corpus")
    a("--model", default="TIMNET",
      help="network: TIMNET (default), GMTCN (both read MFCC features) or DCNN_BLSTMwA (reads logmel3 features); "
           "each brings its paper's recipe. A run folder knows its own")
    a("--data", default="EMODB",
      help="corpus key: CASIA EMODB EMOVO IEMOCAP RAVDE SAVEE SYNTH, or a name of your own. A run folder knows its own")
    a("--feature_path", default=None,
      help="feature file to read or write (default ./MFCC/<DATA>.npy for MFCCs, ./MFCC/<DATA>_logmel3.npy for "
           "log-Mel segments; a run folder knows its own)")
    a("--test_path", default=paths.AUTHORS_WEIGHTS,
      help="test/predict/export: a run folder (Models/<run>) or the authors' folder of "
           "<k>-fold_weights_best_<i>.hdf5 files (then --data and --model say what they are)")
    a("--random_seed", default="46",
      help="seed of the fold split, the initial weights and the shuffling; several train runs: 46,47,48")
    a("--split_fold", type=int, default=10, help="number of cross-validation folds")
    a("--cv", default="kfold", choices=("kfold", "speaker"),
      help="folds: kfold (the original's shuffled KFold) or speaker (whole speakers held out)")
    a("--gpu", default="0", help="CUDA_VISIBLE_DEVICES value; -1 runs on the CPU")
    a("--version", action="version", version=f"%(prog)s {version()}")

    training = p.add_argument_group("training")
    a = training.add_argument
    a("--protocol", default="last_epoch", choices=("last_epoch", "paper", "inner_val"),
      help="model selection: last_epoch (default), inner_val (best epoch on a validation split of the training "
           "fold) or paper (best epoch on the TEST fold, as the published numbers)")
    a("--val_fraction", type=float, default=0.1, help="inner_val: share of each training fold used for validation")
    a("--resume", default=None, help="train: the folder of an interrupted run to continue (its own settings)")
    a("--epoch", type=int, default=None,
      help="training epochs (default: the model's recipe, TIMNET 500, GMTCN 300, DCNN_BLSTMwA 50)")
    a("--batch_size", type=int, default=None,
      help="mini-batch size (default: the recipe, 64; DCNN_BLSTMwA 32; the demo 16)")
    a("--lr", type=float, default=None, help="Adam learning rate (default: the recipe, 0.001; DCNN_BLSTMwA 1e-4)")
    a("--beta1", type=float, default=None, help="Adam beta_1 (default: the recipe, 0.93; DCNN_BLSTMwA 0.9)")
    a("--beta2", type=float, default=None, help="Adam beta_2 (default: the recipe, 0.98; DCNN_BLSTMwA 0.999)")
    a("--label_smoothing", type=float, default=None,
      help="label smoothing of the training labels (default: the recipe, TIMNET 0.1, GMTCN and DCNN_BLSTMwA 0)")
    a("--label_smoothing_history", default="per_fold", choices=("per_fold", "cumulative"),
      help="per_fold (default): each fold smooths a copy of its training labels; cumulative: the labels are "
           "smoothed in place fold after fold, as the code behind the ICASSP table and the published weights did "
           "(fold k trains on labels smoothed up to k times)")
    a("--training", default="sequential", choices=("sequential", "stacked"),
      help="sequential (default): one fold after the other, each saved when trained (the reference path); "
           "stacked: TIMNET/GMTCN's unfinished folds train together in one compiled step (the same training, "
           "saved when the stack is done; docs/speed.md has where it is faster)")
    a("--stack_members", type=int, default=None,
      help="--training stacked: at most this many folds (of all --seeds) in one stack; the rest follow in further "
           "stacks of that size (default: all in one; the batched layout needs ~1.1 GB per member at IEMOCAP's shape)")
    a("--balance", action="store_true",
      help="oversample every class of each training fold to the size of the largest (off by default)")
    a("--xla", action="store_true",
      help="compile the training step with XLA (on our CPU slower than the default; see docs/speed.md)")
    a("--mixed_precision", action="store_true",
      help="compute in float16 with float32 weights and loss scaling (Keras mixed_float16), for GPUs; off by default")

    models = p.add_argument_group("model-specific")
    a = models.add_argument
    a("--dropout", type=float, default=0.1, help="TIMNET: SpatialDropout1D rate in each temporal-aware block")
    a("--activation", default="relu", help="TIMNET: activation in each temporal-aware block")
    a("--filter_size", type=int, default=39, help="TIMNET, GMTCN: channels of every convolution")
    a("--dilation_size", type=int, default=None,
      help="TIMNET: temporal-aware blocks per direction (default: the corpus' value, 8; IEMOCAP 10)")
    a("--kernel_size", type=int, default=2, help="TIMNET, GMTCN: taps of the dilated causal convolutions")
    a("--stack_size", type=int, default=1, help="TIMNET: repetitions of the block stack")
    a("--backbone", default="mobilenetv2", help="DCNN_BLSTMwA: the CNN applied to every segment: mobilenetv2 "
                                                "(default) or resnet50v2 (Keras Applications)")
    a("--backbone_alpha", type=float, default=1.0,
      help="DCNN_BLSTMwA: MobileNetV2's width multiplier (ImageNet weights exist for 0.35 0.5 0.75 1.0 1.3 1.4)")
    a("--backbone_weights", default="imagenet",
      help="DCNN_BLSTMwA: the CNN's initial weights: imagenet (downloaded once into ~/.keras/models), none "
           "(random), or a weights file (.weights.h5, or the _no_top.h5 file Keras downloads)")
    a("--image_size", type=int, default=64,
      help="DCNN_BLSTMwA: resize the 64x64 segments to this size before the CNN (the paper: 227 for AlexNet)")
    a("--augment", type=int, default=0,
      help="DCNN_BLSTMwA: add this many copies of every training utterance with a random frequency and time mask "
           "(default 0: none)")

    extraction = p.add_argument_group("feature extraction")
    a = extraction.add_argument
    a("--wav_path", default=None,
      help="extract: folder of audio files (<folder>/<class>/*.wav or the corpus' own naming) or a CSV manifest "
           "path,label[,speaker]")
    a("--features", default=None,
      help="extract: mfcc (default; TIMNET, GMTCN) or logmel3 (DCNN_BLSTMwA: 64-band log-Mel, delta, delta-delta "
           "in 64-frame segments); other modes: the model's kind")
    a("--mean_signal_length", type=int, default=None,
      help="extract: samples every utterance is centred to (default: the corpus' value; own data: the mean length)")
    a("--workers", type=int, default=None,
      help="extract: parallel processes (default: all cores); grid: Ray workers on a local Ray (default: one per "
           "2 cores, docs/grid.md)")
    a("--skip_bad_files", action="store_true",
      help="extract: leave out files that cannot be decoded and list them (default: stop at the first, because "
           "leaving files out changes the folds)")

    use = p.add_argument_group("test, predict, export")
    a = use.add_argument
    a("--retest_other_split", action="store_true",
      help="test: allow a --random_seed/--split_fold/--cv other than the run's; its test folds then hold rows the "
           "fold models trained on, so the figures are inflated; labelled OTHER SPLIT everywhere")
    a("--retest_other_features", action="store_true",
      help="test: allow a --feature_path whose content differs from the run's; labelled OTHER FEATURES everywhere")
    a("--wav", default=None, help="predict: an audio file (wav, flac, ogg, mp3) or a folder of them")
    a("--timeline", action="store_true",
      help="predict: one long file window by window (windows of the model's length, silence skipped, each scored "
           "by the fold mean): a CSV (or JSON) table and a PNG, see docs/timeline.md")
    a("--hop", type=float, default=None,
      help="predict --timeline: seconds between window starts (default: half the model's window)")
    a("--fold", type=int, default=None,
      help="predict/export: use only fold i's weights (default: the mean of all folds' probabilities)")
    a("--format", default=None, choices=EXPORT_FORMATS, help="export: onnx, tflite or savedmodel")
    a("--output", default=None,
      help="predict: also write the predictions to this .csv or .json file (--timeline: the window table, and the "
           "picture beside it as .png); export: the exported file or folder")
    # cross-corpus test (issue #22, docs/cross_corpus.md)
    a("--cross_corpus", action="store_true",
      help="test: score the fold models of --test_path (their mean probability) on ANOTHER corpus: --data OTHER "
           "--feature_path OTHER.npy; labelled CROSS-CORPUS (trained on A, tested on B) everywhere")
    a("--label_map", default=None,
      help="--cross_corpus: a .toml (their_class = \"our_class\", \"\" drops it) or .csv (their_class,our_class) "
           "file mapping the other corpus' classes onto the run's (default: equal names, case-insensitive)")

    grid = p.add_argument_group("grid on Ray")
    a = grid.add_argument
    a("--grid", default=None, help="grid: a TOML file; keys are flag names, a list is an axis of the grid")
    a("--address", default=None,
      help="grid: Ray cluster to use: default a local Ray on this machine; 'auto' or ray://host:port for a cluster")
    a("--gpus_per_task", type=float, default=0.0,
      help="grid: GPUs per fold task (fractions pack several folds on one GPU); 0 trains on CPUs")

    output = p.add_argument_group("output folders, download")
    a = output.add_argument
    a("--model_path", default=paths.MODELS, help="folder that receives each run's folder")
    a("--result_path", default=paths.RESULTS,
      help="folder that receives results (xlsx, json, png); a resumed or re-tested run uses its own by default")
    a("--download_path", default=paths.CORPORA, help="download: folder that receives the corpus")
    a("--url", default=None, help="download: a mirror of the archive (give its MD5 with --md5)")
    a("--md5", default=None, help="download: the MD5 of the mirror's archive")
    return p


def _typed_flags(argv) -> set[str]:
    """The destinations of the flags typed in ``argv`` (a parser whose defaults are all suppressed)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parse(argv=None) -> argparse.Namespace:
    """The flags of ``argv`` with their defaults, and ``args.given``: the ones that were typed."""
    args = build_parser().parse_args(argv)
    args.given = _typed_flags(argv)
    return args


def parse_seeds(text: str) -> list[int]:
    if not re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", text or ""):
        raise UserError(f"--random_seed {text!r}: expected an integer or a comma-separated list like 46,47,48")
    return [int(s) for s in text.split(",")]


def validate(args: argparse.Namespace) -> None:
    """Flag checks that need no data; each failure is one line naming the flag."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.data):
        raise UserError(f"--data {args.data!r}: use letters, digits, '_' or '-'")
    from ..data.resolve import check_corpus_key
    check_corpus_key(args.data)
    args.seeds = parse_seeds(args.random_seed)
    if len(args.seeds) > 1 and args.mode not in ("train", "grid"):
        raise UserError(f"--random_seed {args.random_seed}: several seeds work with --mode train only")
    args.seed = args.seeds[0]
    for name in ("epoch", "batch_size", "lr", "filter_size", "dilation_size", "kernel_size", "stack_size",
                 "mean_signal_length", "workers", "fold", "backbone_alpha", "image_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name} {value}: must be positive")
    if args.split_fold < 2:
        raise UserError(f"--split_fold {args.split_fold}: must be at least 2")
    for name in ("dropout", "label_smoothing", "beta1", "beta2", "val_fraction"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise UserError(f"--{name} {value}: must be in [0, 1)")
    if "hop" in args.given and not args.timeline:
        raise UserError(f"--hop {args.hop:g}: spaces the windows of --timeline; add --timeline (--mode predict)")
    if args.augment < 0:
        raise UserError(f"--augment {args.augment}: must be 0 or more")
    if args.gpus_per_task < 0:
        raise UserError(f"--gpus_per_task {args.gpus_per_task:g}: must be 0 or more")
    from ..data.features import FEATURE_KINDS
    if args.features is not None and args.features not in FEATURE_KINDS:
        raise UserError(f"--features {args.features!r}: choose one of {', '.join(FEATURE_KINDS)}"
                        f"{did_you_mean(args.features, FEATURE_KINDS)}")
    if args.mode in ("extract", "report", "download"):
        args.features = args.features or "mfcc"
        return
    from ..Model import MODELS
    if args.model not in MODELS:
        raise UserError(f"--model {args.model!r}: choose one of {', '.join(MODELS)}{did_you_mean(args.model, MODELS)}")
    kind = MODELS[args.model].features
    if args.features not in (None, kind):
        raise UserError(f"--features {args.features}: --model {args.model} reads {kind} features")
    args.features = kind
    check_cross_corpus(args)
    check_training(args)
    if args.augment and kind != "logmel3":
        raise UserError(f"--augment {args.augment}: masks log-Mel segments; --model {args.model} reads {kind}")
    validate_backbone(args)


def check_cross_corpus(args: argparse.Namespace) -> None:
    """--cross_corpus: --mode test, with the other corpus' --data or --feature_path, and not with the re-test
    flags; --label_map: with --cross_corpus."""
    if args.label_map is not None and not args.cross_corpus:
        raise UserError(f"--label_map {args.label_map}: maps another corpus' classes for --cross_corpus; add it")
    if not args.cross_corpus:
        return
    if args.mode != "test":
        raise UserError(f"--cross_corpus: tests a run on another corpus with --mode test, not --mode {args.mode}")
    if not {"data", "feature_path"} & args.given:
        raise UserError("--cross_corpus: name the other corpus: --data OTHER --feature_path OTHER.npy")
    for flag in ("retest_other_split", "retest_other_features", "fold"):
        if flag in args.given:
            raise UserError(f"--{flag}: a cross-corpus test scores every utterance by the mean of all fold models; "
                            "leave the flag out")


def check_training(args: argparse.Namespace) -> None:
    """--training stacked: TIM-Net and GM-TCNet only, without --augment and --mixed_precision, not in a grid;
    --stack_members: a positive number, with --training stacked."""
    from ..Model import STACKED_MODELS
    if args.stack_members is not None and (args.training != "stacked" or args.stack_members < 1):
        raise UserError(f"--stack_members {args.stack_members}: a positive number of folds per stack, with "
                        f"--training stacked")
    if args.training == "stacked" and args.mode == "grid":
        raise UserError("--training stacked: a grid trains every fold as its own unit of work; leave the flag out "
                        "(docs/grid.md)")
    if args.training == "stacked" and (args.model not in STACKED_MODELS or args.augment or args.mixed_precision):
        raise UserError(f"--training stacked: trains {' and '.join(STACKED_MODELS)} without --augment and "
                        f"--mixed_precision; --model {args.model} trains with --training sequential")


def validate_backbone(args: argparse.Namespace) -> None:
    """--backbone, --backbone_alpha, --backbone_weights, --image_size (DCNN.check_backbone, named by their flags);
    a weights file becomes an absolute path."""
    from ..nn.layer_args import BackboneArgumentError, check_backbone
    if args.backbone_weights not in ("imagenet", "none"):
        if not os.path.isfile(args.backbone_weights):
            raise UserError(f"--backbone_weights {args.backbone_weights}: not imagenet, none or an existing "
                            "weights file")
        args.backbone_weights = os.path.abspath(args.backbone_weights)
    try:
        check_backbone("settings", args.backbone, args.backbone_alpha, args.backbone_weights, args.image_size)
    except BackboneArgumentError as error:
        flag = {"backbone": "--backbone", "alpha": "--backbone_alpha", "image_size": "--image_size"}[error.argument]
        shown = repr(error.value) if isinstance(error.value, str) else f"{error.value:g}"
        hint = " (or --backbone_weights none)" if "ImageNet" in error.reason else ""
        raise UserError(f"{flag} {shown}: {error.reason}{hint}") from None


def feature_path(args: argparse.Namespace) -> str:
    """--feature_path, or the default of the feature kind: MFCC/<DATA>.npy, MFCC/<DATA>_logmel3.npy."""
    return paths.feature_path(args.data, args.features, args.feature_path)


# --- a run's own settings --------------------------------------------------------------------------------------
# flag -> (the run's value from its RunConfig, how a typed value is compared). Every flag here that is typed
# next to a run folder must agree with the run, except the split flags under --retest_other_split.

def _seed_of(args) -> int | list:
    return args.seeds if len(args.seeds) > 1 else args.seed


RUN_SETTINGS: dict[str, tuple[Callable, Callable]] = {
    "model": (lambda c: c.model, lambda a: a.model),
    "data": (lambda c: c.data, lambda a: a.data),
    "random_seed": (lambda c: c.random_seed, _seed_of),
    "split_fold": (lambda c: c.split_fold, lambda a: a.split_fold),
    "cv": (lambda c: c.cv, lambda a: a.cv),
    "protocol": (lambda c: c.protocol, lambda a: a.protocol),
    "val_fraction": (lambda c: c.val_fraction, lambda a: a.val_fraction),
    "epoch": (lambda c: c.epochs, lambda a: a.epoch),
    "batch_size": (lambda c: c.batch_size, lambda a: a.batch_size),
    "lr": (lambda c: c.lr, lambda a: a.lr),
    "beta1": (lambda c: c.beta1, lambda a: a.beta1),
    "beta2": (lambda c: c.beta2, lambda a: a.beta2),
    "label_smoothing": (lambda c: c.label_smoothing, lambda a: a.label_smoothing),
    "label_smoothing_history": (lambda c: c.label_smoothing_history, lambda a: a.label_smoothing_history),
    "balance": (lambda c: c.balance, lambda a: a.balance),
    "augment": (lambda c: c.augment, lambda a: a.augment),
    "xla": (lambda c: c.xla, lambda a: a.xla),
    "mixed_precision": (lambda c: c.mixed_precision, lambda a: a.mixed_precision),
    "dropout": (lambda c: c.hyper.dropout, lambda a: a.dropout),
    "activation": (lambda c: c.hyper.activation, lambda a: a.activation),
    "filter_size": (lambda c: c.hyper.filter_size, lambda a: a.filter_size),
    "dilation_size": (lambda c: c.hyper.dilation_size, lambda a: a.dilation_size),
    "kernel_size": (lambda c: c.hyper.kernel_size, lambda a: a.kernel_size),
    "stack_size": (lambda c: c.hyper.stack_size, lambda a: a.stack_size),
    "backbone": (lambda c: c.hyper.backbone, lambda a: a.backbone),
    "backbone_alpha": (lambda c: c.hyper.backbone_alpha, lambda a: a.backbone_alpha),
    "backbone_weights": (lambda c: c.hyper.backbone_weights, lambda a: a.backbone_weights),
    "image_size": (lambda c: c.hyper.image_size, lambda a: a.image_size),
}
SPLIT_SETTINGS = ("random_seed", "split_fold", "cv")


def check_against_run(args: argparse.Namespace, run, allow_other_split: bool = False) -> None:
    """Refuse, in one line, every typed flag that contradicts ``run`` (a RunFolder); the split flags pass when
    ``allow_other_split``. Then give every flag that was not typed the run's value."""
    config = run.config
    for name, (of_run, of_args) in RUN_SETTINGS.items():
        if name not in args.given or (allow_other_split and name in SPLIT_SETTINGS):
            continue
        ours, theirs = of_run(config), of_args(args)
        if ours != theirs:
            hint = (" (to re-test on another split, add --retest_other_split: its test folds then hold rows the fold "
                    "models trained on)" if name in SPLIT_SETTINGS and args.mode == "test" else
                    "; a run folder brings its own settings, leave the flag out")
            raise UserError(f"--{name} {_shown(theirs)}: the run in {paths.shown(run.path)} has {_shown(ours)}{hint}")
    if "features" in args.given and args.features != run.feature_kind:
        raise UserError(f"--features {args.features}: the run in {paths.shown(run.path)} reads {run.feature_kind} "
                        "features")
    for name, (of_run, _) in RUN_SETTINGS.items():
        if name not in args.given or not (allow_other_split and name in SPLIT_SETTINGS):
            setattr(args, name, of_run(config))
    args.seeds = [args.random_seed] if isinstance(args.random_seed, int) else args.seeds
    args.random_seed = ",".join(map(str, args.seeds))
    args.seed = args.seeds[0]
    args.features = run.feature_kind
    check_training(args)


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
