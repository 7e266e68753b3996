"""Pooling kernels of the Cython backend (the loops are in _pool.pyx), on a checked
``PoolGeometry`` (output size included: PyTorch's rule, ceil_mode too).
"""

from __future__ import annotations

import numpy as np

from . import import_compiled, threads_for
from ._checks import floats, shaped

_pool = import_compiled("_pool")

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]


def _is_2x2_inside(g) -> bool:
    """2x2 windows at stride 2, no padding or dilation, every window inside the image: the
    loops of their own in _pool.pyx."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = g.flat()
    h, w = g.input_shape[2], g.input_shape[3]
    return (kh, kw, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1) and 2 * oh <= h and 2 * ow <= w


def max_pool2d_forward(x: np.ndarray, g) -> tuple[np.ndarray, np.ndarray]:
    """y[n, c, oy, ox] = max over the window of x padded with -inf, and the int64 flat H*W
    position of the first maximum in row-major window order (of the last NaN, if any)."""
    (x,) = floats(x, ndim=4)
    shaped(x, g.input_shape, "x")
    kh, kw, sh, sw, ph, pw, dh, dw, _, _ = g.flat()
    y = np.empty(g.output_shape, dtype=x.dtype)
    indices = np.empty(g.output_shape, dtype=np.int64)
    if _is_2x2_inside(g):
        _pool.max_pool2d_forward_2x2_into(x, y, indices, threads_for(x.size))
    else:
        _pool.max_pool2d_forward_into(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, threads_for(x.size))
    return y, indices


def max_pool2d_backward(grad_y: np.ndarray, indices: np.ndarray, g) -> np.ndarray:
    """grad_x[n, c].flat[indices[n, c, oy, ox]] += grad_y[n, c, oy, ox]: each output gradient
    goes to its window's arg-max (summed where windows overlap on one maximum)."""
    (grad_y,) = floats(grad_y, ndim=4)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    shaped(grad_y, g.output_shape, "grad_y")
    shaped(indices, g.output_shape, "indices")
    grad_x = np.zeros(g.input_shape, dtype=grad_y.dtype)
    bad = _pool.max_pool2d_backward_add(grad_y, indices, grad_x, threads_for(grad_x.size))
    if bad:
        h, w = g.input_shape[2:]
        raise ValueError(f"{bad} max-pool indices lie outside the {h}x{w} input planes")
    return grad_x


def _avg_args(g) -> tuple:
    kh, kw, sh, sw, ph, pw, *_ = g.flat()
    return kh, kw, sh, sw, ph, pw, bool(g.count_include_pad), g.divisor_override or 0


def avg_pool2d_forward(x: np.ndarray, g) -> np.ndarray:
    """y = window sum / divisor: ``divisor_override``, else the window size clipped to the
    padded input if count_include_pad, else the number of window pixels inside the image."""
    (x,) = floats(x, ndim=4)
    shaped(x, g.input_shape, "x")
    y = np.empty(g.output_shape, dtype=x.dtype)
    if _is_2x2_inside(g):
        _pool.avg_pool2d_forward_2x2_into(x, y, g.divisor_override or 4, threads_for(x.size))
    else:
        _pool.avg_pool2d_forward_into(x, y, *_avg_args(g), threads_for(x.size))
    return y


def avg_pool2d_backward(grad_y: np.ndarray, g) -> np.ndarray:
    """grad_x[window pixels in the image] += grad_y / divisor (the adjoint of the forward)."""
    (grad_y,) = floats(grad_y, ndim=4)
    shaped(grad_y, g.output_shape, "grad_y")
    if _is_2x2_inside(g):
        h, w = g.input_shape[2], g.input_shape[3]
        oh, ow = g.output_shape[2], g.output_shape[3]
        # every pixel is written when the windows tile the image; else zeros for the rest
        make = np.empty if (2 * oh, 2 * ow) == (h, w) else np.zeros
        grad_x = make(g.input_shape, dtype=grad_y.dtype)
        _pool.avg_pool2d_backward_2x2_add(grad_y, grad_x, g.divisor_override or 4, threads_for(grad_x.size))
        return grad_x
    grad_x = np.zeros(g.input_shape, dtype=grad_y.dtype)
    _pool.avg_pool2d_backward_add(grad_y, grad_x, *_avg_args(g), threads_for(grad_x.size))
    return grad_x
