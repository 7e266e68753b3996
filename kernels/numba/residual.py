"""The fused residual join y = ReLU(a + b) and the plain ReLU, compiled with Numba.

Same functions and arguments as ``kernels/reference/residual.py``. Every kernel is one
pass over memory (numpy needs two for the join: ``a + b`` then ``maximum``, plus a
temporary; and two plus a boolean mask for ``Tensor.relu``'s ``x * ~(x <= 0)``), split
into one contiguous share per thread (``shares.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.shares import run, shares_for

# One pass over memory is quick: below this many elements one thread beats waking the pool
# (2 threads vs 1, microseconds, float32: 131,072 elements ReLU 45 vs 23, add+ReLU 46 vs 30,
# its mask 45 vs 30; 262,144 elements 56 vs 71, 75 vs 143, 73 vs 146)
ELEMENTWISE_MIN_WORK = 1 << 18


def _shares(size: int) -> int:
    return shares_for(size, minimum=ELEMENTWISE_MIN_WORK)


@njit(cache=True, nogil=True)
def _add_relu(a, b, y, t, T):
    """y = max(a + b, 0) elementwise on flat views, share t of T (reference
    ``add_relu_forward``); NaN stays NaN, as with ``np.maximum``."""
    size = y.size
    for i in range(t * size // T, (t + 1) * size // T):
        s = a[_u(i)] + b[_u(i)]
        y[_u(i)] = 0 if s < 0 else s


@njit(cache=True, nogil=True)
def _relu(x, y, t, T):
    """y = max(x, 0) elementwise on flat views, share t of T; NaN stays NaN."""
    size = y.size
    for i in range(t * size // T, (t + 1) * size // T):
        v = x[_u(i)]
        y[_u(i)] = 0 if v < 0 else v


@njit(cache=True, nogil=True)
def _relu_mask(g, y, out, t, T):
    """out = 0 where y <= 0, else g (reference ``add_relu_backward``; a NaN y passes g)."""
    size = y.size
    for i in range(t * size // T, (t + 1) * size // T):
        out[_u(i)] = 0 if y[_u(i)] <= 0 else g[_u(i)]


@njit(cache=True, nogil=True)
def _relu_mask_of_sum(ga, gb, y, out, t, T):
    """out = 0 where y <= 0, else ga + gb (reference ``add_relu_backward_of_sum``)."""
    size = y.size
    for i in range(t * size // T, (t + 1) * size // T):
        out[_u(i)] = 0 if y[_u(i)] <= 0 else ga[_u(i)] + gb[_u(i)]


def add_relu_forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y = max(a + b, 0), elementwise (a and b have the same shape and dtype)."""
    y = np.empty_like(a)
    run(_add_relu, _shares(a.size), a.reshape(-1), b.reshape(-1), y.reshape(-1))
    return y


def relu_forward(x: np.ndarray) -> np.ndarray:
    """y = max(x, 0), elementwise."""
    y = np.empty_like(x)
    run(_relu, _shares(x.size), x.reshape(-1), y.reshape(-1))
    return y


def add_relu_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/da = dL/db = grad_y where y > 0 (or NaN), else 0."""
    out = np.empty_like(grad_y)
    run(_relu_mask, _shares(y.size), grad_y.reshape(-1), y.reshape(-1), out.reshape(-1))
    return out


def add_relu_backward_of_sum(grad_a: np.ndarray, grad_b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """add_relu_backward(grad_a + grad_b, y) in one pass (no array for the sum; at 2M floats
    0.9 against 2.9 ms for the add and the mask)."""
    out = np.empty_like(grad_a)
    run(_relu_mask_of_sum, _shares(y.size), grad_a.reshape(-1), grad_b.reshape(-1), y.reshape(-1),
        out.reshape(-1))
    return out
