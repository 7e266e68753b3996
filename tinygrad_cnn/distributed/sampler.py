"""``DistributedSampler``: each process's share of every epoch, and loaders that read it.

Every process shuffles the whole index range with the same seed (so all agree on one order
per epoch, ``default_rng([seed, epoch])`` as the DataLoader), then takes every W-th index
from its rank on: rank r of W gets ``order[r::W]``. Batch t of rank r is then the r-th
stride of the t-th slice of W B indices, so the W local batches of step t together are
exactly batch t (of size W B) of one process reading the same order: W processes with
batch size B train as one process with batch size W B.

Padding to equal shares. Every process must take the same number of steps (each step is
a collective that waits for all), so the shares must be equal. When W does not divide the
dataset's length n, the order is extended to ``ceil(n / W) W`` indices by repeating its
first ones (so a few examples count twice that epoch, as in PyTorch); ``drop_last=True``
instead cuts it to ``floor(n / W) W`` (a few examples skipped that epoch). ``pad=False``
(for evaluation, which takes no collective per batch) gives unequal shares in which every
index occurs exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from tinygrad_cnn.data.loader import DataLoader, Subset
from tinygrad_cnn.distributed.world import get_world
from tinygrad_cnn.nn.functional.checks import check_flag, is_int

__all__ = ["DistributedSampler", "DistributedLoader", "shard_loader"]


class DistributedSampler:
    """``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False, pad=True)``: iterate to get this rank's indices of the current epoch.

    ``num_replicas`` and ``rank`` default to the world's. ``set_epoch(e)`` before each
    epoch gives a new order (the same on every process). ``len(sampler)`` is the share's
    size: ``ceil(n / W)`` (padded), ``floor(n / W)`` (``drop_last``), or this rank's own
    count with ``pad=False``.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False, pad: bool = True) -> None:
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DistributedSampler: dataset must have a length, got {type(dataset).__name__}")
        if num_replicas is None:
            num_replicas = get_world().size
        if rank is None:
            rank = get_world().rank
        if not is_int(num_replicas) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if not is_int(rank) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be an int in [0, {num_replicas - 1}], "
                             f"got {rank!r}")
        if not is_int(seed) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative int, got {seed!r}")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle = check_flag("DistributedSampler", "shuffle", shuffle)
        self.drop_last = check_flag("DistributedSampler", "drop_last", drop_last)
        self.pad = check_flag("DistributedSampler", "pad", pad)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (call before each epoch, on every process)."""
        self.epoch = int(epoch)

    def _total(self) -> int:
        """How many indices the W shares hold together."""
        n, w = len(self.dataset), self.num_replicas
        if self.drop_last:
            return n // w * w
        return math.ceil(n / w) * w if self.pad else n

    def indices(self) -> np.ndarray:
        """This rank's indices of the current epoch (int64)."""
        n = len(self.dataset)
        rng = np.random.default_rng([self.seed, self.epoch])  # the DataLoader's order for this epoch
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        order = np.resize(order, self._total())  # pads by repeating the first indices; cuts for drop_last
        return order[self.rank :: self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        total, w = self._total(), self.num_replicas
        return total // w + (1 if self.rank < total % w else 0)


class DistributedLoader(DataLoader):
    """A DataLoader that reads only this process's share of each epoch.

    Built by :func:`shard_loader` from an ordinary DataLoader (same dataset, batch size,
    transform, device, drop_last): its sampler shuffles with the sampler's seed, and each
    epoch is a plain in-order DataLoader over ``Subset(dataset, sampler.indices())``.
    Augmentation draws from a stream seeded by (seed, rank), so processes do not apply
    the same random shifts to their different images."""

    def __init__(self, loader: DataLoader, sampler: DistributedSampler) -> None:
        super().__init__(loader.dataset, loader.batch_size, shuffle=False, drop_last=loader.drop_last,
                         seed=sampler.seed, transform=loader.transform, device=loader.device)
        self.sampler, self.epoch = sampler, loader.epoch
        self.shuffle = sampler.shuffle
        self._augment_seed = int(np.random.SeedSequence([sampler.seed, sampler.rank]).generate_state(1)[0])

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        share = Subset(self.dataset, self.sampler.indices())
        epoch = DataLoader(share, self.batch_size, shuffle=False, drop_last=self.drop_last,
                           seed=self._augment_seed, transform=self.transform, device=self.device)
        epoch.set_epoch(self.epoch)
        self.epoch += 1
        return iter(epoch)


def shard_loader(loader: DataLoader, pad: bool = True) -> DistributedLoader:
    """This process's share of ``loader`` (returned unchanged if it is one already).

    Shuffled loaders stay shuffled (one order per epoch for all processes: the seed is
    rank 0's, sent to all); ``pad`` as in :class:`DistributedSampler` (training needs
    equal shares; ``pad=False`` for evaluation)."""
    if isinstance(loader, DistributedLoader):
        return loader
    if not isinstance(loader, DataLoader):
        raise TypeError(f"shard_loader: expected a DataLoader, got {type(loader).__name__}")
    seed = get_world().broadcast_object(loader.seed)  # a seed drawn per process would split the order
    sampler = DistributedSampler(loader.dataset, shuffle=loader.shuffle, seed=seed, pad=pad)
    return DistributedLoader(loader, sampler)
