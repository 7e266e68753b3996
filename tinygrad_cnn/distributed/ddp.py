"""``DistributedDataParallel``: synchronous data-parallel SGD, one model replica per process.

Every process holds the same model and reads a different share of each global batch.
One step of training is then

    loss = loss_fn(ddp(x_rank), y_rank)       each process: its own B examples
    loss.backward()                           each process: gradient of ITS mean loss
    ddp.allreduce_gradients()                 all processes: g <- (1/W) sum over ranks g_rank
    optimizer.step()                          each process: the same update on the same weights

Because the replicas start equal (rank 0's parameters and buffers are broadcast when the
wrapper is built) and every process applies the same averaged gradient, they stay equal,
and the average of W local mean losses over B examples each is the mean loss over the
W B examples of the global batch: W processes take exactly the step one process would take
on the concatenated batch.

How the wrapper learns that backward finished: it is told. ``allreduce_gradients()`` is
the one line data parallelism adds to a training loop, called between ``loss.backward()``
and ``optimizer.step()`` (the Trainer calls it for you with ``distributed=True``). PyTorch
hides it in autograd hooks that fire as each gradient is ready; this engine has no hooks,
and an explicit call shows where the communication happens. Forgetting it is caught: the
next forward pass raises, instead of letting the replicas silently drift apart. For
gradient accumulation over several backward passes, run the extra ones inside
``with ddp.no_sync():`` (PyTorch's name) and call ``allreduce_gradients()`` once at the end.

Bucketing. Sending each parameter's gradient as its own message would pay MPI's latency
once per parameter (ResNet-20 has 65 of them). Instead the gradients are packed, in reverse
order of registration (PyTorch's heuristic: the order backward produces them), into flat
buffers of at most ``bucket_cap_mb`` megabytes, one ``all_reduce`` per bucket, then
divided by the world size and unpacked. Each bucket also carries one counter per
parameter (1 where this process has a gradient), so a parameter that no process used
keeps ``grad = None`` everywhere (as in one process, the optimizer skips it), and one that
only some processes used gets the average with zeros for the others. The averaged gradients
are views into the buckets (no copy back). In a world of one process nothing is sent.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import numpy as np

from tinygrad_cnn.device import move_array
from tinygrad_cnn.distributed.world import World, init
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor

__all__ = ["DistributedDataParallel"]


def plan_buckets(tensors: list[Tensor], cap_bytes: int) -> list[list[Tensor]]:
    """Consecutive runs of ``tensors`` of one dtype, each at most ``cap_bytes`` (a tensor
    larger than the cap gets a bucket of its own)."""
    buckets: list[list[Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.data.size * t.dtype.itemsize
        if not buckets or buckets[-1][0].dtype != t.dtype or size + nbytes > cap_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(t)
        size += nbytes
    return buckets


def _host(array) -> np.ndarray:
    return np.ascontiguousarray(move_array(array, "cpu")).ravel()


def broadcast_tensors(world: World, tensors: list[Tensor], cap_bytes: int, root: int = 0) -> None:
    """Overwrite every tensor's data with process ``root``'s, one message per bucket."""
    if world.size == 1:
        return
    for bucket in plan_buckets(tensors, cap_bytes):
        flat = np.concatenate([_host(t.data) for t in bucket])
        world.broadcast(flat, root)
        start = 0
        for t in bucket:
            part = flat[start : start + t.data.size].reshape(t.shape)
            t.data = move_array(part.copy(), t.device)
            start += t.data.size


class DistributedDataParallel(Module):
    """``DistributedDataParallel(module, bucket_cap_mb=4.0, broadcast_buffers=True)``.

    Wraps ``module`` (available as ``.module``; ``state_dict`` keys get the prefix
    ``module.`` as in PyTorch, so save ``ddp.module.state_dict()`` for a plain model).
    Building it joins the world (:func:`init`), checks that every process built the same
    model (names, shapes, dtypes) and copies rank 0's parameters and buffers to all.

    * ``forward(*args)``: the module's forward; in training mode with
      ``broadcast_buffers`` it first copies rank 0's buffers (batch-norm running statistics,
      which plain BatchNorm updates from each process's own examples) to every process.
    * ``allreduce_gradients()``: average every parameter's gradient over the processes.
    * ``no_sync()``: a context in which backward passes may leave gradients local.
    * ``broadcast_state()``: copy rank 0's parameters and buffers again (after loading a
      checkpoint, say).
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 4.0, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an nn.Module, "
                            f"got {type(module).__name__}")
        if isinstance(module, DistributedDataParallel):
            raise TypeError("DistributedDataParallel: the module is already wrapped")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
                or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                             f"got {bucket_cap_mb!r}")
        self.module = module
        self.world = init()
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        self.broadcast_buffers = bool(broadcast_buffers)
        self._check_same_model()
        self.broadcast_state()
        trainable = [p for p in module.parameters() if p.requires_grad]
        self.buckets = plan_buckets(trainable[::-1], self.bucket_cap_bytes)
        self._syncing = True
        # the gradients already averaged (or local on purpose), by weak reference: once zero_grad
        # drops them they are freed, not kept alive here
        self._accepted: dict[int, weakref.ref] = {}

    # ----------------------------------------------------------- the replicas
    def _check_same_model(self) -> None:
        mine = [(name, tuple(t.shape), str(t.dtype)) for name, t in self.module.state_dict().items()]
        models = self.world.all_gather_object(mine)
        for rank, theirs in enumerate(models):
            if theirs != models[0]:
                difference = next((a, b) for a, b in zip(models[0] + [None], theirs + [None]) if a != b)
                raise ValueError(
                    f"DistributedDataParallel: rank {rank} built another model than rank 0 "
                    f"(rank 0: {difference[0]}, rank {rank}: {difference[1]}); every process must build "
                    "the same architecture")

    def broadcast_state(self) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        state = [t for _, t in self.module._named_state_tensors()]
        broadcast_tensors(self.world, state, self.bucket_cap_bytes)

    def forward(self, *args, **kwargs):
        if self.training:
            self._check_gradients_were_averaged()
            if self.broadcast_buffers:
                buffers = [b for _, b in self.module.named_buffers()]
                broadcast_tensors(self.world, buffers, self.bucket_cap_bytes)
        return self.module(*args, **kwargs)

    # ------------------------------------------------------------- gradients
    def _trainable(self) -> Iterator[Tensor]:
        for bucket in self.buckets:
            yield from bucket

    def _check_gradients_were_averaged(self) -> None:
        if not self._syncing:
            return
        for p in self._trainable():
            accepted = self._accepted.get(id(p))
            if p.grad is not None and (accepted is None or accepted() is not p.grad):
                raise RuntimeError(
                    "DistributedDataParallel: the gradients of the last backward pass were never averaged "
                    "over the processes, so the replicas have drifted apart: call "
                    "ddp.allreduce_gradients() after loss.backward() and before optimizer.step() (backward "
                    "passes inside `with ddp.no_sync():` may keep local gradients, for accumulation)")

    def _accept_current_gradients(self) -> None:
        self._accepted = {id(p): weakref.ref(p.grad) for p in self._trainable() if p.grad is not None}

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes in this block keep their gradients local (accumulating them);
        call ``allreduce_gradients()`` after the next backward outside it."""
        previous, self._syncing = self._syncing, False
        try:
            yield
        finally:
            self._syncing = previous
            self._accept_current_gradients()

    def allreduce_gradients(self) -> None:
        """g <- (1/W) sum over the W processes of g, for every trainable parameter, one
        all_reduce per bucket. Every process must call it at the same point."""
        world = self.world
        if world.size == 1:  # the average of one gradient is itself
            self._accept_current_gradients()
            return
        for bucket in self.buckets:
            dtype = bucket[0].dtype
            parts = [_host(p.grad.data) if p.grad is not None else np.zeros(p.data.size, dtype)
                     for p in bucket]
            counts = np.array([p.grad is not None for p in bucket], dtype=dtype)
            flat = world.all_reduce(np.concatenate(parts + [counts]))
            reached = flat[-len(bucket):].copy()  # how many processes had each gradient
            flat /= world.size
            start = 0
            for p, count in zip(bucket, reached):
                size = p.data.size
                if count > 0:  # a view into the bucket (disjoint from the others): no copy on the CPU
                    averaged = move_array(flat[start : start + size].reshape(p.shape), p.device)
                    p.grad = Tensor._wrap(averaged)
                start += size
        self._accept_current_gradients()

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{sum(p.numel() for p in b) * b[0].dtype.itemsize / 2**20:.2f}"
                          for b in self.buckets)
        return f"world_size={self.world.size}, buckets_mb=[{sizes}]"
