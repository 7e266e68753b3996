"""Pooling kernels of the Cython backend (the loops are in _pool.pyx).

Output size, as PyTorch, with symmetric padding p and dilation d:

    OH = floor_or_ceil((H + 2p - d*(KH - 1) - 1) / s) + 1

and in ceil_mode the last window is dropped if it would start inside the right padding
((OH - 1)*s >= H + p), so every window starts in the image or its left padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import import_compiled, threads_for
from ._checks import floats, pair, shape4

_pool = import_compiled("_pool")

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def _output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(f"the pooling window (size {kernel}, dilation {dilation}) does not fit "
                         f"the input {size}")
    return out


def _geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (N, C, H, W), (KH, KW), (sh, sw), (ph, pw), (dh, dw), (OH, OW)."""
    n, c, h, w = shape4(input_shape, "input_shape")
    kh, kw = pair(kernel_size, "kernel_size", 1)
    sh, sw = pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    dh, dw = pair(dilation, "dilation", 1)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    oh = _output_size(h, kh, sh, ph, dh, ceil_mode)
    ow = _output_size(w, kw, sw, pw, dw, ceil_mode)
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow)


def max_pool2d_forward(x: np.ndarray, kernel_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int],
                       ceil_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """y[n, c, oy, ox] = max over the window of x padded with -inf, and the int64 flat H*W
    position of the first maximum in row-major window order."""
    (x,) = floats(x, ndim=4)
    (n, c, _, _), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = _geometry(
        x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    indices = np.empty((n, c, oh, ow), dtype=np.int64)
    _pool.max_pool2d_forward_into(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, threads_for(x.size))
    return y, indices


def max_pool2d_backward(grad_y: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """grad_x[n, c].flat[indices[n, c, oy, ox]] += grad_y[n, c, oy, ox]: each output gradient
    goes to its window's arg-max (summed where windows overlap on one maximum)."""
    (grad_y,) = floats(grad_y, ndim=4)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    n, c, h, w = shape4(input_shape, "input_shape")
    if indices.shape != grad_y.shape or grad_y.shape[:2] != (n, c):
        raise ValueError(f"grad_y {grad_y.shape} and indices {indices.shape} do not match "
                         f"input {(n, c, h, w)}")
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    bad = _pool.max_pool2d_backward_add(grad_y, indices, grad_x, threads_for(grad_x.size))
    if bad:
        raise ValueError(f"{bad} max-pool indices lie outside the {h}x{w} input planes")
    return grad_x


def avg_pool2d_forward(x: np.ndarray, kernel_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], ceil_mode: bool, count_include_pad: bool) -> np.ndarray:
    """y = window sum / divisor: the window size clipped to the padded input if
    count_include_pad, else the number of window pixels inside the image."""
    (x,) = floats(x, ndim=4)
    (n, c, _, _), (kh, kw), (sh, sw), (ph, pw), _, (oh, ow) = _geometry(
        x.shape, kernel_size, stride, padding, 1, ceil_mode)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    _pool.avg_pool2d_forward_into(x, y, kh, kw, sh, sw, ph, pw, bool(count_include_pad), threads_for(x.size))
    return y


def avg_pool2d_backward(grad_y: np.ndarray, input_shape: Sequence[int], kernel_size: Sequence[int],
                        stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                        count_include_pad: bool) -> np.ndarray:
    """grad_x[window pixels in the image] += grad_y / divisor (the adjoint of the forward)."""
    (grad_y,) = floats(grad_y, ndim=4)
    (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), _, (oh, ow) = _geometry(
        input_shape, kernel_size, stride, padding, 1, ceil_mode)
    if grad_y.shape != (n, c, oh, ow):
        raise ValueError(f"grad_y has shape {grad_y.shape}, expected {(n, c, oh, ow)}")
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    _pool.avg_pool2d_backward_add(grad_y, grad_x, kh, kw, sh, sw, ph, pw, bool(count_include_pad),
                                  threads_for(grad_x.size))
    return grad_x
