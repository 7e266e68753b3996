"""Your own photos: one sub-folder per class, read from disk batch by batch.

    rock-paper-scissors/
        paper/    img001.png  img002.jpg ...
        rock/     ...
        scissors/ ...

``ImageFolder(root, image_size=(150, 150))`` lists the files (classes are the sorted folder
names, as torchvision's ``ImageFolder`` and Keras's ``flow_from_directory``); each image is
opened with Pillow only when its batch is needed, converted to RGB (or grayscale), resized and
scaled to [0, 1]. :func:`flow_from_directory` wraps it in a shuffling, augmenting DataLoader:
the course's ``ImageDataGenerator(rescale=1/255, ...).flow_from_directory(...)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinygrad_cnn.data.loader import DataLoader, Dataset, Subset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _size(image_size) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size


class ImageFolder(Dataset):
    """Images in ``root/<class name>/<file>``: ``dataset[i] -> (image (C, H, W) float32, label)``.

    ``color_mode`` is ``"rgb"`` (3 channels) or ``"grayscale"`` (1); ``image_size`` an int or
    (height, width). ``classes`` restricts and orders the class folders (default: all, sorted).
    """

    def __init__(self, root: str | os.PathLike, image_size: int | tuple[int, int] = 64,
                 color_mode: str = "rgb", classes: list[str] | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> None:
        self.root = Path(os.path.expanduser(os.fspath(root)))
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: no such folder: {self.root}")
        if color_mode not in ("rgb", "grayscale"):
            raise ValueError(f"ImageFolder: color_mode must be 'rgb' or 'grayscale', got {color_mode!r}")
        self.image_size, self.color_mode = _size(image_size), color_mode
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is not None:
            missing = [c for c in classes if c not in found]
            if missing:
                raise FileNotFoundError(f"ImageFolder: class folders {missing} not found in {self.root}")
            found = list(classes)
        if not found:
            raise FileNotFoundError(
                f"ImageFolder: {self.root} has no class sub-folders (expected root/<class>/<image>)"
            )
        self.classes = found
        self.class_to_idx = {name: i for i, name in enumerate(found)}
        self.samples: list[tuple[Path, int]] = []
        for name in found:
            files = sorted(p for p in (self.root / name).rglob("*")
                           if p.is_file() and p.suffix.lower() in extensions)
            self.samples += [(p, self.class_to_idx[name]) for p in files]
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: no images ({', '.join(extensions)}) under {self.root}")
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, path: Path) -> np.ndarray:
        """One file as a float32 (C, H, W) array in [0, 1]."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image = image.convert("RGB" if self.color_mode == "rgb" else "L")
                height, width = self.image_size
                image = image.resize((width, height), Image.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ValueError(f"ImageFolder: cannot read image {path}: {error}") from None
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return self.load_image(path), label

    def get_batch(self, indices: np.ndarray):
        images = np.stack([self.load_image(self.samples[int(i)][0]) for i in indices])
        return images, self.targets[np.asarray(indices, dtype=np.int64)]


def flow_from_directory(directory: str | os.PathLike, target_size: int | tuple[int, int] = (256, 256),
                        color_mode: str = "rgb", batch_size: int = 32, shuffle: bool = True,
                        seed: int | None = None, transform: Callable | None = None,
                        validation_split: float = 0.0, subset: str | None = None,
                        classes: list[str] | None = None) -> DataLoader:
    """Keras's ``ImageDataGenerator.flow_from_directory``: a DataLoader streaming batches
    of ``(images, labels)`` from ``directory/<class>/...``, augmented by ``transform``.

    ``validation_split`` with ``subset="training"`` / ``"validation"`` splits each class's
    files by a seeded shuffle (the same seed gives disjoint subsets, as in Keras).
    The loader's ``.dataset.classes`` / ``.class_indices`` name the classes.
    """
    dataset = ImageFolder(directory, target_size, color_mode, classes)
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"flow_from_directory: validation_split must be in [0, 1), got {validation_split}")
    if subset not in (None, "training", "validation"):
        raise ValueError(f"flow_from_directory: subset must be 'training' or 'validation', got {subset!r}")
    if subset is not None:
        if validation_split == 0.0:
            raise ValueError("flow_from_directory: subset needs validation_split > 0")
        order = np.random.default_rng(0 if seed is None else seed).permutation(len(dataset))
        n_val = int(round(len(dataset) * validation_split))
        chosen = np.sort(order[:n_val] if subset == "validation" else order[n_val:])
        data = Subset(dataset, chosen)
    else:
        data = dataset
    loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed, transform=transform)
    loader.class_indices = dict(dataset.class_to_idx)
    return loader
