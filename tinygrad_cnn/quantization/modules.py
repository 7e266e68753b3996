"""The layers of an integer model: int8 tensors in, int8 tensors out, int32 inside.

Each layer holds its integer constants as buffers (so ``state_dict`` and
``tinygrad_cnn.save`` see them): int8 weights, int32 biases in units of s_x s_w[k], and per
output channel the requantization multiplier (int32) and shift (int8) of
M[k] = s_x s_w[k] / s_y. Scales and zero points of activations are plain numbers fixed at
conversion. The arithmetic runs on the ``quantized`` kernels of the current backend
(``kernels/reference/quantized.py`` derives it); only :class:`Quantize` and
:class:`DeQuantize`, at the two ends, touch floats.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn import nn
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.geometry import conv_geometry, pool_geometry
from tinygrad_cnn.quantization.qparams import QParams, quantize_multiplier
from tinygrad_cnn.tensor import Tensor


def _kernels():
    return kernel_module("quantized", "cpu")


def _int8_input(layer: nn.Module, x: Tensor) -> np.ndarray:
    if not isinstance(x, Tensor) or x.dtype != np.int8:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{type(layer).__name__}: expects an int8 Tensor (the output of Quantize or of an "
                        f"integer layer), got {got}")
    if x.device != "cpu":
        raise ValueError(f"{type(layer).__name__}: the int8 kernels run on the CPU; move the input with "
                         ".cpu()")
    return x.data


class Quantize(nn.Module):
    """float -> int8: q = clamp(round(x / s) + z, qmin, qmax), the network's first step."""

    def __init__(self, qparams: QParams) -> None:
        super().__init__()
        self.qparams = qparams

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dtype.kind != "f":
            raise TypeError(f"Quantize: expects a float Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        values = x.numpy()
        if not np.isfinite(values).all():
            raise ValueError("Quantize: the input holds NaN or infinite values, which have no integer")
        return Tensor._wrap(self.qparams.quantize(values))

    def extra_repr(self) -> str:
        q = self.qparams
        return f"scale={q.scale:.4g}, zero_point={q.zero_point}, range=[{q.qmin}, {q.qmax}]"


class DeQuantize(nn.Module):
    """int8 -> float32: x = s (q - z), the network's last step (the logits)."""

    def __init__(self, qparams: QParams) -> None:
        super().__init__()
        self.qparams = qparams

    def forward(self, x: Tensor) -> Tensor:
        return Tensor._wrap(self.qparams.dequantize(_int8_input(self, x)))

    def extra_repr(self) -> str:
        return f"scale={self.qparams.scale:.4g}, zero_point={self.qparams.zero_point}"


class _Requantizing(nn.Module):
    """A layer that ends in requantization from (input scale x ``real_multiplier``) to the output
    scale; ``relu`` clamps at the output zero point instead of qmin."""

    def __init__(self, x_q: QParams, y_q: QParams, real_multiplier: np.ndarray, relu: bool) -> None:
        super().__init__()
        self.input_q, self.output_q, self.relu = x_q, y_q, relu
        multiplier, shift = quantize_multiplier(real_multiplier)
        self.register_buffer("multiplier", Tensor(multiplier))
        self.register_buffer("shift", Tensor(shift))

    def _output_args(self) -> tuple:
        """(multiplier, shift, zero point, qmin, qmax) as the kernels take them."""
        y = self.output_q
        return (self.multiplier.data, self.shift.data, y.zero_point,
                y.zero_point if self.relu else y.qmin, y.qmax)


class _WeightedInteger(_Requantizing):
    """int8 weights with per-channel scales s_w (kept for inspection: :meth:`dequantized_weight`)
    and an int32 bias b_q = round(b / (s_x s_w[k]))."""

    def __init__(self, weight_q: np.ndarray, weight_scales: np.ndarray, bias: np.ndarray, x_q: QParams,
                 y_q: QParams, relu: bool, source: str) -> None:
        super().__init__(x_q, y_q, x_q.scale * weight_scales / y_q.scale, relu)
        self.register_buffer("weight", Tensor(np.ascontiguousarray(weight_q, dtype=np.int8)))
        bias_q = np.rint(np.asarray(bias, dtype=np.float64) / (x_q.scale * weight_scales))
        if np.abs(bias_q).max(initial=0) >= 2**31:
            raise ValueError(f"quantize: the bias of {source!r} does not fit in int32 at scale s_x s_w "
                             f"(largest {np.abs(bias_q).max():.3g})")
        self.register_buffer("bias", Tensor(bias_q.astype(np.int32)))
        self.weight_scales = np.asarray(weight_scales, dtype=np.float64)
        self.source = source

    def dequantized_weight(self) -> np.ndarray:
        """s_w[k] w_q: the real weights the integer layer computes with."""
        shape = (-1,) + (1,) * (self.weight.ndim - 1)
        return (self.weight.data * self.weight_scales.reshape(shape)).astype(np.float32)


class QuantizedConv2d(_WeightedInteger):
    """int8 convolution: int32 sum of (x - z_x) w_q + b_q, requantized to the output's scale."""

    def __init__(self, weight_q, weight_scales, bias, x_q, y_q, stride, padding, dilation, groups, relu=False,
                 source: str = "") -> None:
        super().__init__(weight_q, weight_scales, bias, x_q, y_q, relu, source)
        self.stride, self.padding, self.dilation, self.groups = tuple(stride), tuple(padding), \
            tuple(dilation), int(groups)

    def forward(self, x: Tensor) -> Tensor:
        data = _int8_input(self, x)
        if data.ndim != 4 or data.shape[1] != self.weight.shape[1] * self.groups:
            raise ValueError(f"QuantizedConv2d: expects (N, {self.weight.shape[1] * self.groups}, H, W), "
                             f"got {data.shape}")
        top, bottom, left, right = self.padding
        geometry = conv_geometry("QuantizedConv2d", 2, data.shape, self.weight.shape, None, self.stride,
                                 ((top, bottom), (left, right)), self.dilation, self.groups)
        y = _kernels().conv2d(data, self.input_q.zero_point, self.weight.data, self.bias.data,
                              *self._output_args(), geometry)
        return Tensor._wrap(y)

    def extra_repr(self) -> str:
        k, c = self.weight.shape[:2]
        dilation = f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        return (f"{c * self.groups}, {k}, kernel_size={tuple(self.weight.shape[2:])}, stride={self.stride}, "
                f"padding={self.padding}{dilation}, groups={self.groups}, relu={self.relu}, "
                f"from {self.source!r}")


class QuantizedLinear(_WeightedInteger):
    """int8 dense layer: int32 sum of (x - z_x) w_q + b_q, requantized to the output's scale."""

    def forward(self, x: Tensor) -> Tensor:
        data = _int8_input(self, x)
        if data.ndim != 2 or data.shape[1] != self.weight.shape[1]:
            raise ValueError(f"QuantizedLinear: expects (N, {self.weight.shape[1]}), got {data.shape}")
        return Tensor._wrap(_kernels().linear(data, self.input_q.zero_point, self.weight.data, self.bias.data,
                                              *self._output_args()))

    def extra_repr(self) -> str:
        return (f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, relu={self.relu}, "
                f"from {self.source!r}")


class QuantizedAvgPool2d(_Requantizing):
    """int8 average pooling: int32 window sums of (x - z_x), times M = s_x / (s_y KH KW)."""

    def __init__(self, kernel_size, stride, padding, x_q: QParams, y_q: QParams) -> None:
        area = kernel_size[0] * kernel_size[1]
        super().__init__(x_q, y_q, np.array([x_q.scale / (y_q.scale * area)]), relu=False)
        self.kernel_size, self.stride, self.padding = tuple(kernel_size), tuple(stride), tuple(padding)

    def forward(self, x: Tensor) -> Tensor:
        data = _int8_input(self, x)
        geometry = pool_geometry("QuantizedAvgPool2d", 2, data.shape, self.kernel_size, self.stride,
                                 self.padding)
        return Tensor._wrap(_kernels().avg_pool2d(data, self.input_q.zero_point, *self._output_args(),
                                                  geometry))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class QuantizedMaxPool2d(nn.Module):
    """int8 max pooling: the largest integer of each window (same scale and zero point out)."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode: bool) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = tuple(kernel_size), tuple(stride), tuple(padding)
        self.dilation, self.ceil_mode = tuple(dilation), bool(ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        data = _int8_input(self, x)
        geometry = pool_geometry("QuantizedMaxPool2d", 2, data.shape, self.kernel_size, self.stride,
                                 self.padding, self.dilation, self.ceil_mode)
        return Tensor._wrap(_kernels().max_pool2d(data, geometry))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class QuantizedReLU(nn.Module):
    """ReLU on integers: max(q, z), since the zero point z stands for the real 0."""

    def __init__(self, zero_point: int) -> None:
        super().__init__()
        self.zero_point = int(zero_point)

    def forward(self, x: Tensor) -> Tensor:
        return Tensor._wrap(np.maximum(_int8_input(self, x), np.int8(self.zero_point)))

    def extra_repr(self) -> str:
        return f"zero_point={self.zero_point}"


class QuantizedModel(nn.Sequential):
    """An integer network: Quantize, int8 layers, DeQuantize. Float images in, float logits out
    (computed in int8/int32 in between); ``input_shape`` is the per-sample shape it accepts."""

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"QuantizedModel: expects a Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"QuantizedModel: expects inputs (N, {', '.join(map(str, self.input_shape))}) "
                             f"(the shape it was calibrated on), got {tuple(x.shape)}")
        return super().forward(x)
