# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of training-mode batch normalization, x viewed as (N, C, L).

Per channel c, over the M = N*L values x[:, c, :] (biased statistics):

    mean = sum(x) / M,  var = sum((x - mean)^2) / M,  inv_std = 1 / sqrt(var + eps)
    xhat = (x - mean) * inv_std,  y = weight * xhat + bias

Backward, with g = grad_y:

    grad_bias   = sum(g)
    grad_weight = sum(g * xhat)
    grad_x      = weight * inv_std * (g - grad_bias / M - xhat * grad_weight / M)

``relu`` fuses the ReLU after the batch norm into the forward's write: max(y, 0) (NaN stays
NaN). The backward of the pair masks grad_y first (batchnorm.py, with the residual loops).

Sums accumulate in double precision (float32 sums over a large batch lose digits), and the
variance is a second pass over the centred values (no sum-of-squares cancellation).
Channels are independent, so the channel loop runs in parallel. Each row is summed in LANES
independent accumulators: with one running total every addition waits for the previous one
(a dependency chain the compiler may not reorder, since that would change the rounding), with
an array of 16 the inner loop is elementwise and the compiler turns it into vector adds of
doubles. The write loops run in x's dtype (float32 has twice float64's vector lanes), with
coefficients computed in double and rounded once. Measured at 16 channels 32x32, batch 128,
forward+backward on 2 threads: one accumulator 11.4 ms, four 8.7 ms (session 1); 16 lanes,
float32 write loops and -march=native 2.0 ms, Numba's kernels 2.0 ms (session 3; 4.5 ms
before, settled races, benchmarks/run.py's ``race``).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef enum:
    LANES = 16  # accumulators per row sum: a fixed-length inner loop the compiler vectorises


cdef inline double _lanes_total(double* acc) noexcept nogil:
    cdef double total = 0
    cdef int j
    for j in range(LANES):
        total = total + acc[j]
    return total


cdef inline double _row_sum(const floating* row, Py_ssize_t length, double mu) noexcept nogil:
    """sum_k (row[k] - mu), in LANES independent accumulators."""
    cdef double acc[LANES]
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while k + LANES <= length:
        for j in range(LANES):
            acc[j] = acc[j] + (row[k + j] - mu)
        k = k + LANES
    while k < length:
        acc[0] = acc[0] + (row[k] - mu)
        k = k + 1
    return _lanes_total(acc)


cdef inline double _row_squares(const floating* row, Py_ssize_t length, double mu) noexcept nogil:
    """sum_k (row[k] - mu)^2, in LANES independent accumulators."""
    cdef double acc[LANES]
    cdef double d
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while k + LANES <= length:
        for j in range(LANES):
            d = row[k + j] - mu
            acc[j] = acc[j] + d * d
        k = k + LANES
    while k < length:
        d = row[k] - mu
        acc[0] = acc[0] + d * d
        k = k + 1
    return _lanes_total(acc)


cdef inline double _row_dot(const floating* g, const floating* x, Py_ssize_t length,
                            double mu) noexcept nogil:
    """sum_k g[k] * (x[k] - mu), in LANES independent accumulators."""
    cdef double acc[LANES]
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while k + LANES <= length:
        for j in range(LANES):
            acc[j] = acc[j] + g[k + j] * (x[k + j] - mu)
        k = k + LANES
    while k < length:
        acc[0] = acc[0] + g[k] * (x[k] - mu)
        k = k + 1
    return _lanes_total(acc)


def batch_norm_forward_into(const floating[:, :, ::1] x, const floating[::1] weight,
                            const floating[::1] bias, floating[:, :, ::1] y,
                            floating[::1] mean, floating[::1] inv_std, double eps, bint relu,
                            int num_threads):
    """Write y (max(y, 0) with ``relu``), the batch mean and inv_std of every channel (see the
    module docstring)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, n, k
    cdef double count = <double>(n_img * length), total, squares, mu, inv
    cdef floating scale, shift, centre, v, zero = 0
    cdef const floating* row
    cdef floating* out
    for c in prange(channels, nogil=True, schedule="static", num_threads=num_threads):
        total = 0
        for n in range(n_img):
            total = total + _row_sum(&x[n, c, 0], length, 0.0)
        mu = total / count
        squares = 0
        for n in range(n_img):
            squares = squares + _row_squares(&x[n, c, 0], length, mu)
        inv = 1.0 / sqrt(squares / count + eps)
        mean[c] = <floating>mu
        inv_std[c] = <floating>inv
        # y = (x - mean) * scale + bias in x's dtype (float32 has twice float64's vector lanes),
        # the mean rounded to that dtype first, as in the Numba kernel (both backends round alike)
        centre = <floating>mu
        scale = <floating>(weight[c] * inv)
        shift = bias[c]
        for n in range(n_img):
            row = &x[n, c, 0]
            out = &y[n, c, 0]
            if relu:
                for k in range(length):
                    v = (row[k] - centre) * scale + shift
                    out[k] = zero if v < zero else v  # NaN stays NaN
            else:
                for k in range(length):
                    out[k] = (row[k] - centre) * scale + shift


def batch_norm_backward_into(const floating[:, :, ::1] grad_y, const floating[:, :, ::1] x,
                             const floating[::1] mean, const floating[::1] inv_std,
                             const floating[::1] weight, floating[:, :, ::1] grad_x,
                             floating[::1] grad_weight, floating[::1] grad_bias, int num_threads):
    """Write grad_x, grad_weight and grad_bias (see the module docstring)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, n, k
    cdef double count = <double>(n_img * length), sum_g, sum_gx, mu, inv
    cdef floating scale, mean_g, slope, centre
    cdef const floating* g_row
    cdef const floating* x_row
    cdef floating* out
    for c in prange(channels, nogil=True, schedule="static", num_threads=num_threads):
        mu = mean[c]
        inv = inv_std[c]
        sum_g = 0
        sum_gx = 0                                   # sum(g * (x - mean))
        for n in range(n_img):
            sum_g = sum_g + _row_sum(&grad_y[n, c, 0], length, 0.0)
            sum_gx = sum_gx + _row_dot(&grad_y[n, c, 0], &x[n, c, 0], length, mu)
        grad_bias[c] = <floating>sum_g
        grad_weight[c] = <floating>(sum_gx * inv)
        # grad_x = scale * ((g - mean_g) - (x - mean) * slope), the closed form above with
        # scale = weight * inv_std, mean_g = grad_bias / M, slope = inv_std^2 * sum_gx / M
        # (coefficients in double, rounded once to x's dtype for the write loop)
        scale = <floating>(weight[c] * inv)
        mean_g = <floating>(sum_g / count)
        slope = <floating>(inv * inv * sum_gx / count)
        centre = <floating>mu
        for n in range(n_img):
            g_row = &grad_y[n, c, 0]
            x_row = &x[n, c, 0]
            out = &grad_x[n, c, 0]
            for k in range(length):
                out[k] = scale * ((g_row[k] - mean_g) - (x_row[k] - centre) * slope)
