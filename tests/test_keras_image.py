"""ImageDataGenerator, flow and flow_from_directory: Keras's batches, splits and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.keras.preprocessing import image
from tinygrad_cnn.keras.preprocessing.image import ImageDataGenerator


def _numbered(n: int, size: int = 5) -> np.ndarray:
    """Images whose every pixel holds the image's number (so batches can be traced back)."""
    return np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, size, size, 1)).copy()


def test_flow_without_augmentation_is_exact_and_endless():
    x, y = _numbered(10), np.arange(10) * 10
    batches = ImageDataGenerator(rescale=0.5).flow(x, y, batch_size=4, shuffle=False)
    assert len(batches) == 3
    seen = [next(batches) for _ in range(4)]  # the fourth batch is the next epoch's first
    np.testing.assert_array_equal(seen[0][0], x[:4] * 0.5)
    assert [len(b[1]) for b in seen] == [4, 4, 2, 4]
    np.testing.assert_array_equal(seen[3][1], y[:4])
    assert seen[0][0].dtype == np.float32 and seen[0][0].shape == (4, 5, 5, 1)


def test_flow_shuffles_every_epoch_and_keeps_labels_with_images():
    x, y = _numbered(9), np.arange(9)
    batches = ImageDataGenerator().flow(x, y, batch_size=3, seed=1)
    epochs = []
    for _ in range(2):
        images, labels = zip(*(next(batches) for _ in range(len(batches))))
        images, labels = np.concatenate(images), np.concatenate(labels)
        np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
        assert sorted(labels) == list(range(9))
        epochs.append(labels)
    assert not np.array_equal(*epochs)


def test_flow_validation_subset_is_the_first_part():
    generator = ImageDataGenerator(validation_split=0.3)
    x, y = _numbered(10), np.arange(10)
    validation = generator.flow(x, y, batch_size=10, shuffle=False, subset="validation")
    training = generator.flow(x, y, batch_size=10, shuffle=False, subset="training")
    np.testing.assert_array_equal(next(validation)[1], [0, 1, 2])
    np.testing.assert_array_equal(next(training)[1], np.arange(3, 10))
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator().flow(x, y, subset="training")


def test_geometric_augmentations():
    rows = np.broadcast_to(np.arange(9, dtype=np.float32)[None, :, None, None], (4, 9, 9, 1)).copy()
    zoomed = next(ImageDataGenerator(zoom_range=[0.5, 0.5]).flow(rows, batch_size=4, shuffle=False))
    np.testing.assert_allclose(zoomed[0, :, 4, 0], 0.5 * (np.arange(9) - 4) + 4, atol=1e-5)  # zoom in 2x
    flipped = next(ImageDataGenerator(vertical_flip=True).flow(rows, batch_size=4, seed=0))
    for picture in flipped:
        assert np.array_equal(picture, rows[0]) or np.array_equal(picture, rows[0][::-1])
    shifted = next(ImageDataGenerator(height_shift_range=4, fill_mode="constant", cval=-1.0)
                   .flow(rows + 1, batch_size=4, seed=2))
    assert (shifted == -1).any() and shifted.min() == -1  # pixels from outside take cval
    nearest = next(ImageDataGenerator(height_shift_range=4).flow(rows, batch_size=4, seed=2))
    assert nearest.min() >= 0 and nearest.max() <= 8  # ... or repeat the edge
    turned = next(ImageDataGenerator(rotation_range=90, shear_range=20).flow(rows, batch_size=4, seed=3))
    np.testing.assert_allclose(turned[:, 4, 4, 0], 4.0, atol=1e-5)  # the centre stays
    assert not np.allclose(turned, rows)
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="wrap")
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=1.5)
    with pytest.raises(ValueError, match="rank 4"):
        ImageDataGenerator().flow(rows[0])


@pytest.fixture()
def folders(tmp_path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(["cats", "dogs"]):
        (tmp_path / name).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
            pixels[0, 0] = (k, i, 0)  # where each image came from
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_flow_from_directory_modes_and_split(folders: Path, capsys):
    generator = ImageDataGenerator(validation_split=0.4)
    validation = generator.flow_from_directory(folders, target_size=(6, 7), class_mode="sparse", batch_size=8,
                                               shuffle=False, subset="validation")
    assert capsys.readouterr().out.strip() == "Found 4 images belonging to 2 classes."
    x, labels = next(validation)
    assert x.shape == (4, 6, 7, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0, 0, :2], [[0, 0], [0, 1], [1, 0], [1, 1]])  # each class's first 2
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])
    assert validation.filenames == ["cats/0.png", "cats/1.png", "dogs/0.png", "dogs/1.png"]
    from PIL import Image

    np.testing.assert_array_equal(x[3], np.asarray(Image.open(folders / "dogs" / "1.png")))  # raw 0..255
    training = generator.flow_from_directory(folders, target_size=(6, 7), batch_size=6, subset="training")
    images, onehot = next(training)
    assert training.samples == 6 and onehot.shape == (6, 2) and set(onehot.sum(1)) == {1.0}
    np.testing.assert_array_equal(onehot.argmax(1), images[:, 0, 0, 0].astype(int))
    gray = ImageDataGenerator(rescale=1 / 255).flow_from_directory(folders, (3, 3), color_mode="grayscale",
                                                                   class_mode=None, batch_size=10)
    batch = next(gray)
    assert batch.shape == (10, 3, 3, 1) and 0 <= batch.min() and batch.max() <= 1
    binary = ImageDataGenerator().flow_from_directory(folders, (6, 7), class_mode="binary", batch_size=10)
    assert set(next(binary)[1]) == {0.0, 1.0}
    autoencoder = ImageDataGenerator().flow_from_directory(folders, (6, 7), class_mode="input", batch_size=2)
    x, target = next(autoencoder)
    np.testing.assert_array_equal(x, target)
    with pytest.raises(ValueError, match="class_mode"):
        ImageDataGenerator().flow_from_directory(folders, class_mode="one_hot")


def test_single_image_helpers(folders: Path):
    picture = image.load_img(folders / "cats" / "3.png", target_size=(6, 7))
    array = image.img_to_array(picture)
    assert array.shape == (6, 7, 3) and array.dtype == np.float32 and array.max() <= 255
    assert image.img_to_array(picture, data_format="channels_first").shape == (3, 6, 7)
    back = image.array_to_img(array, scale=False)
    np.testing.assert_array_equal(np.asarray(back), array.astype(np.uint8))


def test_fit_generator_and_save_as_in_keras_2(tmp_path: Path, folders: Path):
    """Chollet's cats-and-dogs code: fit_generator on flow_from_directory, then model.save."""
    from tinygrad_cnn.keras import layers, models, optimizers

    def small_convnet():
        return models.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 7, 3)),
                                  layers.Flatten(), layers.Dense(1, activation="sigmoid")])

    train = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True).flow_from_directory(
        folders, target_size=(6, 7), batch_size=4, class_mode="binary")
    model = small_convnet()
    model.compile(optimizer=optimizers.RMSprop(lr=1e-3), loss="binary_crossentropy", metrics=["acc"])
    history = model.fit_generator(train, steps_per_epoch=2, epochs=2, validation_data=train,
                                  validation_steps=1, verbose=0)
    assert list(history.history) == ["loss", "acc", "val_loss", "val_acc"] and len(history.epoch) == 2
    model.save(tmp_path / "cats_and_dogs_small_1.h5")
    again = small_convnet()
    again.load_weights(tmp_path / "cats_and_dogs_small_1.h5")
    x, _ = next(train)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    every = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        folders, target_size=(6, 7), batch_size=10, class_mode="binary", shuffle=False)
    images, labels = next(every)
    np.testing.assert_allclose(model.evaluate_generator(every, steps=1),
                               model.evaluate(images, labels, verbose=0))
    np.testing.assert_allclose(model.predict_generator(every, steps=1), model.predict(images, verbose=0))
