"""``Dataset`` and ``DataLoader``: mini-batches for stochastic gradient descent.

An epoch visits every example once; the loader cuts a (shuffled) order of the indices into
batches of ``batch_size``, stacks the examples, applies the batch transform (augmentation)
and yields ``(Tensor images, Tensor targets)``. Shuffling is seeded: epoch ``e`` of a loader
with seed ``s`` always sees the same order (``set_epoch`` moves to an epoch, so a resumed run
continues exactly), as PyTorch's ``DataLoader`` with a seeded generator and
``DistributedSampler.set_epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from tinygrad_cnn.random import generator
from tinygrad_cnn.tensor import Tensor


class Dataset:
    """An indexable collection of examples: ``__len__`` and ``__getitem__(i) -> (x, y)``.

    Subclasses may define ``get_batch(indices) -> (xs, ys)`` to read many examples at once
    (the loader uses it when present).
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int):
        raise NotImplementedError

    def get_batch(self, indices: np.ndarray):
        items = [self[int(i)] for i in indices]
        return tuple(np.stack([np.asarray(item[k]) for item in items]) for k in range(len(items[0])))


class TensorDataset(Dataset):
    """Arrays (or Tensors) of equal first dimension, indexed together:
    ``TensorDataset(images, labels)[i] == (images[i], labels[i])``."""

    def __init__(self, *arrays) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(
                f"TensorDataset: arrays have different lengths {[len(a) for a in self.arrays]}"
            )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int):
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray):
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices`` (e.g. a validation split)."""

    def __init__(self, dataset: Dataset, indices) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices out of range for a dataset of {len(dataset)} examples")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray):
        return self.dataset.get_batch(self.indices[np.asarray(indices)])


def random_split(dataset: Dataset, lengths, seed: int = 0) -> list[Subset]:
    """Split into non-overlapping subsets of the given lengths (a seeded permutation).

    ``lengths`` are counts adding up to ``len(dataset)``, or fractions adding up to 1, as
    PyTorch's: each subset gets floor(fraction * len) items and the remainder is dealt one
    item at a time to the subsets in order."""
    given = list(lengths)
    if not given or any(isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating))
                        for n in given):
        raise TypeError(f"random_split: lengths must be counts or fractions, got {given!r}")
    n_items = len(dataset)
    if all(isinstance(n, (int, np.integer)) for n in given):
        lengths = [int(n) for n in given]
    elif all(0 <= n <= 1 for n in given) and abs(sum(given) - 1) < 1e-6:
        lengths = [int(np.floor(n * n_items)) for n in given]
        for i in range(n_items - sum(lengths)):
            lengths[i % len(lengths)] += 1
    else:
        raise ValueError(f"random_split: lengths {given} are neither counts adding up to {n_items} nor "
                         "fractions adding up to 1")
    if sum(lengths) != n_items or min(lengths) < 0:
        raise ValueError(f"random_split: lengths {given} do not add up to {n_items}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


class DataLoader:
    """``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
    transform=None, device="cpu")``: iterate to get ``(x, y)`` batches as Tensors.

    * ``shuffle``: a new order every epoch, from ``default_rng([seed, epoch])``. Without a
      ``seed`` one is drawn from the library's generator (when shuffling or augmenting), so
      ``manual_seed`` fixes it.
    * ``drop_last``: leave out the last, smaller batch.
    * ``transform``: a batch transform ``f(x, rng) -> x`` on the stacked numpy images (see
      :mod:`tinygrad_cnn.data.transforms`); its randomness comes from the same seeded stream.
    * Each ``iter()`` is one epoch and advances the epoch counter; ``set_epoch(e)`` sets it.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform: Callable | None = None, device: str = "cpu") -> None:
        if isinstance(dataset, tuple):
            dataset = TensorDataset(*dataset)
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset)}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {transform!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.transform, self.device = shuffle, drop_last, transform, device
        if seed is None:  # drawn only when needed, so a plain loader leaves the global stream alone
            seed = int(generator().integers(2**31)) if shuffle or transform is not None else 0
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentation)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _get(self, indices: np.ndarray):
        if hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(indices)
        return Dataset.get_batch(self.dataset, indices)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        n = len(self.dataset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = self._get(order[start : start + self.batch_size])
            x, rest = np.asarray(batch[0]), batch[1:]
            if self.transform is not None:
                x = self.transform(x, rng)
            out = [Tensor(np.ascontiguousarray(x), device=self.device)]
            out += [Tensor(np.asarray(r), dtype=np.asarray(r).dtype, device=self.device) for r in rest]
            yield tuple(out)
