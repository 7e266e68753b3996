"""The fused residual join y = ReLU(a + b), compiled with Numba.

Same functions and arguments as ``kernels/reference/residual.py``. Both kernels are one
pass over memory (numpy needs two: ``a + b`` then ``maximum``, plus a temporary), split
into one contiguous chunk per Numba thread.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads as num_threads
from numba import njit, prange
from numba import uint64 as _u

# Below this many elements one thread does it all: waking the pool costs more than it saves.
PARALLEL_MIN_SIZE = 1 << 15


@njit(cache=True, parallel=True, nogil=True)
def _add_relu(a, b, y, chunks):
    """y = max(a + b, 0) elementwise on flat views (reference ``add_relu_forward``);
    NaN stays NaN, as with ``np.maximum``."""
    size = y.size
    for t in prange(chunks):
        for i in range(t * size // chunks, (t + 1) * size // chunks):
            s = a[_u(i)] + b[_u(i)]
            y[_u(i)] = 0 if s < 0 else s


@njit(cache=True, parallel=True, nogil=True)
def _relu_mask(g, y, out, chunks):
    """out = 0 where y <= 0, else g (reference ``add_relu_backward``; a NaN y passes g)."""
    size = y.size
    for t in prange(chunks):
        for i in range(t * size // chunks, (t + 1) * size // chunks):
            out[_u(i)] = 0 if y[_u(i)] <= 0 else g[_u(i)]


def _chunks(size: int) -> int:
    return num_threads() if size >= PARALLEL_MIN_SIZE else 1


def add_relu_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = max(a + b, 0), elementwise (a and b have the same shape and dtype)."""
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b, dtype=a.dtype)
    y = np.empty_like(a)
    _add_relu(a.reshape(-1), b.reshape(-1), y.reshape(-1), _chunks(a.size))
    return y


def add_relu_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/da = dL/db = grad_y where y > 0 (or NaN), else 0."""
    grad_y = np.ascontiguousarray(grad_y)
    y = np.ascontiguousarray(y)
    out = np.empty_like(grad_y)
    _relu_mask(grad_y.reshape(-1), y.reshape(-1), out.reshape(-1), _chunks(y.size))
    return out
