"""Activation functions (elementwise non-linearities) and softmax.

Each takes one float32/float64 Tensor (checked by ``checks.check_tensor``: a numpy array or
a list gets a TypeError that says to wrap it) and returns a Tensor of its shape and dtype.

``relu`` runs on the backend's ``residual`` kernels (one pass each way, and the output,
which the next layer keeps anyway, is all its backward needs); ``Tensor.relu`` is the
same function in plain array math (``ops.LeakyReLU``), which saves a boolean mask.
"""

from __future__ import annotations

from tinygrad_cnn.autograd import Function
from tinygrad_cnn.device import device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.checks import check_tensor
from tinygrad_cnn.tensor import Tensor, _is_real_number


class ReLUFunction(Function):
    """y = max(x, 0);  dL/dx = dL/dy * [not y <= 0] (0 at the kink; a NaN passes its gradient,
    as PyTorch's relu)."""

    def forward(self, x):
        self.kernels = kernel_module("residual", device_of(x))
        # (ascontiguousarray makes a 0-d array 1-d: the reshapes keep the shape)
        self.y = self.kernels.relu_forward(xp_of(x).ascontiguousarray(x)).reshape(x.shape)
        return self.y

    def backward(self, g):
        return self.kernels.add_relu_backward(xp_of(g).ascontiguousarray(g), self.y).reshape(g.shape)

    def backward_of_sum(self, g_a, g_b):
        # the output fed two paths (a ResNet stem's ReLU: the first block's convolution and
        # its shortcut): their gradients are added inside the mask's pass
        return _relu_backward_of_sum(self.kernels, g_a, g_b, self.y)


def _relu_backward_of_sum(kernels, g_a, g_b, y):
    """(g_a + g_b) * [not y <= 0], one kernel pass (``add_relu_backward_of_sum``)."""
    xp = xp_of(g_a)
    return kernels.add_relu_backward_of_sum(xp.ascontiguousarray(g_a), xp.ascontiguousarray(g_b),
                                            y).reshape(g_a.shape)


def relu(x: Tensor) -> Tensor:
    """max(0, x), elementwise."""
    return ReLUFunction.apply(check_tensor("relu", "input", x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    check_tensor("leaky_relu", "input", x)
    if not _is_real_number(negative_slope):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    return x.leaky_relu(negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return check_tensor("sigmoid", "input", x).sigmoid()


def tanh(x: Tensor) -> Tensor:
    return check_tensor("tanh", "input", x).tanh()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """e^x_i / sum_j e^x_j along ``dim``."""
    return check_tensor("softmax", "input", x).softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x_i - log sum_j e^x_j along ``dim``, computed stably."""
    return check_tensor("log_softmax", "input", x).log_softmax(dim)
