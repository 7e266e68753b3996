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
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import array_module, device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.kernels.reference.pool import pool_output_size
from tinygrad_cnn.nn.functional.checks import LARGEST_ARGUMENT
from tinygrad_cnn.tensor import FLOAT_DTYPES, Tensor

__all__ = [
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "gaussian_avg_pool2d", "gaussian_window",
    "pool_output_size",
]


# ------------------------------------------------------------------ validation
def _ints(value, n: int, name: str, fn: str) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints (at most LARGEST_ARGUMENT), as a tuple of ``n`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items = (value,) * n
    elif isinstance(value, (tuple, list)):
        items = tuple(value) * n if len(value) == 1 else tuple(value)
    else:
        raise ValueError(f"{fn}: {name} must be an int or {n} ints, got {value!r}")
    if len(items) != n or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool)
                              for v in items):
        raise ValueError(f"{fn}: {name} must be an int or {n} ints, got {value!r}")
    if any(v > LARGEST_ARGUMENT for v in items):
        raise ValueError(f"{fn}: {name} {value!r} is too large (at most {LARGEST_ARGUMENT})")
    return tuple(int(v) for v in items)


def _check_input(x: Tensor, spatial: int, fn: str) -> bool:
    """Check x is (N, C, *spatial) or unbatched (C, *spatial); True if unbatched."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (spatial + 1, spatial + 2):
        layout = "(N, C, H, W) or (C, H, W)" if spatial == 2 else "(N, C, L) or (C, L)"
        raise ValueError(f"{fn}: input must be {layout}, got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: input must be float32 or float64, got {x.dtype}")
    if any(n == 0 for n in x.shape):
        raise ValueError(f"{fn}: input of shape {x.shape} is empty")
    return x.ndim == spatial + 1


def window_params(fn: str, kernel_size, stride=None, padding=0, dilation=1, n: int = 2):
    """Validate a pooling window as PyTorch does and return (kernel, stride, padding, dilation)
    as n-tuples: positive kernel, stride and dilation, 0 <= padding <= kernel_size // 2."""
    kernels = _ints(kernel_size, n, "kernel_size", fn)
    # PyTorch: stride None (or an empty list) means stride = kernel_size
    strides = kernels if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _ints(stride, n, "stride", fn)
    paddings = _ints(padding, n, "padding", fn)
    dilations = _ints(dilation, n, "dilation", fn)
    if min(kernels) <= 0:
        raise ValueError(f"{fn}: kernel_size must be greater than zero, got {kernel_size!r}")
    if min(strides) <= 0:
        raise ValueError(f"{fn}: stride must be greater than zero, got {stride!r}")
    if min(dilations) <= 0:
        raise ValueError(f"{fn}: dilation must be greater than zero, got {dilation!r}")
    if min(paddings) < 0:
        raise ValueError(f"{fn}: padding must be non-negative, got {padding!r}")
    if any(p > k // 2 for p, k in zip(paddings, kernels)):
        raise ValueError(f"{fn}: pad should be at most half of kernel size, got padding={paddings!r} "
                         f"and kernel_size={kernels!r}")
    return kernels, strides, paddings, dilations


def _window_args(fn, x_shape, kernel_size, stride, padding, dilation, ceil_mode, n=2):
    """``window_params`` plus the output size, which must be at least 1 along every axis."""
    kernel, stride, padding, dilation = window_params(fn, kernel_size, stride, padding, dilation, n)
    sizes = x_shape[-n:]
    out = tuple(pool_output_size(s, k, st, p, d, ceil_mode)
                for s, k, st, p, d in zip(sizes, kernel, stride, padding, dilation))
    if min(out) < 1:
        raise ValueError(f"{fn}: input of spatial size {tuple(sizes)} is too small for "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}, "
                         f"dilation={dilation}: calculated output size {out}")
    return kernel, stride, padding, dilation, out


def _batched(x: Tensor, unbatched: bool) -> Tensor:
    return x.unsqueeze(0) if unbatched else x


# -------------------------------------------------------------------- max pool
class MaxPool2dFunction(Function):
    """Max pooling; backward routes each output gradient to its single arg-max.

    The kernel's forward pass yields the values and the arg-max ``indices`` (flat
    positions h * W + w in each plane) at once; ``max_pool2d`` runs it (it must hand
    the indices back with ``return_indices``) and this Function records the routing:
    dL/dx[n, c, indices[n, c, oh, ow]] += dL/dy[n, c, oh, ow].
    """

    def forward(self, x, values=None, indices=None):
        self.indices, self.input_shape = indices, x.shape
        return values

    def backward(self, g):
        kernels = kernel_module("pool", device_of(g))
        return kernels.max_pool2d_backward(xp_of(g).ascontiguousarray(g), self.indices, self.input_shape)


def _max_pool(x: Tensor, kernel, stride, padding, dilation, ceil_mode, return_indices, unbatched):
    x = _batched(x, unbatched)
    data = xp_of(x.data).ascontiguousarray(x.data)
    values, indices = kernel_module("pool", x.device).max_pool2d_forward(
        data, kernel, stride, padding, dilation, bool(ceil_mode))
    y = MaxPool2dFunction.apply(x, values=values, indices=indices)
    idx = Tensor._wrap(indices)
    if unbatched:
        y, idx = y.squeeze(0), Tensor._wrap(indices[0])
    return (y, idx) if return_indices else y


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """y[n, c, oh, ow] = max over i < KH, j < KW of x[n, c, oh sh - ph + i dh, ow sw - pw + j dw].

    Padding counts as -inf (it never wins). ``stride`` defaults to ``kernel_size``.
    With ``return_indices`` also returns the arg-max as an int64 Tensor of flat
    positions h * W + w in each (H, W) plane (PyTorch's convention). The gradient goes
    to the single arg-max; ties go to the first maximum in row-major window order.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    unbatched = _check_input(x, 2, "max_pool2d")
    kernel, stride, padding, dilation, _ = _window_args(
        "max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool(x, kernel, stride, padding, dilation, ceil_mode, return_indices, unbatched)


def max_pool1d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-d max pooling over the last axis: x (N, C, L) or (C, L) -> (N, C, OL) or (C, OL).

    Computed as ``max_pool2d`` of an (N, C, 1, L) view with a (1, k) window, so the
    indices are positions along L, as PyTorch.
    """
    unbatched = _check_input(x, 1, "max_pool1d")
    kernel, stride, padding, dilation, _ = _window_args(
        "max_pool1d", x.shape, kernel_size, stride, padding, dilation, ceil_mode, n=1)
    x4 = _batched(x, unbatched).unsqueeze(2)
    y, idx = _max_pool(x4, (1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation,
                       ceil_mode, True, False)
    y, idx = y.squeeze(2), Tensor._wrap(idx.data[:, :, 0])
    if unbatched:
        y, idx = y.squeeze(0), Tensor._wrap(idx.data[0])
    return (y, idx) if return_indices else y


# -------------------------------------------------------------------- avg pool
class AvgPool2dFunction(Function):
    """Average pooling: y = (window sum, padding = 0) / divisor; the backward pass gives
    every input of a window dL/dy / divisor (the adjoint of the same linear map)."""

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=False,
                count_include_pad=True):
        self.args = (x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad)
        kernels = kernel_module("pool", device_of(x))
        return kernels.avg_pool2d_forward(xp_of(x).ascontiguousarray(x), kernel_size, stride, padding,
                                          ceil_mode, count_include_pad)

    def backward(self, g):
        kernels = kernel_module("pool", device_of(g))
        return kernels.avg_pool2d_backward(xp_of(g).ascontiguousarray(g), *self.args)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """y[n, c, oh, ow] = (1 / divisor) sum over i < KH, j < KW of x[n, c, oh sh - ph + i, ow sw - pw + j].

    Padding contributes zeros. The divisor (PyTorch's rule) is the number of window
    positions inside the padded input [-p, H + p) (``count_include_pad=True``) or inside
    the input [0, H) itself (``False``); with ``ceil_mode`` a window hanging past the
    padding is clipped either way.
    x: (N, C, H, W) or (C, H, W) -> y: (N, C, OH, OW) or (C, OH, OW).
    """
    unbatched = _check_input(x, 2, "avg_pool2d")
    kernel, stride, padding, _, _ = _window_args("avg_pool2d", x.shape, kernel_size, stride, padding,
                                                 1, ceil_mode)
    y = AvgPool2dFunction.apply(_batched(x, unbatched), kernel_size=kernel, stride=stride,
                                padding=padding, ceil_mode=bool(ceil_mode),
                                count_include_pad=bool(count_include_pad))
    return y.squeeze(0) if unbatched else y


def avg_pool1d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-d average pooling over the last axis: x (N, C, L) or (C, L) -> (N, C, OL) or (C, OL)."""
    unbatched = _check_input(x, 1, "avg_pool1d")
    kernel, stride, padding, _, _ = _window_args("avg_pool1d", x.shape, kernel_size, stride, padding,
                                                 1, ceil_mode, n=1)
    y = AvgPool2dFunction.apply(_batched(x, unbatched).unsqueeze(2), kernel_size=(1,) + kernel,
                                stride=(1,) + stride, padding=(0,) + padding, ceil_mode=bool(ceil_mode),
                                count_include_pad=bool(count_include_pad)).squeeze(2)
    return y.squeeze(0) if unbatched else y


# --------------------------------------------------------------------- Lp pool
def _check_norm_type(norm_type, fn: str) -> float:
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
    p = _check_norm_type(norm_type, "lp_pool2d")
    _check_input(x, 2, "lp_pool2d")
    kernel, *_ = _window_args("lp_pool2d", x.shape, kernel_size, stride, 0, 1, ceil_mode)
    pooled = avg_pool2d(x**p, kernel, stride, 0, ceil_mode)
    return (pooled * float(kernel[0] * kernel[1])) ** (1.0 / p)


def lp_pool1d(x: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """1-d Lp-norm pooling: y = (sum over the window of x^p)^(1/p); x (N, C, L) or (C, L)."""
    p = _check_norm_type(norm_type, "lp_pool1d")
    _check_input(x, 1, "lp_pool1d")
    (k,), *_ = _window_args("lp_pool1d", x.shape, kernel_size, stride, 0, 1, ceil_mode, n=1)
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


def _adaptive_sizes(output_size, spatial: tuple[int, ...], fn: str) -> tuple[int, ...]:
    n = len(spatial)
    items = (output_size,) * n if output_size is None or isinstance(output_size, (int, np.integer)) \
        else tuple(output_size)
    if len(items) != n:
        raise ValueError(f"{fn}: output_size must be an int or {n} ints (or None), got {output_size!r}")
    sizes = tuple(s if o is None else o for o, s in zip(items, spatial))
    if any(not isinstance(o, (int, np.integer)) or isinstance(o, bool) or o < 1 for o in sizes):
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
    _check_input(x, 2, "adaptive_avg_pool2d")
    h, w = x.shape[-2:]
    oh, ow = _adaptive_sizes(output_size, (h, w), "adaptive_avg_pool2d")
    if (oh, ow) == (1, 1):
        return x.mean((-2, -1), keepdim=True)
    rows = _adaptive_matrix(h, oh, x.dtype, x.device)
    cols = _adaptive_matrix(w, ow, x.dtype, x.device)
    return rows @ x @ cols.T


def adaptive_avg_pool1d(x: Tensor, output_size) -> Tensor:
    """Adaptive average pooling over the last axis: x (N, C, L) or (C, L) -> (..., output_size),
    bins [floor(i L / out), ceil((i + 1) L / out))."""
    _check_input(x, 1, "adaptive_avg_pool1d")
    (out,) = _adaptive_sizes(output_size, x.shape[-1:], "adaptive_avg_pool1d")
    return x @ _adaptive_matrix(x.shape[-1], out, x.dtype, x.device).T


# ------------------------------------------------------------- Gaussian pooling
def gaussian_window(kernel_size, sigma: float = 1.0, dtype=np.float64) -> np.ndarray:
    """The normalized weights w[i, j] = g(i, j) / sum g, with
    g(i, j) = exp(-((i - c_h)^2 + (j - c_w)^2) / (2 sigma^2)) and window centre
    c = (k - 1) / 2 (between two pixels for an even k)."""
    kh, kw = _ints(kernel_size, 2, "kernel_size", "gaussian_window")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 \
            or not math.isfinite(sigma):
        raise ValueError(f"gaussian_window: sigma must be a positive finite number, got {sigma!r}")
    if kh <= 0 or kw <= 0:
        raise ValueError(f"gaussian_window: kernel_size must be greater than zero, got {kernel_size!r}")
    i = np.arange(kh)[:, None] - (kh - 1) / 2
    j = np.arange(kw)[None, :] - (kw - 1) / 2
    g = np.exp(-(i * i + j * j) / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(dtype)


class WeightedPool2dFunction(Function):
    """y[n, c, oh, ow] = sum over i, j of w[i, j] x_pad[n, c, oh sh + i, ow sw + j] for a fixed
    window of weights w (zero padding); dL/dx_pad gets w[i, j] dL/dy at the same places."""

    def forward(self, x, weights=None, stride=(1, 1), padding=(0, 0), out_hw=(1, 1)):
        xp = xp_of(x)
        (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
        self.args = x.shape, weights, stride, padding, out_hw
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
    unbatched = _check_input(x, 2, "gaussian_avg_pool2d")
    kernel, stride, padding, _, out = _window_args("gaussian_avg_pool2d", x.shape, kernel_size, stride,
                                                   padding, 1, False)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 \
            or not math.isfinite(sigma):
        raise ValueError(f"gaussian_avg_pool2d: sigma must be a positive finite number, got {sigma!r}")
    weights = gaussian_window(kernel, sigma)
    y = WeightedPool2dFunction.apply(_batched(x, unbatched), weights=weights, stride=stride,
                                     padding=padding, out_hw=out)
    return y.squeeze(0) if unbatched else y
