"""Keras's convolution layers over ``nn.Conv1d/Conv2d``, ``DepthwiseConv2d``, ``SeparableConv2d``
and ``ConvTranspose2d``: the same kernels, seen in Keras's layout, with Keras's padding rules.

Keras works channels-last, (N, H, W, C); the engine's convolutions are channels-first,
(N, C, H, W). Each layer transposes its input to NCHW, convolves, and transposes back
(``data_format='channels_first'`` skips both).

Padding (TensorFlow's rule, which Keras follows on every backend), per spatial dimension with
input size n, stride s and dilated kernel span K = d (k - 1) + 1:

* ``'valid'``: none; output floor((n - K) / s) + 1;
* ``'same'``: output ceil(n / s), total padding P = max((ceil(n / s) - 1) s + K - n, 0), of
  which floor(P / 2) goes before (top/left) and the rest, the odd pixel, after (bottom/right);
* ``'causal'`` (Conv1D): K - 1 zeros before, none after, so output t only sees inputs <= t.

Parameters as Keras counts them: Conv2D kh kw (C_in / groups) filters + filters;
DepthwiseConv2D kh kw C_in m + C_in m; SeparableConv2D kh kw C_in m + C_in m filters + filters;
Conv2DTranspose kh kw filters C_in + filters.
"""

from __future__ import annotations

import math

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn, theory
from tinygrad_cnn.keras import activations, backend, initializers
from tinygrad_cnn.keras.layers.base import DepthwiseLayout, Layer, conv_layout
from tinygrad_cnn.nn.functional.checks import check_flag, int_tuple, positive_int
from tinygrad_cnn.tensor import Tensor

__all__ = ["Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"]


# ----------------------------------------------------------------- layout and padding
def to_channels_first(x: Tensor, nd: int) -> Tensor:
    """(N, *spatial, C) -> (N, C, *spatial)."""
    return x.permute(0, nd + 1, *range(1, nd + 1))


def to_channels_last(x: Tensor, nd: int) -> Tensor:
    """(N, C, *spatial) -> (N, *spatial, C)."""
    return x.permute(0, *range(2, nd + 2), 1)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the odd pixel goes after."""
    span = dilation * (kernel - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def padding_pairs(padding: str, sizes, kernels, strides, dilations) -> tuple[tuple[int, int], ...]:
    """(before, after) per spatial dimension for 'valid', 'same' or 'causal'."""
    if padding == "valid":
        return tuple((0, 0) for _ in sizes)
    if padding == "causal":
        return tuple((d * (k - 1), 0) for k, d in zip(kernels, dilations))
    return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(sizes, kernels, strides, dilations))


def output_sizes(padding: str, sizes, kernels, strides, dilations) -> tuple[int | None, ...]:
    """Output sizes (None where the input size is unknown); a kernel larger than its input
    raises ValueError (from ``theory.conv_output_size``)."""
    out = []
    for n, k, s, d in zip(sizes, kernels, strides, dilations):
        if n is None:
            out.append(None)
        else:
            pair = padding_pairs(padding, (n,), (k,), (s,), (d,))[0]
            out.append(theory.conv_output_size(n, k, s, pair, d))
    return tuple(out)


def check_padding(cls: str, padding, allowed=("valid", "same")) -> str:
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ValueError(f"{cls}: padding must be one of {allowed}, got {padding!r}")
    return padding.lower()


class _SpatialLayer(Layer):
    """A layer over nd spatial dimensions in ``data_format`` (channels_last by default)."""

    nd = 2

    def __init__(self, data_format=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = backend.standardize_data_format(data_format)
        self.channels_last = self.data_format == "channels_last"
        self.channel_axis = -1 if self.channels_last else 1

    def spatial(self, shape) -> tuple:
        return tuple(shape[1:-1]) if self.channels_last else tuple(shape[2:])

    def with_spatial(self, shape, sizes, channels) -> tuple:
        return (shape[0], *sizes, channels) if self.channels_last else (shape[0], channels, *sizes)

    def channels(self, shape) -> int:
        self._expect_rank(shape)
        channels = shape[self.channel_axis]
        if channels is None:
            raise ValueError(f"layer '{self.name}': the channel axis of input shape {shape} must be known")
        return channels

    def _expect_rank(self, shape) -> None:
        if len(shape) != self.nd + 2:
            layout = "spatial..., channels" if self.channels_last else "channels, spatial..."
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {self.nd + 2}-D inputs "
                             f"(batch, {layout}), got shape {tuple(shape)}")

    def run_channels_first(self, x: Tensor, fn) -> Tensor:
        """fn on the NC... layout, with the transposes a channels_last layer needs around it."""
        if not self.channels_last:
            return fn(x)
        return to_channels_last(fn(to_channels_first(x, self.nd)), self.nd)


# ----------------------------------------------------------------- convolutions
class _Conv(_SpatialLayer):
    """Arguments (Keras's): ``filters``, ``kernel_size``, ``strides=1``, ``padding='valid'|'same'``,
    ``data_format``, ``dilation_rate=1``, ``groups=1``, ``activation=None``, ``use_bias=True``,
    ``kernel_initializer='glorot_uniform'``, ``bias_initializer='zeros'``."""

    paddings = ("valid", "same")

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid", data_format=None,
                 dilation_rate=1, groups: int = 1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs) -> None:
        super().__init__(data_format, **kwargs)
        cls, nd = type(self).__name__, self.nd
        self.filters = positive_int(cls, "filters", filters)
        self.kernel_size = int_tuple(cls, "kernel_size", kernel_size, nd)
        self.strides = int_tuple(cls, "strides", strides, nd)
        self.dilation_rate = int_tuple(cls, "dilation_rate", dilation_rate, nd)
        self.groups = positive_int(cls, "groups", groups)
        if self.filters % self.groups:
            raise ValueError(f"{cls}: filters {filters} must be divisible by groups {groups}")
        self.padding = check_padding(cls, padding, self.paddings)
        self.activation = activations.get(activation)
        self.use_bias = check_flag(cls, "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        channels = self.channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"layer '{self.name}': input channels {channels} must be divisible by "
                             f"groups {self.groups}")
        module_class = nn.Conv2d if self.nd == 2 else nn.Conv1d
        self.module = module_class(channels, self.filters, self.kernel_size, self.strides,
                                   dilation=self.dilation_rate, groups=self.groups, bias=self.use_bias,
                                   dtype=self.dtype)
        self._track("kernel", self.module.weight, conv_layout(self.nd), self.kernel_initializer)
        if self.use_bias:
            self._track("bias", self.module.bias, initializer=self.bias_initializer)
        self._expect(input_shape, self.nd + 2, {self.channel_axis: channels})

    def compute_output_shape(self, input_shape):
        sizes = output_sizes(self.padding, self.spatial(input_shape), self.kernel_size, self.strides,
                             self.dilation_rate)
        return self.with_spatial(input_shape, sizes, self.filters)

    def _convolve(self, x: Tensor) -> Tensor:
        pairs = padding_pairs(self.padding, x.shape[2:], self.kernel_size, self.strides, self.dilation_rate)
        conv = F.conv2d if self.nd == 2 else F.conv1d
        return conv(x, self.module.weight, self.module.bias, self.strides, pairs, self.dilation_rate,
                    self.groups)

    def call(self, inputs: Tensor) -> Tensor:
        return self.activation(self.run_channels_first(inputs, self._convolve))


class Conv2D(_Conv):
    """2-D convolution (cross-correlation) of (N, H, W, C) images; Keras kernel (kh, kw, C / groups,
    filters) over ``nn.Conv2d``'s weight (filters, C / groups, kh, kw). See :class:`_Conv`."""

    nd = 2


class Conv1D(_Conv):
    """1-D convolution of (N, L, C) sequences; padding also ``'causal'``. Kernel (k, C / groups, filters)."""

    nd = 1
    paddings = ("valid", "same", "causal")


class DepthwiseConv2D(_SpatialLayer):
    """Each input channel convolved with its own ``depth_multiplier`` kernels (no mixing of
    channels): Keras kernel (kh, kw, C, m) over ``nn.DepthwiseConv2d``'s (C m, 1, kh, kw).
    Arguments: ``kernel_size``, ``strides``, ``padding``, ``depth_multiplier=1``, ``data_format``,
    ``dilation_rate``, ``activation``, ``use_bias``, ``depthwise_initializer``, ``bias_initializer``."""

    def __init__(self, kernel_size, strides=1, padding: str = "valid", depth_multiplier: int = 1,
                 data_format=None, dilation_rate=1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs) -> None:
        super().__init__(data_format, **kwargs)
        cls = type(self).__name__
        self.kernel_size = int_tuple(cls, "kernel_size", kernel_size, 2)
        self.strides = int_tuple(cls, "strides", strides, 2)
        self.dilation_rate = int_tuple(cls, "dilation_rate", dilation_rate, 2)
        self.depth_multiplier = positive_int(cls, "depth_multiplier", depth_multiplier)
        self.padding = check_padding(cls, padding)
        self.activation = activations.get(activation)
        self.use_bias = check_flag(cls, "use_bias", use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        channels = self.channels(input_shape)
        self.module = nn.DepthwiseConv2d(channels, self.kernel_size, self.strides,
                                         dilation=self.dilation_rate, depth_multiplier=self.depth_multiplier,
                                         bias=self.use_bias, dtype=self.dtype)
        self._track("kernel", self.module.weight, DepthwiseLayout(self.depth_multiplier),
                    self.depthwise_initializer)
        if self.use_bias:
            self._track("bias", self.module.bias, initializer=self.bias_initializer)
        self._expect(input_shape, 4, {self.channel_axis: channels})

    def compute_output_shape(self, input_shape):
        sizes = output_sizes(self.padding, self.spatial(input_shape), self.kernel_size, self.strides,
                             self.dilation_rate)
        return self.with_spatial(input_shape, sizes, self.channels(input_shape) * self.depth_multiplier)

    def _convolve(self, x: Tensor) -> Tensor:
        m = self.module
        pairs = padding_pairs(self.padding, x.shape[2:], self.kernel_size, self.strides, self.dilation_rate)
        return F.conv2d(x, m.weight, m.bias, self.strides, pairs, self.dilation_rate, m.groups)

    def call(self, inputs: Tensor) -> Tensor:
        return self.activation(self.run_channels_first(inputs, self._convolve))


class SeparableConv2D(DepthwiseConv2D):
    """Depthwise convolution (no bias) then a 1x1 pointwise convolution to ``filters`` maps, over
    ``nn.SeparableConv2d``: Keras weights depthwise_kernel (kh, kw, C, m), pointwise_kernel
    (1, 1, C m, filters), bias (filters,). Arguments: ``filters`` first, then as DepthwiseConv2D,
    with ``pointwise_initializer``."""

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid", data_format=None,
                 dilation_rate=1, depth_multiplier: int = 1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs) -> None:
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
                         activation, use_bias, depthwise_initializer, bias_initializer, **kwargs)
        self.filters = positive_int(type(self).__name__, "filters", filters)
        self.pointwise_initializer = initializers.get(pointwise_initializer)

    def build(self, input_shape) -> None:
        channels = self.channels(input_shape)
        self.module = nn.SeparableConv2d(channels, self.filters, self.kernel_size, self.strides,
                                         dilation=self.dilation_rate, depth_multiplier=self.depth_multiplier,
                                         bias=self.use_bias, dtype=self.dtype)
        self._track("depthwise_kernel", self.module.depthwise.weight, DepthwiseLayout(self.depth_multiplier),
                    self.depthwise_initializer)
        self._track("pointwise_kernel", self.module.pointwise.weight, conv_layout(2),
                    self.pointwise_initializer)
        if self.use_bias:
            self._track("bias", self.module.pointwise.bias, initializer=self.bias_initializer)
        self._expect(input_shape, 4, {self.channel_axis: channels})

    def compute_output_shape(self, input_shape):
        sizes = output_sizes(self.padding, self.spatial(input_shape), self.kernel_size, self.strides,
                             self.dilation_rate)
        return self.with_spatial(input_shape, sizes, self.filters)

    def _convolve(self, x: Tensor) -> Tensor:
        depthwise, pointwise = self.module.depthwise, self.module.pointwise
        pairs = padding_pairs(self.padding, x.shape[2:], self.kernel_size, self.strides, self.dilation_rate)
        y = F.conv2d(x, depthwise.weight, None, self.strides, pairs, self.dilation_rate, depthwise.groups)
        return F.conv2d(y, pointwise.weight, pointwise.bias)


class Conv2DTranspose(_Conv):
    """Transposed convolution (the adjoint of Conv2D: U-Net's up-convolution), over
    ``nn.ConvTranspose2d``; Keras kernel (kh, kw, filters, C). Output size per dimension, with
    K = d (k - 1) + 1: ``'same'`` n s, ``'valid'`` n s + max(K - s, 0); with ``output_padding``
    p, (n - 1) s + K - 2 pad + p with pad = K // 2 for 'same' and 0 for 'valid'. The full
    transposed convolution has (n - 1) s + K positions; the T = (n - 1) s + K - output extra
    ones are cropped, floor(T / 2) before and the rest after (T < 0: zeros appended after)."""

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, 1, activation,
                         use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = int_tuple("Conv2DTranspose", "output_padding", output_padding, 2, 0)
            if any(p >= s for p, s in zip(self.output_padding, self.strides)):
                raise ValueError(f"Conv2DTranspose: output_padding {self.output_padding} must be smaller "
                                 f"than strides {self.strides}")

    def build(self, input_shape) -> None:
        channels = self.channels(input_shape)
        self.module = nn.ConvTranspose2d(channels, self.filters, self.kernel_size, self.strides,
                                         bias=self.use_bias, dilation=self.dilation_rate, dtype=self.dtype)
        self._track("kernel", self.module.weight, conv_layout(2), self.kernel_initializer)
        if self.use_bias:
            self._track("bias", self.module.bias, initializer=self.bias_initializer)
        self._expect(input_shape, 4, {self.channel_axis: channels})

    def _output_size(self, axis: int, n: int) -> int:
        k, s, d = self.kernel_size[axis], self.strides[axis], self.dilation_rate[axis]
        span = d * (k - 1) + 1
        if self.output_padding is None:
            return n * s + (max(span - s, 0) if self.padding == "valid" else 0)
        pad = span // 2 if self.padding == "same" else 0
        return (n - 1) * s + span - 2 * pad + self.output_padding[axis]

    def compute_output_shape(self, input_shape):
        sizes = tuple(None if n is None else self._output_size(i, n)
                      for i, n in enumerate(self.spatial(input_shape)))
        return self.with_spatial(input_shape, sizes, self.filters)

    def _convolve(self, x: Tensor) -> Tensor:
        crops, extra = [], []
        for axis, n in enumerate(x.shape[2:]):
            k, s, d = self.kernel_size[axis], self.strides[axis], self.dilation_rate[axis]
            surplus = (n - 1) * s + d * (k - 1) + 1 - self._output_size(axis, n)
            before = max(surplus // 2, 0)
            after = surplus - before
            crops.append((before, max(after, 0)))
            extra.append(max(-after, 0))
        m = self.module
        return F.conv_transpose2d(x, m.weight, m.bias, self.strides, tuple(crops), tuple(extra), 1,
                                  self.dilation_rate)
