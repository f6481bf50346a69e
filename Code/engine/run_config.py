"""A new run's settings: the model's paper recipe, overridden by every setting given (the command line's flags or a
grid point), made into the typed ``RunConfig`` that the engine trains from and ``run.json`` records."""

from __future__ import annotations

import os

from ..core.config import Hyper, RunConfig
from ..core.flags import RUN_FLAGS
from ..core.settings import Settings
from ..data.corpora import Corpus
from ..data.resolve import recorded_feature_path
from ..Model import MODELS, ModelSpec


def hyper_of(settings: Settings, corpus: Corpus) -> Hyper:
    """The network's hyper-parameters from ``settings`` (TIM-Net's block count: the corpus' unless given)."""
    values = {f.run.removeprefix("hyper."): getattr(settings, f.name) for f in RUN_FLAGS if f.run.startswith("hyper.")}
    return Hyper(**{**values, "dilation_size": settings.dilation_size or corpus.tab_count})


def run_config(settings: Settings, corpus: Corpus, seed: int) -> tuple[ModelSpec, RunConfig]:
    """(ModelSpec, RunConfig) of a new run of seed ``seed``: the model's recipe, overridden by every setting given
    (each recorded flag of core/flags.py, under its run.json name; a flag left unset takes the recipe's value).

    ``settings``: the checked settings of one command (cli/command_line.py), or of one grid point.
    """
    spec = MODELS[settings.model]
    values = {f.run: getattr(settings, f.name) for f in RUN_FLAGS if "." not in f.run}
    values = {name: getattr(spec.recipe, name, None) if value is None else value for name, value in values.items()}
    if values["init_from"] is not None:
        values["init_from"] = os.path.abspath(values["init_from"])
    config = RunConfig(**{**values, "model": spec.name, "random_seed": seed}, classes=list(corpus.classes),
                       feature_path=recorded_feature_path(settings.data, settings.features, settings.feature_path),
                       epsilon=spec.recipe.epsilon, hyper=hyper_of(settings, corpus), synthetic=corpus.synthetic,
                       fused_kernels=fused_kernels_used(settings, spec))
    return spec, config


def fused_kernels_used(settings: Settings, spec: ModelSpec) -> bool:
    """Whether the fused kernels (nn/fused_ops.py) train a new run: --fused_kernels auto, a TIM-Net with ReLU blocks
    or a GM-TCNet, in float32 without XLA on the CPU (sequentially, or stacked in the grouped layout, the CPU's), and
    setup.sh built them; what run.json records."""
    if (settings.fused_kernels == "off" or not spec.fused_ops or settings.xla or settings.activation != "relu"
            or settings.mixed_precision):
        return False
    from ..nn import fused_ops  # loads TensorFlow
    return fused_ops.available()
