"""core/flags.py's table is the one owner of the flags: the parser, the typed Settings, the reading of run.json,
the grid's keys and the report's columns all agree with it."""

import argparse
import dataclasses
import json
import re
import types

import pytest

from timnet_ser.cli import command_line, grid_file
from timnet_ser.core import flags
from timnet_ser.core.config import Hyper, RunConfig, default_settings
from timnet_ser.core.errors import UserError
from timnet_ser.core.settings import Settings
from timnet_ser.data.corpora import CORPORA
from timnet_ser.engine.run_config import run_config
from timnet_ser.runs import report_rows

# every recorded flag typed with a value other than its default (and other than the TIMNET recipe's)
TYPED = ["--model", "TIMNET", "--data", "EMODB", "--random_seed", "7", "--split_fold", "5", "--cv", "speaker",
         "--protocol", "inner_val", "--val_fraction", "0.2", "--epoch", "3", "--batch_size", "8", "--lr", "0.01",
         "--beta1", "0.8", "--beta2", "0.9", "--label_smoothing", "0.2", "--label_smoothing_history", "cumulative",
         "--balance", "--xla", "--mixed_precision", "--dropout", "0.3", "--activation", "tanh", "--filter_size", "12",
         "--dilation_size", "3", "--kernel_size", "3", "--stack_size", "2"]
# DCNN-BLSTMwA's network flags, which TIM-Net's network does not read (refused with --model TIMNET)
DCNN_TYPED = ["--model", "DCNN_BLSTMwA", "--backbone", "resnet50v2", "--backbone_alpha", "1.0", "--backbone_weights",
              "none", "--image_size", "32"]


def parser_flags() -> dict[str, argparse.Action]:
    return {a.dest: a for a in command_line.build_parser()._actions if a.dest not in ("help", "version")}


def test_every_parser_flag_is_a_table_row_and_every_row_a_flag():
    assert list(parser_flags()) == list(flags.BY_NAME)
    assert len(flags.BY_NAME) == len(flags.FLAGS)  # no name twice


@pytest.mark.parametrize("flag", [f for f in flags.FLAGS if f.modes], ids=lambda f: f.name)
def test_a_flag_typed_with_a_mode_that_does_not_read_it_is_refused(flag):
    """Never silently ignored (``--mode test --fold 3`` re-tests every fold); accepted by its own modes' parser."""
    assert set(flag.modes) <= set(flags.MODES) and flag.help.split(":")[0]  # its help says where it belongs
    value = [] if flag.type is bool else [flag.choices[0] if flag.choices else "1"]
    other = next(mode for mode in flags.MODES if mode not in flag.modes)
    readers = " and ".join([", ".join(flag.modes[:-1]), flag.modes[-1]] if len(flag.modes) > 1 else flag.modes)
    with pytest.raises(UserError, match=f"^--{flag.name}( 1| {flag.choices[0] if flag.choices else ''})?: --mode "
                                        f"{other} does not read it \\(--mode {readers} do(es)?\\); leave it out$"):
        command_line.check_modes(command_line.parse(["--mode", other, f"--{flag.name}", *value]))
    for mode in flag.modes:
        command_line.check_modes(command_line.parse(["--mode", mode, f"--{flag.name}", *value]))


@pytest.mark.parametrize("flag", [f for f in flags.RUN_FLAGS if f.name not in ("model", "data")], ids=lambda f: f.name)
def test_weights_without_run_json_refuse_the_recorded_flags_they_do_not_read(flag):
    """The authors' layout records no training: a re-test of it reads the network, the split and the precision, not
    how the weights were trained (written into its record as theirs before); predict reads the network only; a
    cross-corpus test of a run folder reads none (the run's are its own); a run folder's are check_against_run's."""
    typed = [f"--{flag.name}"] + ([] if flag.type is bool else [flag.choices[0] if flag.choices else "1"])
    network = flag.run.startswith("hyper.")
    unread = bool(flags.unread_by(flag, "TIMNET"))  # --model's default: another model's network flag says nothing

    def refused(argv, run_folder):
        try:
            command_line.check_unread_by_weights(command_line.parse([*argv, "--test_path", "W", *typed]), run_folder)
        except UserError as error:
            assert str(error).startswith(f"--{flag.name}") and str(error).endswith("; leave it out"), error
            return True
        return False
    assert refused(["--mode", "test"], run_folder=False) == (flag.trained or unread)
    assert refused(["--mode", "predict"], run_folder=False) == (not network or unread)
    assert refused(["--mode", "test", "--cross_corpus"], run_folder=False) == (not network or unread)
    assert refused(["--mode", "test", "--cross_corpus"], run_folder=True)
    assert not refused(["--mode", "export"], run_folder=True)


def test_the_model_flags_choices_are_the_registrys_models():
    from timnet_ser.Model import MODELS
    assert flags.MODEL_NAMES == tuple(MODELS)


def test_the_parser_takes_defaults_types_and_choices_from_the_table():
    for name, action in parser_flags().items():
        flag = flags.BY_NAME[name]
        assert action.default == flag.default, name
        assert action.help == flag.help, name
        if flag.words:  # a switch that may take a word: bare, True
            assert action.nargs == "?" and action.const is True and flag.default is False, name
            assert all(action.type(word) == setting for word, setting in flag.words.items()), name
        elif flag.type is bool:
            assert action.nargs == 0 and flag.default is False, name
        else:
            assert action.type is flag.type and tuple(action.choices or ()) == flag.choices, name


def test_settings_has_one_field_per_row_with_the_tables_defaults():
    assert [f.name for f in dataclasses.fields(Settings)] == [*flags.BY_NAME, "given"]
    parsed = command_line.parse([])
    assert all(getattr(parsed, f.name) == f.default for f in flags.FLAGS) and parsed.given == frozenset()
    assert parsed == Settings.from_flags({})


def test_settings_are_frozen_and_change_only_through_replace():
    parsed = command_line.parse(["--epoch", "3"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.epoch = 4
    assert dataclasses.replace(parsed, epoch=4).epoch == 4 and parsed.epoch == 3 and parsed.given == {"epoch"}


def test_every_range_check_and_run_field_names_something_real():
    config_fields = {f.name for f in dataclasses.fields(RunConfig)}
    hyper_fields = {f.name for f in dataclasses.fields(Hyper)}
    for flag in flags.FLAGS:
        assert flag.check in ("", *flags.CHECKS) and flag.group in flags.GROUPS, flag.name
        if flag.run.startswith("hyper."):
            assert flag.run.removeprefix("hyper.") in hyper_fields, flag.name
        elif flag.run:
            assert flag.run in config_fields, flag.name
        assert not flag.report or flag.run, f"{flag.name}: a report column must be recorded in run.json"


@pytest.mark.parametrize("model", flags.MODEL_NAMES)
def test_a_flags_default_is_what_a_run_records_where_the_flag_is_not_given(model):
    """The table's defaults and RunConfig's / Hyper's (the recipe's where it sets one) are written in two places:
    a run of each model records the flag's default, and the report reads the dataclasses' defaults as those of
    records written before a setting existed."""
    recorded = default_settings(model)
    for flag in flags.FLAGS:
        if flag.run and flag.default is not None and flag.run not in ("model", "data"):
            # --random_seed is typed as a list of seeds ("46,47"); a run records one
            value = int(flag.default) if flag.name == "random_seed" else flag.default
            assert recorded[flag.run.removeprefix("hyper.")] == value, (flag.name, model)


@pytest.mark.parametrize("name", [f.name for f in flags.FLAGS if f.check])
def test_a_value_out_of_range_is_one_line_naming_its_flag(name):
    wrong = {"positive": "0", "at_least_2": "1", "fraction": "1", "not_negative": "-1",
             "block_count": "32", "width": "1025", "stacks": "17"}[flags.BY_NAME[name].check]
    mode = ["--mode", flags.BY_NAME[name].modes[0]] if flags.BY_NAME[name].modes else []  # one that reads it
    with pytest.raises(UserError, match=rf"^--{name} {wrong}(\.0)?: must be"):
        command_line.validate(command_line.parse([*mode, f"--{name}", wrong]))


@pytest.mark.parametrize("name", [f.name for f in flags.FLAGS if f.type is float])
@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_a_number_that_is_not_finite_is_one_line_naming_its_flag(name, value):
    """``--lr inf`` passed "positive" and trained a run of NaN losses; ``--hop inf`` made one window."""
    mode = ["--mode", flags.BY_NAME[name].modes[0]] if flags.BY_NAME[name].modes else []
    shown = "inf" if value == "1e400" else value
    with pytest.raises(UserError, match=rf"^--{name} {shown}: must be a finite number$"):
        command_line.validate(command_line.parse([*mode, f"--{name}", value]))


@pytest.mark.parametrize("model", ["TIMNET", "DCNN_BLSTMwA"])
def test_a_run_json_round_trip_gives_equal_settings(model):
    argv = TYPED if model == "TIMNET" else [*TYPED[:TYPED.index("--dropout")], *DCNN_TYPED]
    typed = command_line.validate(command_line.parse(["--mode", "train", *argv]))
    assert typed.model == model
    _, config = run_config(typed, CORPORA["EMODB"], typed.seed)
    stored = RunConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(config))))
    assert stored == config
    # a command without flags next to the run folder takes every recorded setting from it
    read = command_line.parse(["--mode", "test"]).with_run(stored, typed.features)
    for flag in flags.RUN_FLAGS:
        if not flags.unread_by(flag, model):  # another model's flags take the recipe's or corpus' value
            assert getattr(read, flag.name) == getattr(typed, flag.name), flag.name
    assert read.features == typed.features and read.seeds == (7,)


def test_check_against_run_refuses_a_contradicting_flag_and_fills_the_others():
    typed = command_line.validate(command_line.parse(["--mode", "train", *TYPED]))
    _, config = run_config(typed, CORPORA["EMODB"], typed.seed)
    run = types.SimpleNamespace(config=config, path="Models/run", feature_kind="mfcc")
    asked = command_line.validate(command_line.parse(["--mode", "test", "--epoch", "3"]))
    checked = command_line.check_against_run(asked, run)
    assert checked == dataclasses.replace(command_line.parse(["--mode", "test"]).with_run(config, "mfcc"),
                                          given=frozenset({"mode", "epoch"}))
    assert asked.split_fold == 10 and checked.split_fold == 5  # a new object; the one checked is not rewritten
    with pytest.raises(UserError, match=r"^--lr 0.5: the run in Models/run has 0.01; a run folder brings its own"):
        command_line.check_against_run(command_line.validate(command_line.parse(["--mode", "test", "--lr", "0.5"])), run)
    with pytest.raises(UserError, match=r"^--data CASIA: the run in Models/run has EMODB \(to score the run on another "
                                        r"corpus, add --cross_corpus and its --feature_path\)$"):
        command_line.check_against_run(command_line.validate(command_line.parse(["--mode", "test", "--data", "CASIA"])), run)
    other = command_line.validate(command_line.parse(["--mode", "test", "--split_fold", "4", "--retest_other_split"]))
    assert command_line.check_against_run(other, run, allow_other_split=True).split_fold == 4


def test_the_grid_keys_and_the_report_columns_are_table_rows():
    assert grid_file.GRID_KEYS == flags.GRID_KEYS
    assert all(key in flags.BY_NAME and (flags.BY_NAME[key].run or flags.BY_NAME[key].grid)
               for key in grid_file.GRID_KEYS)
    assert {f.name for f in flags.RUN_FLAGS} <= set(flags.GRID_KEYS)
    recorded = {f.run.removeprefix("hyper."): f for f in flags.RUN_FLAGS}
    for column in (*report_rows.NETWORK_SETTINGS, *report_rows.TRAINING_SETTINGS):
        assert column == "epsilon" or recorded[column].report, column  # epsilon: the recipe's, no flag
    assert set(report_rows.NETWORK_SETTINGS) == {f.run[6:] for f in flags.FLAGS if f.report and f.run.startswith("hyper.")}


def test_a_several_seed_grid_point_is_one_settings_per_seed():
    point = command_line.validate(command_line.parse(["--mode", "train", "--random_seed", "4,5"]))
    one, two = (point.for_seed(seed) for seed in point.seeds)
    assert (one.seeds, two.seeds, point.seeds) == ((4,), (5,), (4, 5))


@pytest.mark.parametrize("argv, message", [
    (["--model", "GMTCN", "--dropout", "0.5"], "--dropout 0.5: --model GMTCN does not read it (only TIMNET does)"),
    (["--model", "GMTCN", "--activation", "tanh"], "--activation tanh: --model GMTCN does not read it"),
    (["--model", "GMTCN", "--stack_size", "3"], "--stack_size 3: --model GMTCN does not read it"),
    (["--backbone", "resnet50v2"], "--backbone resnet50v2: --model TIMNET does not read it (only DCNN_BLSTMwA does)"),
    (["--model", "DCNN_BLSTMwA", "--kernel_size", "3"],
     "--kernel_size 3: --model DCNN_BLSTMwA does not read it (only TIMNET and GMTCN do)"),
    (["--val_fraction", "0.3"], "--val_fraction 0.3: --protocol last_epoch does not read it (only inner_val does)"),
    (["--protocol", "paper", "--val_fraction", "0.3"], "--val_fraction 0.3: --protocol paper does not read it"),
])
def test_a_setting_nothing_reads_is_refused(argv, message):
    """Each was recorded in run.json, trained nothing differently, and split the report into rows of one and the same
    training (bit-identical losses and predictions: checked with the old code)."""
    with pytest.raises(UserError, match=f"^{re.escape(message)}"):
        command_line.validate(command_line.parse(["--mode", "train", *argv]))


@pytest.mark.parametrize("argv", [["--model", "GMTCN", "--filter_size", "12", "--kernel_size", "3"],
                                  ["--protocol", "inner_val", "--val_fraction", "0.3"],
                                  ["--mode", "test", "--backbone", "resnet50v2"],  # a run folder may be DCNN's
                                  ["--resume", "R", "--val_fraction", "0.3"]])  # its protocol is the run's
def test_a_setting_that_is_read_or_may_be_is_taken(argv):
    command_line.validate(command_line.parse(["--mode", "train", *argv] if argv[0] != "--mode" else argv))


@pytest.mark.parametrize("name", [f.name for f in flags.FLAGS if f.required])
def test_a_flag_a_mode_cannot_start_without_is_asked_for_by_the_table(name):
    """``--mode predict`` without --wav is refused before TensorFlow loads, in one line the flags table words."""
    flag = flags.BY_NAME[name]
    assert flag.needed_as and set(flag.required) <= set(flag.modes or flags.MODES), name
    others = {"format": ["--format", "onnx"], "output": ["--output", "m.onnx"]}  # export asks for both
    for mode in flag.required:
        given = [word for other, words in others.items() if other != name for word in words] if mode == "export" else []
        for missing in ([], *([] if flag.choices else [["--" + name, ""]])):  # '' of a choice: not one of them
            with pytest.raises(UserError, match=rf"^--{name}: required for --mode {mode} \({re.escape(flag.needed_as)}\)$"):
                command_line.validate(command_line.parse(["--mode", mode, *given, *missing]))
    assert all(not f.needed_as for f in flags.FLAGS if not f.required)
