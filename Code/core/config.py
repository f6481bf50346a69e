"""The typed settings every layer shares, frozen (changed only through ``dataclasses.replace``): a network's
hyper-parameters (``Hyper``), a run's training settings as ``run.json`` records them (``RunConfig``) and what it
trains on (``TrainingData``), and the checks of a setting that both the command line and the engine make (one
wording for both). Plain data: no TensorFlow, no files; the flags that fill them are core/flags.py's table.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Optional

from . import precision
from .errors import UserError

# TIM-Net's blocks per direction: the last dilates by 2^(n - 1), which TensorFlow's int32 shapes hold up to n = 31
MAX_DILATION_SIZE = 31
MAX_WIDTH = 1024  # filters and taps of a convolution (the papers': 39 and 2)
MAX_STACKS = 16  # repetitions of TIM-Net's block stack (the paper's: 1)


@dataclass(frozen=True)
class Hyper:
    """Network hyper-parameters from the command line (the original's flag names)."""

    filter_size: int = 39
    kernel_size: int = 2
    dilation_size: int = 8  # TIM-Net: number of TABs per direction
    stack_size: int = 1
    dropout: float = 0.1
    activation: str = "relu"
    backbone: str = "mobilenetv2"  # DCNN_BLSTMwA: the segment CNN (DCNN.BACKBONES)
    backbone_alpha: float = 1.0  # DCNN_BLSTMwA: MobileNetV2's width multiplier
    backbone_weights: str = "imagenet"  # DCNN_BLSTMwA: the CNN's initial weights: imagenet, none or a file
    image_size: int = 64  # DCNN_BLSTMwA: segments resized to image_size x image_size (64: not resized)
    # TIMNET, GMTCN: standardise each MFCC coefficient by its "utterance", "speaker" or training "corpus"
    # statistics (nn/normalization.py, engine/normalization.py); "none": the papers'
    normalize: str = "none"


@dataclass(frozen=True)
class Recipe:
    """A paper's training settings; each is a command-line default that a flag overrides."""

    epochs: int
    label_smoothing: float  # applied to a copy of the training labels only
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    epsilon: float = 1e-8  # the authors pass 1e-8; Keras 3's default is 1e-7
    batch_size: int = 64


# each model's recipe (Model.py's registry names the model's by its key): what its runs train with where no flag says
RECIPES = {
    "TIMNET": Recipe(epochs=500, label_smoothing=0.1),
    "GMTCN": Recipe(epochs=300, label_smoothing=0.0),
    # the paper's optimiser, epochs and batch size were not available to us: fine-tuning settings of our choice
    # (docs/dcnn_blstmwa.md)
    "DCNN_BLSTMwA": Recipe(epochs=50, label_smoothing=0.0, lr=1e-4, beta1=0.9, beta2=0.999, epsilon=1e-7,
                           batch_size=32),
}


def default_settings(model: str) -> dict:
    """What a run of ``model`` records for each setting where no flag says otherwise, by run.json's names
    (``Hyper``'s fields unprefixed): the defaults of ``Hyper`` and ``RunConfig``, the model's recipe over them.
    TIM-Net's block count is the corpus' (``dilation_size`` here: the original's, EMO-DB's 8)."""
    values = {f.name: f.default for kind in (Hyper, RunConfig) for f in fields(kind) if f.default is not MISSING}
    return {**values, **({f.name: getattr(RECIPES[model], f.name) for f in fields(Recipe)} if model in RECIPES else {})}


BACKBONE_WEIGHT_WORDS = ("imagenet", "none")  # --backbone_weights' words; any other value names a weights file
PROTOCOL_NAMES = ("last_epoch", "paper", "inner_val")  # --protocol: what chooses a fold's weights (engine/protocol)
# a re-test's protocol where nothing records what chose the weights: a folder without run.json not named as the
# published ones, or of a model without published weights (never a --protocol; the report marks such rows)
UNKNOWN_PROTOCOL = "unknown"
LABEL_SMOOTHING_HISTORIES = ("per_fold", "cumulative")  # --label_smoothing_history


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run's training; stored in ``run.json`` and in every results JSON."""

    model: str
    data: str
    classes: list
    feature_path: str
    split_fold: int = 10
    random_seed: int = 46
    epochs: int = 500
    batch_size: int = 64
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    epsilon: float = 1e-8
    label_smoothing: float = 0.1
    # per_fold: each fold smooths a copy of its training labels (this project's default); cumulative: the labels
    # are smoothed in place, fold after fold, as the code behind the ICASSP table did (issue: SPEC §4)
    label_smoothing_history: str = "per_fold"
    protocol: str = "last_epoch"
    val_fraction: float = 0.1  # inner_val: share of each training fold held out for epoch selection
    cv: str = "kfold"  # kfold (the original's split), speaker (whole speakers held out) or corpus (one left out)
    hyper: Hyper = field(default_factory=Hyper)
    synthetic: bool = False
    xla: bool = False  # compile the training step with XLA (measured slower than the default on our CPU)
    fused_kernels: bool = False  # TIM-Net's and GM-TCNet's blocks run through the ops setup.sh built (nn/fused_ops.py)
    mixed_precision: bool | str = False  # True: float16 compute, "bf16": bfloat16, float32 variables (precision.py)
    balance: bool = False  # oversample the training rows of every class to the largest class' count
    augment: int = 0  # masked copies of every training utterance (log-Mel segments only)
    init_from: Optional[str] = None  # fine-tuning: the run or authors' folder every fold starts from (absolute)
    init_fold: Optional[int] = None  # its fold that folds beyond its fold count start from
    freeze_backbone: bool = False  # fine-tuning: only the softmax head trains

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        return cls(**{**values, "hyper": Hyper(**values["hyper"])})

    @property
    def selection_suffix(self) -> str:
        """``_paper`` where each fold's weights are those of the epoch best on its test fold (``--protocol paper``):
        the run folder's name and its re-tests' results files say so, as its own results files end in the
        protocol. Their figures are optimistic wherever they go."""
        return "_paper" if self.protocol == "paper" else ""

    @property
    def variant_suffix(self) -> str:
        """What is appended to folder and file names of a run trained with the original's cumulative smoothing or
        in mixed precision."""
        return (("_cumulative-smoothing" if self.label_smoothing_history == "cumulative" else "")
                + precision.file_suffix(self.mixed_precision))


# --- the checks a command line makes before TensorFlow starts and the engine makes again for a caller of its
# functions (the API): one owner each, so both refuse in the same words

def check_corpus_split(cv: str, data: str, corpora: int) -> None:
    """--cv corpus leaves one corpus out per fold, so ``data`` must hold several (``corpora``: their number)."""
    if cv == "corpus" and corpora < 2:
        raise UserError(f"--cv corpus: leaves one corpus out per fold, and --data {data} is one corpus; name "
                        "several (--data A+B)")


def check_val_fraction(protocol: str, val_fraction: float) -> None:
    """--protocol inner_val chooses each fold's epoch on a share of its training rows: a share of 0 holds out none
    (whether a share leaves rows to fit needs the folds: engine/protocol.check_validation_split)."""
    if protocol == "inner_val" and val_fraction == 0:
        raise UserError("--val_fraction 0: --protocol inner_val chooses each fold's epoch on that share of its "
                        "training rows; give a share above 0 (the default is 0.1)")


def check_stack_members(stack_members: Optional[int], stacked: bool) -> None:
    """--stack_members bounds the folds of one stack: a positive number, read only where the folds train stacked
    (elsewhere it would be ignored without a word)."""
    if stack_members is not None and (not stacked or stack_members < 1):
        raise UserError(f"--stack_members {stack_members}: a positive number of folds per stack, with --training "
                        "stacked")


# the recorded settings a run may leave unset (run.json, a results record's config): RunConfig's and Hyper's fields
# whose default is None, named as core/flags.py's ``Flag.run`` names them
NULLABLE_SETTINGS = frozenset(prefix + f.name for kind, prefix in ((RunConfig, ""), (Hyper, "hyper."))
                              for f in fields(kind) if f.default is None)


@dataclass(frozen=True)
class TrainingData:
    """What a run is trained on, as recorded in ``run.json``: the feature file and its rows."""

    signal_length: int
    features: str  # the feature kind, data.features.FEATURE_KINDS
    input_shape: tuple  # one utterance's features: (T, 39) or (S, 64, 64, 3)
    size: int  # bytes of the feature file
    sha256: str  # features_digest of x and y
    files: Optional[list]  # the corpus' file names in row order, when the feature file has them
