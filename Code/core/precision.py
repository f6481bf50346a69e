"""What ``--mixed_precision`` means, in one place: the setting's values, Keras' dtype policy for each, whether the
loss is scaled, and how a run's title and file names say it. Plain data: no TensorFlow.

The setting, as ``Settings`` and ``run.json`` hold it:

- ``False`` (the default): float32 throughout;
- ``True`` (``--mixed_precision`` typed bare, or ``--mixed_precision float16``): Keras' ``mixed_float16``, float16
  compute with float32 weights and loss scaling; ``true`` is what run.json recorded before the flag took a value,
  so runs recorded then read the same;
- ``"bf16"`` (``--mixed_precision bf16``): Keras' ``mixed_bfloat16``, bfloat16 compute with float32 weights;
  bfloat16 has float32's exponent range, so its gradients do not underflow and the loss is not scaled.

Either mixed policy keeps the softmax, the loss and the BatchNorm statistics in float32 (Keras' layers do).
"""

from __future__ import annotations

FLOAT16, BF16 = True, "bf16"
# the words --mixed_precision takes (or a grid file's string value) -> the setting
WORDS = {"float16": FLOAT16, "bf16": BF16}
_POLICIES = {False: "float32", FLOAT16: "mixed_float16", BF16: "mixed_bfloat16"}
_NAMES = {FLOAT16: "float16", BF16: "bfloat16"}


def is_setting(value) -> bool:
    """Whether ``value`` is one of the setting's values (False, True, "bf16")."""
    return isinstance(value, (bool, str)) and value in _POLICIES


def policy(value) -> str:
    """Keras' dtype policy of the setting ``value``."""
    return _POLICIES[value]


def loss_scaled(value) -> bool:
    """float16 gradients underflow unless the loss is scaled up (and the gradients back down); bfloat16's do not."""
    return value is FLOAT16


def flag_word(value) -> str:
    """The word ``--mixed_precision`` takes for the setting ``value`` (``float16`` for True), as a report names it;
    ``false`` for float32."""
    return "float16" if value is FLOAT16 else "bf16" if value == BF16 else "false"


def title_note(value) -> str:
    """What a run's title says of the setting: "" for float32, else e.g. ``MIXED PRECISION bfloat16``."""
    return f"MIXED PRECISION {_NAMES[value]}" if value else ""


def file_suffix(value) -> str:
    """What run folder and results file names end with: "" for float32, else ``_mixed-float16``/``_mixed-bfloat16``."""
    return f"_mixed-{_NAMES[value]}" if value else ""
