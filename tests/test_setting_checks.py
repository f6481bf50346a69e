"""A setting the command line checks before TensorFlow starts is checked again by the engine functions an API caller
may call directly (core/config.py owns each check): both paths refuse it in the same one line. Before, the engine
worded --cv corpus and --stack_members (max_members) its own way, said "would hold out 0 rows" of --val_fraction 0,
and trained sequentially, the stack size ignored, where cross_validate had max_members without stacked."""

import numpy as np
import pytest

from timnet_ser.core.config import RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.main import main


def command_line_error(capsys, argv: list[str]) -> str:
    """The one line the command line refuses ``argv`` with (exit status 2), without "error: "."""
    assert main(["--mode", "train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def engine_error(call) -> str:
    with pytest.raises(UserError) as refused:
        call()
    return str(refused.value)


def toy_config(**settings) -> RunConfig:
    return RunConfig(model="TIMNET", data="TA", classes=list("abc"), feature_path="-", split_fold=3, **settings)


def test_cv_corpus_of_one_corpus(capsys):
    from timnet_ser.engine.cross_validation import planned_folds
    from timnet_ser.engine.protocol import split_folds
    line = command_line_error(capsys, ["--data", "TA", "--cv", "corpus"])
    assert line == "--cv corpus: leaves one corpus out per fold, and --data TA is one corpus; name several (--data A+B)"
    x = np.zeros((12, 4, 39), np.float32)
    assert engine_error(lambda: planned_folds(toy_config(cv="corpus"), None, x, None)) == line
    assert engine_error(lambda: split_folds(12, 3, 46, "corpus", "TA", corpora=np.zeros(12, int))) == line


def test_val_fraction_0_of_inner_val(capsys):
    from timnet_ser.engine.cross_validation import planned_folds
    line = command_line_error(capsys, ["--protocol", "inner_val", "--val_fraction", "0"])
    x = np.zeros((12, 4, 39), np.float32)
    assert engine_error(lambda: planned_folds(toy_config(protocol="inner_val", val_fraction=0.0), None, x, None)) \
        == line


@pytest.mark.parametrize("argv, stacked, members", [
    (["--stack_members", "4"], False, 4),  # sequential training reads no stack size
    (["--training", "stacked", "--stack_members", "0"], True, 0),
])
def test_stack_members(capsys, argv, stacked, members):
    from timnet_ser.engine.cross_validation import cross_validate
    from timnet_ser.engine.stacked_training import train_members
    from timnet_ser.Model import MODELS
    line = command_line_error(capsys, argv)
    assert line == (f"--stack_members {members}: a positive number of folds per stack, with --training stacked")
    spec = MODELS["TIMNET"]
    assert engine_error(lambda: cross_validate(spec, [], None, None, stacked=stacked, max_members=members)) == line
    if stacked:
        assert engine_error(lambda: list(train_members(spec, toy_config(), None, [], members))) == line
