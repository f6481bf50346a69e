"""What ``--normalize corpus`` and ``--normalize speaker`` need outside the network.

- ``corpus``: the network's first layer (nn/normalization.py's CorpusNormalization) holds the mean and variance
  of each MFCC coefficient over the voiced frames of the training fold's rows (never the test fold's): set here
  for every fold before it trains, saved in the fold's weight file, so test, predict, the API and export apply
  them as they are.
- ``speaker``: each utterance is standardised, before the network, with the mean and variance of its speaker's
  voiced frames over all of that speaker's utterances (unlabelled, test folds' included, as is usual for speaker
  normalisation: a deployed model sees a new speaker's recordings, never their labels). Training, test and the
  cross-corpus test take the speakers of the feature file; predict and the API take the inputs of one call as one
  speaker unless given the speaker's statistics; an exported graph expects standardised inputs (its sidecar says
  how to make them).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..core.errors import UserError
from ..data.corpus_files import SPEAKERS_FROM
from ..data.feature_statistics import frame_moments, standardise


def set_fold_statistics(model, normalize: str, x_train: np.ndarray) -> None:
    """``--normalize corpus``: the first layer of ``model`` takes the statistics of the training rows
    ``x_train`` (N, T, 39); other modes: nothing."""
    if normalize != "corpus":
        return
    mean, variance = frame_moments(x_train)
    layer = model.get_layer("corpus_normalization")
    layer.mean.assign(mean.astype(np.float32))
    layer.variance.assign(variance.astype(np.float32))


def by_speaker(x: np.ndarray, speakers, source: str) -> np.ndarray:
    """(N, T, 39) MFCCs, each row standardised with its speaker's statistics (``frame_moments`` of all that
    speaker's rows); one line naming ``source`` when a row has no speaker."""
    if speakers is None or len(speakers) != len(x) or "" in speakers:
        raise UserError(f"{source}: no speaker for every row (key 'speakers'), which --normalize speaker needs; "
                        f"re-extract it with --mode extract ({SPEAKERS_FROM})")
    speakers = np.asarray(speakers)
    out = np.empty(x.shape, np.float32)
    for speaker in np.unique(speakers):
        rows = np.flatnonzero(speakers == speaker)
        out[rows] = standardise(x[rows], frame_moments(x[rows]))
    return out


def network_inputs(x: np.ndarray, speakers, normalize: str, source: str) -> np.ndarray:
    """What the network reads of a feature file's rows: ``x`` itself, or under ``--normalize speaker`` each row
    standardised by speaker (``by_speaker``)."""
    return by_speaker(x, speakers, source) if normalize == "speaker" else x


def one_speaker(x: np.ndarray, moments: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, T, 39) inputs of one speaker standardised with ``moments`` ((2, 39): mean and variance over that
    speaker's voiced frames), by default those of ``x`` itself."""
    return standardise(x, frame_moments(x) if moments is None else moments)
