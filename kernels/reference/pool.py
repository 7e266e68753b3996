"""Pooling kernels written from the definition (the oracle for the compiled backends).

Layout NCHW. For output position (oh, ow) and window offset (i, j), i < KH, j < KW,
the input row/column read is

    h = oh * sh - ph + i * dh,        w = ow * sw - pw + j * dw

and positions outside [0, H) x [0, W) are padding. Every size comes checked in a
``PoolGeometry`` (``g``, see ``tinygrad_cnn/nn/functional/geometry.py``), output size
included (PyTorch's rule, ceil_mode too).

Every kernel loops over the KH * KW window offsets and handles all (n, c, oh, ow) at
once with one strided slice per offset: readable, and fast enough to train small nets.
Arrays are C-contiguous.
"""

from __future__ import annotations

import numpy as np


def _padded(x, fill, kernel_size, stride, padding, dilation, out_hw):
    """x framed by ``fill``: ``padding`` before, and after enough to hold every window
    (with ceil_mode the last window may run past the symmetric padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_hw
    h, w = x.shape[2:]
    need_h = (oh - 1) * sh + dh * (kh - 1) + 1
    need_w = (ow - 1) * sw + dw * (kw - 1) + 1
    after_h = max(need_h - h - ph, 0)
    after_w = max(need_w - w - pw, 0)
    return np.pad(x, ((0, 0), (0, 0), (ph, after_h), (pw, after_w)), constant_values=fill)


def _window_slice(i, j, stride, dilation, out_hw):
    """The (oh, ow) grid of padded positions read by window offset (i, j)."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return (slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))


def max_pool2d_forward(x, geometry):
    """y[n, c, oh, ow] = max over the window; indices = argmax as h * W + w.

    Padding counts as -inf, so it never wins against a real element. Ties go to the
    first maximum in row-major window order (i, then j), as PyTorch: an offset
    replaces the current best only if strictly larger. NaN propagates, as in PyTorch:
    a NaN is larger than everything, and the last NaN of the window (in that order)
    is its arg-max. A window holding only padding (possible with dilation) gets value
    -inf and index -1.
    """
    n, c, h, w = x.shape
    kernel_size, stride, padding, dilation = geometry.kernel, geometry.stride, geometry.padding, \
        geometry.dilation
    oh, ow = geometry.out_height, geometry.out_width
    xp = _padded(x, -np.inf, kernel_size, stride, padding, dilation, (oh, ow))
    # input coordinates of each output position's window origin
    rows0 = np.arange(oh) * stride[0] - padding[0]
    cols0 = np.arange(ow) * stride[1] - padding[1]
    best = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    indices = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for i in range(kernel_size[0]):
        rows = rows0 + i * dilation[0]
        for j in range(kernel_size[1]):
            cols = cols0 + j * dilation[1]
            inside = (((rows >= 0) & (rows < h))[:, None]) & (((cols >= 0) & (cols < w))[None, :])
            candidate = xp[(slice(None), slice(None)) + _window_slice(i, j, stride, dilation, (oh, ow))]
            # the first real element always takes over from "nothing yet" (index -1),
            # afterwards only a strictly larger one (first maximum wins) or a NaN
            take = inside & ((candidate > best) | (indices < 0) | np.isnan(candidate))
            best = np.where(take, candidate, best)
            indices = np.where(take, rows[:, None] * w + cols[None, :], indices)
    return best, indices


def max_pool2d_backward(grad_y, indices, geometry):
    """grad_x[n, c, indices[n, c, oh, ow]] += grad_y[n, c, oh, ow]: each output's gradient
    goes to its single arg-max; an input that is the maximum of overlapping windows
    collects the sum of their gradients."""
    n, c, h, w = input_shape = geometry.input_shape
    grad_x = np.zeros((n * c, h * w), dtype=grad_y.dtype)
    pixels = geometry.out_height * geometry.out_width
    planes = np.broadcast_to(np.arange(n * c)[:, None], (n * c, pixels))
    flat_idx = indices.reshape(n * c, pixels)
    valid = flat_idx >= 0
    np.add.at(grad_x, (planes[valid], flat_idx[valid]), grad_y.reshape(n * c, pixels)[valid])
    return grad_x.reshape(input_shape)


def _avg_divisors(size, kernel, stride, padding, out, count_include_pad):
    """Per-axis window sizes used as divisors (PyTorch's rule): the window clipped to the
    padded input [-p, size + p), or, without count_include_pad, to the input [0, size)."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def _divisors(geometry, dtype):
    """(OH, OW) divisors of the windows: ``divisor_override`` if set, else the clipped
    window areas."""
    g = geometry
    if g.divisor_override is not None:
        return np.full((g.out_height, g.out_width), g.divisor_override, dtype=dtype)
    h, w = g.input_shape[2:]
    div_h = _avg_divisors(h, g.kernel[0], g.stride[0], g.padding[0], g.out_height, g.count_include_pad)
    div_w = _avg_divisors(w, g.kernel[1], g.stride[1], g.padding[1], g.out_width, g.count_include_pad)
    return (div_h[:, None] * div_w[None, :]).astype(dtype)


def avg_pool2d_forward(x, geometry):
    """y[n, c, oh, ow] = (sum of the window, padding = 0) / divisor, where the divisor is
    ``divisor_override`` if given, else the window area inside the padded input
    (count_include_pad=True) or inside the input itself (False), as PyTorch."""
    n, c = x.shape[:2]
    kernel_size, stride, padding, one = geometry.kernel, geometry.stride, geometry.padding, (1, 1)
    oh, ow = geometry.out_height, geometry.out_width
    xp = _padded(x, 0, kernel_size, stride, padding, one, (oh, ow))
    total = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            total += xp[(slice(None), slice(None)) + _window_slice(i, j, stride, one, (oh, ow))]
    return total / _divisors(geometry, x.dtype)


def avg_pool2d_backward(grad_y, geometry):
    """The adjoint of the forward pass: every input position of a window receives
    grad_y / divisor of that window (summed over the windows that contain it)."""
    input_shape = geometry.input_shape
    n, c, h, w = input_shape
    kernel_size, stride, padding, one = geometry.kernel, geometry.stride, geometry.padding, (1, 1)
    oh, ow = grad_y.shape[2:]
    share = grad_y / _divisors(geometry, grad_y.dtype)
    grad_padded = _padded(np.zeros(input_shape, dtype=grad_y.dtype), 0, kernel_size, stride, padding,
                          one, (oh, ow))
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            grad_padded[(slice(None), slice(None)) + _window_slice(i, j, stride, one, (oh, ow))] += share
    return np.ascontiguousarray(grad_padded[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w])
