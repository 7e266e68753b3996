"""The course's Keras programs, run on tinygrad_cnn.keras: the MNIST network trained on real
MNIST, and the rock-paper-scissors model builder trained in a loop with its callbacks on an
image-folder dataset made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn
from tests.test_keras import course_network
from tinygrad_cnn import data
from tinygrad_cnn.keras import callbacks, layers, models
from tinygrad_cnn.keras.preprocessing.image import ImageDataGenerator

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def test_course_mnist_network_reaches_98_percent():
    """8,000 training and 2,000 test images of the MNIST test files, 3 epochs, RMSprop (the course's)."""
    if not any((MNIST / name).is_file() for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
        pytest.skip(f"no MNIST files in {MNIST}")
    images, labels = data.load_mnist(MNIST, "test")
    images = images.transpose(0, 2, 3, 1)  # NCHW -> Keras's NHWC
    train_images, train_labels = images[:8000], labels[:8000]
    test_images, test_labels = images[8000:], labels[8000:]
    tinygrad_cnn.manual_seed(0)

    model = course_network()  # Sequential(), then add(Conv2D(32, (3, 3), ..., input_shape=(28, 28, 1))), ...
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert "Total params: 93,322" in lines and model.count_params() == 93_322

    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train_images, train_labels, epochs=3, batch_size=32, verbose=0)
    test_loss, test_accuracy = model.evaluate(test_images, test_labels, verbose=0)
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]
    assert test_accuracy >= 0.98, f"test accuracy {test_accuracy:.4f} after 3 epochs"


def _write_hand_shapes(root: Path, per_class: int = 6, size: int = 24) -> None:
    """Three classes of tiny PNGs: horizontal stripes ('rock'), vertical ones ('paper'), a
    checkerboard ('scissors'), each with noise and a random phase."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for name, pattern in (("rock", lambda p: (yy + p) // 3 % 2), ("paper", lambda p: (xx + p) // 3 % 2),
                          ("scissors", lambda p: ((yy + p) // 3 + (xx + p) // 3) % 2)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            gray = pattern(int(rng.integers(6))) * 180 + rng.integers(0, 60, (size, size))
            rgb = np.stack([gray, gray[::-1], gray], axis=-1).astype(np.uint8)
            Image.fromarray(rgb).save(root / name / f"{name}{i:02d}.png")


def test_rock_paper_scissors_builder_in_a_loop_with_callbacks(tmp_path):
    """The course's model builder, one model per filter count, with EarlyStopping (Keras 2's
    'val_acc'), ModelCheckpoint (fields in the file name) and TensorBoard."""
    pytest.importorskip("tensorboardX", reason="TensorBoard needs tensorboardX")
    _write_hand_shapes(tmp_path / "hands")
    generator = ImageDataGenerator(rescale=1 / 255, rotation_range=10, width_shift_range=0.1,
                                   height_shift_range=0.1, shear_range=5, zoom_range=0.1,
                                   horizontal_flip=True, validation_split=1 / 3)
    train = generator.flow_from_directory(tmp_path / "hands", target_size=(24, 24), batch_size=4,
                                          class_mode="categorical", subset="training", seed=0)
    validation = generator.flow_from_directory(tmp_path / "hands", target_size=(24, 24), batch_size=4,
                                               class_mode="categorical", subset="validation", seed=0)
    assert (train.samples, validation.samples) == (12, 6)
    assert train.class_indices == {"paper": 0, "rock": 1, "scissors": 2}

    def build_model(filters: int) -> models.Sequential:
        model = models.Sequential()
        model.add(layers.Conv2D(filters, (3, 3), padding="same", input_shape=(24, 24, 3)))
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D((2, 2)))
        model.add(layers.Conv2D(2 * filters, (3, 3), padding="same"))
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D((2, 2)))
        model.add(layers.Conv2D(2 * filters, (3, 3), padding="same"))
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D((2, 2)))
        model.add(layers.AveragePooling2D((2, 2), padding="same"))
        model.add(layers.Flatten())
        model.add(layers.Dense(128, activation="relu"))
        model.add(layers.Dropout(0.5))
        model.add(layers.Dense(3))
        model.add(layers.Activation("softmax"))
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    tinygrad_cnn.manual_seed(0)
    for filters in (4, 8):
        model = build_model(filters)
        assert model.output.shape == (None, 3)
        path = tmp_path / f"rps-{filters}-{{epoch:02d}}-{{val_loss:.2f}}.h5"
        stop = callbacks.EarlyStopping(monitor="val_acc", patience=50)
        checkpoint = callbacks.ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True)
        board = callbacks.TensorBoard(log_dir=tmp_path / "logs" / f"filters-{filters}")
        history = model.fit(train, epochs=1, validation_data=validation, callbacks=[stop, checkpoint, board],
                            verbose=0)
        assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert len(history.epoch) == 1 and stop.stopped_epoch is None
        expected = tmp_path / f"rps-{filters}-01-{history.history['val_loss'][0]:.2f}.h5"
        assert checkpoint.saved == [str(expected)] and expected.is_file()
        events = list((tmp_path / "logs" / f"filters-{filters}").glob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 0
        reloaded = build_model(filters)
        reloaded.load_weights(expected)
        images, _ = next(validation)
        np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
