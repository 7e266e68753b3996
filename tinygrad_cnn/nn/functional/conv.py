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
so weights can be exchanged with PyTorch models.

Every public function reads as parse-then-apply: its tensors are checked by
``checks.check_float_tensors`` and its window arguments parsed once into a
``ConvGeometry`` (``geometry.py``, the one place that knows strides, paddings,
dilations, groups and output sizes); then a Function runs the kernels of the current
backend (``kernel_module("conv", device)``). Each Function records, at forward, the
backend's kernels and the strategy they chose, and backward runs the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.checks import check_float_tensors
from tinygrad_cnn.nn.functional.geometry import (
    conv_geometry,
    conv_transpose_geometry,
    sizes,
    window_geometry,
)
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "convolve1d", "convolve2d", "correlate1d", "correlate2d",
    "locally_connected2d", "unfold", "fold",
]

SIGNAL_MODES = ("full", "same", "valid")

IntOrTuple = int | Sequence[int]
Padding = int | str | Sequence[int | Sequence[int]]


# ------------------------------------------------------------------------ Functions
def _contiguous(a):
    return xp_of(a).ascontiguousarray(a)


def _plus_bias(y, bias):
    """y + bias[k] on every pixel of channel k, written into y: each kernel returns a new
    array that nothing else holds, so no second one is made (LeNet-5's first layer b64:
    0.13 against 0.26 ms)."""
    y += bias.reshape(1, -1, 1, 1)
    return y


def _bias_grad(g):
    """dL/db[k] = the sum of g[:, k] over the batch and the positions: first over the batch
    (N planes added), then each channel's contiguous plane (numpy's pairwise sum); 2-3x as
    fast as ``g.sum(axis=(0, 2, 3))`` on LeNet-5's layers."""
    n, k, h, w = g.shape
    return g.sum(axis=0).reshape(k, h * w).sum(axis=1)


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b (cross-correlation), on the kernels of the current backend.

    y[b, k, i, j] = bias[k] + sum_{c, m, n} xpad[b, c, sh i + dh m, sw j + dw n] w[k, c, m, n].

    Backward (all three are correlations too):
    dL/dx = conv2d_backward_input(G, w)  (the transposed convolution of G),
    dL/dw = conv2d_backward_weight(G, x) (the correlation of x with G),
    dL/db[k] = sum of G[:, k] over batch and positions.

    ``plan``: the backend's way of computing it (its ``choose(geometry)`` when None; tests
    pass their own to run every strategy). Backward runs the same plan.
    """

    def forward(self, x, weight, bias=None, geometry=None, plan=None):
        self.kernels = kernel_module("conv", device_of(x))
        self.plan = self.kernels.choose(geometry) if plan is None else plan
        self.x, self.weight, self.geometry = _contiguous(x), _contiguous(weight), geometry
        self.has_bias = bias is not None
        y = self.kernels.conv2d_forward(self.x, self.weight, geometry, self.plan)
        return _plus_bias(y, bias) if self.has_bias else y

    def backward(self, g):
        g = _contiguous(g)
        needs, k, geometry, plan = self.needs_input_grad, self.kernels, self.geometry, self.plan
        gx = k.conv2d_backward_input(g, self.weight, geometry, plan) if needs[0] else None
        gw = k.conv2d_backward_weight(g, self.x, geometry, plan) if needs[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, _bias_grad(g) if needs[2] else None


class ConvTranspose2dFunction(Function):
    """y = A_w^T x + b: the adjoint of the convolution A_w whose weight is ``w``.

    ``geometry`` is that convolution's (its input is y, its output has x's shape, or
    ``conv_hw`` positions when output_padding >= stride adds positions that only zeros of
    x reach). The forward pass is exactly conv2d's input gradient, so by construction
    <conv2d(u, w), x> = <u, conv_transpose2d(x, w)> for all u, x. Backward:
    dL/dx = conv2d(G, w) (the adjoint of the adjoint), dL/dw = conv2d_backward_weight
    with the roles of input and output gradient swapped, dL/db = sum of G.
    """

    def forward(self, x, weight, bias=None, geometry=None, conv_hw=()):
        xp = xp_of(x)
        self.kernels = kernel_module("conv", device_of(x))
        self.plan = self.kernels.choose(geometry)
        self.in_hw = x.shape[2:]
        if tuple(conv_hw) != tuple(self.in_hw):
            # the extra positions of the forward conv are zeros of x (nothing flows from them)
            grown = xp.zeros(x.shape[:2] + tuple(conv_hw), dtype=x.dtype)
            grown[:, :, : x.shape[2], : x.shape[3]] = x
            x = grown
        self.x, self.weight, self.geometry = _contiguous(x), _contiguous(weight), geometry
        self.has_bias = bias is not None
        y = self.kernels.conv2d_backward_input(self.x, self.weight, geometry, self.plan)
        return _plus_bias(y, bias) if self.has_bias else y

    def backward(self, g):
        g = _contiguous(g)
        needs, k, geometry, plan = self.needs_input_grad, self.kernels, self.geometry, self.plan
        gx = gw = None
        if needs[0]:
            h, w = self.in_hw
            gx = _contiguous(k.conv2d_forward(g, self.weight, geometry, plan)[:, :, :h, :w])
        if needs[1]:
            gw = k.conv2d_backward_weight(self.x, g, geometry, plan)
        if not self.has_bias:
            return gx, gw
        return gx, gw, _bias_grad(g) if needs[2] else None


class Unfold(Function):
    """im2col: cols[b, (c, m, n), (i, j)] = xpad[b, c, sh i + dh m, sw j + dw n]; backward is col2im."""

    def forward(self, x, geometry=None):
        self.kernels, self.geometry = kernel_module("conv", device_of(x)), geometry
        return self.kernels.im2col(_contiguous(x), geometry)

    def backward(self, g):
        return self.kernels.col2im(_contiguous(g), self.geometry)


class Fold(Function):
    """col2im: add every column entry back onto the pixel it came from; backward is im2col."""

    def forward(self, cols, geometry=None):
        self.kernels, self.geometry = kernel_module("conv", device_of(cols)), geometry
        return self.kernels.col2im(_contiguous(cols), geometry)

    def backward(self, g):
        return self.kernels.im2col(_contiguous(g), self.geometry)


class LocallyConnected2dFunction(Function):
    """Unshared convolution: y[b, k, i, j] = bias[k, i, j] + sum_{c, m, n} w[i, j, k, c, m, n]
    x[b, c, s_h i + m, s_w j + n]. With cols = im2col(x) (N, C KH KW, L) and W_l the
    (K, C KH KW) matrix of position l: y[:, :, l] = W_l cols[:, :, l], one small matrix
    product per output position. Backward: dL/dcols[:, :, l] = W_l^T G[:, :, l] folded back
    with col2im, dL/dW_l = sum over the batch of G[:, :, l] cols[:, :, l]^T.
    """

    def forward(self, x, weight, bias=None, geometry=None):
        xp = xp_of(x)
        self.kernels, self.geometry = kernel_module("conv", device_of(x)), geometry
        oh, ow, k, c, kh, kw = weight.shape
        self.w_shape, self.has_bias = weight.shape, bias is not None
        self.cols = self.kernels.im2col(_contiguous(x), geometry)  # (N, J, L)
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
            gx = self.kernels.col2im(_contiguous(gcols), self.geometry)
        if self.needs_input_grad[1]:
            gw = xp.matmul(gl, self.cols.transpose(2, 0, 1)).reshape(self.w_shape)  # (L, K, J)
        if not self.has_bias:
            return gx, gw
        return gx, gw, g.sum(axis=0) if self.needs_input_grad[2] else None


# ------------------------------------------------------------------------ input layout
def _spatial_input(fn: str, x: Tensor, nd: int) -> bool:
    """True when ``x`` is unbatched (C, *spatial); checks the rank and that nothing but the
    batch is empty (an empty batch gives an empty output, as in PyTorch)."""
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: input must be {nd + 2}-D {layout} or {nd + 1}-D unbatched, "
                         f"got shape {x.shape}")
    if 0 in x.shape[-nd - 1:]:
        raise ValueError(f"{fn}: input of shape {x.shape} is empty")
    return x.ndim == nd + 1


def _as_image(t: Tensor, nd: int, unbatched: bool = False) -> Tensor:
    """(C, *spatial) or (N, C, *spatial) as (N, C, H, W): a batch of one, a signal of height 1."""
    t = t.unsqueeze(0) if unbatched else t
    return t.unsqueeze(2) if nd == 1 else t


def _from_image(y: Tensor, nd: int, unbatched: bool) -> Tensor:
    y = y.squeeze(2) if nd == 1 else y
    return y.squeeze(0) if unbatched else y


# ------------------------------------------------------------- cross-correlation layers
def _conv_nd(fn: str, nd: int, x, weight, bias, stride, padding, dilation, groups) -> Tensor:
    check_float_tensors(fn, input=x, weight=weight, bias=bias)
    unbatched = _spatial_input(fn, x, nd)
    batched_shape = (1, *x.shape) if unbatched else x.shape
    geometry = conv_geometry(fn, nd, batched_shape, weight.shape, None if bias is None else bias.shape,
                             stride, padding, dilation, groups)
    inputs = (_as_image(x, nd, unbatched), _as_image(weight, nd)) + (() if bias is None else (bias,))
    y = Conv2dFunction.apply(*inputs, geometry=geometry)
    return _from_image(y, nd, unbatched)


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
    check_float_tensors(fn, input=x, weight=weight, bias=bias)
    unbatched = _spatial_input(fn, x, nd)
    batched_shape = (1, *x.shape) if unbatched else x.shape
    geometry, conv_hw = conv_transpose_geometry(fn, nd, batched_shape, weight.shape,
                                                None if bias is None else bias.shape, stride, padding,
                                                output_padding, groups, dilation)
    inputs = (_as_image(x, nd, unbatched), _as_image(weight, nd)) + (() if bias is None else (bias,))
    y = ConvTranspose2dFunction.apply(*inputs, geometry=geometry, conv_hw=conv_hw)
    return _from_image(y, nd, unbatched)


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
    check_float_tensors(fn, input=x, kernel=kernel)
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
    check_float_tensors(fn, input=x, weight=weight, bias=bias)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{fn}: input must be a non-empty 4-D (N, C, H, W) tensor, got shape {x.shape}")
    if weight.ndim != 6 or 0 in weight.shape:
        raise ValueError(f"{fn}: weight must be 6-D (OH, OW, out_channels, in_channels, kH, kW), "
                         f"got shape {weight.shape}")
    oh, ow, k, c, kh, kw = weight.shape
    if c != x.shape[1]:
        raise ValueError(f"{fn}: weight of shape {weight.shape} expects {c} input channels, "
                         f"the input of shape {x.shape} has {x.shape[1]}")
    geometry = window_geometry(fn, x.shape, (kh, kw), 1, 0, stride)
    expected = (geometry.out_height, geometry.out_width)
    if (oh, ow) != expected:
        raise ValueError(f"{fn}: weight of shape {weight.shape} is for a {oh}x{ow} output, but an input "
                         f"of shape {x.shape} with kernel {(kh, kw)} and stride {geometry.stride} gives "
                         f"{expected[0]}x{expected[1]}")
    if bias is not None and bias.shape != (k, oh, ow):
        raise ValueError(f"{fn}: bias must have shape {(k, oh, ow)}, got {bias.shape}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return LocallyConnected2dFunction.apply(*inputs, geometry=geometry)


# ------------------------------------------------------------------------ im2col / col2im
def unfold(x: Tensor, kernel_size: IntOrTuple, dilation: IntOrTuple = 1, padding: Padding = 0,
           stride: IntOrTuple = 1) -> Tensor:
    """im2col (PyTorch's ``F.unfold``): copy every receptive field into a column,

        cols[b, (c, m, n), l] = xpad[b, c, s_h i + d_h m, s_w j + d_w n],  l = i OW + j,

    x (N, C, H, W) -> cols (N, C kH kW, OH OW). Then conv2d(x, w) is the matrix product
    ``w.reshape(K, -1) @ cols`` (how many fast convolutions are computed).
    """
    fn = "unfold"
    check_float_tensors(fn, input=x)
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(f"{fn}: input must be a 4-D (N, C, H, W) tensor, empty in N only, got shape "
                         f"{x.shape}")
    return Unfold.apply(x, geometry=window_geometry(fn, x.shape, kernel_size, dilation, padding, stride))


def fold(cols: Tensor, output_size: IntOrTuple, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
         padding: Padding = 0, stride: IntOrTuple = 1) -> Tensor:
    """col2im (PyTorch's ``F.fold``), the adjoint of :func:`unfold`: cols (N, C kH kW, L) ->
    (N, C, H, W) with ``output_size`` = (H, W); every entry is added to the pixel it was copied
    from, so overlapping windows sum (fold(unfold(x)) multiplies each pixel by the number of
    windows covering it)."""
    fn = "fold"
    check_float_tensors(fn, input=cols)
    if cols.ndim != 3 or 0 in cols.shape:
        raise ValueError(f"{fn}: input must be a non-empty 3-D (N, C kH kW, L) tensor, "
                         f"got shape {cols.shape}")
    size = sizes(fn, "output_size", output_size, 2)
    kernel = sizes(fn, "kernel_size", kernel_size, 2)
    area = kernel[0] * kernel[1]
    if cols.shape[1] % area:
        raise ValueError(f"{fn}: input of shape {cols.shape} needs dim 1 divisible by kH kW = {area}")
    geometry = window_geometry(fn, (cols.shape[0], cols.shape[1] // area, *size), kernel, dilation, padding,
                               stride)
    blocks = geometry.out_height * geometry.out_width
    if cols.shape[2] != blocks:
        raise ValueError(f"{fn}: input of shape {cols.shape} needs dim 2 equal to the {blocks} sliding "
                         f"positions over output_size {size}")
    return Fold.apply(cols, geometry=geometry)
