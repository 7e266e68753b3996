"""Who keeps freed memory: the C allocator's policy for the arrays of a training step.

Every op of a step allocates new numpy arrays (activations, gradients, temporaries of a
few hundred kB to tens of MB) and frees them a moment later. glibc's malloc hands arrays
above a threshold (128 kB at start, raised up to 32 MB as it sees large frees) their own
``mmap`` and gives them back to the system on ``free``, and it trims the heap when enough
of its top is free; either way the next step's arrays land on fresh pages, which the
kernel must fault in and zero, one 4 kB page at a time. Measured on a ResNet-20 step
(batch 32, Numba backend, 2 threads, the same process shape as ``benchmarks/run.py``):
198 ms with glibc's defaults, 156 ms with both thresholds raised to 1 GB (the step's
memory is then reused from step to step instead of faulted in again).

:func:`keep_freed_memory` raises them (``mallopt(M_MMAP_THRESHOLD)`` and
``mallopt(M_TRIM_THRESHOLD)``) when the library loads. The price: memory a process frees
stays in its heap for reuse instead of going back to the system at once (the peak of a
step is not larger; see benchmarks/RESULTS.md). ``TINYGRAD_CNN_MALLOC=default`` keeps
glibc's own policy; other C libraries (macOS, musl, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30   # arrays up to 1 GB come from the heap; free space up to 1 GB stays in it
ENV_VARIABLE = "TINYGRAD_CNN_MALLOC"


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to KEEP_BYTES; True where that was done."""
    setting = os.environ.get(ENV_VARIABLE, "keep")
    if setting not in ("keep", "default"):
        raise ValueError(f"{ENV_VARIABLE} must be 'keep' or 'default', got {setting!r}")
    if setting == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # mallopt's parameter numbers are glibc's
            return False
    except (OSError, AttributeError):  # no C library to load, or one without mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
