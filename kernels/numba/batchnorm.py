"""Training-mode batch normalization kernels compiled with Numba.

Same functions and arguments as ``kernels/reference/batchnorm.py``: x viewed as (N, C, L),
channel c normalised with the biased statistics of its M = N*L values. The channels are
split into shares, one per thread (``shares.py``): a channel's N*L values are all its
thread needs, so there are no shared writes and no reduction across threads. Sums are
accumulated in float64 (``reassoc`` lets LLVM vectorise them), so float32 statistics are
as accurate as the data allows.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import uint64 as _u
from tinygrad_cnn.kernels.numba.shares import run, shares_for

_FLAGS = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})


@njit(**_FLAGS)
def _forward(x, weight, bias, eps, relu, zero, y, mean, inv_std, t, T):
    """Per channel c, two passes over x then one write (reference
    ``batch_norm_forward_train``):

        mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M   (two-pass: no cancellation)
        inv_std_c = 1 / sqrt(var_c + eps),  y = (x - mean_c) * (inv_std_c * weight_c) + bias_c

    and with ``relu`` y = max(y, 0) in the same write (NaN stays NaN; ``zero`` is 0 in x's
    dtype: a literal 0 would make the select, and the loop, float64). The passes re-read one
    channel (N*L values), which mostly stays in cache between them.
    """
    N, C, L = x.shape
    M = N * L
    for c in range(t * C // T, (t + 1) * C // T):
        total = 0.0
        for n in range(N):
            row = x[n, c]
            for j in range(L):
                total += row[_u(j)]
        mu = total / M
        squares = 0.0
        for n in range(N):
            row = x[n, c]
            for j in range(L):
                d = row[_u(j)] - mu
                squares += d * d
        istd = 1.0 / np.sqrt(squares / M + eps)
        mean[c] = mu
        inv_std[c] = istd
        # the row loop runs in x's dtype: float32 stays float32 (twice the SIMD width)
        m = mean[c]
        scale = inv_std[c] * weight[c]
        shift = bias[c]
        for n in range(N):
            row = x[n, c]
            out = y[n, c]
            for j in range(L):
                v = (row[_u(j)] - m) * scale + shift
                out[_u(j)] = zero if relu and v < 0 else v


@njit(**_FLAGS, inline="always")
def _masked(g, y, j, masked, zero):
    """g[j], or ``zero`` (0 in g's dtype) where ``masked`` and the fused ReLU's output
    y[j] <= 0 (ReLU's backward); y is not read unless ``masked``."""
    return zero if masked and y[_u(j)] <= 0 else g[_u(j)]


@njit(**_FLAGS)
def _backward(gy, x, mean, inv_std, weight, masked, relu_y, zero, gx, grad_weight, grad_bias, coef, t, T):
    """Per channel, one reduction pass then one write (reference ``batch_norm_backward``):

        grad_bias = sum g,  grad_weight = sum g * x_hat = inv_std * sum g * (x - mean)
        grad_x = weight * inv_std / M * (M g - grad_bias - x_hat * grad_weight)
               = scale * ((g - grad_bias / M) - (x - mean) * k),
        scale = weight * inv_std,  k = inv_std^2 * sum g * (x - mean) / M,

    the second form needing no x_hat array. With ``masked``, g is grad_y masked by the fused
    ReLU's output ``relu_y`` (gy itself otherwise, and not read). ``coef`` (C, 3) is scratch
    in x's dtype: the float64 coefficients are rounded once into it so the write loop runs in
    that dtype.
    """
    N, C, L = x.shape
    M = N * L
    for c in range(t * C // T, (t + 1) * C // T):
        mu = mean[c]
        sum_g = 0.0
        sum_gx = 0.0
        for n in range(N):
            g = gy[n, c]
            ry = relu_y[n, c]
            row = x[n, c]
            for j in range(L):
                gj = _masked(g, ry, j, masked, zero)
                sum_g += gj
                sum_gx += gj * (row[_u(j)] - mu)
        istd = float(inv_std[c])
        grad_bias[c] = sum_g
        grad_weight[c] = sum_gx * istd
        coef[c, 0] = weight[c] * istd
        coef[c, 1] = sum_g / M
        coef[c, 2] = istd * istd * sum_gx / M
        scale, mean_g, k = coef[c, 0], coef[c, 1], coef[c, 2]
        for n in range(N):
            g = gy[n, c]
            ry = relu_y[n, c]
            row = x[n, c]
            out = gx[n, c]
            for j in range(L):
                out[_u(j)] = scale * ((_masked(g, ry, j, masked, zero) - mean_g) - (row[_u(j)] - mu) * k)


def _as_ncl(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def batch_norm_forward_train(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                             eps: float, relu: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std) with biased batch statistics per channel; mean, inv_std: (C,);
    with ``relu``, y = max(y, 0)."""
    x3 = _as_ncl(x)
    C = x3.shape[1]
    dtype = x3.dtype
    weight = np.ascontiguousarray(weight, dtype=dtype).reshape(C)
    bias = np.ascontiguousarray(bias, dtype=dtype).reshape(C)
    y = np.empty_like(x3)
    mean = np.empty(C, dtype=dtype)
    inv_std = np.empty(C, dtype=dtype)
    run(_forward, shares_for(x3.size, C), x3, weight, bias, float(eps), bool(relu), dtype.type(0), y, mean,
        inv_std)
    return y.reshape(x.shape), mean, inv_std


def batch_norm_backward(grad_y: np.ndarray, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                        weight: np.ndarray, relu_output: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_x, grad_weight, grad_bias) of the training-mode forward pass; with
    ``relu_output`` (the forward's output with ``relu``), of relu(batch norm)."""
    x3 = _as_ncl(x)
    gy3 = _as_ncl(grad_y)
    C = x3.shape[1]
    dtype = x3.dtype
    weight = np.ascontiguousarray(weight, dtype=dtype).reshape(C)
    mean = np.ascontiguousarray(mean, dtype=dtype).reshape(C)
    inv_std = np.ascontiguousarray(inv_std, dtype=dtype).reshape(C)
    masked = relu_output is not None
    relu_y = _as_ncl(relu_output) if masked else gy3  # not read unless masked
    gx = np.empty_like(x3)
    grad_weight = np.empty(C, dtype=dtype)
    grad_bias = np.empty(C, dtype=dtype)
    run(_backward, shares_for(x3.size, C), gy3, x3, mean, inv_std, weight, masked, relu_y, dtype.type(0), gx,
        grad_weight, grad_bias, np.empty((C, 3), dtype))
    return gx.reshape(x.shape), grad_weight, grad_bias
