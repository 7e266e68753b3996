"""Convolution layers: Conv1d/2d, ConvTranspose1d/2d, locally connected, depthwise, separable.

A convolution layer with C_in input maps, K kernels of size kH x kW and a bias per kernel
has C_in kH kW K + K parameters (course: e.g. Conv2d(3, 16, 5) has 3*5*5*16 + 16 = 1216;
3 input maps and two 3x3 kernels: 3*3*3*2 + 2 = 56); with ``groups`` G each kernel sees only
C_in / G maps. Weight sharing makes that count independent of the image size, unlike a dense
layer or the locally connected layer.

Initialisation follows PyTorch: weight ~ kaiming_uniform_(a=sqrt(5)), which is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.shape[1] kH kW, and
bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.nn import init
from tinygrad_cnn.nn.functional.checks import check_flag, positive_int
from tinygrad_cnn.nn.functional.geometry import padding_pairs, sizes, window_count
from tinygrad_cnn.nn.module import Module, Parameter
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LocallyConnected2d",
    "DepthwiseConv2d", "SeparableConv2d",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_PAD_MODE_OF = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _positive(cls: str, **values) -> None:
    for name, n in values.items():
        positive_int(cls, name, n)


def _init_weight_and_bias(module: Module, weight_shape, bias_shape, fan_in: int, bias: bool, dtype) -> None:
    """PyTorch's reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    dtype = dtype or "float32"
    module.weight = Parameter(Tensor.zeros(*weight_shape, dtype=dtype))
    bound = 1 / math.sqrt(fan_in)
    init.uniform_(module.weight, -bound, bound)
    if bias:
        module.bias = Parameter(Tensor.zeros(*bias_shape, dtype=dtype))
        init.uniform_(module.bias, -bound, bound)
    else:
        module.register_parameter("bias", None)


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding=0, dtype=None):
        super().__init__()
        cls, nd = type(self).__name__, self._nd
        _positive(cls, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{cls}: in_channels {in_channels} and out_channels {out_channels} must both "
                             f"be divisible by groups {groups}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{cls}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        check_flag(cls, "bias", bias)
        self.kernel_size = sizes(cls, "kernel_size", kernel_size, nd)
        self.stride = sizes(cls, "stride", stride, nd)
        self.dilation = sizes(cls, "dilation", dilation, nd)
        self.output_padding = sizes(cls, "output_padding", output_padding, nd, 0)
        if isinstance(padding, str) and self._transposed:
            raise ValueError(f"{cls}: padding must be an int or a tuple, not the name {padding!r}")
        # resolve once to validate (and to know the explicit widths for non-zero padding modes)
        self._pairs = padding_pairs(cls, padding, nd, self.kernel_size, self.stride, self.dilation)
        self.padding = padding if isinstance(padding, str) else \
            (tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * nd)
        self.padding_mode = padding_mode
        if self._transposed:
            weight_shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            weight_shape = (out_channels, in_channels // groups, *self.kernel_size)
        fan_in = weight_shape[1] * math.prod(self.kernel_size)
        _init_weight_and_bias(self, weight_shape, (out_channels,), fan_in, bias, dtype)

    def _conv_padding(self, x: Tensor):
        """For padding_mode 'zeros' the convolution pads; otherwise pad here with F.pad and convolve
        without padding (F.pad lists (before, after) pairs from the last dimension backwards)."""
        if self.padding_mode == "zeros":
            return x, self.padding
        widths = tuple(w for pair in reversed(self._pairs) for w in pair)
        return F.pad(x, widths, mode=_PAD_MODE_OF[self.padding_mode]), 0

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str) or self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer (a cross-correlation, see :func:`F.conv2d`), PyTorch's signature.

    x (N, C_in, H, W) -> (N, C_out, OH, OW), OH = floor((H + 2P - d (k - 1) - 1) / S) + 1.
    weight (C_out, C_in / groups, kH, kW), bias (C_out,).
    Parameters: (C_in / groups) kH kW C_out + C_out.
    ``padding``: int, tuple (an int or a (before, after) pair per dim), ``'valid'``, ``'same'``
    or ``'full'``; ``padding_mode``: ``'zeros'``, ``'reflect'`` (mirror without repeating the
    edge), ``'replicate'`` (repeat the edge) or ``'circular'`` (wrap around: the image is a torus,
    which makes the layer exactly translation equivariant under cyclic shifts).
    """

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._conv_padding(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution layer over signals (N, C_in, L) -> (N, C_out, L_out); weight (C_out, C_in / groups, k).
    Parameters: (C_in / groups) k C_out + C_out. Arguments as :class:`Conv2d`."""

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._conv_padding(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (U-Net's up-convolution), the adjoint of :class:`Conv2d`
    (:func:`F.conv_transpose2d`). weight (C_in, C_out / groups, kH, kW), bias (C_out,),
    OH = (H - 1) S - 2P + d (kH - 1) + output_padding + 1. With kernel_size = stride = 2 it
    doubles the image size (the common "up-conv 2x2"). Parameters: C_in (C_out / groups) kH kW + C_out.
    """

    _nd = 2
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-D convolution, the adjoint of :class:`Conv1d`; weight (C_in, C_out / groups, k)."""

    _nd = 1
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class DepthwiseConv2d(Conv2d):
    """Depthwise convolution: each input channel is convolved with its own ``depth_multiplier``
    kernels, never mixing channels (``Conv2d`` with groups = in_channels). Output channels:
    in_channels * depth_multiplier; parameters: C_in m kH kW + C_in m.
    """

    def __init__(self, in_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 depth_multiplier: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None):
        _positive("DepthwiseConv2d", in_channels=in_channels, depth_multiplier=depth_multiplier)
        super().__init__(in_channels, in_channels * depth_multiplier, kernel_size, stride, padding, dilation,
                         groups=in_channels, bias=bias, padding_mode=padding_mode, dtype=dtype)
        self.depth_multiplier = depth_multiplier


class SeparableConv2d(Module):
    """Depthwise separable convolution (MobileNet, Xception): a depthwise kH x kW convolution
    (spatial filtering, each channel alone, ``depth_multiplier`` kernels per channel) followed by
    a 1x1 pointwise convolution (mixing channels).

    Parameters: C_in m kH kW (depthwise, no bias, as Keras) + C_in m C_out + C_out (pointwise), versus
    C_in kH kW C_out + C_out for a full Conv2d: e.g. 32 -> 64 channels, 3x3: 2400 instead of 18496.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 depth_multiplier: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None):
        super().__init__()
        _positive("SeparableConv2d", in_channels=in_channels, out_channels=out_channels,
                  depth_multiplier=depth_multiplier)
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation,
                                         depth_multiplier, bias=False, padding_mode=padding_mode,
                                         dtype=dtype)
        self.pointwise = Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class LocallyConnected2d(Module):
    """Locally connected layer (unshared convolution, :func:`F.locally_connected2d`): local
    receptive fields like a convolution, but a separate kernel (and bias) at every output position.

    ``input_size`` (H, W) fixes the output grid OH = (H - kH) // S + 1 (valid padding).
    weight (OH, OW, C_out, C_in, kH, kW), bias (C_out, OH, OW);
    parameters: OH OW (C_in kH kW C_out + C_out), OH OW times those of the matching Conv2d.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size, kernel_size, stride=1,
                 bias: bool = True, dtype=None):
        super().__init__()
        cls = "LocallyConnected2d"
        _positive(cls, in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = sizes(cls, "input_size", input_size, 2)
        self.kernel_size = sizes(cls, "kernel_size", kernel_size, 2)
        self.stride = sizes(cls, "stride", stride, 2)
        if any(k > n for k, n in zip(self.kernel_size, self.input_size)):
            raise ValueError(f"{cls}: kernel_size {self.kernel_size} is larger than input_size "
                             f"{self.input_size}")
        self.output_size = tuple(window_count(n, k, s) for n, k, s in
                                 zip(self.input_size, self.kernel_size, self.stride))
        fan_in = in_channels * math.prod(self.kernel_size)
        _init_weight_and_bias(self, (*self.output_size, out_channels, in_channels, *self.kernel_size),
                              (out_channels, *self.output_size), fan_in, bias, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.locally_connected2d(x, self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, bias={self.bias is not None}")

