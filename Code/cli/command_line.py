"""The command line's parser and checks: the flags of core/flags.py's table made into the frozen ``Settings``
(core/settings.py), checked, and checked against a run.

The original's flags keep their spellings and defaults (``--mode train --data EMODB --split_fold 10
--random_seed 46`` ...). Default folders are relative to the current directory (core/paths.py): ``Code/MFCC`` and
so on when run from ``Code/`` as the original is, the user's own folder for the installed ``timnet-ser``. A
setting is read and checked here, once:

- ``parse`` reads the flags into ``Settings`` and records which ones were typed (``given``): a run folder's own
  settings fill in the others, and a typed flag that contradicts the run is refused (``check_against_run``);
- ``validate`` checks every flag that needs no data and turns each failure into one line naming the flag.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from dataclasses import replace

from ..core import flags, paths
from ..core.config import BACKBONE_WEIGHT_WORDS, check_corpus_split, check_stack_members, check_val_fraction
from ..core.errors import UserError, did_you_mean
from ..core.settings import DATA_NAME, Settings

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
  python main.py --mode export --test_path Models/<run> --output model.onnx   # the format from the name
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
    """The parser of core/flags.py's table: its groups, flags, types, defaults, choices and help."""
    p = _Parser(
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="TIM-Net, GM-TCNet and DCNN-BLSTMwA speech emotion recognition: extract MFCC or log-Mel "
                    "features, train with k-fold cross-validation, re-test saved weights, predict audio files, export "
                    "models, run grids of runs on Ray, tabulate results.")
    groups = {name: p.add_argument_group(name) for name in flags.GROUPS}
    for flag in flags.FLAGS:
        if flag.words:  # bare: True; or one of its words
            groups[flag.group].add_argument(f"--{flag.name}", nargs="?", const=True, default=flag.default,
                                            type=_word_of(flag), metavar="{" + ",".join(flag.words) + "}",
                                            help=flag.help)
        elif flag.type is bool:
            groups[flag.group].add_argument(f"--{flag.name}", action="store_true", help=flag.help)
        else:
            groups[flag.group].add_argument(f"--{flag.name}", type=flag.type, default=flag.default,
                                            choices=flag.choices or None, help=flag.help)
        if flag.name == "gpu":
            groups[flag.group].add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return p


def _word_of(flag: flags.Flag):
    """The parser's type of a switch that may take a word: the word's setting, or argparse's one-line error."""
    def setting(word: str):
        if word not in flag.words:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(flag.words)} or the bare flag, not {word!r}"
                                             f"{did_you_mean(word, flag.words)}")
        return flag.words[word]
    return setting


def _typed_flags(argv) -> set[str]:
    """The destinations of the flags typed in ``argv`` (a parser whose defaults are all suppressed)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parse(argv=None) -> Settings:
    """The settings of ``argv``'s flags, the table's defaults for the others; ``given``: the typed ones."""
    return Settings.from_flags(vars(build_parser().parse_args(argv)), _typed_flags(argv))


def validate(s: Settings) -> Settings:
    """The checked settings (the feature kind filled in, a backbone weights file made absolute): every check that
    needs no data, each failure one line naming the flag; a flag the mode cannot start without is asked for last
    (``--mode predict --cross_corpus`` is told that predict takes no --cross_corpus, not that it needs --wav)."""
    s = _checked(s)
    check_required(s)
    return s


def _checked(s: Settings) -> Settings:
    check_modes(s)
    if not DATA_NAME.fullmatch(s.data):
        raise UserError(f"--data {s.data!r}: use letters, digits, '_' or '-' (several corpora joined by '+')")
    from ..data.resolve import check_corpus_key
    check_corpus_key(s.data)
    if len(s.seeds) > 1 and s.mode not in ("train", "grid"):
        raise UserError(f"--random_seed {s.random_seed}: several seeds work with --mode train only")
    _check_finite(s)
    for check in ("positive", "at_least_2", "fraction", "width", "stacks", "block_count"):
        _check_range(s, check)
    if s.mode == "grid" and s.address == "local":  # Ray's own "local" listens on every interface
        raise UserError("--address local: Ray's 'local' starts a Ray whose servers listen on every network "
                        "interface; leave --address out for a local Ray closed to the network (docs/grid.md)")
    if s.mode == "grid" and s.address not in (None, "none", "auto") and not re.fullmatch(
            r"(ray://)?([^\s:/\[\]]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}", s.address):
        raise UserError(f"--address {s.address!r}: give auto, HOST:PORT or ray://HOST:PORT, none for no Ray, or leave "
                        "it out for a local Ray")
    if s.mode == "grid" and s.address == "none":  # every fold in this process, one after the other: no pool
        unused = next((_typed(s, flags.BY_NAME[name]) for name in ("workers", "gpus_per_task") if name in s.given),
                      None)
        if unused:
            raise UserError(f"{unused}: sizes the Ray pool, and --address none trains in this process, one fold "
                            "after the other; leave it out")
    if "hop" in s.given and not s.timeline:
        raise UserError(f"--hop {s.hop:g}: spaces the windows of --timeline; add --timeline (--mode predict)")
    _check_range(s, "not_negative")
    from ..data.features import FEATURE_KINDS
    if s.features is not None and s.features not in FEATURE_KINDS:
        raise UserError(f"--features {s.features!r}: choose one of {', '.join(FEATURE_KINDS)}"
                        f"{did_you_mean(s.features, FEATURE_KINDS)}")
    if s.mode in ("extract", "report", "download"):
        return replace(s, features=s.features or "mfcc")
    from ..Model import MODELS
    kind = MODELS[s.model].features  # the parser took one of the table's MODEL_NAMES
    if s.features not in (None, kind):
        raise UserError(f"--features {s.features}: --model {s.model} reads {kind} features")
    if "model" in s.given or (s.mode in ("train", "grid") and not s.resume):  # else a run folder may say another
        protocol = None if s.resume else s.protocol
        for flag in flags.FLAGS:
            why = flag.name in s.given and flags.unread_by(flag, s.model, protocol)
            if why:
                raise UserError(f"{_typed(s, flag)}: {why}; leave it out")
    from ..nn.layer_args import BLOCK_ACTIVATIONS
    if s.activation not in BLOCK_ACTIVATIONS:  # a traceback from Keras, with a run folder made, before
        raise UserError(f"--activation {s.activation!r}: choose one of Keras' element-wise activations "
                        f"({', '.join(BLOCK_ACTIVATIONS)}){did_you_mean(s.activation, BLOCK_ACTIVATIONS)}")
    check_cross_corpus(s)
    s = check_corpora(s)
    check_training(s)
    if s.normalize != "none" and kind != "mfcc":
        raise UserError(f"--normalize {s.normalize}: standardises MFCC coefficients; --model {s.model} reads {kind}")
    if s.augment and kind != "logmel3":
        raise UserError(f"--augment {s.augment}: masks log-Mel segments; --model {s.model} reads {kind}")
    if s.init_from is not None and not flags.unread_by(flags.BY_NAME["backbone_weights"], s.model):
        # fine-tuning DCNN-BLSTMwA: every backbone weight comes from the source, so no initial weights are read (the
        # ImageNet ones were downloaded to be overwritten, and offline the run stopped there)
        if "backbone_weights" in s.given and s.backbone_weights != "none":
            raise UserError(f"--backbone_weights {s.backbone_weights}: --init_from's weights replace the backbone's "
                            "initial weights; leave the flag out")
        s = replace(s, backbone_weights="none")
    return validate_backbone(replace(s, features=kind))


def check_modes(s: Settings) -> None:
    """A flag typed with a mode that does not read it (the table's ``modes``) is refused, never silently ignored:
    ``--mode test --fold 3`` re-tests every fold."""
    for flag in flags.FLAGS:
        if flag.modes and flag.name in s.given and s.mode not in flag.modes:
            readers = " and ".join([", ".join(flag.modes[:-1]), flag.modes[-1]] if len(flag.modes) > 1 else flag.modes)
            raise UserError(f"{_typed(s, flag)}: --mode {s.mode} does not read it (--mode {readers} "
                            f"{'does' if len(flag.modes) == 1 else 'do'}); leave it out")


def check_required(s: Settings) -> None:
    """A flag that the mode cannot start without (the table's ``required``) is asked for before anything loads."""
    for flag in flags.FLAGS:
        if s.mode in flag.required and getattr(s, flag.name) in (None, ""):
            raise UserError(f"--{flag.name}: required for --mode {s.mode} ({flag.needed_as})")


def _typed(s: Settings, flag: flags.Flag) -> str:
    """The flag as typed: ``--fold 3``, ``--balance``."""
    return f"--{flag.name}" + ("" if flag.type is bool else f" {_shown(getattr(s, flag.name))}")


def _check_finite(s: Settings) -> None:
    """A number flag's inf or nan (``--lr inf`` passed "positive" and trained a run of NaN losses) is refused."""
    for flag in flags.FLAGS:
        value = getattr(s, flag.name)
        if flag.type is float and value is not None and not math.isfinite(value):
            raise UserError(f"--{flag.name} {value:g}: must be a finite number")


def _check_range(s: Settings, check: str) -> None:
    """The table's range check ``check`` on every flag that has it."""
    passes, wrong, shown = flags.CHECKS[check]
    for flag in flags.FLAGS:
        value = getattr(s, flag.name)
        if flag.check == check and value is not None and not passes(value):
            raise UserError(f"--{flag.name} {shown(value)}: {wrong}")


def check_cross_corpus(s: Settings) -> None:
    """--cross_corpus: --mode test, with the other corpus' --data or --feature_path, and not with the re-test
    flags."""
    if not s.cross_corpus:
        return
    if s.mode != "test":
        raise UserError(f"--cross_corpus: tests a run on another corpus with --mode test, not --mode {s.mode}")
    if not {"data", "feature_path"} & s.given:
        raise UserError("--cross_corpus: name the other corpus: --data OTHER --feature_path OTHER.npy")
    for flag in ("retest_other_split", "retest_other_features", "fold"):
        if flag in s.given:
            raise UserError(f"--{flag}: a cross-corpus test scores every utterance by the mean of all fold models; "
                            "leave the flag out")


def check_corpora(s: Settings) -> Settings:
    """Several corpora (``--data A+B``, a new run of --mode train or a re-test): --label_map maps them onto common
    classes when training (next to --mode grid: for every point, each checked as its own training command); --cv
    corpus needs several (then --split_fold is their number: typed, it must be). --label_map otherwise belongs to
    --cross_corpus."""
    from ..data.corpus_set import corpus_keys
    count = len(corpus_keys(s.data))
    training = s.mode == "train" and not s.resume
    if count > 1 and s.mode not in ("train", "test"):
        raise UserError(f"--data {s.data}: several corpora train (--mode train) and re-test (--mode test) together; "
                        f"--mode {s.mode} takes one corpus (or a run folder)")
    if count > 1 and s.cross_corpus:
        raise UserError(f"--data {s.data}: a cross-corpus test scores one other corpus at a time")
    if s.label_map is not None and not s.cross_corpus and not (training and count > 1) and s.mode != "grid":
        raise UserError(f"--label_map {s.label_map}: maps another corpus' classes for --cross_corpus, or the corpora "
                        "of a new run on several (--mode train --data A+B); a run folder keeps its own map")
    if s.cv != "corpus" or not training:
        return s
    check_corpus_split(s.cv, s.data, count)
    if "split_fold" in s.given and s.split_fold != count:
        raise UserError(f"--split_fold {s.split_fold}: --cv corpus makes one fold per corpus of --data {s.data} "
                        f"({count}); leave the flag out")
    return replace(s, split_fold=count)


def check_training(s: Settings) -> None:
    """--label_smoothing_history cumulative: with label smoothing (the recipe's or --label_smoothing); --protocol
    inner_val: with a --val_fraction above 0;
    --training stacked: not in a grid, and only where the stacked path computes the model (``stacked_refusal``);
    --stack_members: a positive number, with --training stacked (these two and --cv corpus's are core/config.py's
    checks, which the engine makes again for a caller of its functions); --init_fold and --freeze_backbone with
    --init_from, which trains sequentially."""
    from ..Model import MODELS, stacked_refusal
    smoothing = MODELS[s.model].recipe.label_smoothing if s.label_smoothing is None else s.label_smoothing
    if s.label_smoothing_history == "cumulative" and smoothing == 0:
        raise UserError(f"--label_smoothing_history cumulative: {s.model} trains without label smoothing "
                        "(--label_smoothing 0), so there is nothing to accumulate")
    check_val_fraction(s.protocol, s.val_fraction)  # the share's size per fold: engine/protocol.py
    if s.init_from is None and not s.resume and (s.init_fold is not None or s.freeze_backbone):  # a run keeps its own
        flag = f"--init_fold {s.init_fold}" if s.init_fold is not None else "--freeze_backbone"
        raise UserError(f"{flag}: belongs to fine-tuning; give --init_from RUN_FOLDER too")
    if s.init_from is not None and os.path.isdir(s.init_from) and paths.inside(s.model_path, s.init_from):
        raise UserError(f"--model_path {s.model_path}: inside the run it fine-tunes from ({s.init_from}); the new run "
                        "goes into a folder of its own")
    if s.init_from is not None and s.training == "stacked":
        raise UserError("--init_from: a fine-tuned run trains with --training sequential; leave --training stacked "
                        "out")
    check_stack_members(s.stack_members, s.training == "stacked")
    if s.training == "stacked" and s.mode == "grid":
        raise UserError("--training stacked: a grid trains every fold as its own unit of work; leave the flag out "
                        "(docs/grid.md)")
    if s.training == "stacked" and (reason := stacked_refusal(s.model, s.activation, s.normalize, s.mixed_precision,
                                                              s.xla, s.augment)):
        raise UserError(reason)


def validate_backbone(s: Settings) -> Settings:
    """--backbone, --backbone_alpha, --backbone_weights, --image_size (DCNN.check_backbone, named by their flags);
    a weights file becomes an absolute path."""
    from ..nn.layer_args import BackboneArgumentError, check_backbone
    if s.backbone_weights not in BACKBONE_WEIGHT_WORDS:
        if not os.path.isfile(s.backbone_weights):
            raise UserError(f"--backbone_weights {s.backbone_weights}: not imagenet, none or an existing "
                            "weights file")
        s = replace(s, backbone_weights=os.path.abspath(s.backbone_weights))
    try:
        check_backbone("settings", s.backbone, s.backbone_alpha, s.backbone_weights, s.image_size)
    except BackboneArgumentError as error:
        flag = f"--{error.setting}"
        shown = repr(error.value) if isinstance(error.value, str) else f"{error.value:g}"
        hint = " (or --backbone_weights none)" if "ImageNet" in error.reason else ""
        raise UserError(f"{flag} {shown}: {error.reason}{hint}") from None
    return s


# --- a run's own settings --------------------------------------------------------------------------------------
# Every flag that run.json records (core/flags.RUN_FLAGS) and that is typed next to a run folder must agree with
# the run, except the split flags under --retest_other_split.

def check_against_run(s: Settings, run, allow_other_split: bool = False) -> Settings:
    """Refuse, in one line, every typed flag that contradicts ``run`` (a RunFolder); the split flags pass when
    ``allow_other_split``. Then the settings with the run's value for every flag that was not typed."""
    kept = {f.name for f in flags.RUN_FLAGS if f.name in s.given and allow_other_split and f.name in flags.SPLIT_FLAGS}
    for flag in flags.RUN_FLAGS:
        if flag.name not in s.given or flag.name in kept:
            continue
        ours, theirs = flags.recorded(run.config, flag), s.value_for_run(flag)
        if ours != theirs:
            split = flag.name in flags.SPLIT_FLAGS and flag.name != "split_fold"  # fold model i tests fold i
            hint = (" (to re-test on another split, add --retest_other_split: its test folds then hold rows the fold "
                    "models trained on)" if split and s.mode == "test" else
                    f"; its {_shown(ours)} fold models re-test {_shown(ours)} test folds, one each: leave the flag out"
                    if flag.name == "split_fold" and s.mode == "test" else
                    " (to score the run on another corpus, add --cross_corpus and its --feature_path)"
                    if flag.name == "data" and s.mode == "test" else
                    "; a run folder brings its own settings, leave the flag out")
            raise UserError(f"--{flag.name} {_shown(theirs)}: the run in {paths.shown(run.path)} has {_shown(ours)}"
                            f"{hint}")
    if "features" in s.given and s.features != run.feature_kind:
        raise UserError(f"--features {s.features}: the run in {paths.shown(run.path)} reads {run.feature_kind} "
                        "features")
    s = s.with_run(run.config, run.feature_kind, keep=kept)
    check_training(s)
    return s


def check_unread_by_weights(s: Settings, run_folder: bool) -> None:
    """Refuse, in one line, a typed recorded flag that a command on --test_path's weights does not read (it was
    ignored, or written into a re-test's record as if it were the weights' own); ``run_folder``: whether
    --test_path holds a run.json.

    - Weights without a run.json (the authors' layout) record no training: the ``trained`` flags (--epoch, --lr ...)
      are refused; --data, --model and the network flags say what they are. Predict and export score with the fold
      models in float32 and split nothing: the split flags and --mixed_precision are refused too.
    - A cross-corpus test takes a run folder's every setting from its run.json (--model is checked against it);
      with the authors' layout it reads what the weights are, as predict does.
    A run folder's typed flags otherwise are ``check_against_run``'s."""
    if run_folder and not s.cross_corpus:
        return
    who = "a cross-corpus test" if s.cross_corpus else f"--mode {s.mode}"
    for flag in flags.RUN_FLAGS:
        if flag.name not in s.given or flag.name in ("model", "data"):
            continue
        if run_folder:
            why = f"{who} takes every setting from the run's run.json"
        elif flag.trained:
            why = f"{paths.shown(s.test_path)} has no run.json, so nothing says how its weights were trained"
        elif (s.cross_corpus or s.mode != "test") and not flag.run.startswith("hyper."):
            why = f"{who} uses the fold models in float32 and splits nothing"
        else:  # the network flags say what --model's weights are: one of another model's is read by nothing
            why = flags.unread_by(flag, s.model)
        if not why:
            continue
        raise UserError(f"{_typed(s, flag)}: {why}; leave it out")


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value is None:  # a setting the run left unset (--init_from of a run trained from scratch): not "None"
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
