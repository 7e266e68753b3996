"""Fake quantization and the straight-through estimator: quantization-aware training (QAT).

Course: *quantized networks, training*. To make a network robust to rounding, train it with
the rounding in the forward pass. A fake-quantization node computes in float what the int8
model will compute:

    y = s (clamp(round(x / s) + z, qmin, qmax) - z)           (quantize, then dequantize)

``round`` has derivative 0 almost everywhere, which would stop all learning. The
**straight-through estimator** (Bengio et al., 2013) pretends the rounding was the identity in
the backward pass, and only the clipping is differentiated:

    dy/dx = 1  where qmin <= round(x / s) + z <= qmax,   0 where the value was clipped.

So the weights keep their real-valued copies, small gradient steps accumulate in them, and
the forward pass always sees the values that the integer model will use.

Modules:

* :class:`FakeQuantize`: an activation quantizer (per tensor, affine), with an observer that
  chooses its range from the data it sees in training mode (``observer_enabled``); with
  ``fake_quant_enabled=False`` it only observes (post-training calibration).
* :class:`FakeQuantConv2d`, :class:`FakeQuantLinear`: a convolution or dense layer (batch norm
  folded in, ReLU optionally fused) whose weights pass through symmetric per-channel fake
  quantization on every forward pass.

``prepare`` / ``prepare_qat`` (in ``tinygrad_cnn.quantization``) build networks of these from a
float model, and ``convert`` turns one into the integer model.
"""

from __future__ import annotations

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn
from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.nn.functional.checks import check_flag
from tinygrad_cnn.quantization.qparams import (
    OBSERVERS,
    QParams,
    affine_qparams,
    check_bits,
    make_observer,
    symmetric_weight_scales,
)
from tinygrad_cnn.tensor import Tensor


class FakeQuantizeFunction(Function):
    """y = s (clamp(round(x / s) + z, qmin, qmax) - z); dL/dx = dL/dy where nothing was clipped
    (the straight-through estimator), else 0. ``scale`` is a number (per tensor) or an array
    that broadcasts against x (per channel)."""

    def forward(self, x, scale=1.0, zero_point=0, qmin=-128, qmax=127):
        xp = xp_of(x)
        q = xp.rint(x / scale) + zero_point
        self.inside = (q >= qmin) & (q <= qmax)
        return ((xp.clip(q, qmin, qmax) - zero_point) * scale).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.inside


def fake_quantize(x: Tensor, qparams: QParams) -> Tensor:
    """Quantize and dequantize ``x`` with per-tensor ``qparams``, straight-through gradient."""
    return FakeQuantizeFunction.apply(x, scale=qparams.scale, zero_point=qparams.zero_point,
                                      qmin=qparams.qmin, qmax=qparams.qmax)


def fake_quantize_weight(weight: Tensor, bits: int) -> Tensor:
    """Symmetric per-output-channel fake quantization of a weight (the scales are recomputed from
    the current weights, max |w_k| / (2^(b-1) - 1), and are constants for the gradient)."""
    qmax = (1 << (bits - 1)) - 1
    scales = symmetric_weight_scales(weight.numpy(), bits)  # float64: w / s rounds as convert's does
    shape = (-1,) + (1,) * (weight.ndim - 1)
    return FakeQuantizeFunction.apply(weight, scale=scales.reshape(shape), zero_point=0, qmin=-qmax,
                                      qmax=qmax)


class FakeQuantize(nn.Module):
    """``FakeQuantize(bits=8, observer="minmax", percentile=99.99, averaging_constant=0.01)``:
    per-tensor affine fake quantization of activations.

    In training mode (with ``observer_enabled``) each batch first updates the range
    (``observer``: ``"minmax"``, ``"percentile"`` or ``"moving_average"``, see
    :mod:`tinygrad_cnn.quantization.qparams`); the range is kept in the buffers ``min_val`` and
    ``max_val`` (so it is saved in the state dict). With ``fake_quant_enabled`` the output is
    the fake-quantized input, else the input itself.
    """

    def __init__(self, bits: int = 8, observer: str = "minmax", percentile: float = 99.99,
                 averaging_constant: float = 0.01) -> None:
        super().__init__()
        self.bits = check_bits("FakeQuantize", "bits", bits)
        if observer not in OBSERVERS:
            raise ValueError(f"FakeQuantize: observer must be one of {OBSERVERS}, got {observer!r}")
        self.observer_name = observer
        self.observer = make_observer(observer, percentile, averaging_constant)
        self.register_buffer("min_val", Tensor(np.array(np.nan, dtype=np.float32)))
        self.register_buffer("max_val", Tensor(np.array(np.nan, dtype=np.float32)))
        self.fake_quant_enabled = True
        self.observer_enabled = True

    @property
    def calibrated(self) -> bool:
        return bool(np.isfinite(self.min_val.data) and np.isfinite(self.max_val.data))

    def qparams(self) -> QParams:
        """The quantization of this point of the network, from the observed range."""
        if not self.calibrated:
            raise RuntimeError("FakeQuantize has seen no data yet: run some batches through the model in "
                               "training mode (quantization-aware training or calibration) first")
        return affine_qparams(float(self.min_val.data), float(self.max_val.data), self.bits)

    def forward(self, x: Tensor) -> Tensor:
        if self.observer_enabled and self.training:
            self.observer.update(x.numpy())
            lo, hi = self.observer.range()
            self.min_val.data[...] = lo
            self.max_val.data[...] = hi
        if not self.fake_quant_enabled:
            return x
        return fake_quantize(x, self.qparams())

    def extra_repr(self) -> str:
        text = f"bits={self.bits}, observer={self.observer_name!r}"
        if self.calibrated:
            q = self.qparams()
            text += f", scale={q.scale:.4g}, zero_point={q.zero_point}"
        return text


class _FakeQuantWeights(nn.Module):
    """Shared by the fake-quantized layers: real-valued weight and bias Parameters (BN folded),
    a fused ReLU, and per-channel weight fake quantization at ``weight_bits``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, relu: bool, weight_bits: int, source: str):
        super().__init__()
        self.weight = nn.Parameter(Tensor(np.array(weight, dtype=np.float32)))
        self.bias = nn.Parameter(Tensor(np.array(bias, dtype=np.float32)))
        self.relu = check_flag(type(self).__name__, "relu", relu)
        self.weight_bits = check_bits(type(self).__name__, "weight_bits", weight_bits)
        self.source = source  # the float model's layer this one was made from
        self.fake_quant_enabled = True

    def quantized_weight(self) -> Tensor:
        return fake_quantize_weight(self.weight, self.weight_bits) if self.fake_quant_enabled else self.weight

    def _activate(self, y: Tensor) -> Tensor:
        return y.relu() if self.relu else y


class FakeQuantConv2d(_FakeQuantWeights):
    """A convolution with fake-quantized weights: y = conv2d(x, fq(w)) + b, then ReLU if fused.

    ``padding`` is (top, bottom, left, right) zero padding."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride, padding, dilation, groups: int,
                 relu: bool = False, weight_bits: int = 8, source: str = "") -> None:
        super().__init__(weight, bias, relu, weight_bits, source)
        self.stride, self.padding, self.dilation, self.groups = tuple(stride), tuple(padding), \
            tuple(dilation), groups

    def forward(self, x: Tensor) -> Tensor:
        top, bottom, left, right = self.padding
        y = F.conv2d(x, self.quantized_weight(), self.bias, self.stride, ((top, bottom), (left, right)),
                     self.dilation, self.groups)
        return self._activate(y)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, kernel_size="
                f"{tuple(self.weight.shape[2:])}, stride={self.stride}, padding={self.padding}, "
                f"groups={self.groups}, relu={self.relu}, weight_bits={self.weight_bits}, "
                f"from {self.source!r}")


class FakeQuantLinear(_FakeQuantWeights):
    """A dense layer with fake-quantized weights: y = x fq(W)^T + b, then ReLU if fused."""

    def forward(self, x: Tensor) -> Tensor:
        return self._activate(F.linear(x, self.quantized_weight(), self.bias))

    def extra_repr(self) -> str:
        return (f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, "
                f"relu={self.relu}, weight_bits={self.weight_bits}, from {self.source!r}")
