"""The residual join of a ResNet block: y = ReLU(shortcut + residual), fused.

A residual block learns F(x) and outputs ReLU(x + F(x)) (He et al., 2016): the
identity path lets the gradient reach early layers unattenuated, so very deep
networks still train. The add and the ReLU are one kernel (``residual`` family).
"""

from __future__ import annotations

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.activation import _relu_backward_of_sum
from tinygrad_cnn.nn.functional.checks import check_float_tensors
from tinygrad_cnn.tensor import Tensor

__all__ = ["add_relu"]


class AddReLUFunction(Function):
    """y = max(a + b, 0);  dL/da = dL/db = dL/dy * [y > 0]."""

    def forward(self, a, b):
        xp = xp_of(a)
        self.kernels = kernel_module("residual", device_of(a))
        # (ascontiguousarray makes a 0-d array 1-d: the reshapes keep the shape)
        y = self.kernels.add_relu_forward(xp.ascontiguousarray(a), xp.ascontiguousarray(b))
        self.y = y.reshape(a.shape)
        return self.y

    def backward(self, g):
        grad = self.kernels.add_relu_backward(xp_of(g).ascontiguousarray(g), self.y).reshape(g.shape)
        # one array for both inputs, as ``Add`` does: the engine never updates a gradient in
        # place (it sums into new arrays, and copies a leaf's first one into ``.grad``)
        need_a, need_b = self.needs_input_grad
        return grad if need_a else None, grad if need_b else None

    def backward_of_sum(self, g_a, g_b):
        # y is the next block's input, read by its convolution and its shortcut: the two
        # gradients are added inside the mask's pass (ResNet-20 b128: 0.9 against 2.9 ms for
        # a 16-channel 32x32 join's add and mask)
        grad = _relu_backward_of_sum(self.kernels, g_a, g_b, self.y)
        need_a, need_b = self.needs_input_grad
        return grad if need_a else None, grad if need_b else None


def add_relu(a: Tensor, b: Tensor) -> Tensor:
    """Fused ``relu(a + b)`` for skip connections; a and b must have the same shape and dtype.
    NaN propagates, and its gradient passes, as with PyTorch's ``relu(a + b)``."""
    check_float_tensors("add_relu", a=a, b=b)
    if a.shape != b.shape:
        raise ValueError(f"add_relu: shapes {a.shape} and {b.shape} must be equal")
    return AddReLUFunction.apply(a, b)
