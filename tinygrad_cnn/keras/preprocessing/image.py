"""Keras's ``ImageDataGenerator``: augmented batches from arrays (``flow``) or class folders
(``flow_from_directory``), on tinygrad_cnn's DataLoader, ImageFolder and batch transforms.

Every image of a batch gets its own random geometric change (augmentation: new,
label-preserving versions of the training images each epoch, against over-fitting): a rotation
by up to ``rotation_range`` degrees, a shift by up to ``width_shift_range`` /
``height_shift_range`` (a fraction of the size if < 1, else pixels), a shear by up to
``shear_range`` degrees, a zoom by a factor in [1 - z, 1 + z] per axis (``zoom_range`` z or
[low, high]), and flips. Each output pixel p is read, bilinearly, from the input at

    M (p - c - t) + c,   M = rotation(theta) shear(phi) zoom(z_y, z_x),

with c the image centre and t the shift. Pixels read from outside the image repeat the edge
(``fill_mode='nearest'``, Keras's default), mirror it (``'reflect'``) or take ``cval``
(``'constant'``). Then ``preprocessing_function`` runs on each image, and the batch is
multiplied by ``rescale`` (``1/255`` maps Keras's 0..255 pixels to [0, 1]).

Batches are channels-last numpy arrays (N, H, W, C), the labels as Keras gives them. An
iterator runs forever, one shuffled epoch after another; ``len(iterator)`` is its number of
batches per epoch (what ``fit`` takes as the epoch's steps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinygrad_cnn.data.image_folder import ImageFolder
from tinygrad_cnn.data.loader import DataLoader, Subset, TensorDataset
from tinygrad_cnn.data.transforms import Transform, _sample_bilinear
from tinygrad_cnn.keras import backend

__all__ = ["ImageDataGenerator", "load_img", "img_to_array", "array_to_img"]

FILL_MODES = ("nearest", "reflect", "constant")
CLASS_MODES = ("categorical", "binary", "sparse", "input", None)


def _reflect(coordinate: np.ndarray, size: int) -> np.ndarray:
    """Mirror about the pixel edges -0.5 and size - 0.5 (d c b a | a b c d | d c b a)."""
    period = np.mod(coordinate + 0.5, 2 * size)
    return np.where(period < size, period, 2 * size - period) - 0.5


class RandomImageTransform(Transform):
    """The geometric part of ImageDataGenerator on (N, C, H, W) batches (see the module docstring)."""

    def __init__(self, rotation_range: float = 0.0, height_shift_range: float = 0.0,
                 width_shift_range: float = 0.0, shear_range: float = 0.0, zoom_range=(1.0, 1.0),
                 horizontal_flip: bool = False, vertical_flip: bool = False, fill_mode: str = "nearest",
                 cval: float = 0.0) -> None:
        self.rotation_range, self.shear_range = float(rotation_range), float(shear_range)
        self.height_shift_range, self.width_shift_range = float(height_shift_range), float(width_shift_range)
        self.zoom_range, self.fill_mode, self.cval = tuple(zoom_range), fill_mode, float(cval)
        self.horizontal_flip, self.vertical_flip = bool(horizontal_flip), bool(vertical_flip)

    @property
    def moves_pixels(self) -> bool:
        return bool(self.rotation_range or self.height_shift_range or self.width_shift_range
                    or self.shear_range or self.zoom_range != (1.0, 1.0))

    def _shifts(self, rng, n: int, limit: float, size: int) -> np.ndarray:
        shift = rng.uniform(-limit, limit, n) if limit else np.zeros(n)
        return shift * size if limit < 1 else shift

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, _, h, w = x.shape
        if self.moves_pixels:
            theta = np.deg2rad(rng.uniform(-self.rotation_range, self.rotation_range, n))
            phi = np.deg2rad(rng.uniform(-self.shear_range, self.shear_range, n))
            ty = self._shifts(rng, n, self.height_shift_range, h)
            tx = self._shifts(rng, n, self.width_shift_range, w)
            zy, zx = (rng.uniform(*self.zoom_range, size=(2, n)) if self.zoom_range != (1.0, 1.0)
                      else np.ones((2, n)))
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            cy, cx = (h - 1) / 2, (w - 1) / 2

            def per_image(v):
                return v[:, None, None]

            dy = yy[None] - cy - per_image(ty)
            dx = xx[None] - cx - per_image(tx)
            a, b = per_image(zy) * dy, per_image(zx) * dx  # zoom, then shear, then rotate
            a, b = a - np.sin(per_image(phi)) * b, np.cos(per_image(phi)) * b
            cos, sin = np.cos(per_image(theta)), np.sin(per_image(theta))
            src_y, src_x = cos * a - sin * b + cy, sin * a + cos * b + cx
            if self.fill_mode == "reflect":
                src_y, src_x = _reflect(src_y, h), _reflect(src_x, w)
            if self.fill_mode in ("nearest", "reflect"):
                src_y, src_x = np.clip(src_y, 0, h - 1), np.clip(src_x, 0, w - 1)
            x = _sample_bilinear(x - self.cval, src_y, src_x) + np.asarray(self.cval, dtype=x.dtype)
        if self.horizontal_flip:
            flip = rng.random(n) < 0.5
            x = x.copy()
            x[flip] = x[flip][..., ::-1]
        if self.vertical_flip:
            flip = rng.random(n) < 0.5
            x = x.copy()
            x[flip] = x[flip][:, :, ::-1]
        return x


class ImageDataGenerator:
    """``ImageDataGenerator(rescale=None, rotation_range=0, width_shift_range=0.0,
    height_shift_range=0.0, shear_range=0.0, zoom_range=0.0, horizontal_flip=False,
    vertical_flip=False, fill_mode='nearest', cval=0.0, preprocessing_function=None,
    data_format=None, validation_split=0.0, dtype='float32')``."""

    def __init__(self, rotation_range: float = 0, width_shift_range: float = 0.0,
                 height_shift_range: float = 0.0, shear_range: float = 0.0, zoom_range=0.0,
                 fill_mode: str = "nearest", cval: float = 0.0, horizontal_flip: bool = False,
                 vertical_flip: bool = False, rescale: float | None = None,
                 preprocessing_function: Callable | None = None, data_format: str | None = None,
                 validation_split: float = 0.0, dtype: str = "float32") -> None:
        for name, value in (("rotation_range", rotation_range), ("width_shift_range", width_shift_range),
                            ("height_shift_range", height_shift_range), ("shear_range", shear_range)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"ImageDataGenerator: {name} must be a number >= 0, got {value!r}")
        if isinstance(zoom_range, (int, float)) and not isinstance(zoom_range, bool):
            if not 0 <= zoom_range < 1:
                raise ValueError(f"ImageDataGenerator: zoom_range must be in [0, 1) or [low, high], "
                                 f"got {zoom_range}")
            zoom = (1.0 - zoom_range, 1.0 + zoom_range)
        elif isinstance(zoom_range, (tuple, list)) and len(zoom_range) == 2 \
                and 0 < zoom_range[0] <= zoom_range[1]:
            zoom = (float(zoom_range[0]), float(zoom_range[1]))
        else:
            raise ValueError(f"ImageDataGenerator: zoom_range must be a number or [low, high], "
                             f"got {zoom_range!r}")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"ImageDataGenerator: validation_split must be in [0, 1), "
                             f"got {validation_split!r}")
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError("ImageDataGenerator: preprocessing_function must be callable")
        self.transform = RandomImageTransform(rotation_range, height_shift_range, width_shift_range,
                                              shear_range, zoom, horizontal_flip, vertical_flip, fill_mode,
                                              cval)
        self.rescale, self.preprocessing_function = rescale, preprocessing_function
        self.data_format = backend.standardize_data_format(data_format)
        self.validation_split, self.dtype = float(validation_split), dtype

    def _needs_transform(self) -> bool:
        t = self.transform
        return t.moves_pixels or t.horizontal_flip or t.vertical_flip

    def standardize(self, batch: np.ndarray) -> np.ndarray:
        """preprocessing_function on each (H, W, C) image, then the rescale factor."""
        if self.preprocessing_function is not None:
            batch = np.stack([np.asarray(self.preprocessing_function(image)) for image in batch])
        if self.rescale:
            batch = batch * self.rescale
        return batch.astype(self.dtype, copy=False)

    def _split(self, count: int, subset: str | None) -> slice:
        """Keras's rule: the first validation_split of the samples validate, the rest train."""
        if subset is None:
            return slice(0, count)
        if subset not in ("training", "validation"):
            raise ValueError(f"subset must be 'training' or 'validation', got {subset!r}")
        if not self.validation_split:
            raise ValueError("subset needs ImageDataGenerator(validation_split=...) > 0")
        cut = int(count * self.validation_split)
        return slice(0, cut) if subset == "validation" else slice(cut, count)

    def flow(self, x, y=None, batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
             subset: str | None = None) -> BatchIterator:
        """Batches of the images ``x`` (N, H, W, C) (and labels ``y``) through the augmentation."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"flow: x must be a batch of images of rank 4, got shape {x.shape}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"flow: x has {len(x)} images but y has {len(y)} labels")
        part = self._split(len(x), subset)
        images = x[part].astype(np.float32)
        if self.data_format == "channels_last":
            images = images.transpose(0, 3, 1, 2)
        arrays = (images,) if y is None else (images, np.asarray(y)[part])
        if not len(images):
            raise ValueError(f"flow: subset {subset!r} is empty")
        return BatchIterator(self, TensorDataset(*arrays), batch_size, shuffle, seed)

    def flow_from_directory(self, directory: str | os.PathLike, target_size=(256, 256),
                            color_mode: str = "rgb", classes: list[str] | None = None,
                            class_mode: str | None = "categorical", batch_size: int = 32,
                            shuffle: bool = True, seed: int | None = None,
                            subset: str | None = None) -> DirectoryIterator:
        """Batches of the images in ``directory/<class>/`` (classes sorted by name), resized
        (bilinearly) to ``target_size``; ``class_mode`` 'categorical' (one-hot), 'binary' (0/1),
        'sparse' (class index), 'input' (the images themselves, for autoencoders) or None."""
        if class_mode not in CLASS_MODES:
            raise ValueError(f"flow_from_directory: class_mode must be one of {CLASS_MODES}, "
                             f"got {class_mode!r}")
        folder = ImageFolder(directory, tuple(target_size), color_mode, classes)
        chosen = []
        for label in range(len(folder.classes)):  # split each class's sorted files, as Keras
            indices = np.flatnonzero(folder.targets == label)
            chosen.extend(indices[self._split(len(indices), subset)])
        if class_mode == "binary" and len(folder.classes) != 2:
            raise ValueError(f"flow_from_directory: class_mode='binary' needs 2 classes, "
                             f"found {folder.classes}")
        print(f"Found {len(chosen)} images belonging to {len(folder.classes)} classes.")
        if not chosen:
            raise ValueError(f"flow_from_directory: no images in subset {subset!r} of {directory}")
        return DirectoryIterator(self, folder, np.array(chosen), class_mode, batch_size, shuffle, seed)


class BatchIterator:
    """An endless iterator of augmented batches (one shuffled epoch after another);
    ``len()`` is the number of batches per epoch."""

    def __init__(self, generator: ImageDataGenerator, dataset, batch_size: int, shuffle: bool,
                 seed: int | None) -> None:
        self.generator, self.batch_size = generator, batch_size
        transform = generator.transform if generator._needs_transform() else None
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 transform=transform)
        self.n = len(dataset)
        self._batches = iter(())

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        return self

    def _images(self, x: np.ndarray) -> np.ndarray:
        if self.generator.data_format == "channels_last":
            x = x.transpose(0, 2, 3, 1)
        return self.generator.standardize(np.ascontiguousarray(x))

    def _batch(self, tensors):
        x = self._images(tensors[0].numpy())
        return x if len(tensors) == 1 else (x, tensors[1].numpy())

    def __next__(self):
        try:
            return self._batch(next(self._batches))
        except StopIteration:  # the epoch is over: the loader's next epoch, shuffled anew
            self._batches = iter(self.loader)
            return self._batch(next(self._batches))

    def reset(self) -> None:
        """Start again from the first batch of a fresh epoch."""
        self._batches = iter(())


class _ScaledFolder(Subset):
    """ImageFolder images back on Keras's 0..255 scale (ImageFolder gives [0, 1])."""

    def get_batch(self, indices):
        images, labels = super().get_batch(indices)
        return np.round(images * 255.0), labels


class DirectoryIterator(BatchIterator):
    """``flow_from_directory``'s iterator; ``class_indices``, ``classes`` (one label per file),
    ``filenames``, ``filepaths``, ``samples``, ``num_classes`` and ``image_shape`` as in Keras."""

    def __init__(self, generator: ImageDataGenerator, folder: ImageFolder, indices: np.ndarray,
                 class_mode: str | None, batch_size: int, shuffle: bool, seed: int | None) -> None:
        super().__init__(generator, _ScaledFolder(folder, indices), batch_size, shuffle, seed)
        self.class_mode, self.class_indices = class_mode, dict(folder.class_to_idx)
        self.num_classes, self.classes = len(folder.classes), folder.targets[indices]
        self.filepaths = [str(folder.samples[i][0]) for i in indices]
        self.filenames = [os.path.relpath(p, folder.root) for p in self.filepaths]
        self.samples = len(indices)
        channels = 3 if folder.color_mode == "rgb" else 1
        size = tuple(folder.image_size)
        last = generator.data_format == "channels_last"
        self.image_shape = (*size, channels) if last else (channels, *size)
        self.directory = Path(folder.root)

    def _batch(self, tensors):
        x, labels = self._images(tensors[0].numpy()), tensors[1].numpy()
        dtype = self.generator.dtype
        if self.class_mode == "categorical":
            return x, np.eye(self.num_classes, dtype=dtype)[labels]
        if self.class_mode in ("binary", "sparse"):
            return x, labels.astype(dtype)
        if self.class_mode == "input":
            return x, x.copy()
        return x


# ----------------------------------------------------------------- single images
def load_img(path: str | os.PathLike, color_mode: str = "rgb", target_size=None):
    """A PIL image from ``path`` ('rgb' or 'grayscale'), resized to ``target_size`` (height, width)."""
    from PIL import Image

    if color_mode not in ("rgb", "grayscale"):
        raise ValueError(f"load_img: color_mode must be 'rgb' or 'grayscale', got {color_mode!r}")
    with Image.open(path) as image:
        image = image.convert("RGB" if color_mode == "rgb" else "L")
    if target_size is not None:
        height, width = target_size
        image = image.resize((width, height), Image.BILINEAR)
    return image


def img_to_array(image, data_format: str | None = None, dtype: str = "float32") -> np.ndarray:
    """A PIL image as a (H, W, C) array of 0..255 values ((C, H, W) for channels_first)."""
    array = np.asarray(image, dtype=dtype)
    if array.ndim == 2:
        array = array[:, :, None]
    first = backend.standardize_data_format(data_format) == "channels_first"
    return array.transpose(2, 0, 1) if first else array


def array_to_img(x, data_format: str | None = None, scale: bool = True):
    """A (H, W, C) array as a PIL image; ``scale`` stretches its range to 0..255."""
    from PIL import Image

    array = np.asarray(x, dtype=np.float64)
    if backend.standardize_data_format(data_format) == "channels_first":
        array = array.transpose(1, 2, 0)
    if scale:
        low, high = array.min(), array.max()
        array = (array - low) / (high - low if high > low else 1.0) * 255.0
    array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
