"""The layers' argument checks (no TensorFlow: the command line runs them before it starts): each raises a
ValueError that names the layer and the argument and echoes the received value, as keras-tcn's layers do. Shared
by every network file (TIMNET, GTCM, DCNN, causal_conv).
"""

from __future__ import annotations

from typing import Optional

# DCNN-BLSTMwA's segment CNNs (DCNN.BACKBONES): whether each has MobileNet's width multiplier ``alpha``
BACKBONE_WIDTH = {"mobilenetv2": True, "resnet50v2": False}
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # the widths Keras publishes MobileNetV2 ImageNet weights for
# TIM-Net's block activation (--activation): Keras 3's element-wise activations by name. Not softmax, log_softmax,
# sparsemax and glu, which work across the channels (glu halves them), nor threshold, which needs arguments.
BLOCK_ACTIVATIONS = ("relu", "celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu",
                     "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "mish", "relu6", "selu",
                     "sigmoid", "silu", "soft_shrink", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
                     "squareplus", "swish", "tanh", "tanh_shrink")


def check_positive_int(owner: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, received {name}={value!r}")


def check_positive_number(owner: str, name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive number, received {name}={value!r}")


def check_rate(owner: str, name: str, value) -> None:
    """A dropout rate: a number in [0, 1)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), received {name}={value!r}")


def check_activation(owner: str, name: str, value) -> None:
    if value not in BLOCK_ACTIVATIONS:
        raise ValueError(f"{owner}: {name} must be one of Keras' element-wise activations "
                         f"({', '.join(BLOCK_ACTIVATIONS)}), received {name}={value!r}")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False, received {name}={value!r}")


class BackboneArgumentError(ValueError):
    """A backbone argument that cannot work.

    Args:
        owner: who received it (the layer, or the function).
        argument: its name: backbone, alpha or image_size.
        value: the received value.
        reason: what it must be, as a predicate ("must be at least 32 (...)"), so that the command line can
            name its own flag with it.
    """

    def __init__(self, owner: str, argument: str, value, reason: str):
        super().__init__(f"{owner}: {argument} {reason}, received {argument}={value!r}")
        self.argument, self.value, self.reason = argument, value, reason

    @property
    def setting(self) -> str:
        """The setting the argument comes from: the flag without its dashes, and Hyper's field."""
        return {"alpha": "backbone_alpha"}.get(self.argument, self.argument)


def check_backbone(owner: str, backbone: str, alpha: float, weights: Optional[str], image_size: int) -> None:
    """The backbone arguments' one check (the layer's and the command line's): a BackboneArgumentError."""
    if backbone not in BACKBONE_WIDTH:
        raise BackboneArgumentError(owner, "backbone", backbone, f"must be one of {', '.join(BACKBONE_WIDTH)}")
    has_alpha = BACKBONE_WIDTH[backbone]
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise BackboneArgumentError(owner, "alpha", alpha, "must be a positive number")
    if not has_alpha and alpha != 1.0:
        raise BackboneArgumentError(owner, "alpha", alpha, f"must be 1.0 ({backbone} has no width multiplier)")
    if has_alpha and weights == "imagenet" and float(alpha) not in IMAGENET_ALPHAS:
        widths = " ".join(f"{a:g}" for a in IMAGENET_ALPHAS)
        raise BackboneArgumentError(owner, "alpha", alpha, f"must be one of {widths} to load ImageNet weights")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 32:
        raise BackboneArgumentError(owner, "image_size", image_size,
                                    "must be an integer of at least 32 (the backbones' smallest input)")
