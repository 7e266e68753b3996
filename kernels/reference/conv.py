"""Reference convolution kernels, written straight from the definition (the oracle).

Deep-learning "convolution" is cross-correlation. For one image, one output
map k and a group of input channels c, with stride s, dilation d and the input
I already zero-padded:

    S[k, i, j] = sum_c sum_m sum_n  I[c, s_h i + d_h m, s_w j + d_w n] * K[k, c, m, n]

Read the double sum over kernel offsets (m, n) the other way round and it
becomes the form used here: for each offset (m, n), take the *shifted, strided
slice* of the padded input whose element (i, j) is I[c, s_h i + d_h m, s_w j + d_w n],
multiply it by the 1x1 "kernel" K[:, :, m, n] (a matrix over channels) and add
it to the output. That is KH * KW matrix products instead of N * K * OH * OW * C
Python iterations: readable as the formula, yet fast enough to train small nets.

Layout is PyTorch's: x (N, C, H, W), weight (K, C / groups, KH, KW); with
``groups`` G the channels split into G independent blocks, output block g sees
only input block g. Every size comes checked in a ``ConvGeometry`` (``g``, see
``tinygrad_cnn/nn/functional/geometry.py``): ``g.stride=(sh, sw)``,
``g.padding=(top, bottom, left, right)`` (zeros), ``g.dilation=(dh, dw)``,
``g.groups``, and the output size ``g.out_height, g.out_width``. Kernels never add
bias and always return new arrays.

Every backend (numba, cython, cupy) implements these same functions with these
same arguments, and is tested against this module. ``strategy`` is accepted for
the common interface; this backend has one way of computing each function.
"""

from __future__ import annotations

import numpy as np


def _pad(x: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _window(m: int, n: int, out_hw: tuple[int, int], stride, dilation) -> tuple[slice, slice]:
    """The (rows, cols) slice of the padded input that kernel offset (m, n) touches:
    element (i, j) of the slice is padded[s_h i + d_h m, s_w j + d_w n]."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    rows = slice(m * dh, m * dh + sh * (oh - 1) + 1, sh)
    cols = slice(n * dw, n * dw + sw * (ow - 1) + 1, sw)
    return rows, cols


STRATEGIES = ("definition",)


def choose(geometry, threads: int | None = None) -> str:
    """The one strategy of this backend (the compiled backends choose among several)."""
    return "definition"


def conv2d_forward(x, weight, geometry, strategy=None):
    """Cross-correlation y[b, k, i, j] = sum_{c, m, n} xpad[b, c, sh i + dh m, sw j + dw n] w[k, c, m, n]
    (c running over the input channels of k's group).

    x (N, C, H, W), weight (K, C/G, KH, KW) -> y (N, K, OH, OW),
    OH = (H + top + bottom - dh (KH - 1) - 1) // sh + 1 (likewise OW).
    """
    n_batch = x.shape[0]
    out_channels, group_channels, kh, kw = weight.shape
    g, stride, dilation = geometry.groups, geometry.stride, geometry.dilation
    oh, ow = geometry.out_height, geometry.out_width
    xpad = _pad(x, geometry.padding)
    # weight[:, :, m, n] as G matrices (K/G, C/G): the channel mixing at one kernel offset
    w = weight.reshape(g, out_channels // g, group_channels, kh, kw)
    y = np.zeros((n_batch, g, out_channels // g, oh * ow), dtype=x.dtype)
    for m in range(kh):
        for n in range(kw):
            rows, cols = _window(m, n, (oh, ow), stride, dilation)
            patch = xpad[:, :, rows, cols].reshape(n_batch, g, group_channels, oh * ow)
            # (G, K/G, C/G) @ (N, G, C/G, OH OW) -> (N, G, K/G, OH OW): sum over c
            y += np.matmul(w[:, :, :, m, n], patch)
    return y.reshape(n_batch, out_channels, oh, ow)


def conv2d_backward_input(grad_y, weight, geometry, strategy=None):
    """dL/dx: each kernel offset (m, n) sent w[k, c, m, n] * grad_y[b, k, i, j] back to the input
    pixel it read, xpad[b, c, sh i + dh m, sw j + dw n]; sum those contributions, then drop the
    padding (padded zeros are constants, their gradient goes nowhere).

    This is also the forward pass of the transposed convolution (the adjoint of conv2d).
    """
    n_batch, channels, height, width = geometry.input_shape
    out_channels, group_channels, kh, kw = weight.shape
    g, stride, dilation = geometry.groups, geometry.stride, geometry.dilation
    top, bottom, left, right = geometry.padding
    oh, ow = grad_y.shape[2], grad_y.shape[3]
    gy = grad_y.reshape(n_batch, g, out_channels // g, oh * ow)
    # transpose each group's (K/G, C/G) matrix: the adjoint of a matrix is its transpose
    wt = weight.reshape(g, out_channels // g, group_channels, kh, kw).transpose(0, 2, 1, 3, 4)
    grad_pad = np.zeros((n_batch, channels, height + top + bottom, width + left + right), dtype=grad_y.dtype)
    for m in range(kh):
        for n in range(kw):
            rows, cols = _window(m, n, (oh, ow), stride, dilation)
            contribution = np.matmul(wt[:, :, :, m, n], gy)  # (N, G, C/G, OH OW)
            grad_pad[:, :, rows, cols] += contribution.reshape(n_batch, channels, oh, ow)
    return np.ascontiguousarray(grad_pad[:, :, top : top + height, left : left + width])


def conv2d_backward_weight(grad_y, x, geometry, strategy=None):
    """dL/dw[k, c, m, n] = sum_{b, i, j} grad_y[b, k, i, j] xpad[b, c, sh i + dh m, sw j + dw n]:
    the correlation of the input with the output gradient, one kernel offset at a time."""
    n_batch = x.shape[0]
    weight_shape = geometry.weight_shape
    out_channels, group_channels, kh, kw = weight_shape
    g, stride, dilation = geometry.groups, geometry.stride, geometry.dilation
    oh, ow = grad_y.shape[2], grad_y.shape[3]
    xpad = _pad(x, geometry.padding)
    gy = grad_y.reshape(n_batch, g, out_channels // g, oh * ow)
    grad_w = np.zeros((g, out_channels // g, group_channels, kh, kw), dtype=grad_y.dtype)
    for m in range(kh):
        for n in range(kw):
            rows, cols = _window(m, n, (oh, ow), stride, dilation)
            patch = xpad[:, :, rows, cols].reshape(n_batch, g, group_channels, oh * ow)
            # (N, G, K/G, L) @ (N, G, L, C/G) summed over the batch -> (G, K/G, C/G)
            grad_w[:, :, :, m, n] = np.matmul(gy, patch.transpose(0, 1, 3, 2)).sum(axis=0)
    return grad_w.reshape(weight_shape)


def im2col(x, geometry):
    """Unfold every receptive field into a column: cols[b, (c, m, n), (i, j)] =
    xpad[b, c, sh i + dh m, sw j + dw n], shape (N, C KH KW, OH OW).

    Rows are ordered channel-major then (m, n) row-major, exactly like
    ``weight.reshape(K, C KH KW)``, so ``weight_matrix @ cols`` is the convolution
    (PyTorch's ``unfold``).
    """
    n_batch, channels = x.shape[:2]
    (kh, kw), stride, dilation = geometry.kernel, geometry.stride, geometry.dilation
    oh, ow = geometry.out_height, geometry.out_width
    xpad = _pad(x, geometry.padding)
    cols = np.empty((n_batch, channels, kh, kw, oh, ow), dtype=x.dtype)
    for m in range(kh):
        for n in range(kw):
            rows_, cols_ = _window(m, n, (oh, ow), stride, dilation)
            cols[:, :, m, n] = xpad[:, :, rows_, cols_]
    return cols.reshape(n_batch, channels * kh * kw, oh * ow)


def col2im(cols, geometry):
    """The adjoint of :func:`im2col` (PyTorch's ``fold``): every column entry is added back to
    the input pixel it was copied from, so pixels shared by overlapping windows receive the
    sum; the padding border is dropped. Not an inverse: <im2col(x), c> = <x, col2im(c)>."""
    n_batch, channels, height, width = geometry.input_shape
    (kh, kw), stride, dilation = geometry.kernel, geometry.stride, geometry.dilation
    top, bottom, left, right = geometry.padding
    oh, ow = geometry.out_height, geometry.out_width
    blocks = cols.reshape(n_batch, channels, kh, kw, oh, ow)
    xpad = np.zeros((n_batch, channels, height + top + bottom, width + left + right), dtype=cols.dtype)
    for m in range(kh):
        for n in range(kw):
            rows_, cols_ = _window(m, n, (oh, ow), stride, dilation)
            xpad[:, :, rows_, cols_] += blocks[:, :, m, n]
    return np.ascontiguousarray(xpad[:, :, top : top + height, left : left + width])
