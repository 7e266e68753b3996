"""Binarized layers (BinaryConnect, Courbariaux et al. 2015; Binarized Neural Networks, Hubara,
Courbariaux et al. 2016): weights and activations of +1 or -1.

Course: *binarized networks*. A binarized layer keeps **real-valued latent weights** W for
learning, but computes with their signs:

    forward:   W_b = sign(W),  x_b = sign(x),  y = x_b W_b^T + b      (sign(0) = +1)

A product of two signs is an XNOR and a dot product of n of them is n - 2 popcount(a XOR b):
a binarized layer needs one bit per weight (32 times less memory than float32) and bit
operations instead of multiplications. The derivative of sign is 0 almost everywhere, so
training uses the **straight-through estimator with clipping**: in the backward pass sign
is treated as the identity where |u| <= 1 and as a constant elsewhere,

    dL/du = dL/d sign(u) * 1_{|u| <= 1}          (the derivative of hard tanh, clip(u, -1, 1))

for the weights and for the activations alike. The clipping cancels the gradient of large
inputs, whose sign a small step cannot change anyway. As BinaryConnect prescribes, the latent
weights are also clipped to [-1, 1] after every update (here: at the start of every training
forward pass, which is the same, since nothing reads them in between); beyond +-1 they would
stop receiving gradient for good.

Courbariaux et al. keep the first layer's input real (the pixels) and end the network with
batch norm; ``binarize_input=False`` is for that first layer. Zero padding pads the binarized
input with 0, a third value, as their implementation does.
"""

from __future__ import annotations

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.autograd import Function, no_grad
from tinygrad_cnn.device import xp_of
from tinygrad_cnn.nn.conv import Conv2d
from tinygrad_cnn.nn.functional.checks import check_flag, check_tensor
from tinygrad_cnn.nn.layers import Linear
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor

__all__ = ["binarize", "BinarizedConv2d", "BinarizedLinear", "packed_weight", "binarized_size_bytes"]


class SignSTE(Function):
    """b = sign(u) in {-1, +1} (+1 at 0; a NaN stays NaN, as torch.sign, instead of
    passing for -1); dL/du = dL/db where |u| <= 1, else 0."""

    def forward(self, u):
        xp = xp_of(u)
        self.inside = xp.abs(u) <= 1
        signs = xp.where(u >= 0, 1, -1).astype(u.dtype)
        return xp.where(xp.isnan(u), u, signs)

    def backward(self, g):
        return g * self.inside


def binarize(u: Tensor) -> Tensor:
    """sign(u) as +-1 (+1 at 0, NaN kept), with the straight-through estimator clipped at
    |u| <= 1."""
    return SignSTE.apply(check_tensor("binarize", "input", u))


class _Binarized:
    """What both binarized layers share: the input flag, the weight clipping, the binary weights."""

    weight: Tensor
    training: bool

    def _init_binarized(self, binarize_input: bool) -> None:
        self.binarize_input = check_flag(type(self).__name__, "binarize_input", binarize_input)

    def _binary_operands(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training:  # BinaryConnect's clip of the latent weights after each update
            with no_grad():
                xp_of(self.weight.data).clip(self.weight.data, -1.0, 1.0, out=self.weight.data)
        return (binarize(x) if self.binarize_input else x), binarize(self.weight)

    def binary_weight(self) -> np.ndarray:
        """The +-1 weights the layer computes with."""
        return np.where(self.weight.numpy() >= 0, 1, -1).astype(np.int8)


class BinarizedConv2d(_Binarized, Conv2d):
    """A convolution with binary weights sign(W) and, with ``binarize_input=True``, binary inputs
    sign(x); the arguments of :class:`~tinygrad_cnn.nn.Conv2d` (bias stays real, often left out
    since a batch norm follows). Parameters: the latent real weights (and the bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, binarize_input: bool = True, padding_mode: str = "zeros",
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype)
        self._init_binarized(binarize_input)

    def forward(self, x: Tensor) -> Tensor:
        x, weight = self._binary_operands(x)
        x, padding = self._conv_padding(x)
        return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", binarize_input={self.binarize_input}"


class BinarizedLinear(_Binarized, Linear):
    """A dense layer y = sign(x) sign(W)^T + b (``binarize_input=False``: x itself); the
    arguments of :class:`~tinygrad_cnn.nn.Linear`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, binarize_input: bool = True,
                 dtype=None) -> None:
        super().__init__(in_features, out_features, bias, dtype)
        self._init_binarized(binarize_input)

    def forward(self, x: Tensor) -> Tensor:
        x, weight = self._binary_operands(x)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", binarize_input={self.binarize_input}"


def packed_weight(layer: BinarizedConv2d | BinarizedLinear) -> np.ndarray:
    """The layer's binary weights packed 8 to a byte (bit 1 for +1, 0 for -1; ``np.packbits``
    order): what a binarized network stores, ceil(n / 8) bytes for n weights."""
    if not isinstance(layer, _Binarized):
        raise TypeError(f"packed_weight: expects a BinarizedConv2d or BinarizedLinear, got "
                        f"{type(layer).__name__}")
    return np.packbits(layer.weight.numpy().reshape(-1) >= 0)


def binarized_size_bytes(model: Module) -> int:
    """Bytes to store ``model`` for inference: binarized weights packed one bit each, every other
    parameter and buffer as it is (biases, batch norm, real-valued layers)."""
    binary = {id(m.weight) for m in model.modules() if isinstance(m, _Binarized)}
    total = sum(packed_weight(m).nbytes for m in model.modules() if isinstance(m, _Binarized))
    total += sum(p.data.nbytes for p in model.parameters() if id(p) not in binary)
    return int(total + sum(b.data.nbytes for _, b in model.named_buffers()))
