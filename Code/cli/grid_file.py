"""The grid file of ``--mode grid --grid FILE.toml``: its keys (flag names), its axes and the points they make.

The grid file (read with ``tomllib``) holds flag names as keys. A list is an axis: the grid is the cartesian
product of its axes, one run per point (docs/grid.md)::

    model = ["TIMNET", "GMTCN"]
    random_seed = [1, 2, 3, 4, 5]
    split_fold = 10

    [[corpus]]
    data = "EMODB"
    feature_path = "MFCC/EMODB.npy"     # relative paths are relative to the grid file's folder

Every point becomes the argument list of a training command (flags typed next to ``--mode grid`` apply to every
point the grid file does not set), read and checked by command_line.py like any command line; grid/ trains them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tomllib

from ..core import flags
from ..core.config import BACKBONE_WEIGHT_WORDS
from ..core.errors import UserError, did_you_mean, named_twice
from ..core.flags import BY_NAME, GRID_KEYS, unread_by
from ..core.settings import Settings
from ..grid.plan import Point
from . import command_line

MAX_POINTS = 10_000  # runs of one grid file: far more than a paper table (6 corpora x 10 seeds x a few settings)
# relative to the grid file's folder (init_from was read from the current folder: another run of the same name there
# was fine-tuned from without a word); backbone_weights where it names a file, not imagenet or none
PATH_KEYS = ("feature_path", "label_map", "model_path", "result_path", "init_from", "backbone_weights")
NOT_PATHS = {"backbone_weights": BACKBONE_WEIGHT_WORDS}
# Flags of the grid command itself, never handed to its runs.
GRID_ONLY = {"mode", "grid", "address", "gpus_per_task", "workers", "gpu"}


def read_grid(path: str) -> dict:
    """The grid file's table; a one-line ``UserError`` for a missing or malformed file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"--grid {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--grid {path}: is a folder, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--grid {path}: not valid TOML ({exc})") from None
    except RecursionError:  # tables or arrays nested tens of thousands deep
        raise UserError(f"--grid {path}: nested too deep to be a grid of flags") from None


def _check_key(path: str, key: str) -> None:
    if key not in GRID_KEYS:
        raise UserError(f"--grid {path}: unknown key {key!r}{did_you_mean(key, GRID_KEYS)}; a grid sets "
                        f"{', '.join(GRID_KEYS)}, or [[corpus]] tables of them")


def _toml(value) -> str:
    """A value as the grid file writes it (``"1,1"``, ``[1, "1"]``, ``2024-01-01``, ``true``), for its messages:
    Python's repr showed ``datetime.date(2024, 1, 1)`` and ``['1,1']``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + "}"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _check_value(path: str, key: str, value) -> None:
    """A flag value: a string, a number or a boolean (lists and tables are the grid's own structure)."""
    if isinstance(value, (list, dict)) or not isinstance(value, (str, int, float, bool)):
        raise UserError(f"--grid {path}: {key} = {_toml(value)}: expected a string, a number or a boolean here")


def _map_paths(path: str, key: str, value, change):
    """``change(folder, one path)`` on each path of a path value (feature_path: several corpora, a.npy+b.npy, each),
    ``folder`` the grid file's; anything else as is."""
    if key not in PATH_KEYS or not isinstance(value, str) or value in NOT_PATHS.get(key, ()):
        return value
    folder = os.path.dirname(os.path.abspath(path))
    parts = value.split("+") if key == "feature_path" else [value]
    return "+".join(change(folder, part) for part in parts)


def _resolved(path: str, key: str, value):
    """A path value relative to the grid file's folder, as in other configuration files; anything else as is."""
    return _map_paths(path, key, value, lambda folder, part: os.path.join(folder, os.path.expanduser(part)))


def _as_written(path: str, key: str, value):
    """A resolved path value as a label shows it: relative to the grid file's folder where it lies below it (as the
    file wrote it), else absolute; anything else as is."""
    return _map_paths(path, key, value, lambda folder, part: os.path.relpath(part, folder)
                      if part.startswith(folder + os.sep) else part)


def grid_axes(path: str, table: dict) -> list[tuple[str, list]]:
    """(name, values) of every axis in the file's order; a scalar is an axis of one value. Each value of the
    ``corpus`` axis is a dict of flags (its ``[[corpus]]`` table), every other value a flag's."""
    corpora = table.get("corpus")
    if corpora is not None:
        if not isinstance(corpora, list) or not corpora or not all(isinstance(c, dict) for c in corpora):
            raise UserError(f"--grid {path}: corpus must be [[corpus]] tables, each with a data and a feature_path")
        clash = sorted({"data", "feature_path"} & set(table))
        if clash:
            raise UserError(f"--grid {path}: {', '.join(clash)} at the top level and in [[corpus]] tables; set "
                            "them in the tables only")
    axes = []
    for key, value in table.items():
        if key == "corpus":
            for i, corpus in enumerate(corpora, 1):
                if "data" not in corpus:
                    raise UserError(f"--grid {path}: [[corpus]] table {i} has no data key")
                for name, item in corpus.items():
                    _check_key(path, name)
                    _check_value(path, f"[[corpus]] {i} {name}", item)
            axes.append((key, [{name: _resolved(path, name, item) for name, item in corpus.items()}
                               for corpus in corpora]))
            continue
        _check_key(path, key)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise UserError(f"--grid {path}: {key} = []: an axis needs at least one value")
        for item in values:
            _check_value(path, key, item)
        twice = named_twice(_as_read(key, values))
        if twice is not None:  # one run twice (merged without a word), as --random_seed 1,1 is refused
            raise UserError(f"--grid {path}: {key} = {_toml(value)}: names {twice!r} twice")
        axes.append((key, [_resolved(path, key, item) for item in values]))
    return axes


def _as_read(key: str, values: list) -> list:
    """An axis' values as the flag reads them, so that one value in two spellings is seen twice: a number of a
    number flag (1 and "1", 0.001 and "0.001"), each seed of a seed list ("1,2" and 2)."""
    if key == "random_seed":
        seeds = [part.strip() for value in values for part in str(value).split(",")]
        return [int(seed) if seed.lstrip("-").isdigit() else seed for seed in seeds]
    kind = BY_NAME[key].type
    if kind in (int, float):
        read = []
        for value in values:
            try:
                read.append(kind(value) if not isinstance(value, bool) else value)
            except (TypeError, ValueError):
                read.append(value)
        return read
    return values


def _switches() -> set[str]:
    """The flags that take no value (--balance, --xla ...): true is the bare flag, false leaves it out."""
    return {flag.name for flag in flags.FLAGS if flag.type is bool}


def flag_argv(name: str, value, switches: set[str], path: str = "the command line") -> list[str]:
    """The command-line words of flag ``name`` set to ``value``."""
    if name in switches:
        words = flags.BY_NAME[name].words or {}
        if isinstance(value, str) and value in words:
            return [f"--{name}", value]
        if not isinstance(value, bool):
            raise UserError(f"--grid {path}: {name} = {_toml(value)}: expected true or false"
                            + "".join(f" or {_toml(word)}" for word in words))
        return [f"--{name}"] if value else []
    if isinstance(value, bool):
        raise UserError(f"--grid {path}: {name} = {str(value).lower()}: --{name} takes a value, not true/false")
    return [f"--{name}", str(value)]


def command_line_flags(settings: Settings) -> dict:
    """{flag: value} of the flags typed next to ``--mode grid`` that its runs take."""
    return {name: getattr(settings, name) for name in sorted(settings.given - GRID_ONLY)}


NAMED_AXES = ("model", "random_seed", "corpus")  # shown in every label as "TIMNET on EMODB, seed 1"


def expand(path: str, table: dict, typed: dict) -> list[Point]:
    """Every point of the grid, its flags checked by command_line.py. ``typed``: the command line's flags."""
    axes = grid_axes(path, table)
    points = math.prod(len(values) for _, values in axes)
    if points > MAX_POINTS:  # four axes of 100 values: 10^8 points, expanded for minutes before anything was said
        raise UserError(f"--grid {path}: {points:,} points (the product of its axes' lengths); a grid holds at most "
                        f"{MAX_POINTS:,}: split it into several files")
    switches = _switches()
    set_by_file = {name for key, values in axes  # a [[corpus]] table's keys, or the axis' own
                   for name in ({n for table in values for n in table} if key == "corpus" else {key})}
    for name in sorted(set(typed) & set_by_file):  # the file wins (docs/grid.md): said, not dropped without a word
        print(f"grid {path}: --{name} typed on the command line is not used: the file sets {name}")
    points, unread = [], set()
    for combination in itertools.product(*[values for _, values in axes]):
        flags, others = dict(typed), {}  # the point's label: the values of its other axes, by key
        for (key, values), value in zip(axes, combination):
            flags.update(value if key == "corpus" else {key: value})
            if len(values) > 1 and key not in NAMED_AXES:
                others[key] = f"{key}={_as_written(path, key, value)}"
        # a model (or protocol) axis beside a setting of one model's network (or protocol): not this point's
        model, protocol = (flags.get(name, BY_NAME[name].default) for name in ("model", "protocol"))
        skipped = {name for name in flags if name in BY_NAME and unread_by(BY_NAME[name], model, protocol)}
        unread.update((name, f"{model} under {protocol}") for name in skipped)
        argv = ["--mode", "train"]
        for name, value in flags.items():
            if name not in skipped:
                argv += flag_argv(name, value, switches, path)
        points += _seed_points(argv, [label for key, label in others.items() if key not in skipped])
    for name, run in sorted(unread):  # its points that differ in it alone are one run (plan.py merges them)
        print(f"grid {path}: {run} reads no {name}; its points leave it out")
    return points


def _seed_points(argv: list[str], others: list[str]) -> list[Point]:
    """The runs of one point's command line: one per seed of its --random_seed (a comma list is an axis too).
    ``others``: the values of the other axes, for the label."""
    try:
        checked = command_line.validate(command_line.parse(argv))
    except UserError as exc:
        return [Point(f"point {' '.join(argv[2:])}", None, str(exc))]
    return [Point(", ".join([f"{checked.model} on {checked.data}", f"seed {seed}", *others]), checked.for_seed(seed))
            for seed in checked.seeds]
