"""``nn.SyncBatchNorm``: batch normalization over the global batch of a data-parallel run.

With plain BatchNorm each process normalizes by the statistics of its own B examples; W
processes then train a different network than one process with batch W B would (and small
local batches give noisy statistics). SyncBatchNorm sums over all processes instead. For
x of shape (N, C, *) viewed as (N, C, L), with sums over every process's N L values per
channel c (M of them in all):

    forward   M = sum 1,  mean_c = (1/M) sum x,  var_c = (1/M) sum (x - mean_c)^2
              y = weight_c (x - mean_c) / sqrt(var_c + eps) + bias_c
    backward  with g = dL/dy and x_hat = (x - mean_c) / sqrt(var_c + eps):
              grad_x = weight_c inv_std_c / M (M g - sum g - x_hat sum g x_hat)

Three all_reduces per layer and step: the local sums and counts (giving the mean), then
the squared deviations from that global mean (two passes, as the kernels do, so no
cancellation as in E[x^2] - E[x]^2; sums in float64), and in backward the two sums of
the formula. Every process's x moves the global statistics, hence the global sums in
grad_x. The gradients of weight and bias stay LOCAL sums over this process's values:
DistributedDataParallel averages them like every other parameter's gradient, which gives
the gradient of the mean loss over the global batch.

Only training mode communicates. In evaluation mode (running statistics) and in a single
process it is exactly ``BatchNorm``. Running statistics are updated with the global mean
and the unbiased global variance (factor M / (M - 1)), so they are the same everywhere.
``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps every BatchNorm1d/2d of a model for
one, keeping its parameters and buffers.
"""

from __future__ import annotations

import numpy as np

from tinygrad_cnn.autograd import Function, no_grad
from tinygrad_cnn.device import device_of, move_array, xp_of
from tinygrad_cnn.distributed.world import World, get_world
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.nn.normalization import _BatchNorm
from tinygrad_cnn.tensor import Tensor

__all__ = ["SyncBatchNorm"]


def _summed(array, world: World):
    """``array`` summed over every process (a host copy travels for GPU arrays)."""
    host = np.ascontiguousarray(move_array(array, "cpu"))
    return move_array(world.all_reduce(host), device_of(array))


class SyncBatchNormFunction(Function):
    """Training-mode batch norm of x (N, C, L) with statistics over every process of ``world``.

    forward(x, weight, bias, eps, world, batch_stats) -> y; ``batch_stats`` (a list)
    receives (mean, biased var, M) for the running statistics."""

    def forward(self, x, weight, bias, eps=1e-5, world=None, batch_stats=None):
        xp = xp_of(x)
        c = x.shape[1]
        local = xp.concatenate([x.sum(axis=(0, 2), dtype=np.float64),
                                xp.asarray([x.shape[0] * x.shape[2]], dtype=np.float64)])
        total = _summed(local, world)
        count = float(total[c])
        mean = total[:c] / count
        centred = x - mean.astype(x.dtype)[None, :, None]
        var = _summed((centred * centred).sum(axis=(0, 2), dtype=np.float64), world) / count
        inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype)
        self.x_hat = centred * inv_std[None, :, None]
        self.weight, self.inv_std, self.count, self.world = weight.astype(x.dtype), inv_std, count, world
        if batch_stats is not None:
            batch_stats.extend((mean, var, count))
        return self.x_hat * self.weight[None, :, None] + bias.astype(x.dtype)[None, :, None]

    def backward(self, g):
        xp, c = xp_of(g), g.shape[1]
        local = xp.concatenate([g.sum(axis=(0, 2), dtype=np.float64),
                                (g * self.x_hat).sum(axis=(0, 2), dtype=np.float64)])
        grad_bias, grad_weight = local[:c].astype(g.dtype), local[c:].astype(g.dtype)  # local sums
        total = _summed(local.copy(), self.world).astype(g.dtype)
        sum_g, sum_g_x_hat = total[:c, None], total[c:, None]
        scale = (self.weight * self.inv_std / self.count)[None, :, None]
        grad_x = scale * (self.count * g - sum_g - self.x_hat * sum_g_x_hat)
        need = self.needs_input_grad
        return grad_x, grad_weight if need[1] else None, grad_bias if need[2] else None


def sync_batch_norm_train(x: Tensor, weight: Tensor, bias: Tensor, eps: float, world: World,
                          batch_stats: list | None = None) -> Tensor:
    """y = SyncBatchNormFunction over ``world`` for x (N, C, *) and weight, bias (C,)."""
    n, c = x.shape[:2]
    y = SyncBatchNormFunction.apply(x.reshape(n, c, x.data.size // (n * c)), weight, bias,
                                    eps=float(eps), world=world, batch_stats=batch_stats)
    return y.reshape(x.shape)


class SyncBatchNorm(_BatchNorm):
    """``SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True)``: BatchNorm for (N, C, *) input (2D to 5D) whose training-mode
    statistics come from the whole global batch of all processes (see the module text).
    Parameters, buffers and state_dict names are BatchNorm's, so checkpoints load into
    either."""

    _input_dims = (2, 3, 4, 5)

    def forward(self, x: Tensor) -> Tensor:
        the_world = get_world()
        if not self.training or the_world.size == 1:
            return super().forward(x)  # running statistics, or one process: BatchNorm itself
        self._check_input(x)
        if 0 in x.shape:
            raise ValueError(f"SyncBatchNorm: input of shape {x.shape} is empty")
        counting = self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if counting and self.momentum is None:  # cumulative average over the batches so far
            factor = 1.0 / (int(self.num_batches_tracked.item()) + 1)
        xp = xp_of(x.data)
        weight = self.weight if self.affine else Tensor._wrap(xp.ones(self.num_features, x.dtype))
        bias = self.bias if self.affine else Tensor._wrap(xp.zeros(self.num_features, x.dtype))
        stats: list = []
        y = sync_batch_norm_train(x, weight, bias, self.eps, the_world, stats)
        mean, var, count = stats
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all processes "
                             f"when training, got {count:g} (input of shape {x.shape} on this process)")
        if counting:
            with no_grad():
                unbiased = var * (count / (count - 1))
                for buffer, value in ((self.running_mean, mean), (self.running_var, unbiased)):
                    new = (1 - factor) * buffer.data + factor * value
                    buffer.data = new.astype(buffer.dtype, copy=False)
            self.num_batches_tracked.data += 1
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every BatchNorm1d/2d inside ``module`` (or ``module`` itself) by a
        SyncBatchNorm holding the same parameter and buffer tensors (an optimizer built on
        the model's parameters keeps working); returns the converted module."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats)
            for table in ("_parameters", "_buffers"):
                getattr(sync, table).update(getattr(module, table))
            object.__setattr__(sync, "training", module.training)
            return sync
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child)  # in place: keeps the order
        return module
