"""nn/flat_adam.FlatAdam is Keras 3's Adam bit for bit: the same weights, moments and step count after several
steps, on every network the sequential trainer trains; and the trainer uses it (one update, few operations).
Its formulas (``adam_update``) on stacked members' rows, each at its own step, give each row what one model gets."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from timnet_ser.Common_Model import Trainer
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.Model import MODELS, build_model
from timnet_ser.nn.flat_adam import FlatAdam, adam_update

SHAPES = {"TIMNET": (24, 39), "GMTCN": (24, 39), "DCNN_BLSTMwA": (2, 64, 64, 3)}
HYPER = Hyper(dilation_size=2, backbone_alpha=0.35, backbone_weights="none")  # the smallest MobileNetV2


def _model(name: str):
    random.seed(3)
    np.random.seed(3)
    return build_model(MODELS[name], SHAPES[name], 4, HYPER)


@pytest.mark.parametrize("name", list(SHAPES))
def test_flat_adam_is_keras_adam_bit_for_bit(name):
    ours, theirs = _model(name), _model(name)
    settings = dict(learning_rate=0.001, beta_1=0.93, beta_2=0.98, epsilon=1e-8)
    flat = FlatAdam(ours.trainable_variables, **settings)
    adam = keras.optimizers.Adam(**settings)
    adam.build(theirs.trainable_variables)
    rng = np.random.default_rng(0)

    @tf.function
    def both(gradients):
        flat.apply(gradients, ours.trainable_variables)
        adam.apply(gradients, theirs.trainable_variables)

    for _ in range(4):  # gradients of every sign and scale, some exactly zero
        gradients = [tf.constant(rng.standard_normal(v.shape).astype("float32") * rng.choice([1e-6, 1.0, 30.0])
                                 * (rng.random(v.shape) > 0.1)) for v in ours.trainable_variables]
        both(gradients)
    for a, b in zip(ours.trainable_variables, theirs.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(flat.iterations.numpy()) == int(adam.iterations.numpy()) == 4
    momentum = np.concatenate([m.numpy().ravel() for m in adam._momentums])
    velocity = np.concatenate([v.numpy().ravel() for v in adam._velocities])
    np.testing.assert_array_equal(flat.momentum.numpy(), momentum)
    np.testing.assert_array_equal(flat.velocity.numpy(), velocity)
    assert np.any(momentum != 0)


def test_flat_adam_without_moving_averages_is_keras_adam_bit_for_bit():
    """beta_1 = beta_2 = 0 (--beta1 0 --beta2 0: no momentum, the last squared gradient), on a small Dense model."""
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        models.append(keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.Dense(3)]))
    ours, theirs = models
    settings = dict(learning_rate=0.01, beta_1=0.0, beta_2=0.0, epsilon=1e-8)
    flat, adam = FlatAdam(ours.trainable_variables, **settings), keras.optimizers.Adam(**settings)
    adam.build(theirs.trainable_variables)
    rng = np.random.default_rng(2)
    for _ in range(3):
        gradients = [tf.constant(rng.standard_normal(v.shape).astype("float32")) for v in ours.trainable_variables]
        flat.apply(gradients, ours.trainable_variables)
        adam.apply(gradients, theirs.trainable_variables)
    for a, b in zip(ours.trainable_variables, theirs.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_trainer_steps_with_flat_adam_and_reset_clears_it():
    hyper = Hyper(dilation_size=2)
    config = RunConfig(model="TIMNET", data="T", classes=list("abc"), feature_path="-", hyper=hyper)
    trainer = Trainer(lambda: build_model(MODELS["TIMNET"], (16, 39), 3, hyper), config)
    assert isinstance(trainer.optimizer, FlatAdam)
    trainer.reset(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 16, 39)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(12) % 3]
    trainer.train_epoch(x, y, np.arange(12), 4)
    assert int(trainer.optimizer.iterations.numpy()) == 3 and np.any(trainer.optimizer.momentum.numpy() != 0)
    ops = [op.type for op in trainer._step.get_concrete_function().graph.get_operations()]
    assert ops.count("AssignSubVariableOp") == len(trainer.model.trainable_variables)  # one step per variable
    assert ops.count("Sqrt") == 2  # alpha's and the second moment's, once each, not once per variable
    trainer.reset(1)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert not np.any(trainer.optimizer.momentum.numpy()) and not np.any(trainer.optimizer.velocity.numpy())
    assert trainer.optimizer.learning_rate.numpy() == np.float32(config.lr)


def test_flat_adam_refuses_what_it_cannot_update():
    model = _model("TIMNET")
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\), received beta_1=1"):
        FlatAdam(model.trainable_variables, 0.001, 1, 0.98, 1e-8)
    flat = FlatAdam(model.trainable_variables, 0.001, 0.93, 0.98, 1e-8)
    with pytest.raises(ValueError, match="other variables"):
        flat.apply([None], model.trainable_variables[:1])
    with pytest.raises(ValueError, match="no gradient for"):
        flat.apply([None] * len(model.trainable_variables), model.trainable_variables)


def test_adam_update_on_member_rows_is_each_members_own_update():
    """The stacked trainer's use: (M, P) moments and gradients, a step count per member; row m equals the update of
    a model alone at member m's step, bit for bit (alpha broadcast along the row, not mixed between rows)."""
    rng = np.random.default_rng(1)
    gradient, momentum, velocity = (rng.standard_normal((3, 50)).astype("float32") for _ in range(3))
    velocity = np.abs(velocity)
    steps = np.array([0, 4, 11], np.int64)
    settings = dict(learning_rate=tf.constant(0.001, tf.float32), beta_1=0.93, beta_2=0.98, epsilon=1e-8)
    stacked = adam_update(tf.constant(gradient), tf.constant(momentum), tf.constant(velocity), tf.constant(steps),
                          **settings)
    for m in range(3):
        alone = adam_update(tf.constant(gradient[m]), tf.constant(momentum[m]), tf.constant(velocity[m]),
                            tf.constant(steps[m]), **settings)
        for row, value in zip(stacked, alone):
            np.testing.assert_array_equal(row[m].numpy(), value.numpy())
    at_step_0 = adam_update(tf.constant(gradient[2]), tf.constant(momentum[2]), tf.constant(velocity[2]),
                            tf.constant(steps[0]), **settings)[2]
    assert not np.allclose(stacked[2][2].numpy(), at_step_0.numpy())  # member 2's own step count sets its rate
