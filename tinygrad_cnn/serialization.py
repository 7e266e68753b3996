"""Checkpoints as ``.npz`` files: plain named arrays, no pickle.

``save`` writes to a temporary file in the same folder and renames it over the
target (``os.replace`` is atomic), so a crash mid-write leaves the previous
checkpoint intact, never a half-written one. ``load`` refuses pickled objects
(``allow_pickle=False``), so opening a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from tinygrad_cnn.tensor import Tensor


def save(state_dict, path: str | os.PathLike) -> None:
    """Write a mapping of names to Tensors/arrays/numbers to ``path`` atomically."""
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save: keys must be strings, got {name!r}")
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"save: '{name}' is not numeric data ({type(value).__name__})")
        arrays[name] = array
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read a checkpoint written by :func:`save` as an ordered dict of Tensors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return OrderedDict((name, Tensor(archive[name], dtype=archive[name].dtype))
                               for name in archive.files)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ValueError(f"load: {path} is not a valid checkpoint (.npz): {error}") from None
