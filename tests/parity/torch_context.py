"""The random graphs of tests/graphs.py on PyTorch: its functional ops, joins and constants.

Only what the two libraries spell differently is here; every op of a graph is PyTorch's own.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

from tests.graphs import Context


class TorchFunctional:
    """``torch.nn.functional``, with the fused residual join, the fused batch norm + ReLU and
    the per-side conv padding of tinygrad_cnn written with PyTorch ops."""

    def __getattr__(self, name):
        return getattr(TF, name)

    @staticmethod
    def add_relu(a, b):
        return torch.relu(a + b)

    @staticmethod
    def batch_norm_relu(*args, **kwargs):
        return torch.relu(TF.batch_norm(*args, **kwargs))

    @staticmethod
    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if isinstance(padding, tuple) and isinstance(padding[0], tuple):  # ((top, bottom), (left, right))
            (top, bottom), (left, right) = padding
            x, padding = TF.pad(x, (left, right, top, bottom)), 0
        return TF.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def pad(x, pad, mode="constant", value=0.0):
        return TF.pad(x, pad, mode, value) if mode == "constant" else TF.pad(x, pad, mode)


class TorchContext(Context):
    F = TorchFunctional()

    def tensor(self, seed, shape, kind="normal"):
        return torch.from_numpy(np.ascontiguousarray(self.constant(seed, shape, kind)))

    def labels(self, array):
        return torch.as_tensor(np.asarray(array), dtype=torch.int64)

    def numpy(self, t):
        return t.detach().numpy()

    def index(self, x, dim, item):
        if isinstance(item, np.ndarray):
            item = torch.as_tensor(item)
        return x[(slice(None),) * dim + (item,)]

    def flip(self, x, dim):
        return torch.flip(x, (dim,))

    def cat(self, tensors, dim):
        return torch.cat(tensors, dim)

    def stack(self, tensors, dim):
        return torch.stack(tensors, dim)

    def where(self, mask, a, b):
        return torch.where(torch.as_tensor(mask), a, b)

    def reduce(self, a, method, dims, keepdim):
        return getattr(a, method)(tuple(range(a.ndim)) if dims is None else dims, keepdim=keepdim)
