"""The one typed request of a command: ``Settings``, frozen, one field per row of core/flags.py's table plus
``given`` (the flags that were typed). Made once from the flags (cli/command_line.py), completed from a run's
``run.json`` (``with_run``) or made per seed for a grid point (``for_seed``); every change is a
``dataclasses.replace``, so the engine, the API and the grid see values nobody rewrites behind them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from . import flags
from .errors import UserError, named_twice

# a corpus name (--data, and what run.json records): it begins results file names, so no path and no control
# character; several corpora are joined by '+'
DATA_NAME = re.compile(r"[A-Za-z0-9_-]+(\+[A-Za-z0-9_-]+)*")
# characters no class name holds: control characters rewrote the console (a forged line, a cleared screen)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Fold i of seed s draws from s x 1000 + i (engine/protocol.fold_seed), which NumPy's generators take up to 2^32 - 1
MAX_SEED = (2 ** 32 - 1000) // 1000


def seed_in_range(seed: int) -> bool:
    """Whether ``seed`` is one a run may have: 0 to MAX_SEED."""
    return 0 <= seed <= MAX_SEED


def parse_seeds(text: str) -> tuple[int, ...]:
    """``46`` or ``46,47,48`` as integers from 0 to MAX_SEED; one line naming --random_seed otherwise."""
    if not re.fullmatch(r"\s*-?\d+(\s*,\s*-?\d+)*\s*", text or ""):
        raise UserError(f"--random_seed {text!r}: expected an integer or a comma-separated list like 46,47,48")
    seeds = tuple(int(s) for s in text.split(","))
    if not all(map(seed_in_range, seeds)):
        raise UserError(f"--random_seed {text}: each seed must be between 0 and {MAX_SEED} (fold i of seed s draws "
                        "from s x 1000 + i, which NumPy takes up to 2^32 - 1)")
    twice = named_twice(seeds)
    if twice is not None:  # the same run trained twice, into two folders, one sample of the report
        raise UserError(f"--random_seed {text}: names seed {twice} twice")
    return seeds


@dataclass(frozen=True)
class Settings:
    """Every setting of one command (the table's defaults unless typed); ``given``: the names of the typed flags."""

    mode: str
    model: str
    data: str
    feature_path: Optional[str]
    test_path: str
    random_seed: str  # "46" or "46,47,48": ``seeds``
    split_fold: int
    cv: str
    gpu: str
    protocol: str
    val_fraction: float
    resume: Optional[str]
    epoch: Optional[int]
    batch_size: Optional[int]
    lr: Optional[float]
    beta1: Optional[float]
    beta2: Optional[float]
    label_smoothing: Optional[float]
    label_smoothing_history: str
    training: str
    stack_members: Optional[int]
    balance: bool
    xla: bool
    fused_kernels: str  # auto or off; RunConfig.fused_kernels: whether they train the run
    mixed_precision: bool | str  # False, True (float16) or "bf16": core/precision.py
    init_from: Optional[str]
    init_fold: Optional[int]
    freeze_backbone: bool
    dropout: float
    activation: str
    filter_size: int
    dilation_size: Optional[int]
    kernel_size: int
    stack_size: int
    backbone: str
    backbone_alpha: float
    backbone_weights: str
    image_size: int
    normalize: str
    augment: int
    wav_path: Optional[str]
    features: Optional[str]
    mean_signal_length: Optional[int]
    workers: Optional[int]
    skip_bad_files: bool
    retest_other_split: bool
    retest_other_features: bool
    wav: Optional[str]
    timeline: bool
    hop: Optional[float]
    fold: Optional[int]
    format: Optional[str]
    output: Optional[str]
    cross_corpus: bool
    label_map: Optional[str]
    grid: Optional[str]
    address: Optional[str]
    gpus_per_task: float
    model_path: str
    result_path: str
    download_path: str
    url: Optional[str]
    md5: Optional[str]
    given: frozenset = frozenset()

    @classmethod
    def from_flags(cls, values: dict, given=frozenset()) -> Settings:
        """The settings of ``values`` ({flag: value}, the parser's), the table's default for every flag left out."""
        return cls(**{f.name: values.get(f.name, f.default) for f in flags.FLAGS}, given=frozenset(given))

    @property
    def seeds(self) -> tuple[int, ...]:
        return parse_seeds(self.random_seed)

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def value_for_run(self, flag: flags.Flag):
        """This command's value of ``flag`` as run.json would record it (several seeds: a list)."""
        if flag.name == "random_seed":
            return list(self.seeds) if len(self.seeds) > 1 else self.seed
        return getattr(self, flag.name)

    def with_run(self, config, feature_kind: str, keep=()) -> Settings:
        """These settings with every flag run.json records taken from ``config`` (a RunConfig), except those
        named in ``keep``; the feature kind is the run's."""
        values = {f.name: flags.recorded(config, f) for f in flags.RUN_FLAGS if f.name not in keep}
        if "random_seed" in values:
            values["random_seed"] = str(values["random_seed"])
        return replace(self, **values, features=feature_kind)

    def for_seed(self, seed: int) -> Settings:
        """The settings of one seed's run of a several-seed command (a grid point)."""
        return replace(self, random_seed=str(seed))

