"""The convolution family: cross-correlation layers, true convolution, transposed and
locally connected convolution, and unfold/fold (im2col/col2im).

Two operations share the name "convolution" (course: *convolution vs cross-correlation*):

* **cross-correlation**, what deep-learning libraries call convolution (``conv2d``)::

      S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)

* **true (mathematical) convolution**, which flips the kernel (``convolve2d``)::

      S(i, j) = sum_m sum_n I(i - m, j - n) K(m, n)

  It is commutative (I * K = K * I) and equals cross-correlation with the kernel
  rotated by 180 degrees: ``convolve2d(x, k) == correlate2d(x, k[::-1, ::-1])``.

Since the kernel is learned, a network cannot tell the two apart (it would just
learn the flipped kernel), so layers use the cheaper-to-explain correlation.

Layout is NCHW (NCL in 1-D); weights have PyTorch's shapes, conv
``(out, in/groups, kH, kW)`` and transposed conv ``(in, out/groups, kH, kW)``,
so weights can be exchanged with PyTorch models. Every function here checks its
arguments (a clear ``ValueError``/``TypeError`` naming the values) and then runs
the kernels of the current backend (``kernel_module("conv", device)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.checks import (
    LARGEST_ARGUMENT,
    check_float_tensors,
    check_tensor,
    int_tuple,
    is_int,
)
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "convolve1d", "convolve2d", "correlate1d", "correlate2d",
    "locally_connected2d", "unfold", "fold",
]

PADDING_NAMES = ("valid", "same", "full")
SIGNAL_MODES = ("full", "same", "valid")
_DIM_NAMES = {1: ("length",), 2: ("height", "width")}

IntOrTuple = int | Sequence[int]
Padding = int | str | Sequence[int | Sequence[int]]


# ------------------------------------------------------------------ argument checks
def _ints(value, n: int, name: str, fn: str, minimum: int) -> tuple[int, ...]:
    return int_tuple(fn, name, value, n, minimum)


_is_int = is_int
LARGEST_OUTPUT = 2**31  # elements (8 GiB of float32): beyond that a padding or size is a mistake


def _padding_pairs(
    padding, n: int, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], fn: str
) -> tuple[tuple[int, int], ...]:
    """(before, after) zero padding per spatial dim.

    ``padding`` is an int (every side), a tuple with one entry per spatial dim (an int for
    both sides, or a ``(before, after)`` pair), or a name. With D = dilation (kernel - 1)
    the total span a kernel adds:

    * ``'valid'``: no padding, the kernel only visits positions where it fits;
    * ``'same'``: total padding D so that the output has the input's size (stride 1 only).
      When D is odd the odd pixel goes AFTER (right/bottom), as in PyTorch and TensorFlow:
      before = D // 2, after = D - D // 2;
    * ``'full'``: D on each side, every position where kernel and input overlap at all.
    """
    if isinstance(padding, str):
        if padding not in PADDING_NAMES:
            raise ValueError(f"{fn}: padding {padding!r} is not one of {PADDING_NAMES} or an int/tuple")
        spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if padding == "valid":
            return tuple((0, 0) for _ in spans)
        if padding == "full":
            return tuple((s, s) for s in spans)
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' needs stride 1 (the output could not keep the "
                             f"input size), got stride {stride}")
        return tuple((s // 2, s - s // 2) for s in spans)
    if _is_int(padding):
        padding = (padding,) * n
    if not isinstance(padding, (tuple, list)) or len(padding) != n:
        raise ValueError(f"{fn}: padding must be an int, a name in {PADDING_NAMES}, or a tuple of {n} "
                         f"entries (an int or a (before, after) pair per spatial dim), got {padding!r}")
    pairs = []
    for entry in padding:
        if _is_int(entry):
            pair = (int(entry), int(entry))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(_is_int(v) for v in entry):
            pair = (int(entry[0]), int(entry[1]))
        else:
            raise ValueError(f"{fn}: padding entry {entry!r} of {padding!r} is neither an int nor a "
                             "(before, after) pair of ints")
        if min(pair) < 0:
            raise ValueError(f"{fn}: padding must be non-negative, got {padding!r}")
        if max(pair) > LARGEST_ARGUMENT:
            raise ValueError(f"{fn}: padding {padding!r} is too large (at most {LARGEST_ARGUMENT})")
        pairs.append(pair)
    return tuple(pairs)


def _check_tensor(value, name: str, fn: str) -> Tensor:
    return check_tensor(fn, name, value)


def _check_same_dtype(fn: str, **tensors: Tensor | None) -> None:
    check_float_tensors(fn, **tensors)


def _check_input_rank(x: Tensor, nd: int, fn: str) -> bool:
    """True when ``x`` is unbatched (C, *spatial); checks the rank and that nothing is empty."""
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: input must be {nd + 2}-D {layout} or {nd + 1}-D unbatched, "
                         f"got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{fn}: input of shape {x.shape} is empty")
    return x.ndim == nd + 1


def _check_fits(fn: str, spatial, pairs, kernel, dilation, nd: int) -> None:
    """The dilated kernel must fit inside the padded input along every spatial dim."""
    for name, size, (before, after), k, d in zip(_DIM_NAMES[nd], spatial, pairs, kernel, dilation):
        span = d * (k - 1) + 1
        if size + before + after < span:
            raise ValueError(
                f"{fn}: kernel size {k} (dilation {d}, spans {span}) is larger than the padded input "
                f"{name} {size + before + after} (input {size} + padding ({before}, {after}))"
            )


def _check_output_size(fn: str, leading: tuple[int, ...], spatial, pairs, kernel, dilation,
                       stride) -> None:
    """Refuse outputs of more than LARGEST_OUTPUT elements before anything is allocated (a huge
    padding would otherwise end in numpy's MemoryError from inside a kernel). Output size per
    dim: (size + before + after - dilation (kernel - 1) - 1) // stride + 1."""
    geometry = zip(spatial, pairs, kernel, dilation, stride)
    shape = (*leading, *((size + before + after - d * (k - 1) - 1) // st + 1
                         for size, (before, after), k, d, st in geometry))
    if math.prod(shape) > LARGEST_OUTPUT:
        raise ValueError(f"{fn}: the output would have shape {shape} ({math.prod(shape):,} elements, "
                         f"more than {LARGEST_OUTPUT:,}): check the padding, stride and sizes")


def _to_kernel_args(nd: int, stride, pairs, dilation):
    """Lift 1-D arguments to the 2-D kernel interface: a signal is an image of height 1."""
    if nd == 1:
        stride, dilation, pairs = (1, *stride), (1, *dilation), ((0, 0), *pairs)
    (top, bottom), (left, right) = pairs
    return tuple(stride), (top, bottom, left, right), tuple(dilation)


# ------------------------------------------------------------------------ Functions
def _contiguous(a):
    return xp_of(a).ascontiguousarray(a)


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b (cross-correlation), on the kernels of the current backend.

    y[b, k, i, j] = bias[k] + sum_{c, m, n} xpad[b, c, sh i + dh m, sw j + dw n] w[k, c, m, n].

    Backward (all three are correlations too):
    dL/dx = conv2d_backward_input(G, w)  (the transposed convolution of G),
    dL/dw = conv2d_backward_weight(G, x) (the correlation of x with G),
    dL/db[k] = sum of G[:, k] over batch and positions.
    """

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        self.kernels = kernel_module("conv", device_of(x))
        self.x, self.weight = _contiguous(x), _contiguous(weight)
        self.options = (stride, padding, dilation, groups)
        self.has_bias = bias is not None
        y = self.kernels.conv2d_forward(self.x, self.weight, *self.options)
        return y + bias.reshape(1, -1, 1, 1) if self.has_bias else y

    def backward(self, g):
        g = _contiguous(g)
        needs = self.needs_input_grad
        k, opts = self.kernels, self.options
        gx = k.conv2d_backward_input(g, self.weight, self.x.shape, *opts) if needs[0] else None
        gw = k.conv2d_backward_weight(g, self.x, self.weight.shape, *opts) if needs[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, g.sum(axis=(0, 2, 3)) if needs[2] else None


class ConvTranspose2dFunction(Function):
    """y = A_w^T x + b: the adjoint of the convolution A_w whose weight is ``w``.

    The forward pass is exactly conv2d's input gradient, so by construction
    <conv2d(u, w), x> = <u, conv_transpose2d(x, w)> for all u, x. Backward:
    dL/dx = conv2d(G, w) (the adjoint of the adjoint), dL/dw = conv2d_backward_weight
    with the roles of input and output gradient swapped, dL/db = sum of G.
    """

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                groups=1, output_shape=(), conv_output_hw=()):
        xp = xp_of(x)
        self.kernels = kernel_module("conv", device_of(x))
        self.in_hw = x.shape[2:]
        if tuple(conv_output_hw) != tuple(self.in_hw):
            # output_padding >= stride: the forward conv of the output would have more positions
            # than x; those extra positions are zeros of x (nothing flows from them)
            grown = xp.zeros(x.shape[:2] + tuple(conv_output_hw), dtype=x.dtype)
            grown[:, :, : x.shape[2], : x.shape[3]] = x
            x = grown
        self.x, self.weight = _contiguous(x), _contiguous(weight)
        self.options = (stride, padding, dilation, groups)
        self.has_bias = bias is not None
        y = self.kernels.conv2d_backward_input(self.x, self.weight, tuple(output_shape), *self.options)
        return y + bias.reshape(1, -1, 1, 1) if self.has_bias else y

    def backward(self, g):
        g = _contiguous(g)
        needs = self.needs_input_grad
        gx = gw = None
        if needs[0]:
            h, w = self.in_hw
            gx = _contiguous(self.kernels.conv2d_forward(g, self.weight, *self.options)[:, :, :h, :w])
        if needs[1]:
            gw = self.kernels.conv2d_backward_weight(self.x, g, self.weight.shape, *self.options)
        if not self.has_bias:
            return gx, gw
        return gx, gw, g.sum(axis=(0, 2, 3)) if needs[2] else None


class Unfold(Function):
    """im2col: cols[b, (c, m, n), (i, j)] = xpad[b, c, sh i + dh m, sw j + dw n]; backward is col2im."""

    def forward(self, x, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
        self.kernels = kernel_module("conv", device_of(x))
        self.shape, self.options = x.shape, (kernel_size, stride, padding, dilation)
        return self.kernels.im2col(_contiguous(x), *self.options)

    def backward(self, g):
        return self.kernels.col2im(_contiguous(g), self.shape, *self.options)


class Fold(Function):
    """col2im: add every column entry back onto the pixel it came from; backward is im2col."""

    def forward(self, cols, output_shape=(), kernel_size=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1)):
        self.kernels = kernel_module("conv", device_of(cols))
        self.options = (kernel_size, stride, padding, dilation)
        return self.kernels.col2im(_contiguous(cols), tuple(output_shape), *self.options)

    def backward(self, g):
        return self.kernels.im2col(_contiguous(g), *self.options)


class LocallyConnected2dFunction(Function):
    """Unshared convolution: y[b, k, i, j] = bias[k, i, j] + sum_{c, m, n} w[i, j, k, c, m, n]
    x[b, c, s_h i + m, s_w j + n]. With cols = im2col(x) (N, C KH KW, L) and W_l the
    (K, C KH KW) matrix of position l: y[:, :, l] = W_l cols[:, :, l], one small matrix
    product per output position. Backward: dL/dcols[:, :, l] = W_l^T G[:, :, l] folded back
    with col2im, dL/dW_l = sum over the batch of G[:, :, l] cols[:, :, l]^T.
    """

    def forward(self, x, weight, bias=None, stride=(1, 1)):
        xp = xp_of(x)
        self.kernels = kernel_module("conv", device_of(x))
        oh, ow, k, c, kh, kw = weight.shape
        self.options = ((kh, kw), stride, (0, 0, 0, 0), (1, 1))
        self.x_shape, self.w_shape, self.has_bias = x.shape, weight.shape, bias is not None
        self.cols = self.kernels.im2col(_contiguous(x), *self.options)  # (N, J, L)
        self.w = weight.reshape(oh * ow, k, c * kh * kw)  # (L, K, J)
        # (L, K, J) @ (L, J, N) -> (L, K, N) -> (N, K, L)
        y = xp.matmul(self.w, self.cols.transpose(2, 1, 0)).transpose(2, 1, 0)
        y = y.reshape(x.shape[0], k, oh, ow)
        return _contiguous(y + bias if self.has_bias else y)

    def backward(self, g):
        xp = xp_of(g)
        n = g.shape[0]
        gl = g.reshape(n, g.shape[1], -1).transpose(2, 1, 0)  # (L, K, N)
        gx = gw = None
        if self.needs_input_grad[0]:
            gcols = xp.matmul(self.w.transpose(0, 2, 1), gl).transpose(2, 1, 0)  # (N, J, L)
            gx = self.kernels.col2im(_contiguous(gcols), self.x_shape, *self.options)
        if self.needs_input_grad[1]:
            gw = xp.matmul(gl, self.cols.transpose(2, 0, 1)).reshape(self.w_shape)  # (L, K, J)
        if not self.has_bias:
            return gx, gw
        return gx, gw, g.sum(axis=0) if self.needs_input_grad[2] else None


# ------------------------------------------------------------- cross-correlation layers
def _conv_nd(fn: str, nd: int, x, weight, bias, stride, padding, dilation, groups) -> Tensor:
    _check_tensor(x, "input", fn)
    _check_tensor(weight, "weight", fn)
    if bias is not None:
        _check_tensor(bias, "bias", fn)
    _check_same_dtype(fn, input=x, weight=weight, bias=bias)
    unbatched = _check_input_rank(x, nd, fn)
    if weight.ndim != nd + 2:
        layout = "(out_channels, in_channels/groups, kL)" if nd == 1 else \
            "(out_channels, in_channels/groups, kH, kW)"
        raise ValueError(f"{fn}: weight must be {nd + 2}-D {layout}, got shape {weight.shape} "
                         f"({weight.ndim}-D)")
    if 0 in weight.shape:
        raise ValueError(f"{fn}: weight of shape {weight.shape} is empty")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if unbatched:
        x = x.unsqueeze(0)
    channels, out_channels = x.shape[1], weight.shape[0]
    if channels % groups or out_channels % groups:
        raise ValueError(f"{fn}: in_channels {channels} and out_channels {out_channels} must both be "
                         f"divisible by groups {groups}")
    if weight.shape[1] != channels // groups:
        raise ValueError(f"{fn}: weight of shape {weight.shape} expects {weight.shape[1] * groups} input "
                         f"channels (weight.shape[1] * groups = {weight.shape[1]} * {groups}), but the "
                         f"input of shape {x.shape} has {channels}")
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{fn}: bias must have shape ({out_channels},), got {bias.shape}")
    kernel = weight.shape[2:]
    stride = _ints(stride, nd, "stride", fn, 1)
    dilation = _ints(dilation, nd, "dilation", fn, 1)
    pairs = _padding_pairs(padding, nd, kernel, stride, dilation, fn)
    _check_fits(fn, x.shape[2:], pairs, kernel, dilation, nd)
    _check_output_size(fn, (x.shape[0], out_channels), x.shape[2:], pairs, kernel, dilation, stride)
    s2, p2, d2 = _to_kernel_args(nd, stride, pairs, dilation)
    if nd == 1:
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    y = Conv2dFunction.apply(*inputs, stride=s2, padding=p2, dilation=d2, groups=int(groups))
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution layer as deep learning defines it: a cross-correlation, no kernel flip.

        y[b, k, i, j] = bias[k] + sum_{c in group(k)} sum_{m, n}
                        xpad[b, c, s_h i + d_h m, s_w j + d_w n] * weight[k, c, m, n]

    Shapes: x (N, C, H, W) (or unbatched (C, H, W)), weight (K, C / groups, kH, kW),
    bias (K,), y (N, K, OH, OW) with OH = floor((H + pad_top + pad_bottom - d_h (kH - 1) - 1) / s_h) + 1
    (course: output size formula (W - F + 2P) / S + 1, with dilation F -> d (F - 1) + 1).

    * ``stride``: step of the sliding window (downsampling);
    * ``dilation``: gap between kernel taps (atrous convolution), receptive field d (k - 1) + 1;
    * ``groups``: channels split into independent groups; ``groups == C`` is the depthwise
      convolution (one kernel per channel);
    * ``padding``: zeros around the input: an int, a tuple with an int or a (before, after) pair
      per spatial dim, or ``'valid'`` (none), ``'same'`` (output size = input size, stride 1; the
      odd pixel of an even total goes to the bottom/right, as PyTorch), ``'full'``
      (d (k - 1) on every side).
    """
    return _conv_nd("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution (cross-correlation) of signals: x (N, C, L), weight (K, C / groups, kL),
    y[b, k, i] = bias[k] + sum_{c, m} xpad[b, c, s i + d m] weight[k, c, m],
    L_out = floor((L + pad_left + pad_right - d (kL - 1) - 1) / s) + 1.

    Computed as :func:`conv2d` on images of height 1. Arguments as in :func:`conv2d`
    (padding: an int, ``(p,)``, ``((left, right),)`` or a name).
    """
    return _conv_nd("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)


# ----------------------------------------------------------------- transposed convolution
def _conv_transpose_nd(fn: str, nd: int, x, weight, bias, stride, padding, output_padding, groups,
                       dilation) -> Tensor:
    _check_tensor(x, "input", fn)
    _check_tensor(weight, "weight", fn)
    if bias is not None:
        _check_tensor(bias, "bias", fn)
    _check_same_dtype(fn, input=x, weight=weight, bias=bias)
    unbatched = _check_input_rank(x, nd, fn)
    if weight.ndim != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D (in_channels, out_channels/groups, "
                         f"{'kL' if nd == 1 else 'kH, kW'}), got shape {weight.shape}")
    if 0 in weight.shape:
        raise ValueError(f"{fn}: weight of shape {weight.shape} is empty")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if unbatched:
        x = x.unsqueeze(0)
    channels = x.shape[1]
    if channels % groups:
        raise ValueError(f"{fn}: in_channels {channels} must be divisible by groups {groups}")
    if weight.shape[0] != channels:
        raise ValueError(f"{fn}: weight of shape {weight.shape} expects {weight.shape[0]} input channels "
                         f"(weight.shape[0]), but the input of shape {x.shape} has {channels}")
    out_channels = weight.shape[1] * groups
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{fn}: bias must have shape ({out_channels},), got {bias.shape}")
    kernel = weight.shape[2:]
    stride = _ints(stride, nd, "stride", fn, 1)
    dilation = _ints(dilation, nd, "dilation", fn, 1)
    out_pad = _ints(output_padding, nd, "output_padding", fn, 0)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple, not the name {padding!r}")
    pairs = _padding_pairs(padding, nd, kernel, stride, dilation, fn)
    for op, s, d in zip(out_pad, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"{fn}: output_padding {output_padding!r} must be smaller than either "
                             f"stride {stride} or dilation {dilation}")
    out_sizes, conv_sizes = [], []
    for name, size, (before, after), k, s, d, op in zip(_DIM_NAMES[nd], x.shape[2:], pairs, kernel,
                                                        stride, dilation, out_pad):
        out = (size - 1) * s - before - after + d * (k - 1) + op + 1
        if out < 1:
            raise ValueError(f"{fn}: output {name} (size - 1) * stride - padding + dilation * (kernel - 1) "
                             f"+ output_padding + 1 = ({size} - 1) * {s} - {before + after} + {d} * "
                             f"({k} - 1) + {op} + 1 = {out} is not positive")
        out_sizes.append(out)
        conv_sizes.append(size + op // s)  # positions the forward conv of the output has
    s2, p2, d2 = _to_kernel_args(nd, stride, pairs, dilation)
    if nd == 1:
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        out_sizes, conv_sizes = [1, *out_sizes], [1, *conv_sizes]
    output_shape = (x.shape[0], out_channels, *out_sizes)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    y = ConvTranspose2dFunction.apply(*inputs, stride=s2, padding=p2, dilation=d2, groups=int(groups),
                                      output_shape=output_shape, conv_output_hw=tuple(conv_sizes))
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> Tensor:
    """Transposed convolution (the "up-convolution" of U-Net, sometimes wrongly called deconvolution).

    Defined as the adjoint of :func:`conv2d`: if A_w is the linear map u -> conv2d(u, w) from
    (N, C_out, OH, OW) to (N, C_in, H, W), then conv_transpose2d(x, w) = A_w^T x, i.e.
    <conv2d(u, w), x> = <u, conv_transpose2d(x, w)>. Written as a scatter, each input pixel
    stamps a weighted copy of the kernel onto the output:

        y[b, o, s_h i + d_h m - p_top, s_w j + d_w n - p_left] += x[b, c, i, j] * weight[c, o, m, n]

    Shapes (PyTorch): x (N, C_in, H, W), weight (C_in, C_out / groups, kH, kW), bias (C_out,),
    OH = (H - 1) s_h - p_top - p_bottom + d_h (kH - 1) + output_padding_h + 1.
    ``padding`` removes rows/columns from the output border (it is the padding of the
    convolution this is the adjoint of); ``output_padding`` (< stride or < dilation) picks
    among the several output sizes that a strided convolution maps to the same H.
    """
    return _conv_transpose_nd("conv_transpose2d", 2, x, weight, bias, stride, padding, output_padding,
                              groups, dilation)


def conv_transpose1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
) -> Tensor:
    """1-D transposed convolution, the adjoint of :func:`conv1d`: x (N, C_in, L),
    weight (C_in, C_out / groups, kL), L_out = (L - 1) s - p_left - p_right + d (kL - 1) + output_padding + 1.
    See :func:`conv_transpose2d`."""
    return _conv_transpose_nd("conv_transpose1d", 1, x, weight, bias, stride, padding, output_padding,
                              groups, dilation)


# ----------------------------------------------------- signal-processing convolution
def _signal_nd(fn: str, nd: int, x, kernel, mode: str, flip: bool) -> Tensor:
    _check_tensor(x, "input", fn)
    _check_tensor(kernel, "kernel", fn)
    _check_same_dtype(fn, input=x, kernel=kernel)
    if mode not in SIGNAL_MODES:
        raise ValueError(f"{fn}: mode must be one of {SIGNAL_MODES}, got {mode!r}")
    if kernel.ndim != nd:
        raise ValueError(f"{fn}: kernel must be {nd}-D, got shape {kernel.shape}")
    if x.ndim < nd:
        raise ValueError(f"{fn}: input must have at least {nd} dims (..., "
                         f"{'L' if nd == 1 else 'H, W'}), got shape {x.shape}")
    if 0 in x.shape or 0 in kernel.shape:
        raise ValueError(f"{fn}: input {x.shape} and kernel {kernel.shape} must not be empty")
    spatial, lead = x.shape[x.ndim - nd:], x.shape[: x.ndim - nd]
    ks = kernel.shape
    if mode == "valid" and any(k > n for k, n in zip(ks, spatial)):
        raise ValueError(f"{fn}: mode 'valid' needs the kernel {ks} to fit inside the input {spatial}")
    if mode == "full":
        pairs = [(k - 1, k - 1) for k in ks]
    elif mode == "valid":
        pairs = [(0, 0) for _ in ks]
    elif flip:  # scipy.signal.convolve2d: the odd pixel of an even kernel on top/left
        pairs = [(k // 2, (k - 1) // 2) for k in ks]
    else:  # scipy.signal.correlate2d: the odd pixel on bottom/right
        pairs = [((k - 1) // 2, k // 2) for k in ks]
    if flip:  # true convolution = correlation with the kernel rotated by 180 degrees
        kernel = kernel[(slice(None, None, -1),) * nd]
    batch = x.reshape((-1, 1) + spatial)
    y = _conv_nd(fn, nd, batch, kernel.reshape((1, 1) + ks), None, 1, tuple(pairs), 1, 1)
    return y.reshape(lead + y.shape[2:])


def correlate2d(x: Tensor, kernel: Tensor, mode: str = "full") -> Tensor:
    """2-D cross-correlation of images with one kernel, as ``scipy.signal.correlate2d``:

        S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)

    x (..., H, W) (a single image or any batch of images), kernel (kH, kW). Modes:
    ``'full'`` (H + kH - 1): every overlap; ``'valid'`` (H - kH + 1): the kernel entirely inside;
    ``'same'`` (H): the centre of 'full'. For an even kernel the centre is ambiguous; scipy's
    correlate2d (and this function) pads (kH - 1) // 2 on top and kH // 2 at the bottom
    (likewise left/right), the opposite of :func:`convolve2d`. Differentiable in x and kernel.
    Not commutative: correlate2d(a, b) is correlate2d(b, a) rotated by 180 degrees.
    """
    return _signal_nd("correlate2d", 2, x, kernel, mode, flip=False)


def convolve2d(x: Tensor, kernel: Tensor, mode: str = "full") -> Tensor:
    """True 2-D convolution of images with one kernel, as ``scipy.signal.convolve2d``:

        S(i, j) = sum_m sum_n I(i - m, j - n) K(m, n)

    It flips the kernel: convolve2d(x, k, mode) == correlate2d(x, rot180(k), mode) in 'full'
    and 'valid' modes (and in 'same' mode for odd kernels), and it is commutative in 'full' mode
    (I * K == K * I). x (..., H, W), kernel (kH, kW); modes as :func:`correlate2d`, except that
    'same' mode, following scipy's convolve2d, puts the odd pixel of an even kernel on top/left:
    padding kH // 2 above and (kH - 1) // 2 below. Differentiable in x and kernel.
    """
    return _signal_nd("convolve2d", 2, x, kernel, mode, flip=True)


def correlate1d(x: Tensor, kernel: Tensor, mode: str = "full") -> Tensor:
    """1-D cross-correlation S(i) = sum_m I(i + m) K(m) of signals x (..., L) with kernel (kL,);
    the same as :func:`correlate2d` on one-row images (so 'same' mode puts the odd pixel of an
    even kernel on the right)."""
    return _signal_nd("correlate1d", 1, x, kernel, mode, flip=False)


def convolve1d(x: Tensor, kernel: Tensor, mode: str = "full") -> Tensor:
    """True 1-D convolution S(i) = sum_m I(i - m) K(m) of signals x (..., L) with kernel (kL,),
    as ``numpy.convolve`` (whose 'same' mode returns the longer of the two lengths; here the
    output of 'same' always has the input's length) and :func:`convolve2d` on one-row images."""
    return _signal_nd("convolve1d", 1, x, kernel, mode, flip=True)


# ------------------------------------------------------------ locally connected layer
def locally_connected2d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                        stride: IntOrTuple = 1) -> Tensor:
    """Locally connected ("unshared") 2-D convolution: every output position (i, j) has its own kernel.

        y[b, k, i, j] = bias[k, i, j] + sum_{c, m, n} x[b, c, s_h i + m, s_w j + n] * weight[i, j, k, c, m, n]

    Shapes: x (N, C, H, W), weight (OH, OW, K, C, kH, kW) with OH = (H - kH) // s_h + 1
    (valid padding), bias (K, OH, OW) (untied: one bias per output unit), y (N, K, OH, OW).
    Keeps the local connectivity of a convolution but drops weight sharing, so it loses
    translation equivariance and has OH OW times the parameters; with every position's
    kernel equal it is :func:`conv2d`.
    """
    fn = "locally_connected2d"
    _check_tensor(x, "input", fn)
    _check_tensor(weight, "weight", fn)
    if bias is not None:
        _check_tensor(bias, "bias", fn)
    _check_same_dtype(fn, input=x, weight=weight, bias=bias)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{fn}: input must be a non-empty 4-D (N, C, H, W) tensor, got shape {x.shape}")
    if weight.ndim != 6 or 0 in weight.shape:
        raise ValueError(f"{fn}: weight must be 6-D (OH, OW, out_channels, in_channels, kH, kW), "
                         f"got shape {weight.shape}")
    stride = _ints(stride, 2, "stride", fn, 1)
    oh, ow, k, c, kh, kw = weight.shape
    if c != x.shape[1]:
        raise ValueError(f"{fn}: weight of shape {weight.shape} expects {c} input channels, "
                         f"the input of shape {x.shape} has {x.shape[1]}")
    _check_fits(fn, x.shape[2:], ((0, 0), (0, 0)), (kh, kw), (1, 1), 2)
    expected = ((x.shape[2] - kh) // stride[0] + 1, (x.shape[3] - kw) // stride[1] + 1)
    if (oh, ow) != expected:
        raise ValueError(f"{fn}: weight of shape {weight.shape} is for a {oh}x{ow} output, but an input "
                         f"of shape {x.shape} with kernel {(kh, kw)} and stride {stride} gives "
                         f"{expected[0]}x{expected[1]}")
    if bias is not None and bias.shape != (k, oh, ow):
        raise ValueError(f"{fn}: bias must have shape {(k, oh, ow)}, got {bias.shape}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return LocallyConnected2dFunction.apply(*inputs, stride=stride)


# ------------------------------------------------------------------------ im2col / col2im
def _unfold_args(fn, kernel_size, dilation, padding, stride):
    kernel = _ints(kernel_size, 2, "kernel_size", fn, 1)
    dilation = _ints(dilation, 2, "dilation", fn, 1)
    stride = _ints(stride, 2, "stride", fn, 1)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple, not the name {padding!r}")
    pairs = _padding_pairs(padding, 2, kernel, stride, dilation, fn)
    return kernel, dilation, pairs, stride


def unfold(x: Tensor, kernel_size: IntOrTuple, dilation: IntOrTuple = 1, padding: Padding = 0,
           stride: IntOrTuple = 1) -> Tensor:
    """im2col (PyTorch's ``F.unfold``): copy every receptive field into a column,

        cols[b, (c, m, n), l] = xpad[b, c, s_h i + d_h m, s_w j + d_w n],  l = i OW + j,

    x (N, C, H, W) -> cols (N, C kH kW, OH OW). Then conv2d(x, w) is the matrix product
    ``w.reshape(K, -1) @ cols`` (how many fast convolutions are computed).
    """
    fn = "unfold"
    _check_tensor(x, "input", fn)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{fn}: input must be a non-empty 4-D (N, C, H, W) tensor, got shape {x.shape}")
    kernel, dilation, pairs, stride = _unfold_args(fn, kernel_size, dilation, padding, stride)
    _check_fits(fn, x.shape[2:], pairs, kernel, dilation, 2)
    _check_output_size(fn, (x.shape[0], x.shape[1] * math.prod(kernel)), x.shape[2:], pairs, kernel,
                       dilation, stride)
    s2, p2, d2 = _to_kernel_args(2, stride, pairs, dilation)
    return Unfold.apply(x, kernel_size=kernel, stride=s2, padding=p2, dilation=d2)


def fold(cols: Tensor, output_size: IntOrTuple, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
         padding: Padding = 0, stride: IntOrTuple = 1) -> Tensor:
    """col2im (PyTorch's ``F.fold``), the adjoint of :func:`unfold`: cols (N, C kH kW, L) ->
    (N, C, H, W) with ``output_size`` = (H, W); every entry is added to the pixel it was copied
    from, so overlapping windows sum (fold(unfold(x)) multiplies each pixel by the number of
    windows covering it)."""
    fn = "fold"
    _check_tensor(cols, "input", fn)
    kernel, dilation, pairs, stride = _unfold_args(fn, kernel_size, dilation, padding, stride)
    size = _ints(output_size, 2, "output_size", fn, 1)
    if cols.ndim != 3 or 0 in cols.shape:
        raise ValueError(f"{fn}: input must be a non-empty 3-D (N, C kH kW, L) tensor, "
                         f"got shape {cols.shape}")
    _check_fits(fn, size, pairs, kernel, dilation, 2)
    area = kernel[0] * kernel[1]
    blocks = 1
    for n, (before, after), k, d, s in zip(size, pairs, kernel, dilation, stride):
        blocks *= (n + before + after - d * (k - 1) - 1) // s + 1
    if cols.shape[1] % area or cols.shape[2] != blocks:
        raise ValueError(f"{fn}: input of shape {cols.shape} needs dim 1 divisible by kH kW = {area} and "
                         f"dim 2 equal to the {blocks} sliding positions over output_size {size}")
    output_shape = (cols.shape[0], cols.shape[1] // area, *size)
    s2, p2, d2 = _to_kernel_args(2, stride, pairs, dilation)
    return Fold.apply(cols, output_shape=output_shape, kernel_size=kernel, stride=s2, padding=p2, dilation=d2)
