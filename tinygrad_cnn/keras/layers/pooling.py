"""Keras's pooling layers over ``F.max_pool1d/2d`` and ``F.avg_pool1d/2d``.

``pool_size`` defaults to 2 and ``strides`` to ``pool_size`` (non-overlapping windows).
``padding='same'`` pads as a 'same' convolution does (TensorFlow's rule, the odd pixel after,
see :mod:`tinygrad_cnn.keras.layers.conv`), with padding that never takes part: for max pooling
the frame is -inf (it never wins), and average pooling divides each window's sum by the number
of real pixels in it (avg_pool of the zero-framed input over avg_pool of a zero-framed ones
mask), as Keras does. Global pooling reduces every spatial axis to one value per channel.
"""

from __future__ import annotations

import math

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.keras.layers.conv import (
    _SpatialLayer,
    check_padding,
    output_sizes,
    padding_pairs,
)
from tinygrad_cnn.nn.functional.checks import check_flag, int_tuple
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
]


def _pad_widths(pairs) -> tuple[int, ...]:
    """(before, after) pairs per spatial dim -> F.pad's widths (last dimension first)."""
    return tuple(w for pair in reversed(pairs) for w in pair)


class _Pooling(_SpatialLayer):
    """Arguments: ``pool_size=2``, ``strides=None`` (= pool_size), ``padding='valid'|'same'``,
    ``data_format``."""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", data_format=None, **kwargs) -> None:
        super().__init__(data_format, **kwargs)
        cls = type(self).__name__
        self.pool_size = int_tuple(cls, "pool_size", pool_size, self.nd)
        self.strides = self.pool_size if strides is None else int_tuple(cls, "strides", strides, self.nd)
        self.padding = check_padding(cls, padding)

    def build(self, input_shape) -> None:
        self._expect(input_shape, self.nd + 2)

    def compute_output_shape(self, input_shape):
        sizes = output_sizes(self.padding, self.spatial(input_shape), self.pool_size, self.strides,
                             (1,) * self.nd)
        return self.with_spatial(input_shape, sizes, input_shape[self.channel_axis])

    def _pool(self, x: Tensor) -> Tensor:
        ones = (1,) * self.nd
        pairs = padding_pairs(self.padding, x.shape[2:], self.pool_size, self.strides, ones)
        padded = any(sum(pair) for pair in pairs)
        if self.nd == 1:  # the 1-d ops are the 2-d ones on images of height 1
            kernel, stride = self.pool_size[0], self.strides[0]
        else:
            kernel, stride = self.pool_size, self.strides
        return self._reduce(x, pairs if padded else None, kernel, stride)

    def call(self, inputs: Tensor) -> Tensor:
        return self.run_channels_first(inputs, self._pool)


class _MaxPooling(_Pooling):
    def _reduce(self, x, pairs, kernel, stride):
        pool = F.max_pool2d if self.nd == 2 else F.max_pool1d
        if pairs is not None:
            x = F.pad(x, _pad_widths(pairs), value=-math.inf)
        return pool(x, kernel, stride)


class _AveragePooling(_Pooling):
    def _reduce(self, x, pairs, kernel, stride):
        pool = F.avg_pool2d if self.nd == 2 else F.avg_pool1d
        if pairs is None:
            return pool(x, kernel, stride)
        widths = _pad_widths(pairs)
        with no_grad():  # the share of real pixels in each window: a constant
            ones = Tensor(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype))
            share = pool(F.pad(ones, widths), kernel, stride)
        return pool(F.pad(x, widths), kernel, stride) / share


class MaxPooling2D(_MaxPooling):
    """The largest value of each window of (N, H, W, C) maps."""

    nd = 2


class MaxPooling1D(_MaxPooling):
    """The largest value of each window of (N, L, C) sequences."""

    nd = 1


class AveragePooling2D(_AveragePooling):
    """The mean of each window of (N, H, W, C) maps (padding not counted)."""

    nd = 2


class AveragePooling1D(_AveragePooling):
    """The mean of each window of (N, L, C) sequences (padding not counted)."""

    nd = 1


class _GlobalPooling(_SpatialLayer):
    """Arguments: ``data_format``, ``keepdims=False`` (keep the spatial axes, of size 1)."""

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(data_format, **kwargs)
        self.keepdims = check_flag(type(self).__name__, "keepdims", keepdims)

    def build(self, input_shape) -> None:
        self._expect(input_shape, self.nd + 2)

    def _axes(self) -> tuple[int, ...]:
        return tuple(range(1, self.nd + 1)) if self.channels_last else tuple(range(2, self.nd + 2))

    def compute_output_shape(self, input_shape):
        channels = input_shape[self.channel_axis]
        if self.keepdims:
            return self.with_spatial(input_shape, (1,) * self.nd, channels)
        return (input_shape[0], channels)

    def call(self, inputs: Tensor) -> Tensor:
        return self._reduce(inputs, self._axes())


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean of each feature map: (N, H, W, C) -> (N, C)."""

    nd = 2

    def _reduce(self, x, axes):
        return x.mean(axes, keepdim=self.keepdims)


class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """The mean over time of each channel: (N, L, C) -> (N, C)."""

    nd = 1


class GlobalMaxPooling2D(_GlobalPooling):
    """The largest value of each feature map: (N, H, W, C) -> (N, C)."""

    nd = 2

    def _reduce(self, x, axes):
        return x.amax(axes, keepdim=self.keepdims)


class GlobalMaxPooling1D(GlobalMaxPooling2D):
    """The largest value over time of each channel: (N, L, C) -> (N, C)."""

    nd = 1
