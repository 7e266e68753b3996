"""Batch-normalization layers with PyTorch's parameters, buffers and state_dict names."""

from __future__ import annotations

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.nn import hooks
from tinygrad_cnn.nn.functional.checks import check_flag, positive_int
from tinygrad_cnn.nn.functional.normalization import check_options
from tinygrad_cnn.nn.module import Module, Parameter
from tinygrad_cnn.tensor import Tensor, as_dtype

__all__ = ["BatchNorm1d", "BatchNorm2d", "relu_of_batch_norm"]


class _BatchNorm(Module):
    """Batch normalization over the channel axis (dim 1); see ``F.batch_norm`` for the math.

    Parameters (``affine=True``): ``weight`` (gamma, init 1) and ``bias`` (beta, init 0),
    shape (C,). Buffers (``track_running_stats=True``): ``running_mean`` (init 0),
    ``running_var`` (init 1) and ``num_batches_tracked`` (int64, counts training
    batches). state_dict names are PyTorch's: weight, bias, running_mean, running_var,
    num_batches_tracked.

    Training (``model.train()``): normalize by the batch's biased statistics and update
    running = (1 - momentum) running + momentum batch, with the UNBIASED batch variance
    (M / (M - 1) times the biased one, M values per channel) for running_var;
    ``momentum=None`` uses the cumulative average, factor 1 / num_batches_tracked.
    Evaluation (``model.eval()``): normalize by the running statistics, so an example's
    output does not depend on the rest of its batch. With ``track_running_stats=False``
    there are no buffers and batch statistics are used in both modes.
    """

    _input_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None):
        super().__init__()
        name = type(self).__name__
        positive_int(name, "num_features", num_features)
        check_options(name, eps, momentum, momentum_may_be_none=True)
        check_flag(name, "affine", affine)
        check_flag(name, "track_running_stats", track_running_stats)
        dtype = as_dtype(dtype or "float32")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        if affine:
            self.weight = Parameter(Tensor.ones(c, dtype=dtype))
            self.bias = Parameter(Tensor.zeros(c, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor.zeros(c, dtype=dtype))
            self.register_buffer("running_var", Tensor.ones(c, dtype=dtype))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self._input_dims:
            dims = " or ".join(f"{d}D" for d in self._input_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} has {x.shape[1]} "
                             f"channels, expected num_features={self.num_features}")

    def forward(self, x: Tensor) -> Tensor:
        return self._normalize(x, relu=False)

    def _normalize(self, x: Tensor, relu: bool) -> Tensor:
        """forward, or relu(forward) in one op (``F.batch_norm_relu``) with ``relu``."""
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:  # cumulative average over the batches so far
            factor = 1.0 / (int(self.num_batches_tracked.item()) + 1)
        use_batch_stats = self.training or self.running_mean is None
        update = not self.training or self.track_running_stats
        y = (F.batch_norm_relu if relu else F.batch_norm)(
            x,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )
        if counting:  # only once the batch was accepted: a rejected input changes no state
            self.num_batches_tracked.data += 1  # in place: the buffer keeps its 0-d array
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) features or (N, C, L) sequences; statistics per channel over
    N (and L). Typical after a Linear or Conv1d layer."""

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) feature maps ("spatial" batch norm): one mean and variance
    per channel over N, H and W, so every position of a feature map is normalized alike,
    as a convolution treats it alike."""

    _input_dims = (4,)


def relu_of_batch_norm(norm: Module, x: Tensor, activation: Module | None = None) -> Tensor:
    """``F.relu(norm(x))`` (or ``activation(norm(x))`` for the ReLU a model holds): with a
    batch-norm layer and nothing that could tell the difference (no hook on either module,
    their own forwards, not replaced on the class or on the object), one op that runs the
    ReLU inside batch norm's kernels (``F.batch_norm_relu``: a pass over the activations fewer
    each way); else those two calls, so a hook on ``norm`` still sees its output before the
    ReLU, and an ``activation`` that is anything else (another module, a plain function) is
    called as given. ResNet's stems and residual blocks use it for their conv -> BN -> ReLU."""
    from tinygrad_cnn.nn.layers import ReLU

    if (_plain(norm, _BatchNorm) and (activation is None or _plain(activation, ReLU))):
        return norm._normalize(x, relu=True)
    return (F.relu if activation is None else activation)(norm(x))


def _plain(module, cls) -> bool:
    """``module`` is a ``cls`` running ``cls.forward`` as it is, with no hook."""
    return (isinstance(module, cls) and type(module).forward is cls.forward
            and "forward" not in module.__dict__ and not hooks.has_hooks(module))
