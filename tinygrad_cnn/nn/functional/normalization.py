"""Batch normalization (Ioffe and Szegedy, 2015): normalize each channel by batch statistics.

For x of shape (N, C, *) with M = N * prod(*) values per channel c (for images every
pixel of a feature map shares its channel's statistics, M = N H W):

    training:  mean_c = (1/M) sum x,   var_c = (1/M) sum (x - mean_c)^2   (biased)
               y = weight_c (x - mean_c) / sqrt(var_c + eps) + bias_c
               running_mean <- (1 - momentum) running_mean + momentum mean_c
               running_var  <- (1 - momentum) running_var  + momentum var_c M / (M - 1)  (unbiased)
    eval:      y = weight_c (x - running_mean_c) / sqrt(running_var_c + eps) + bias_c

These are PyTorch's conventions (its ``momentum`` is the weight of the NEW value,
the opposite of an optimizer's momentum). Normalizing keeps every layer's inputs
centred and scaled while the earlier layers change, which permits larger learning
rates; the learned weight and bias (gamma and beta) can undo it where useful.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.autograd import Function, no_grad
from tinygrad_cnn.device import array_module, device_of, xp_of
from tinygrad_cnn.kernels import kernel_module
from tinygrad_cnn.nn.functional.activation import relu as relu_function
from tinygrad_cnn.nn.functional.checks import check_flag, check_float_tensors
from tinygrad_cnn.tensor import Tensor

__all__ = ["batch_norm", "batch_norm_relu"]


class BatchNormTrainFunction(Function):
    """Training-mode batch norm of x (N, C, *), on the ``batchnorm`` kernels, which see it
    as (N, C, L) (a view: no reshape ops in the graph).

    forward returns (y, mean, inv_std): y is the differentiable output, the batch
    statistics (C,) are side results the running statistics need. backward:
    batch_norm_backward gives the gradients of x, weight and bias in one pass (see the
    kernel for the formula). ``relu=True``: y = max(batch norm, 0), the ReLU inside the
    kernels' passes, and its backward mask too (kept: y, which the next layer keeps anyway).
    """

    def forward(self, x, weight, bias, eps=1e-5, relu=False):
        xp = xp_of(x)
        self.kernels = kernel_module("batchnorm", device_of(x))
        self.shape = x.shape
        x3 = xp.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
        weight = xp.ascontiguousarray(weight)
        y, mean, inv_std = self.kernels.batch_norm_forward_train(x3, weight, xp.ascontiguousarray(bias), eps,
                                                                 relu=relu)
        self.x, self.mean, self.inv_std, self.weight = x3, mean, inv_std, weight
        self.relu_output = y if relu else None
        return y.reshape(self.shape), mean, inv_std

    def backward(self, g):
        g3 = xp_of(g).ascontiguousarray(g).reshape(self.x.shape)
        grad_x, grad_weight, grad_bias = self.kernels.batch_norm_backward(
            g3, self.x, self.mean, self.inv_std, self.weight, relu_output=self.relu_output)
        need = self.needs_input_grad
        return grad_x.reshape(self.shape), grad_weight if need[1] else None, grad_bias if need[2] else None


def check_options(fn: str, eps, momentum, momentum_may_be_none: bool = False) -> None:
    """eps > 0 and finite; momentum in [0, 1] (or None where the layer allows the cumulative
    average)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
        raise ValueError(f"{fn}: eps must be a positive number, got {eps!r}")
    if momentum is None and momentum_may_be_none:
        return
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
        rule = "in [0, 1] or None" if momentum_may_be_none else "a number in [0, 1]"
        raise ValueError(f"{fn}: momentum must be {rule}, got {momentum!r}")


def _check_channel_vector(fn: str, t: Tensor | None, name: str, c: int, x: Tensor) -> None:
    if t is not None and t.shape != (c,):
        raise ValueError(f"{fn}: {name} has shape {t.shape}, expected ({c},) for input of shape "
                         f"{x.shape} (C = {c} channels)")


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization of x (N, C, *) per channel, PyTorch's ``F.batch_norm``.

    ``training=True``: normalize by the biased batch statistics and, if given, update
    ``running_mean``/``running_var`` in place (no gradient) with
    running = (1 - momentum) running + momentum batch, using the UNBIASED batch
    variance for running_var. ``training=False``: normalize by the running statistics,
    y = x scale + shift with scale = weight / sqrt(running_var + eps) and
    shift = bias - running_mean scale (differentiable in x, weight and bias).
    ``weight``/``bias`` (C,) default to 1 and 0. All tensors share x's dtype.
    Returns y of x's shape.
    """
    return _batch_norm("batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps,
                       relu=False)


def batch_norm_relu(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """``relu(batch_norm(x, ...))`` with the same arguments, the pair that follows most
    convolutions (conv -> BN -> ReLU). In training the ReLU runs inside batch norm's kernels:
    in the forward's write (no array for the normalized values), and on the Numba backend its
    mask inside the backward's passes too (ResNet-20's 16-channel maps, b32, forward and
    backward: 0.74 against 1.12 ms). In evaluation it is the two ops."""
    return _batch_norm("batch_norm_relu", x, running_mean, running_var, weight, bias, training, momentum,
                       eps, relu=True)


def _batch_norm(fn: str, x, running_mean, running_var, weight, bias, training, momentum, eps, relu) -> Tensor:
    """Checks the arguments once (``fn`` names the function in errors), then runs it."""
    check_float_tensors(fn, input=x, running_mean=running_mean, running_var=running_var, weight=weight,
                        bias=bias)
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C, *), got shape {x.shape}")
    if 0 in x.shape[1:]:  # an empty batch: an empty output in eval mode (training needs values)
        raise ValueError(f"{fn}: input of shape {x.shape} is empty")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_channel_vector(fn, t, name, c, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must both be given or both be None")
    training = check_flag(fn, "training", training)
    check_options(fn, eps, momentum if training else 0.0)
    if training:
        return _batch_norm_train(fn, x, running_mean, running_var, weight, bias, momentum, eps, relu)
    if running_mean is None:
        raise ValueError(f"{fn}: running_mean and running_var are needed when training=False")
    shape = (1, c) + (1,) * (x.ndim - 2)  # broadcast a per-channel vector over N and *
    scale = (running_var + float(eps)) ** -0.5
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    y = x * scale.reshape(shape) + shift.reshape(shape)
    return relu_function(y) if relu else y


def _batch_norm_train(fn, x, running_mean, running_var, weight, bias, momentum, eps, relu) -> Tensor:
    n, c = x.shape[:2]
    count = x.data.size // c  # values per channel
    if count <= 1:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, got input "
                         f"of shape {x.shape}")
    xp = array_module(x.device)
    if weight is None:
        weight = Tensor._wrap(xp.ones(c, dtype=x.dtype))
    if bias is None:
        bias = Tensor._wrap(xp.zeros(c, dtype=x.dtype))
    y, mean, inv_std = BatchNormTrainFunction.apply(x, weight, bias, eps=float(eps), relu=relu)
    if running_mean is not None:
        with no_grad():
            # the kernel returns 1/sqrt(var + eps); recover var in float64 for accuracy
            biased_var = xp.maximum(1.0 / inv_std.data.astype(np.float64) ** 2 - eps, 0.0)
            unbiased_var = biased_var * (count / (count - 1))
            new_mean = (1 - momentum) * running_mean.data + momentum * mean.data
            new_var = (1 - momentum) * running_var.data + momentum * unbiased_var
            running_mean.data = new_mean.astype(running_mean.dtype, copy=False)
            running_var.data = new_var.astype(running_var.dtype, copy=False)
    return y
