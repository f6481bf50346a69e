"""Keras 3's Adam over all of a model's variables at once: the same float32 arithmetic, each formula once per
training step instead of once per variable.

``keras.optimizers.Adam`` builds its update (``Adam.update_step``) variable by variable: TIM-Net's 135 trainable
variables make about half the operations of its traced training step, and on a CPU the executor's cost per
operation, not the arithmetic on its 104 496 numbers, is what the update costs (docs/speed.md). ``FlatAdam``
keeps both moments of every variable in one flat vector each and runs each element-wise formula once over the
concatenated gradients; each variable then takes its slice of the step. Element by element these are the same
float32 operations in the same order as Keras' update, so the weights, moments and step count are bit for bit
Keras' (tests/test_flat_adam.py). Loss scaling (``--mixed_precision`` float16) stays with Keras' LossScaleOptimizer
around Keras' Adam. The formulas are ``adam_update``, which the stacked trainer (engine/stacked_training.py) also
runs, on one row of flat moments per member.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf


def adam_update(gradient, momentum, velocity, iterations, learning_rate, beta_1: float, beta_2: float,
                epsilon: float):
    """Adam.update_step's expressions, in its order and types, on flat tensors: (new momentum, new velocity, step),
    the step to subtract from the variables.

    Args:
        gradient, momentum, velocity: (P,) for one model, or (M, P) for M models (stacked members), each at its
            own step count.
        iterations: the steps taken before this one, int64: () or (M,).
        learning_rate: float32, as Keras keeps it; cast to the gradient's dtype like the powers and alpha.
        beta_1, beta_2, epsilon: Python floats ((1 - beta) is computed in Python, as Keras does).
    """
    dtype = gradient.dtype
    local_step = tf.cast(iterations + 1, dtype)
    beta_1_power = tf.pow(tf.cast(beta_1, dtype), local_step)
    beta_2_power = tf.pow(tf.cast(beta_2, dtype), local_step)
    alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)  # () or (M,)
    if alpha.shape.rank:
        alpha = alpha[:, None]  # (M, 1): member m's rate along its row
    momentum = momentum + (gradient - momentum) * (1 - beta_1)
    velocity = velocity + (tf.square(gradient) - velocity) * (1 - beta_2)
    return momentum, velocity, (momentum * alpha) / (tf.sqrt(velocity) + epsilon)


class FlatAdam:
    """Adam (Kingma & Ba, as ``keras.optimizers.Adam`` computes it, amsgrad off) over a fixed list of variables.

    Args:
        variables: the variables it updates (a model's ``trainable_variables``), all of one floating dtype.
        learning_rate: the step size; kept in a float32 variable, as Keras keeps it.
        beta_1, beta_2: the moments' decay rates.
        epsilon: added to the square root of the second moment.
    """

    def __init__(self, variables: Sequence, learning_rate: float, beta_1: float, beta_2: float, epsilon: float):
        self.targets = list(variables)
        if not all(isinstance(v, keras.Variable) for v in self.targets):
            raise ValueError("FlatAdam: expects Keras variables (a model's trainable_variables)")
        dtypes = {v.dtype for v in self.targets}
        if len(dtypes) != 1:
            raise ValueError(f"FlatAdam: the variables must share one dtype, received {sorted(map(str, dtypes))}")
        self.dtype = tf.as_dtype(dtypes.pop())
        for name, value in (("learning_rate", learning_rate), ("epsilon", epsilon)):
            if not value > 0:
                raise ValueError(f"FlatAdam: {name} must be positive, received {name}={value!r}")
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):  # 1 would divide by 1 - beta^t = 0
            if not 0 <= value < 1:
                raise ValueError(f"FlatAdam: {name} must be in [0, 1), received {name}={value!r}")
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.sizes = [int(np.prod(v.shape)) for v in self.targets]
        total = sum(self.sizes)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.learning_rate = tf.Variable(learning_rate, dtype=tf.float32, trainable=False, name="learning_rate")
        self.momentum = tf.Variable(tf.zeros([total], self.dtype), trainable=False, name="momentum")  # (P,)
        self.velocity = tf.Variable(tf.zeros([total], self.dtype), trainable=False, name="velocity")  # (P,)

    @property
    def variables(self) -> list:
        """The optimiser's state: step count, learning rate, both moments (flat, in the order of the variables)."""
        return [self.iterations, self.learning_rate, self.momentum, self.velocity]

    @staticmethod
    def scale_loss(loss):
        """The loss unchanged: this optimiser never scales it (Keras' ``Optimizer.scale_loss`` without loss scaling)."""
        return loss

    def apply(self, gradients: Sequence, variables: Sequence) -> None:
        """One Adam step of ``variables`` (the constructor's, in its order) along ``gradients``."""
        if len(variables) != len(self.targets) or any(a is not b for a, b in zip(variables, self.targets)):
            raise ValueError("FlatAdam.apply: received other variables than the ones it was built for")
        if missing := [v.path for v, g in zip(variables, gradients) if g is None]:
            raise ValueError(f"FlatAdam.apply: no gradient for {', '.join(missing)}")
        gradient = tf.concat([tf.reshape(tf.cast(g, self.dtype), [-1]) for g in gradients], axis=0)  # (P,)
        momentum, velocity, step = adam_update(gradient, self.momentum, self.velocity, self.iterations,
                                               self.learning_rate, self.beta_1, self.beta_2, self.epsilon)
        self.momentum.assign(momentum)
        self.velocity.assign(velocity)
        for variable, part in zip(self.targets, tf.split(step, self.sizes)):  # a Keras variable's assign_sub is 3
            variable.value.assign_sub(tf.reshape(part, variable.shape))  # operations, its tf.Variable's one
        self.iterations.assign_add(1)

    def reset(self) -> None:
        """Both moments and the step count back to zero (a new fold); the learning rate stays."""
        for state in (self.iterations, self.momentum, self.velocity):
            state.assign(tf.zeros_like(state))
