"""The fully connected (dense) layer as a function, and dropout."""

from __future__ import annotations

from tinygrad_cnn import ops
from tinygrad_cnn.autograd import Function
from tinygrad_cnn.nn.functional.checks import check_flag, check_float_tensors, check_tensor
from tinygrad_cnn.random import generator
from tinygrad_cnn.tensor import Tensor, _is_real_number


class Linear(Function):
    """y = x W^T + b for x of shape (..., in), W (out, in), b (out,).

    dL/dx = G W,  dL/dW = sum over rows of G^T x,  dL/db = sum over rows of G.
    One Function (rather than matmul + transpose + add) keeps the hot path to
    two GEMMs per backward pass.
    """

    def forward(self, x, weight, bias=None):
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        y = x @ weight.T
        return y + bias if bias is not None else y

    def backward(self, g):
        gx = g @ self.weight if self.needs_input_grad[0] else None
        g2, x2 = g.reshape(-1, g.shape[-1]), self.x.reshape(-1, self.x.shape[-1])
        gw = g2.T @ x2 if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, g2.sum(axis=0) if self.needs_input_grad[2] else None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b (PyTorch's weight layout: (out_features, in_features)).

    x (..., in), weight (out, in), bias (out,): Tensors of one float dtype (a float64 input
    to float32 weights is a TypeError, as in PyTorch: convert one of them)."""
    check_float_tensors("linear", input=x, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
            f"(last input dim must be {weight.shape[1]})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} should be ({weight.shape[0]},)")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Linear.apply(*inputs)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p),
    so the expected activation is unchanged and evaluation needs no rescaling."""
    check_tensor("dropout", "input", x)
    if not _is_real_number(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p!r}")
    check_flag("dropout", "training", training)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = generator().random(x.shape) >= p
    mask = Tensor._wrap((keep / (1.0 - p)).astype(x.dtype))
    if x.device != "cpu":
        mask = mask.to(x.device)
    return ops.Mul.apply(x, mask)
