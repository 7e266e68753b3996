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
Channels are independent, so the channel loop runs in parallel.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


def batch_norm_forward_into(const floating[:, :, ::1] x, const floating[::1] weight,
                            const floating[::1] bias, floating[:, :, ::1] y,
                            floating[::1] mean, floating[::1] inv_std, double eps, int num_threads):
    """Write y, the batch mean and inv_std of every channel (see the module docstring)."""
    cdef Py_ssize_t n_img = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, n, k
    cdef double count = <double>(n_img * length), total, squares, mu, inv, d, scale, shift
    cdef const floating* row
    cdef floating* out
    for c in prange(channels, nogil=True, schedule="static", num_threads=num_threads):
        total = 0
        for n in range(n_img):
            row = &x[n, c, 0]
            for k in range(length):
                total = total + row[k]
        mu = total / count
        squares = 0
        for n in range(n_img):
            row = &x[n, c, 0]
            for k in range(length):
                d = row[k] - mu
                squares = squares + d * d
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
            g_row = &grad_y[n, c, 0]
            x_row = &x[n, c, 0]
            for k in range(length):
                sum_g = sum_g + g_row[k]
                sum_gx = sum_gx + g_row[k] * (x_row[k] - mu)
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
