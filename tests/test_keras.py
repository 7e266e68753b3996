"""tinygrad_cnn.keras on its own (Keras itself is the oracle of test_keras_parity.py): the
layouts and rules it promises, checked against numpy definitions, the engine's own layers,
adjoint identities and finite differences, and the errors a user meets."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.keras import (
    Input,
    Model,
    Sequential,
    backend,
    callbacks,
    initializers,
    layers,
    losses,
    models,
    optimizers,
    utils,
)
from tinygrad_cnn.keras.layers.conv import same_padding
from tinygrad_cnn.testing import gradcheck

RNG = np.random.default_rng(0)


def course_network(L=layers, M=models):
    """The course's MNIST network as its slides write it; ``L``, ``M``: the layers and models
    modules (Keras's own in test_keras_parity.py)."""
    model = M.Sequential()
    model.add(L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(L.MaxPooling2D((2, 2)))
    model.add(L.Conv2D(64, (3, 3), activation="relu"))
    model.add(L.MaxPooling2D((2, 2)))
    model.add(L.Conv2D(64, (3, 3), activation="relu"))
    model.add(L.Flatten())
    model.add(L.Dense(64, activation="relu"))
    model.add(L.Dense(10, activation="softmax"))
    return model


def _images(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


# ------------------------------------------------------------------ models and symbols
def test_course_network_counts_and_summary():
    backend.clear_session()
    model = course_network()
    assert model.count_params() == 93_322
    assert [layer.count_params() for layer in model.layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "sequential"'
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    row = next(line for line in lines if line.startswith("conv2d_1 (Conv2D)"))
    assert row.split()[2:] == ["(None,", "11,", "11,", "64)", "18,496"]
    assert lines[-4:] == ["Total params: 93,322", "Trainable params: 93,322", "Non-trainable params: 0",
                          lines[1]]


def test_activation_model_gives_every_layer_in_nhwc():
    model = course_network()
    activation_model = Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
    x = _images(3, 28, 28, 1)
    maps = activation_model.predict(x, verbose=0)
    assert [m.shape for m in maps] == [(3, 26, 26, 32), (3, 13, 13, 32), (3, 11, 11, 64), (3, 5, 5, 64),
                                      (3, 3, 3, 64), (3, 576), (3, 64), (3, 10)]
    # the first map is the engine's own conv2d on the NCHW image, transposed to channels-last
    conv = model.layers[0].module
    expected = F.conv2d(Tensor(x.transpose(0, 3, 1, 2)), conv.weight, conv.bias).relu().numpy()
    np.testing.assert_allclose(maps[0], expected.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps[-1], model.predict(x, verbose=0), rtol=1e-6)
    assert activation_model.layers[1] is model.layers[0], "the activation model shares the layers"


def test_functional_model_with_two_outputs_trains_and_logs_keras_keys():
    tinygrad_cnn.manual_seed(0)
    image = Input(shape=(8, 8, 1), name="image")
    features = layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    skip = layers.Conv2D(4, 1)(image)
    merged = layers.Concatenate()([layers.Add()([features, skip]), skip])
    pooled = layers.GlobalAveragePooling2D()(merged)
    digit = layers.Dense(3, activation="softmax", name="digit")(pooled)
    brightness = layers.Dense(1, name="brightness")(pooled)
    model = Model(inputs=image, outputs=[digit, brightness])
    assert model.output_names == ["digit", "brightness"]
    model.compile("adam", loss={"digit": "sparse_categorical_crossentropy", "brightness": "mse"},
                  loss_weights=[1.0, 0.5], metrics={"digit": ["accuracy"]})
    x, labels, level = _images(16, 8, 8, 1), RNG.integers(0, 3, 16), RNG.normal(size=(16, 1))
    history = model.fit(x, [labels, level], epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "digit_loss", "brightness_loss", "digit_accuracy", "val_loss",
                                    "val_digit_loss", "val_brightness_loss", "val_digit_accuracy"}
    logs = model.evaluate(x, [labels, level], return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(logs["digit_loss"] + 0.5 * logs["brightness_loss"], rel=1e-5)
    out = model.predict(x, verbose=0)
    assert [o.shape for o in out] == [(16, 3), (16, 1)]


def test_lazy_sequential_builds_from_the_first_batch():
    model = Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    with pytest.raises(ValueError, match="not built"):
        model.count_params()
    with pytest.raises(AttributeError, match="no input"):
        _ = model.input
    out = model.predict(_images(2, 6, 5, 4), verbose=0)
    assert out.shape == (2, 3)
    assert model.input.shape == (None, 6, 5, 4)
    assert model.count_params() == (3 * 3 * 4 * 2 + 2) + (3 * 4 * 3 * 2 + 3)
    with pytest.raises(ValueError, match="axis -1 of size 4"):
        model.predict(_images(2, 6, 5, 3), verbose=0)


def test_sequential_add_checks_and_pop():
    model = Sequential([Input((10, 10, 3)), layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="larger|spans"):
        model.add(layers.Conv2D(2, 9))  # a 9x9 kernel does not fit the 8x8 maps
    assert len(model.layers) == 1
    model.add(layers.MaxPooling2D())
    assert model.output.shape == (None, 4, 4, 4)
    model.pop()
    assert model.output.shape == (None, 8, 8, 4)
    with pytest.raises(TypeError, match="keras layer"):
        model.add(nn.ReLU())
    with pytest.raises(ValueError, match="already"):
        model.add(model.layers[0])


def test_graph_errors():
    a, b = Input((4,)), Input((4,))
    out = layers.Dense(2)(layers.Add()([a, b]))
    with pytest.raises(ValueError, match="disconnected"):
        Model(a, out)
    with pytest.raises(ValueError, match="do not match"):
        layers.Add()([a, Input((5,))])
    with pytest.raises(TypeError, match="mix symbolic"):
        layers.Add()([a, np.zeros((1, 4))])
    model = Model([a, b], out)
    assert model.predict([np.ones((2, 4)), np.ones((2, 4))], verbose=0).shape == (2, 2)
    with pytest.raises(ValueError, match="2 input"):
        model([np.ones((2, 4))])


def test_nested_model_and_freezing():
    base = Sequential([Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization()], name="base")
    model = Sequential([Input((6, 6, 2)), base, layers.Flatten(), layers.Dense(2)])
    assert model.layers[0].output.shape == (None, 4, 4, 3)
    assert model.count_params() == (3 * 3 * 2 * 3 + 3) + 4 * 3 + (48 * 2 + 2)
    base.trainable = False
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 98" in lines and "Non-trainable params: 69" in lines
    frozen = [w.numpy() for w in base.weights]
    model.compile("sgd", "mse")
    model.fit(_images(8, 6, 6, 2), _images(8, 2), epochs=1, verbose=0)
    for before, weight in zip(frozen, base.weights):
        np.testing.assert_array_equal(before, weight.numpy())  # frozen BN keeps its moving statistics too


# ------------------------------------------------------------------ layer rules
@pytest.mark.parametrize("size, kernel, stride, dilation", [
    (7, 3, 2, 1), (8, 3, 2, 1), (8, 4, 1, 1), (9, 2, 3, 1), (5, 3, 1, 2), (6, 1, 4, 1), (4, 5, 2, 1)])
def test_tensorflow_same_padding(size, kernel, stride, dilation):
    """TensorFlow's rule: output ceil(n / s); total padding max((out - 1) s + K - n, 0), odd pixel after."""
    span = dilation * (kernel - 1) + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    before, after = same_padding(size, kernel, stride, dilation)
    assert (before, after) == (total // 2, total - total // 2)
    layer = layers.Conv1D(1, kernel, strides=stride, padding="same", dilation_rate=dilation, use_bias=False,
                          kernel_initializer="ones")
    x = RNG.normal(size=(1, size, 1)).astype(np.float32)
    y = layer(x).numpy()[0, :, 0]
    padded = np.concatenate([np.zeros(before), x[0, :, 0], np.zeros(after)])
    expected = [padded[i * stride: i * stride + span: dilation].sum() for i in range(out)]  # the definition
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_channels_first_equals_channels_last():
    last = layers.Conv2D(3, 3, strides=2, padding="same")
    first = layers.Conv2D(3, 3, strides=2, padding="same", data_format="channels_first")
    x = _images(2, 7, 6, 2)
    y_last = last(x).numpy()
    first(x.transpose(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    y_first = first(x.transpose(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(y_first, y_last.transpose(0, 3, 1, 2), rtol=1e-5)
    flat_first = layers.Flatten(data_format="channels_first")(Tensor(y_last.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_array_equal(flat_first, layers.Flatten()(Tensor(y_last)).numpy())


@pytest.mark.parametrize("padding, kernel, stride", [("valid", 3, 2), ("same", 3, 2), ("same", 4, 2),
                                                     ("valid", 2, 3), ("same", 1, 2)])
def test_conv_transpose_is_the_adjoint_of_conv(padding, kernel, stride):
    """<Conv2DTranspose(x), u> = <x, Conv2D(u)> with one Keras kernel (kh, kw, out, in) in both:
    the transposed convolution is the gradient of the convolution (TensorFlow's definition)."""
    deconv = layers.Conv2DTranspose(2, kernel, strides=stride, padding=padding, use_bias=False)
    x = _images(1, 4, 5, 3)
    y = deconv(x).numpy()
    expected_size = {"same": (4 * stride, 5 * stride)}.get(padding, (4 * stride + max(kernel - stride, 0),
                                                                     5 * stride + max(kernel - stride, 0)))
    assert y.shape == (1, *expected_size, 2)
    conv = layers.Conv2D(3, kernel, strides=stride, padding=padding, use_bias=False)
    u = _images(*y.shape)
    conv(u)
    conv.set_weights(deconv.get_weights())
    assert conv(u).shape == x.shape
    np.testing.assert_allclose((y * u).sum(), (x * conv(u).numpy()).sum(), rtol=1e-4)


def test_pooling_padding_never_counts():
    x = -np.abs(_images(2, 5, 7, 3)) - 1.0  # all negative: a zero pad would win a max
    y = layers.MaxPooling2D(2, padding="same")(x).numpy()
    assert y.shape == (2, 3, 4, 3) and y.max() < 0
    np.testing.assert_array_equal(y[:, -1, -1], x[:, 4, 6])  # the corner window holds one real pixel
    ones = layers.AveragePooling2D(3, strides=2, padding="same")(np.ones((1, 6, 5, 2))).numpy()
    np.testing.assert_allclose(ones, 1.0)  # each mean divides by the real pixels only
    assert layers.AveragePooling2D()(np.ones((1, 5, 5, 1))).shape == (1, 2, 2, 1)
    assert layers.GlobalAveragePooling2D(keepdims=True)(np.ones((2, 3, 3, 4))).shape == (2, 1, 1, 4)


def test_batch_normalization_follows_keras():
    layer = layers.BatchNormalization()
    x = _images(6, 3, 3, 4) * 2 + 1
    y_eval = layer(x).numpy()
    np.testing.assert_allclose(y_eval, x / np.sqrt(1 + 1e-3), rtol=1e-5)  # moving statistics 0 and 1
    y_train = layer(x, training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y_train, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    moving_mean, moving_var = layer.get_weights()[2:]
    np.testing.assert_allclose(moving_mean, 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(moving_var, 0.99 + 0.01 * var, rtol=1e-5)  # the BIASED variance, as Keras
    assert layer.count_params() == 16 and len(layer.trainable_weights) == 2
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True).numpy(), layer(x).numpy())
    first = layers.BatchNormalization(axis=1)
    assert first(x.transpose(0, 3, 1, 2), training=True).shape == (6, 4, 3, 3)


def test_dropout_only_while_training():
    model = Sequential([Input((100,)), layers.Dropout(0.5)])
    x = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    dropped = model(x, training=True).numpy()
    assert 0.3 < (dropped == 0).mean() < 0.7 and set(np.unique(dropped)) <= {0.0, 2.0}
    assert not model.layers[0].training, "training=True lasts one call"


def test_keras_weight_layouts_and_default_initialisers():
    tinygrad_cnn.manual_seed(0)
    conv = layers.Conv2D(32, 3)
    conv.build((None, 9, 9, 16))
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 3, 16, 32) and not bias.any()
    limit = math.sqrt(6 / (9 * 16 + 9 * 32))  # Glorot uniform with Keras's fans
    assert limit * 0.95 < np.abs(kernel).max() <= limit
    np.testing.assert_array_equal(conv.module.weight.numpy(), kernel.transpose(3, 2, 0, 1))
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2)
    depthwise.build((None, 5, 5, 3))
    k = depthwise.get_weights()[0]
    assert k.shape == (3, 3, 3, 2)
    np.testing.assert_array_equal(depthwise.module.weight.numpy()[2 * 1 + 1, 0], k[:, :, 1, 1])
    he = initializers.get("he_normal")((3, 3, 64, 8))
    assert np.abs(he).max() <= 2 * math.sqrt(2 / 576) / 0.8796 + 1e-6  # truncated at two sigma
    with pytest.raises(ValueError, match="has shape"):
        conv.set_weights([kernel.T, bias])
    with pytest.raises(ValueError, match="expects 2 weight arrays"):
        conv.set_weights([kernel])


def test_gradients_of_a_keras_model_by_finite_differences():
    """autograd through the NHWC transposes, 'same' padding, pooling, batch norm and the losses."""
    tinygrad_cnn.manual_seed(3)
    model = Sequential([Input((6, 5, 2), dtype="float64"),
                        layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh", dtype="float64"),
                        layers.BatchNormalization(dtype="float64"),
                        layers.AveragePooling2D(2, padding="same", dtype="float64"),
                        layers.Flatten(dtype="float64"),
                        layers.Dense(4, activation="softmax", dtype="float64")])
    labels = np.array([0, 3, 1])
    x = Tensor(RNG.normal(size=(3, 6, 5, 2)), requires_grad=True)
    kernel = model.layers[0].module.weight
    model.train()
    # the reference kernels: this checks the Keras layers' transposes and paddings, and float64
    # Numba kernels would be compiled for this test alone
    with tinygrad_cnn.use_backend("reference"), tinygrad_cnn.enable_grad():
        gradcheck(lambda x, w: losses.get("sparse_categorical_crossentropy")(labels, model(x)), [x, kernel],
                  n_directions=8)
        gradcheck(lambda x, w: losses.CategoricalCrossentropy(label_smoothing=0.1)(
            np.eye(4)[labels], model(x)), [x, kernel], n_directions=8)


# ------------------------------------------------------------------ training API
def test_losses_are_keras_formulas():
    p = Tensor(np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]]))
    eps = 1e-7
    expected = -(np.log(0.7) + np.log(1 - eps)) / 2
    sparse = losses.get("sparse_categorical_crossentropy")
    assert sparse(np.array([0, 1]), p).item() == pytest.approx(expected)
    assert losses.get("categorical_crossentropy")(np.eye(3)[[0, 1]], p).item() == pytest.approx(expected)
    logits = Tensor(np.array([[2.0, -1.0, 0.5]]))
    assert losses.SparseCategoricalCrossentropy(from_logits=True)([2], logits).item() == pytest.approx(
        -np.log(np.exp(0.5) / np.exp([2.0, -1.0, 0.5]).sum()))
    b = Tensor(np.array([[0.9], [0.0]]))
    assert losses.get("binary_crossentropy")(np.array([1, 0]), b).item() == pytest.approx(
        -(np.log(0.9) + np.log(1 - eps)) / 2)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_loss")
    with pytest.raises(ValueError, match="one-hot labels need loss='categorical_crossentropy'"):
        sparse(np.eye(3)[[0, 1]], p)  # one-hot labels given to the sparse loss


def test_optimizers_follow_keras_update_rules():
    def one_parameter_steps(optimizer, grads):
        w = nn.Parameter(Tensor(np.array([1.0, -2.0])))
        optimizer.bind([w])
        for g in grads:
            w.grad = Tensor(np.array(g))
            optimizer.apply_gradients()
        return w.numpy()

    grads = [[0.5, -1e-6], [0.25, 2.0], [-1.0, 0.1]]
    w, v = np.array([1.0, -2.0]), np.zeros(2)
    for g in map(np.array, grads):  # Keras's RMSprop, epsilon inside the root
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.01 * g / np.sqrt(v + 1e-7)
    np.testing.assert_allclose(one_parameter_steps(optimizers.RMSprop(0.01), grads), w, rtol=1e-6)
    w, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(map(np.array, grads), start=1):  # Keras's Adam, epsilon before bias correction
        m, v = m + (g - m) * 0.1, v + (g * g - v) * 0.001
        w = w - 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(one_parameter_steps(optimizers.Adam(0.01), grads), w, rtol=1e-6)
    w, m = np.array([1.0, -2.0]), np.zeros(2)
    for g in map(np.array, grads):  # Keras's SGD momentum: m <- 0.9 m - lr g; w <- w + m
        m = 0.9 * m - 0.1 * g
        w = w + m
    np.testing.assert_allclose(one_parameter_steps(optimizers.SGD(0.1, momentum=0.9), grads), w, rtol=1e-6)
    assert optimizers.RMSprop(lr=1e-4).learning_rate == 1e-4  # Keras 2's spelling
    clipped = one_parameter_steps(optimizers.SGD(1.0, clipnorm=1.0), [[3.0, 4.0]])
    np.testing.assert_allclose(clipped, [1.0 - 0.6, -2.0 - 0.8])
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adadelta2")


def test_fit_validation_split_history_and_batch_methods():
    tinygrad_cnn.manual_seed(0)
    x = _images(40, 4)
    y = (x[:, 0] > 0).astype(np.int64)
    model = Sequential([Input((4,)), layers.Dense(8, activation="relu"),
                        layers.Dense(2, activation="softmax")])
    with pytest.raises(RuntimeError, match="compiled"):
        model.fit(x, y)
    model.compile(optimizer=optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(x, y, epochs=8, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "acc", "val_loss", "val_acc"] and history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x[30:], y[30:], verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    assert accuracy == pytest.approx(history.history["val_acc"][-1])
    before = model.test_on_batch(x, y)
    model.train_on_batch(x, y)
    assert model.test_on_batch(x, y)[0] < before[0]
    in_batches_of_7 = model.predict(x, batch_size=7, verbose=0)
    np.testing.assert_allclose(model.predict_on_batch(x), in_batches_of_7, rtol=1e-6)
    onehot = Sequential([Input((4,)), layers.Dense(2, activation="softmax")])
    onehot.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    logs = onehot.evaluate(x, utils.to_categorical(y), return_dict=True, verbose=0)
    assert logs["accuracy"] == pytest.approx((onehot.predict(x, verbose=0).argmax(1) == y).mean())


def test_fit_prints_keras_progress(capsys):
    model = Sequential([Input((3,)), layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    model.fit(_images(10, 3), _images(10, 1), epochs=2, batch_size=4, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("3/3 [==============================] - ") and " - loss: " in out[1]
    assert " - mae: " in out[1]


def test_weights_files_round_trip(tmp_path):
    model = course_network()
    x = _images(2, 28, 28, 1)
    model.save_weights(tmp_path / "weights.h5")
    other = course_network()
    assert not np.allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(tmp_path / "weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    small = Sequential([Input((28, 28, 1)), layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="holds 10 weights, model '.*' has 2"):
        small.load_weights(tmp_path / "weights.h5")
    wider = course_network()
    wider.pop()
    wider.add(layers.Dense(11))
    with pytest.raises(ValueError, match=r"has shape \(64, 11\), the file's 'dense_\d+/kernel' in its place"):
        wider.load_weights(tmp_path / "weights.h5")
    assert list(other.state_dict())[:2] == ["0.module.weight", "0.module.bias"]
    other.load_state_dict(model.state_dict())  # two builds, one set of state_dict keys


def test_callbacks_follow_keras_rules(tmp_path):
    """lr = 0: nothing improves after the first epoch. Keras stops after max(patience, 1) epochs
    without improvement, ModelCheckpoint(save_best_only) writes the first epoch only, CSVLogger
    numbers rows from 0, and restore_best_weights brings the best epoch's weights back."""
    x, y = _images(12, 3), RNG.integers(0, 2, 12)

    def run(patience, *extra):
        tinygrad_cnn.manual_seed(0)
        model = Sequential([Input((3,)), layers.Dense(2, activation="softmax")])
        model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
        stop = callbacks.EarlyStopping(monitor="val_acc", patience=patience, restore_best_weights=True)
        history = model.fit(x, y, epochs=10, validation_data=(x, y), callbacks=[stop, *extra], verbose=0)
        return model, history

    assert len(run(0)[1].epoch) == 2
    assert len(run(1)[1].epoch) == 2
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "best-{epoch:02d}-{val_acc:.2f}.h5"),
                                           save_best_only=True)
    csv = callbacks.CSVLogger(tmp_path / "log.csv")
    model, history = run(3, checkpoint, csv)
    assert len(history.epoch) == 4
    assert [p.rsplit("/", 1)[-1] for p in checkpoint.saved] == \
        [f"best-01-{history.history['val_accuracy'][0]:.2f}.h5"]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    reloaded = Sequential([Input((3,)), layers.Dense(2, activation="softmax")])
    reloaded.load_weights(checkpoint.saved[0])  # a full training checkpoint is readable as weights
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="not logged"):
        bad = Sequential([Input((3,)), layers.Dense(1)])
        bad.compile("sgd", "mse")
        bad.fit(x, y, callbacks=[callbacks.EarlyStopping(monitor="val_loss")], verbose=0)


def test_errors_name_the_values_at_fault():
    with pytest.raises(ValueError, match="filters must be a positive int"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match="padding must be one of"):
        layers.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="causal"):
        layers.Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="unknown activation 'rellu'"):
        layers.Dense(3, activation="rellu")
    with pytest.raises(TypeError, match=r"unsupported argument\(s\) \['kernel_regularizer'\]"):
        layers.Dense(3, kernel_regularizer="l2")
    with pytest.raises(ValueError, match="expects 4-D inputs"):
        layers.Conv2D(2, 3)(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="data_format"):
        layers.MaxPooling2D(data_format="NHWC")
    with pytest.raises(ValueError, match="rate must be in"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match="output_padding"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="same number of samples"):
        model = Sequential([Input((2,)), layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(np.zeros((4, 2)), np.zeros((3, 1)), verbose=0)
    with pytest.raises(ValueError, match="unknown initializer"):
        layers.Dense(2, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="num_classes"):
        utils.to_categorical([0, 3], num_classes=3)
