"""A new run's settings: the model's paper recipe, overridden by every setting given (the command line's flags or a
grid point), made into the typed ``RunConfig`` that the engine trains from and ``run.json`` records."""

from __future__ import annotations

import os

from ..core.config import Hyper, RunConfig
from ..core.errors import UserError
from ..core.paths import feature_path
from ..data.corpora import Corpus
from ..Model import MODELS, ModelSpec


def hyper_of(settings, corpus: Corpus) -> Hyper:
    """The network's hyper-parameters from ``settings`` (TIM-Net's block count: the corpus' unless given)."""
    s = settings
    return Hyper(s.filter_size, s.kernel_size, s.dilation_size or corpus.tab_count, s.stack_size, s.dropout,
                 s.activation, s.backbone, s.backbone_alpha, s.backbone_weights, s.image_size)


def run_config(settings, corpus: Corpus, seed: int) -> tuple[ModelSpec, RunConfig]:
    """(ModelSpec, RunConfig) of a new run of seed ``seed``: the model's recipe, overridden by every setting given.

    ``settings``: the checked settings of one command (cli/settings.py), or of one grid point.
    """
    s = settings
    spec = MODELS[s.model]
    recipe = spec.recipe

    def given(value, default):
        return default if value is None else value

    smoothing = given(s.label_smoothing, recipe.label_smoothing)
    if s.label_smoothing_history == "cumulative" and smoothing == 0:
        raise UserError(f"--label_smoothing_history cumulative: {spec.name} trains without label smoothing "
                        "(--label_smoothing 0), so there is nothing to accumulate")
    config = RunConfig(model=spec.name, data=s.data, classes=list(corpus.classes),
                       feature_path=os.path.abspath(feature_path(s.data, s.features, s.feature_path)),
                       split_fold=s.split_fold, random_seed=seed, epochs=s.epoch or recipe.epochs,
                       batch_size=s.batch_size or recipe.batch_size, lr=given(s.lr, recipe.lr),
                       beta1=given(s.beta1, recipe.beta1), beta2=given(s.beta2, recipe.beta2),
                       epsilon=recipe.epsilon, label_smoothing=smoothing,
                       label_smoothing_history=s.label_smoothing_history, protocol=s.protocol,
                       val_fraction=s.val_fraction, cv=s.cv, hyper=hyper_of(s, corpus), synthetic=corpus.synthetic,
                       xla=s.xla, mixed_precision=s.mixed_precision, balance=s.balance, augment=s.augment)
    return spec, config
