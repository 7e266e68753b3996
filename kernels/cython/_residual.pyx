# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of the fused residual add + ReLU (and the plain ReLU, b = 0), on
flattened contiguous arrays.

    forward:  y = max(a + b, 0)           (NaN stays NaN)
    backward: grad_a = grad_b = grad_y * [not y <= 0]   (a NaN passes the gradient, as PyTorch)

One pass over memory instead of numpy's two (a + b, then maximum) saves a temporary and
half the memory traffic; elements are independent, so the loop runs in parallel.
"""

from cython cimport floating
from cython.parallel cimport prange


def add_relu_forward_into(const floating[::1] a, const floating[::1] b, floating[::1] y,
                          int num_threads):
    """y[k] = max(a[k] + b[k], 0)."""
    cdef Py_ssize_t k, size = y.shape[0]
    cdef floating total
    for k in prange(size, nogil=True, schedule="static", num_threads=num_threads):
        total = a[k] + b[k]
        y[k] = 0 if total < 0 else total   # "total > 0 else 0" would map NaN to 0


def relu_forward_into(const floating[::1] x, floating[::1] y, int num_threads):
    """y[k] = max(x[k], 0)."""
    cdef Py_ssize_t k, size = y.shape[0]
    cdef floating v
    for k in prange(size, nogil=True, schedule="static", num_threads=num_threads):
        v = x[k]
        y[k] = 0 if v < 0 else v


def add_relu_backward_into(const floating[::1] grad_y, const floating[::1] y, floating[::1] grad,
                           int num_threads):
    """grad[k] = 0 where y[k] <= 0, else grad_y[k] (also where y[k] is NaN)."""
    cdef Py_ssize_t k, size = grad.shape[0]
    cdef floating zero = 0, g, v
    for k in prange(size, nogil=True, schedule="static", num_threads=num_threads):
        # both loads unconditional, then a select: the compiler may then use a vector blend
        # instead of a branch that random signs mispredict half of the time
        g = grad_y[k]
        v = y[k]
        grad[k] = zero if v <= zero else g


def add_relu_backward_of_sum_into(const floating[::1] grad_a, const floating[::1] grad_b,
                                  const floating[::1] y, floating[::1] grad, int num_threads):
    """grad[k] = 0 where y[k] <= 0, else grad_a[k] + grad_b[k]: the backward of the sum of
    two gradients (where two paths met), with no array for the sum."""
    cdef Py_ssize_t k, size = grad.shape[0]
    cdef floating zero = 0, g, v
    for k in prange(size, nogil=True, schedule="static", num_threads=num_threads):
        g = grad_a[k] + grad_b[k]
        v = y[k]
        grad[k] = zero if v <= zero else g
