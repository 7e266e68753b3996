# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled loops of training-mode batch normalization, x viewed as (N, C, L).

Per channel c, over the M = N*L values x[:, c, :] (biased statistics):

    mean = sum(x) / M,  var = sum((x - mean)^2) / M,  inv_std = 1 / sqrt(var + eps)
    xhat = (x - mean) * inv_std,  y = weight * xhat + bias

Backward, with g = grad_y:

    grad_bias   = sum(g)
    grad_weight = sum(g * xhat)
    grad_x      = weight * inv_std * (g - grad_bias / M - xhat * grad_weight / M)

Sums accumulate in double precision (float32 sums over a large batch lose digits), and the
variance is a second pass over the centred values (no sum-of-squares cancellation).
Channels are independent, so the channel loop runs in parallel. Each row is summed in four
independent accumulators: with one running total every addition waits for the previous one
(a dependency chain the compiler may not reorder), with four the additions overlap and
vectorise (measured at 16 channels 32x32, batch 128: forward 5.9 -> 4.1 ms, forward+backward
11.4 -> 8.7 ms).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef inline double _row_sum(const floating* row, Py_ssize_t length, double mu) noexcept nogil:
    """sum_k (row[k] - mu), in four independent accumulators."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t k = 0
    while k + 4 <= length:
        s0 = s0 + (row[k] - mu)
        s1 = s1 + (row[k + 1] - mu)
        s2 = s2 + (row[k + 2] - mu)
        s3 = s3 + (row[k + 3] - mu)
        k = k + 4
    while k < length:
        s0 = s0 + (row[k] - mu)
        k = k + 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _row_squares(const floating* row, Py_ssize_t length, double mu) noexcept nogil:
    """sum_k (row[k] - mu)^2, in four independent accumulators."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0, d1, d2, d3
    cdef Py_ssize_t k = 0
    while k + 4 <= length:
        d0 = row[k] - mu
        d1 = row[k + 1] - mu
        d2 = row[k + 2] - mu
        d3 = row[k + 3] - mu
        s0 = s0 + d0 * d0
        s1 = s1 + d1 * d1
        s2 = s2 + d2 * d2
        s3 = s3 + d3 * d3
        k = k + 4
    while k < length:
        d0 = row[k] - mu
        s0 = s0 + d0 * d0
        k = k + 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _row_dot(const floating* g, const floating* x, Py_ssize_t length,
                            double mu) noexcept nogil:
    """sum_k g[k] * (x[k] - mu), in four independent accumulators."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t k = 0
    while k + 4 <= length:
        s0 = s0 + g[k] * (x[k] - mu)
        s1 = s1 + g[k + 1] * (x[k + 1] - mu)
        s2 = s2 + g[k + 2] * (x[k + 2] - mu)
        s3 = s3 + g[k + 3] * (x[k + 3] - mu)
        k = k + 4
    while k < length:
        s0 = s0 + g[k] * (x[k] - mu)
        k = k + 1
    return (s0 + s1) + (s2 + s3)


def batch_norm_forward_into(const floating[:, :, ::1] x, const floating[::1] weight,
                            const floating[::1] bias, floating[:, :, ::1] y,
                            floating[::1] mean, floating[::1] inv_std, double eps, int num_threads):
    """Write y, the batch mean and inv_std of every channel (see the module docstring)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, n, k
    cdef double count = <double>(n_img * length), total, squares, mu, inv, scale, shift
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
        scale = weight[c] * inv                      # y = x * scale + shift, one multiply-add
        shift = bias[c] - mu * scale
        for n in range(n_img):
            row = &x[n, c, 0]
            out = &y[n, c, 0]
            for k in range(length):
                out[k] = <floating>(row[k] * scale + shift)


def batch_norm_backward_into(const floating[:, :, ::1] grad_y, const floating[:, :, ::1] x,
                             const floating[::1] mean, const floating[::1] inv_std,
                             const floating[::1] weight, floating[:, :, ::1] grad_x,
                             floating[::1] grad_weight, floating[::1] grad_bias, int num_threads):
    """Write grad_x, grad_weight and grad_bias (see the module docstring)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, n, k
    cdef double count = <double>(n_img * length), sum_g, sum_gx, mu, inv, a, b, shift
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
        # grad_x = a * g + b * x + shift, the closed form above expanded per channel
        a = weight[c] * inv
        b = -a * inv * inv * sum_gx / count
        shift = -a * sum_g / count - b * mu
        for n in range(n_img):
            g_row = &grad_y[n, c, 0]
            x_row = &x[n, c, 0]
            out = &grad_x[n, c, 0]
            for k in range(length):
                out[k] = <floating>(a * g_row[k] + b * x_row[k] + shift)
