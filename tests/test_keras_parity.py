"""tinygrad_cnn.keras against Keras 3 itself (on JAX, CPU): an oracle that shares no code with us.

Each model is written once, as a function of the ``layers`` and ``models`` modules, and built
twice: with Keras and with tinygrad_cnn.keras. Keras's (randomised) weights are copied over
with ``set_weights(keras_model.get_weights())``, so equal outputs prove that the layouts, the
padding rules, the pooling windows, the activations and the merge layers are Keras's; the
parameter counts are compared layer by layer, and one training step compares the losses,
the gradients (through the SGD step) and the batch-norm moving statistics.

Skipped where Keras 3 or JAX is not installed (``pip install keras jax``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras jax)")
if keras.backend.backend() != "jax" or not keras.__version__.startswith("3"):
    pytest.skip(f"needs Keras 3 on JAX, found Keras {keras.__version__} on {keras.backend.backend()}",
                allow_module_level=True)

import tinygrad_cnn  # noqa: E402
from tests.test_keras import course_network as mnist  # noqa: E402
from tinygrad_cnn import keras as tk  # noqa: E402

RNG = np.random.default_rng(0)


def strided_same(L, M):
    return M.Sequential([
        L.Input((9, 10, 3)),
        L.Conv2D(4, 3, strides=2, padding="same"),
        L.Conv2D(5, (2, 4), strides=(2, 3), padding="same", activation="tanh"),
        L.Conv2D(3, 3, dilation_rate=2, padding="same", use_bias=False),
        L.Conv2D(2, 4, padding="same"),
        L.Conv2D(2, (1, 2), strides=(1, 2), padding="valid"),
    ])


def pooling(L, M):
    return M.Sequential([
        L.Input((13, 15, 3)),
        L.MaxPooling2D(3, strides=2, padding="same"),
        L.AveragePooling2D((2, 3), padding="same"),
        L.Conv2D(4, 1),
        L.MaxPooling2D(2, strides=1),
        L.AveragePooling2D(2, strides=1),
        L.GlobalAveragePooling2D(),
        L.Dense(3),
    ])


def separable(L, M):
    return M.Sequential([
        L.Input((8, 9, 3)),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2),
        L.SeparableConv2D(5, 3, depth_multiplier=2, activation="relu"),
        L.SeparableConv2D(4, 2, padding="same", strides=2),
        L.DepthwiseConv2D((1, 2), use_bias=False),
        L.GlobalMaxPooling2D(),
    ])


def transposed(L, M):
    return M.Sequential([
        L.Input((5, 6, 3)),
        L.Conv2DTranspose(4, 3, strides=2, padding="same"),
        L.Conv2DTranspose(3, 2, strides=2),
        L.Conv2DTranspose(2, 4, strides=2, padding="same", activation="sigmoid"),
        L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
        L.Conv2DTranspose(2, 3, strides=3, output_padding=2),
        L.Conv2DTranspose(2, 1, strides=3),
    ])


def sequences(L, M):
    return M.Sequential([
        L.Input((13, 3)),
        L.Conv1D(4, 3, padding="causal", dilation_rate=2),
        L.Conv1D(5, 4, strides=2, padding="same", activation="relu"),
        L.MaxPooling1D(2),
        L.AveragePooling1D(3, strides=1, padding="same"),
        L.GlobalAveragePooling1D(),
    ])


def normalised(L, M):
    return M.Sequential([
        L.Input((7, 7, 3)),
        L.Conv2D(4, 3),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.Flatten(),
        L.Dropout(0.5),
        L.Dense(6, activation="elu"),
        L.BatchNormalization(center=False),
        L.Dense(2, activation="sigmoid"),
    ])


def dense_on_sequences(L, M):
    return M.Sequential([
        L.Input((6, 5)),
        L.Dense(7, activation="swish"),
        L.BatchNormalization(),
        L.Reshape((3, 14)),
        L.Dense(3, activation="softmax"),
    ])


def functional(L, M):
    image = L.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(image)
    b = L.Conv2D(4, 1)(image)
    added = L.Add()([a, b])
    joined = L.Concatenate()([added, a, L.Multiply()([a, b])])
    pooled = L.GlobalAveragePooling2D()(joined)
    classes = L.Dense(3, activation="softmax")(pooled)
    value = L.Dense(1)(L.Flatten()(L.MaxPooling2D(2)(joined)))
    averaged = L.Average()([L.Subtract()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b])])
    return M.Model(image, [classes, value, L.GlobalAveragePooling2D()(averaged)])


def channels_first(L, M):
    cf = {"data_format": "channels_first"}
    return M.Sequential([
        L.Input((3, 9, 8)),
        L.Conv2D(4, 3, strides=2, padding="same", **cf),
        L.BatchNormalization(axis=1),
        L.MaxPooling2D(2, padding="same", **cf),
        L.Conv2DTranspose(2, 3, strides=2, padding="same", **cf),
        L.AveragePooling2D(2, **cf),
        L.Flatten(**cf),
        L.Dense(3),
    ])


ACTIVATIONS = ["relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign", "swish", "relu6",
               "hard_sigmoid", "leaky_relu", "exponential", "linear", None]


def activations(L, M):
    x = L.Input((5,))
    return M.Model(x, [L.Dense(4, activation=a)(x) for a in ACTIVATIONS])


MODELS = [mnist, strided_same, pooling, separable, transposed, sequences, normalised, dense_on_sequences,
          functional, channels_first, activations]


def _both(builder):
    keras.utils.set_random_seed(1)
    theirs = builder(keras.layers, keras.models)
    ours = builder(tk.layers, tk.models)
    weights = []
    for w in theirs.weights:  # random moving statistics too, so that inference uses them
        if "moving_variance" in w.path:
            weights.append(RNG.uniform(0.5, 2.0, w.shape).astype("float32"))
        elif "moving_mean" in w.path or "gamma" in w.path or "beta" in w.path:
            weights.append(RNG.normal(0.0, 0.5, w.shape).astype("float32"))
        else:
            weights.append(np.asarray(w.numpy()))
    theirs.set_weights(weights)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def _input(model, n=4):
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    return [RNG.normal(size=(n, *s)).astype("float32") for s in shapes]


@pytest.mark.parametrize("builder", MODELS, ids=lambda b: b.__name__)
def test_same_weights_give_the_same_outputs_and_counts(builder):
    theirs, ours = _both(builder)
    assert [type(lay).__name__ for lay in ours.layers] == [type(lay).__name__ for lay in theirs.layers]
    assert [lay.count_params() for lay in ours.layers] == [lay.count_params() for lay in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    assert [tuple(layer.output.shape) for layer in ours.layers] == \
        [tuple(layer.output.shape) for layer in theirs.layers]
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    x = _input(theirs)
    expected = theirs.predict(x if len(x) > 1 else x[0], verbose=0)
    got = ours.predict(x if len(x) > 1 else x[0], verbose=0)
    expected, got = (v if isinstance(v, list) else [v] for v in (expected, got))
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, np.asarray(e), rtol=2e-4, atol=2e-5)


def test_the_course_network_has_keras_counts():
    theirs, ours = _both(mnist)
    assert ours.count_params() == theirs.count_params() == 93_322
    lines = []
    ours.summary(print_fn=lines.append)
    assert "Total params: 93,322" in lines


@pytest.mark.parametrize("loss, optimizer", [
    ("sparse_categorical_crossentropy", lambda m: m.SGD(0.1)),
    ("categorical_crossentropy", lambda m: m.SGD(0.05, momentum=0.9, nesterov=True)),
    ("sparse_categorical_crossentropy", lambda m: m.RMSprop(0.01)),
    ("categorical_crossentropy", lambda m: m.Adam(0.01)),
])
def test_training_steps_match(loss, optimizer):
    """Three steps: the loss, the updated weights (so the gradients) and the moving statistics."""
    def builder(L, M):
        # no bias before the batch norm: its gradient is zero but for rounding noise
        return M.Sequential([L.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", use_bias=False),
                             L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(2), L.Flatten(),
                             L.Dense(4, activation="softmax")])

    theirs, ours = _both(builder)
    theirs.compile(optimizer=optimizer(keras.optimizers), loss=loss, metrics=["accuracy"])
    ours.compile(optimizer=optimizer(tk.optimizers), loss=loss, metrics=["accuracy"])
    x = RNG.normal(size=(8, 6, 6, 2)).astype("float32")
    labels = RNG.integers(0, 4, 8)
    y = labels if loss.startswith("sparse") else np.eye(4, dtype="float32")[labels]
    for _ in range(3):
        expected = theirs.train_on_batch(x, y)
        got = ours.train_on_batch(x, y)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-4)
    for w_ours, w_theirs in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(w_ours.numpy(), np.asarray(w_theirs.numpy()), rtol=2e-5, atol=2e-5,
                                   err_msg=w_ours.path)


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                                  "lecun_normal"])
def test_initialisers_have_keras_statistics(name):
    shape = (3, 3, 16, 32)
    theirs = np.asarray(keras.initializers.get(name)(shape))
    tinygrad_cnn.manual_seed(0)
    ours = tk.initializers.get(name)(shape)
    assert ours.shape == theirs.shape
    assert abs(ours.std() - theirs.std()) < 0.06 * theirs.std()
    assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 0.06 * np.abs(theirs).max()


def test_default_initialisation_statistics_match_keras():
    """Keras's defaults (glorot_uniform kernels, zero biases) on a fresh layer of each kind."""
    for make in (lambda L: L.Conv2D(16, 3), lambda L: L.DepthwiseConv2D(3, depth_multiplier=4),
                 lambda L: L.Conv2DTranspose(16, 3), lambda L: L.Dense(32)):
        rank4 = not isinstance(make(tk.layers), tk.layers.Dense)
        shape = (1, 8, 8, 16) if rank4 else (1, 64)
        theirs, ours = make(keras.layers), make(tk.layers)
        theirs.build(shape)
        ours.build(shape)
        for w_theirs, w_ours in zip(theirs.get_weights(), ours.get_weights()):
            assert w_ours.shape == w_theirs.shape
            if not np.any(w_theirs):
                assert not np.any(w_ours)
            else:
                limit = np.abs(w_theirs).max()
                assert np.abs(w_ours).max() <= limit * 1.01 and np.abs(w_ours).max() > 0.9 * limit
