"""The data ``fit``, ``evaluate`` and ``predict`` take, as batches of Tensors (inputs) and arrays
(targets): arrays (one per model input or output, as a list or a dict by name) through a
shuffling DataLoader, or batches from an iterator (``ImageDataGenerator.flow``), a Keras-style
sequence (``__getitem__`` and ``__len__``) or a generator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from tinygrad_cnn.data.loader import DataLoader, TensorDataset
from tinygrad_cnn.tensor import Tensor


def arrays(data, names: list[str], what: str, dtype=None) -> list[np.ndarray]:
    """``data`` (an array, a list, or a dict by name) as one array per name."""
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"{what}: no data for {missing} (the dict has {sorted(data)})")
        data = [data[n] for n in names]
    elif len(names) > 1:
        if not isinstance(data, (list, tuple)) or len(data) != len(names):
            raise ValueError(f"{what}: the model has {len(names)} of them ({names}); give a list or a dict")
    else:
        data = [data]
    out = []
    for item in data:
        array = item.numpy() if isinstance(item, Tensor) else np.asarray(item)
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise TypeError(f"{what} must be numeric arrays with a batch axis, got {type(item).__name__} "
                            f"{getattr(array, 'shape', '')}")
        out.append(array.astype(dtype, copy=False) if dtype is not None else array)
    return out


class ArrayData:
    """Batches of arrays through a DataLoader (seeded shuffling every epoch)."""

    def __init__(self, xs: list[np.ndarray], ys: list[np.ndarray] | None, batch_size: int,
                 shuffle: bool) -> None:
        lengths = [len(a) for a in xs + (ys or [])]
        if len(set(lengths)) != 1:
            raise ValueError(f"inputs and targets must have the same number of samples, got {lengths}")
        if lengths[0] == 0:
            raise ValueError("no samples to train or evaluate on")
        self.xs, self.n_inputs = xs, len(xs)
        self.loader = DataLoader(TensorDataset(*xs, *(ys or [])), batch_size=batch_size, shuffle=shuffle)

    def __len__(self) -> int:
        return len(self.loader)

    def sample(self) -> list[np.ndarray]:
        return [x[:1] for x in self.xs]

    def epoch(self, epoch: int) -> Iterator[tuple[list[Tensor], list[np.ndarray]]]:
        self.loader.set_epoch(epoch)
        for batch in self.loader:
            yield list(batch[: self.n_inputs]), [t.numpy() for t in batch[self.n_inputs:]]


class BatchData:
    """Batches from an iterator (``ImageDataGenerator.flow``), a sequence or a generator."""

    def __init__(self, source, steps: int | None, input_names: list[str], output_names: list[str],
                 dtype) -> None:
        if steps is None and hasattr(source, "__len__"):
            steps = len(source)
        self.steps, self.names, self.dtype = steps, (input_names, output_names), dtype
        if hasattr(source, "__next__"):
            self.iterator = source
        elif hasattr(source, "__getitem__") and hasattr(source, "__len__"):
            self.iterator = (source[i] for _ in itertools.count() for i in range(len(source)))
        else:
            self.iterator = iter(source)
        self.pending: list = []

    def __len__(self) -> int:
        return self.steps or 0

    def _split(self, batch):
        if isinstance(batch, tuple) and len(batch) > 2:
            raise ValueError(f"batches must be x or (x, y); got a tuple of {len(batch)} (sample weights "
                             "are not supported)")
        x, y = batch if isinstance(batch, tuple) and len(batch) == 2 else \
            ((batch[0] if isinstance(batch, tuple) else batch), None)
        xs = [Tensor(a) for a in arrays(x, self.names[0], "x", self.dtype)]
        return xs, None if y is None else arrays(y, self.names[1], "y")

    def _next(self):
        return self.pending.pop() if self.pending else next(self.iterator)

    def sample(self) -> list:
        self.pending.append(self._next())
        return self._split(self.pending[-1])[0]

    def epoch(self, epoch: int):
        for _ in (range(self.steps) if self.steps else itertools.count()):
            try:
                batch = self._next()
            except StopIteration:
                if self.steps:
                    raise ValueError(f"the data ran out before {self.steps} steps") from None
                return
            yield self._split(batch)


def is_batches(data) -> bool:
    return data is not None and not isinstance(data, (np.ndarray, Tensor, list, tuple, dict)) and (
        hasattr(data, "__next__") or hasattr(data, "__iter__") or hasattr(data, "__getitem__"))
