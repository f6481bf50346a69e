"""The training API: ``timnet_ser.train(...)``, a run trained from Python as ``--mode train`` trains it.

    import timnet_ser
    run = timnet_ser.train(data="EMODB", feature_path="MFCC/EMODB.npy", model="TIMNET", epoch=300,
                           split_fold=10, normalize="corpus")
    run.predict("speech.wav")

Every keyword is a flag of core/flags.py's table (``epoch=300`` is ``--epoch 300``, ``balance=True`` is
``--balance``, ``random_seed=[46, 47]`` is ``--random_seed 46,47``); they go through the command line's own parser
and checks (command_line.py), so the API accepts what the command line accepts and refuses the rest with the same one
line (``UserError``: ``--epoch -1: must be positive``), before TensorFlow starts. The same engine trains the run
(modes.run_train), which prints its progress; the result is the run folder loaded as an ``api.Run``.
"""

from __future__ import annotations

import os
from typing import Optional

from ..core.errors import UserError, named
from ..core.flags import BY_NAME
from . import command_line, modes


def _argv(data: Optional[str], feature_path: Optional[str], model: Optional[str], flags: dict) -> list[str]:
    """The command line of these keywords: None and False left out, True a switch, a list of seeds joined; a value
    of a type its flag cannot take is refused naming the keyword (the parser would see a stray word, or fail).
    --data and --model too are typed only when given: typed, they must agree with a run that ``resume=`` names."""
    argv = ["--mode", "train"]
    for name, value in (("data", data), ("model", model)):
        if value is not None and not isinstance(value, str):
            raise UserError(f"{named(name, value, api=True)}: give a name, a str (data='EMODB', model='TIMNET')")
        argv += [] if value is None else [f"--{name}", value]
    if feature_path is not None and not isinstance(feature_path, (str, os.PathLike)):
        raise UserError(f"{named('feature_path', feature_path, api=True)}: give the path of a feature file (a str)")
    if feature_path is not None:
        argv += ["--feature_path", os.fspath(feature_path)]
    for name, value in flags.items():
        flag = BY_NAME.get(name)
        if flag is not None and flag.type is bool and not flag.words and not isinstance(value, bool):
            raise UserError(f"{named(name, value, api=True)}: a switch, True or False")
        if flag is not None and flag.type is not bool and isinstance(value, bool):
            raise UserError(f"{named(name, value, api=True)}: takes a value, not True or False")
        if value is None or value is False:
            continue
        argv.append(f"--{name}")
        if value is not True:
            argv.append(",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    return argv


def train(data: Optional[str] = None, feature_path: Optional[str] = None, model: Optional[str] = None, **flags):
    """Train a run as ``--mode train`` does and return it loaded (``api.Run``; a list of them where ``random_seed``
    is a list, even of one seed (``[46]``), or a comma list of several, ``"46,47"``).

    Args:
        data: the corpus key (``--data``; default EMODB, or the run of ``resume=``).
        feature_path: its feature file (default ``MFCC/<data>.npy``).
        model: TIMNET (default), GMTCN or DCNN_BLSTMwA.
        **flags: any other flag of ``--mode train`` by its name (``epoch=2``, ``split_fold=5``, ``normalize="speaker"``,
            ``model_path=...``, ``resume=<run folder>``); a wrong one is refused in the command line's words.
    """
    if "mode" in flags:
        raise UserError(f"mode={flags['mode']!r}: train() trains; load_run(folder) tests, predicts and exports")
    settings = command_line.validate(command_line.parse(_argv(data, feature_path, model, flags)))
    if "gpu" in settings.given:
        os.environ["CUDA_VISIBLE_DEVICES"] = settings.gpu  # read when TensorFlow starts (after the files are checked)
    from ..deploy.api import load_run
    summaries = modes.run_train(settings)
    if not summaries:  # a complete run given to resume= : nothing trained, the run as it is
        return load_run(settings.resume)
    runs = [load_run(summary["record"]["weights_folder"]) for summary in summaries]
    # a list of seeds, even of one (random_seed=(13,)), gives a list: what the call's form says it returns
    listed = isinstance(flags.get("random_seed"), (list, tuple)) or "," in str(flags.get("random_seed", ""))
    return runs if listed or len(runs) > 1 else runs[0]
