"""What predict and the timeline say of an input beside its scores: how a message names it, the warnings of a
signal whose score says little (all silence, much shorter than the model's window, samples far beyond full scale,
a constant offset), and the line of a clip the run trained on.
"""

from __future__ import annotations

from typing import Optional

from ..data.corpora import SAMPLE_RATE

SHORT_CLIP = 0.25  # a clip shorter than this share of the signal length is mostly zero padding
FAR_BEYOND_FULL_SCALE = 2.0  # a resampled full-scale file overshoots 1 a little; cast integers reach thousands
INTEGER_SCALE = 128.0  # beyond int8's range: integer samples (int16 and up) given as floats without their scale
# a constant (DC) offset of the samples' mean, beyond all but 2 of EMO-DB's 535 clips (asymmetric clipping leaves one
# too): it fills the lowest Mel band, where speech has next to no energy, and the DCT carries it into every MFCC
# (docs/predict.md: accuracy by offset)
DC_OFFSET = 0.005


def source_named(path: str, api: bool) -> str:
    """How a message names the inputs: the command line's ``--wav PATH`` or the API's ``source='PATH'``."""
    return f"source={path!r}" if api else f"--wav {path}"


def dc_offset(offset: float) -> str:
    """How every message names a samples' mean (``offset``) beyond ``DC_OFFSET``: ``a constant (DC) offset of
    +0.010``; "" within it. Predict's warning and the timeline's all-silence error say it in these words."""
    return f"a constant (DC) offset of {offset:+.3f}" if abs(offset) > DC_OFFSET else ""


def signal_warning(name: str, seconds: float, signal_length: int, silent: bool = False,
                   peak: float = 0.0, voiced_elsewhere: bool = False, offset: float = 0.0) -> Optional[str]:
    """A warning for an input (``name``, ``seconds`` long) whose scored window is all silence (``silent``: the
    timeline's energy rule; it got a confident label before, without a word; ``voiced_elsewhere``: the file is not),
    whose samples reach ``peak`` far beyond full scale, whose samples' mean (``offset``) is far from zero, or much
    shorter than the model's window (the run's signal length); else None."""
    window = signal_length / SAMPLE_RATE
    if silent and voiced_elsewhere:  # the middle window scored, the speech elsewhere
        return (f"{name}: the middle {window:.2f} s it is scored on are all silence (their loudest 23 ms frame is "
                "below -60 dBFS): its prediction says nothing about an emotion (--timeline scores its voiced parts)")
    if silent and (offset_words := dc_offset(offset)):  # a constant: no signal once the offset is taken away
        return (f"{name}: no signal but {offset_words} (its loudest 23 ms frame, less that offset, is below "
                "-60 dBFS): its prediction says nothing about an emotion")
    if silent:
        return (f"{name}: all silence (its loudest 23 ms frame is below -60 dBFS): its prediction says nothing "
                "about an emotion")
    if peak > INTEGER_SCALE:  # int16 PCM cast to float, not scaled: 32767
        return (f"{name}: samples reach {peak:g}, far beyond full scale (1): integer PCM given as floats? "
                "(divide int16 by 32768, or pass the integers); its prediction is unreliable")
    if peak > FAR_BEYOND_FULL_SCALE:  # float audio amplified past full scale, or 8-bit (or quiet) integers cast
        return (f"{name}: samples reach {peak:g}, far beyond full scale (1): amplified audio, or integer samples "
                "given as floats? (scale it into [-1, 1]); its prediction is unreliable")
    if seconds < SHORT_CLIP * window:
        return (f"{name}: {seconds:.2f} s, much shorter than the model's {window:.2f} s window "
                "(zero-padded to that length): its prediction is unreliable")
    if dc_offset(offset):  # a microphone's or converter's bias, or clipping: the features moved with it
        return (f"{name}: its samples' mean is {offset:+.3f} (full scale is 1): a constant (DC) offset, or "
                "clipping; every feature moves with it, so its prediction is less reliable (an offset: subtract the "
                "mean, or high-pass the audio)")
    return None


def training_corpus_line(seen: dict) -> str:
    """What a row's (or a one-window timeline's) ``training_corpus`` says: how many of the scoring fold models
    trained on the clip, and what the fold that held it out predicts; for the authors' folders, a clip named as their
    corpus names its recordings."""
    if "named_as" in seen:
        return (f"named as {seen['named_as']} names its recordings: the authors' fold models trained on nearly all of "
                f"{seen['named_as']}, so this is no held-out score")
    if not seen["trained_on_by"]:  # --fold: the fold that held it out scored it alone
        return (f"in the run's training corpus: fold {seen['held_out_by_fold']}, which scored it, held it out, so "
                "this is a held-out score")
    return (f"in the run's training corpus: {seen['trained_on_by']} of {seen['folds']} fold models trained on it, so "
            f"this is no held-out score; fold {seen['held_out_by_fold']}, which held it out, predicts "
            f"{seen['held_out_label']}")
