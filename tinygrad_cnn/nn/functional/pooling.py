"""Pooling: summarise each window of a feature map by one number.

Pooling shrinks the spatial size (fewer activations, a larger receptive field for
the next layer) and makes the representation slightly invariant to small shifts.
Course variants, all with PyTorch's names, arguments and shapes:

* max pooling: the largest activation of the window ("is the feature present?");
* average pooling: the mean of the window;
* L2 / Lp-norm pooling: (sum x^p)^(1/p) over the window, between average (p=1,
  up to the window size) and max (p -> inf);
* adaptive average pooling: a fixed output size whatever the input size; output 1
  is global average pooling, the head of ResNet-style networks;
* Gaussian-weighted average pooling: a window average where pixels near the window
  centre count more.

Windows: for output position (oh, ow) and window offset (i, j) the input row/column is
``h = oh * stride - padding + i * dilation`` (same for w). Output size per axis:

    out = floor((H + 2 padding - dilation (kernel - 1) - 1) / stride) + 1

(``ceil`` instead of ``floor`` with ``ceil_mode=True``, except that a last window that
would start in the right padding is dropped). Inputs are (N, C, H, W) or, unbatched,
(C, H, W); the 1-d versions take (N, C, L) or (C, L).

Each public function parses its window once into a ``PoolGeometry`` (``geometry.py``:
the one place that checks kernel sizes, strides, paddings, dilations and flags and
computes output sizes), then runs a Function on the current backend's ``pool`` kernels.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import array_module, device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.checks import check_flag, check_float_tensors, is_int
from tinygrad_cnn.nn.functional.geometry import pool_geometry, sizes
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "gaussian_avg_pool2d", "gaussian_window",
]


# ------------------------------------------------------------------ input layout
def _spatial_input(fn: str, x: Tensor, nd: int) -> bool:
    """Check x is (N, C, *spatial) or unbatched (C, *spatial), float and non-empty (but for
    the batch: an empty batch gives an empty output, as in PyTorch); True if unbatched."""
    check_float_tensors(fn, input=x)
    if x.ndim not in (nd + 1, nd + 2):
        layout = "(N, C, H, W) or (C, H, W)" if nd == 2 else "(N, C, L) or (C, L)"
        raise ValueError(f"{fn}: input must be {layout}, got shape {x.shape}")
    if any(n == 0 for n in x.shape[-nd - 1:]):  # an empty batch gives an empty output
        raise ValueError(f"{fn}: input of shape {x.shape} is empty")
    return x.ndim == nd + 1


def _as_image(x: Tensor, nd: int, unbatched: bool) -> Tensor:
    """(C, *spatial) or (N, C, *spatial) as (N, C, H, W): a batch of one, a signal of height 1."""
    x = x.unsqueeze(0) if unbatched else x
    return x.unsqueeze(2) if nd == 1 else x


def _from_image(y: Tensor, nd: int, unbatched: bool) -> Tensor:
    y = y.squeeze(2) if nd == 1 else y
    return y.squeeze(0) if unbatched else y


def _batched_shape(x: Tensor, unbatched: bool) -> tuple[int, ...]:
    return (1, *x.shape) if unbatched else x.shape


# -------------------------------------------------------------------- max pool
class MaxPool2dFunction(Function):
    """Max pooling: y = max over each window, and the arg-max ``indices`` (flat positions
    h * W + w in each plane) as a second, non-differentiable output. Backward routes each
    output gradient to its arg-max: dL/dx[n, c, indices[n, c, oh, ow]] += dL/dy[n, c, oh, ow]."""

    def forward(self, x, geometry=None):
        self.kernels, self.geometry = kernel_module("pool", device_of(x)), geometry
        y, self.indices = self.kernels.max_pool2d_forward(xp_of(x).ascontiguousarray(x), geometry)
        return y, self.indices

    def backward(self, g):
        return self.kernels.max_pool2d_backward(xp_of(g).ascontiguousarray(g), self.indices, self.geometry)


def _max_pool(fn: str, nd: int, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    unbatched = _spatial_input(fn, x, nd)
    return_indices = check_flag(fn, "return_indices", return_indices)
    geometry = pool_geometry(fn, nd, _batched_shape(x, unbatched), kernel_size, stride, padding, dilation,
                             ceil_mode)
    y, indices = MaxPool2dFunction.apply(_as_image(x, nd, unbatched), geometry=geometry)
    y, indices = _from_image(y, nd, unbatched), _from_image(indices, nd, unbatched)
    return (y, indices) if return_indices else y


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """y[n, c, oh, ow] = max over i < KH, j < KW of x[n, c, oh sh - ph + i dh, ow sw - pw + j dw].

    Padding counts as -inf (it never wins). ``stride`` defaults to ``kernel_size``.
    With ``return_indices`` also returns the arg-max as an int64 Tensor of flat
    positions h * W + w in each (H, W) plane (PyTorch's convention). The gradient goes
    to the single arg-max; ties go to the first maximum in row-major window order. NaN
    propagates as in PyTorch: a window holding a NaN gives NaN, and its gradient goes to
    the window's last NaN.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-d max pooling over the last axis: x (N, C, L) or (C, L) -> (N, C, OL) or (C, OL).

    Computed as ``max_pool2d`` of an (N, C, 1, L) view with a (1, k) window, so the
    indices are positions along L, as PyTorch.
    """
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


# -------------------------------------------------------------------- avg pool
class AvgPool2dFunction(Function):
    """Average pooling: y = (window sum, padding = 0) / divisor; the backward pass gives
    every input of a window dL/dy / divisor (the adjoint of the same linear map)."""

    def forward(self, x, geometry=None):
        self.kernels, self.geometry = kernel_module("pool", device_of(x)), geometry
        return self.kernels.avg_pool2d_forward(xp_of(x).ascontiguousarray(x), geometry)

    def backward(self, g):
        return self.kernels.avg_pool2d_backward(xp_of(g).ascontiguousarray(g), self.geometry)


def _avg_pool(fn: str, nd: int, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override) -> Tensor:
    unbatched = _spatial_input(fn, x, nd)
    geometry = pool_geometry(fn, nd, _batched_shape(x, unbatched), kernel_size, stride, padding, 1,
                             ceil_mode, count_include_pad, divisor_override)
    y = AvgPool2dFunction.apply(_as_image(x, nd, unbatched), geometry=geometry)
    return _from_image(y, nd, unbatched)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """y[n, c, oh, ow] = (1 / divisor) sum over i < KH, j < KW of x[n, c, oh sh - ph + i, ow sw - pw + j].

    Padding contributes zeros. The divisor (PyTorch's rule) is the number of window
    positions inside the padded input [-p, H + p) (``count_include_pad=True``) or inside
    the input [0, H) itself (``False``); with ``ceil_mode`` a window hanging past the
    padding is clipped either way. ``divisor_override`` (a positive int) replaces it
    (``divisor_override=1`` gives sum pooling).
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool1d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-d average pooling over the last axis: x (N, C, L) or (C, L) -> (N, C, OL) or (C, OL)."""
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


# --------------------------------------------------------------------- Lp pool
def check_norm_type(norm_type, fn: str) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) \
            or not math.isfinite(norm_type) or norm_type <= 0:
        raise ValueError(f"{fn}: norm_type must be a positive finite number, got {norm_type!r}")
    return float(norm_type)


def lp_pool2d(x: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """Power-average (Lp-norm) pooling: y = (sum over the window of x^p)^(1/p), PyTorch's
    definition, computed as (avg_pool2d(x^p) * KH * KW)^(1/p) without padding.

    p = 2 is the course's L2-norm pooling sqrt(sum x^2); p = 1 is sum pooling (the
    average times the window size), and p -> inf approaches max pooling of |x|. For
    odd or fractional p, negative inputs give negative sums and NaN, as in PyTorch.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    p = check_norm_type(norm_type, "lp_pool2d")
    unbatched = _spatial_input("lp_pool2d", x, 2)
    kernel = pool_geometry("lp_pool2d", 2, _batched_shape(x, unbatched), kernel_size, stride, 0, 1,
                           ceil_mode).kernel
    pooled = avg_pool2d(x**p, kernel, stride, 0, ceil_mode)
    return (pooled * float(kernel[0] * kernel[1])) ** (1.0 / p)


def lp_pool1d(x: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """1-d Lp-norm pooling: y = (sum over the window of x^p)^(1/p); x (N, C, L) or (C, L)."""
    p = check_norm_type(norm_type, "lp_pool1d")
    unbatched = _spatial_input("lp_pool1d", x, 1)
    k = pool_geometry("lp_pool1d", 1, _batched_shape(x, unbatched), kernel_size, stride, 0, 1,
                      ceil_mode).kernel[1]
    return (avg_pool1d(x**p, k, stride, 0, ceil_mode) * float(k)) ** (1.0 / p)


# ---------------------------------------------------------------- adaptive pool
def _adaptive_matrix(size: int, out: int, dtype, device: str) -> Tensor:
    """P (out, size) with P[i, start_i:end_i] = 1 / (end_i - start_i), where
    start_i = floor(i size / out), end_i = ceil((i + 1) size / out): row i averages bin i."""
    matrix = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return Tensor._wrap(array_module(device).asarray(matrix))


def adaptive_sizes(output_size, spatial: tuple[int, ...], fn: str) -> tuple[int, ...]:
    n = len(spatial)
    items = (output_size,) * n if output_size is None or isinstance(output_size, (int, np.integer)) \
        else tuple(output_size)
    if len(items) != n:
        raise ValueError(f"{fn}: output_size must be an int or {n} ints (or None), got {output_size!r}")
    sizes = tuple(s if o is None else o for o, s in zip(items, spatial))
    if any(not is_int(o) or o < 1 for o in sizes):
        raise ValueError(f"{fn}: output_size must hold positive ints, got {output_size!r}")
    return tuple(int(o) for o in sizes)


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed (OH, OW), whatever the input's (H, W) (PyTorch's bins):

        y[n, c, i, j] = mean of x[n, c, hs_i:he_i, ws_j:we_j],
        hs_i = floor(i H / OH),  he_i = ceil((i + 1) H / OH)   (same for columns).

    Bins may overlap when H is not a multiple of OH. Since a rectangle's mean is a mean
    of row means, y = P_H x P_W^T with bin-averaging matrices P (OH, H) and P_W (OW, W),
    two matmuls that autograd differentiates. ``output_size=1`` is global average
    pooling, the mean over H and W. ``None`` in ``output_size`` keeps that input size.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    _spatial_input("adaptive_avg_pool2d", x, 2)
    h, w = x.shape[-2:]
    oh, ow = adaptive_sizes(output_size, (h, w), "adaptive_avg_pool2d")
    if (oh, ow) == (1, 1):
        return x.mean((-2, -1), keepdim=True)
    rows = _adaptive_matrix(h, oh, x.dtype, x.device)
    cols = _adaptive_matrix(w, ow, x.dtype, x.device)
    return rows @ x @ cols.T


def adaptive_avg_pool1d(x: Tensor, output_size) -> Tensor:
    """Adaptive average pooling over the last axis: x (N, C, L) or (C, L) -> (..., output_size),
    bins [floor(i L / out), ceil((i + 1) L / out))."""
    _spatial_input("adaptive_avg_pool1d", x, 1)
    (out,) = adaptive_sizes(output_size, x.shape[-1:], "adaptive_avg_pool1d")
    return x @ _adaptive_matrix(x.shape[-1], out, x.dtype, x.device).T


# ------------------------------------------------------------- Gaussian pooling
def check_sigma(fn: str, sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 \
            or not math.isfinite(sigma):
        raise ValueError(f"{fn}: sigma must be a positive finite number, got {sigma!r}")
    return float(sigma)


def gaussian_window(kernel_size, sigma: float = 1.0, dtype=np.float64) -> np.ndarray:
    """The normalized weights w[i, j] = g(i, j) / sum g, with
    g(i, j) = exp(-((i - c_h)^2 + (j - c_w)^2) / (2 sigma^2)) and window centre
    c = (k - 1) / 2 (between two pixels for an even k)."""
    kh, kw = sizes("gaussian_window", "kernel_size", kernel_size, 2)
    sigma = check_sigma("gaussian_window", sigma)
    i = np.arange(kh)[:, None] - (kh - 1) / 2
    j = np.arange(kw)[None, :] - (kw - 1) / 2
    g = np.exp(-(i * i + j * j) / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(dtype)


class WeightedPool2dFunction(Function):
    """y[n, c, oh, ow] = sum over i, j of w[i, j] x_pad[n, c, oh sh + i, ow sw + j] for a fixed
    window of weights w (zero padding); dL/dx_pad gets w[i, j] dL/dy at the same places."""

    def forward(self, x, weights=None, geometry=None):
        xp = xp_of(x)
        (sh, sw), (ph, pw), (oh, ow) = geometry.stride, geometry.padding, geometry.output_shape[2:]
        self.args = x.shape, weights, (sh, sw), (ph, pw), (oh, ow)
        padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        y = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for i in range(weights.shape[0]):
            for j in range(weights.shape[1]):
                y += x.dtype.type(weights[i, j]) * padded[:, :, i:i + (oh - 1) * sh + 1:sh,
                                                          j:j + (ow - 1) * sw + 1:sw]
        return y

    def backward(self, g):
        xp = xp_of(g)
        shape, weights, (sh, sw), (ph, pw), (oh, ow) = self.args
        grad = xp.zeros(shape[:2] + (shape[2] + 2 * ph, shape[3] + 2 * pw), dtype=g.dtype)
        for i in range(weights.shape[0]):
            for j in range(weights.shape[1]):
                grad[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += \
                    g.dtype.type(weights[i, j]) * g
        return grad[:, :, ph:ph + shape[2], pw:pw + shape[3]]


def gaussian_avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, sigma: float = 1.0) -> Tensor:
    """Distance-weighted average pooling: each window's average weights every pixel by a
    normalized Gaussian of its distance to the window centre,

        y[n, c, oh, ow] = sum over i < KH, j < KW of w[i, j] x[n, c, oh sh - ph + i, ow sw - pw + j],
        w[i, j] = exp(-((i - c_h)^2 + (j - c_w)^2) / (2 sigma^2)) / Z,   c = (k - 1) / 2,

    with Z making the weights sum to 1 (see :func:`gaussian_window`); padding is zeros
    and keeps its weight (like ``count_include_pad=True``). sigma -> inf gives plain
    average pooling; a small sigma keeps only the centre pixel (for odd k). Windows,
    ``stride`` (default ``kernel_size``) and validation as :func:`avg_pool2d`.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    fn = "gaussian_avg_pool2d"
    unbatched = _spatial_input(fn, x, 2)
    geometry = pool_geometry(fn, 2, _batched_shape(x, unbatched), kernel_size, stride, padding)
    weights = gaussian_window(geometry.kernel, check_sigma(fn, sigma))
    y = WeightedPool2dFunction.apply(_as_image(x, 2, unbatched), weights=weights, geometry=geometry)
    return _from_image(y, 2, unbatched)
