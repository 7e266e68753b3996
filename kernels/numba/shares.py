"""Run one compiled kernel on every core: the work split into shares, one per thread.

Every kernel of this backend is a serial, GIL-free function (``@njit(nogil=True)``) that
computes share ``t`` of ``T``: a contiguous part of the batch, of the (n, c) planes or of
the channels. :func:`run` calls it for t = 0 .. T-1, share 0 on the calling thread and the
others on a small pool of Python threads, and returns when all are done.

Why not Numba's ``prange`` (``parallel=True``): a parallel kernel compiles about twice as
slowly as the same loop written serially (measured: im2col forward 5.0 s vs 2.5 s of CPU),
and a first training run spends most of its time compiling; and Numba's fallback threading
layer (``workqueue``, where neither OpenMP nor TBB is installed) aborts the process when two
Python threads launch parallel kernels at once, which training beside a live view or a
second model does. The cost of the pool: about 10-100 microseconds per kernel call to wake
the workers.

The number of threads is Numba's (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), read
per call, so a caller can change it. Kernels that are small do their work in one share
(:func:`shares_for`).
"""

from __future__ import annotations

import os
import queue
import threading

import numba

# Below this many elements of work one thread does it all: waking the pool costs more.
PARALLEL_MIN_WORK = 1 << 15


def threads() -> int:
    """The thread count kernels split their work for (Numba's setting)."""
    return numba.get_num_threads()


def shares_for(work: int, parts: int | None = None, minimum: int = PARALLEL_MIN_WORK) -> int:
    """Shares for ``work`` elements of work split over at most ``parts`` independent parts
    (planes, channels, samples): one below ``minimum`` (default PARALLEL_MIN_WORK), else one
    per thread."""
    wanted = 1 if work < minimum else threads()
    return max(1, min(wanted, parts if parts is not None else wanted))


class _Pool:
    """Worker threads that wait for (kernel, args) tasks; created when first needed."""

    def __init__(self) -> None:
        self._inboxes: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()

    def _worker(self, inbox: queue.SimpleQueue) -> None:
        while True:
            kernel, args, done = inbox.get()
            try:
                kernel(*args)
                done.put(None)
            except BaseException as error:  # noqa: BLE001 - handed to the caller, re-raised there
                done.put(error)

    def inboxes(self, count: int) -> list[queue.SimpleQueue]:
        with self._lock:
            while len(self._inboxes) < count:
                inbox: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=self._worker, args=(inbox,), daemon=True,
                                 name=f"tinygrad_cnn-numba-{len(self._inboxes) + 1}").start()
                self._inboxes.append(inbox)
            return self._inboxes[:count]


_pool = _Pool()


def _forget_workers_after_fork() -> None:
    """A forked child (a DataLoader worker, an MPI rank started by fork) inherits the queues
    but not the threads behind them: it starts a pool of its own."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_workers_after_fork)


def run(kernel, shares: int, *args) -> None:
    """``kernel(*args, t, shares)`` for every share t in range(shares), in parallel."""
    if shares <= 1:
        kernel(*args, 0, 1)
        return
    done: queue.SimpleQueue = queue.SimpleQueue()
    for t, inbox in enumerate(_pool.inboxes(shares - 1), start=1):
        inbox.put((kernel, (*args, t, shares), done))
    errors = []
    try:
        kernel(*args, 0, shares)
    except BaseException as error:  # noqa: BLE001 - raised after the other shares finished
        errors.append(error)
    for _ in range(shares - 1):
        result = done.get()
        if result is not None:
            errors.append(result)
    if errors:
        raise errors[0]
