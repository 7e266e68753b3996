"""Pooling layers (no parameters): thin Modules over ``nn.functional`` pooling, with
PyTorch's names and constructor arguments. Window arguments are checked when the
layer is built; whether the input is large enough, when it is called."""

from __future__ import annotations

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.nn.functional.geometry import pool_geometry
from tinygrad_cnn.nn.functional.pooling import adaptive_sizes, check_norm_type
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor

__all__ = [
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "LPPool1d", "LPPool2d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "GlobalAvgPool2d", "GaussianAvgPool2d",
]


class _MaxPoolNd(Module):
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        pool_geometry(type(self).__name__, self._n, None, kernel_size, stride, padding, dilation, ceil_mode)
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(_MaxPoolNd):
    """Max over each KH x KW window (see ``F.max_pool2d``): (N, C, H, W) -> (N, C, OH, OW).
    With ``return_indices`` the call returns (y, indices) for ``MaxUnpool``-style use."""

    def forward(self, x: Tensor):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class MaxPool1d(_MaxPoolNd):
    """Max over each window of length k (see ``F.max_pool1d``): (N, C, L) -> (N, C, OL)."""

    _n = 1

    def forward(self, x: Tensor):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class _AvgPoolNd(Module):
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        pool_geometry(type(self).__name__, self._n, None, kernel_size, stride, padding, 1, ceil_mode,
                      count_include_pad, divisor_override)
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """Mean over each KH x KW window (see ``F.avg_pool2d``): (N, C, H, W) -> (N, C, OH, OW)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AvgPool1d(_AvgPoolNd):
    """Mean over each window of length k (see ``F.avg_pool1d``): (N, C, L) -> (N, C, OL)."""

    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class _LPPoolNd(Module):
    _n = 2

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        name = type(self).__name__
        check_norm_type(norm_type, name)
        pool_geometry(name, self._n, None, kernel_size, stride, 0, 1, ceil_mode)
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool2d(_LPPoolNd):
    """Lp-norm pooling (sum over the window of x^p)^(1/p); p = 2 is L2 pooling (``F.lp_pool2d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool1d(_LPPoolNd):
    """1-d Lp-norm pooling over the last axis (``F.lp_pool1d``)."""

    _n = 1

    def forward(self, x: Tensor) -> Tensor:
        return F.lp_pool1d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW) whatever the input size
    (PyTorch's bins, see ``F.adaptive_avg_pool2d``): (N, C, H, W) -> (N, C, OH, OW)."""

    def __init__(self, output_size):
        super().__init__()
        adaptive_sizes(output_size, (1, 1), type(self).__name__)  # validates; None = keep input size
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(Module):
    """Average pooling to a fixed length: (N, C, L) -> (N, C, output_size)."""

    def __init__(self, output_size):
        super().__init__()
        adaptive_sizes(output_size, (1,), type(self).__name__)
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Global average pooling: y[n, c] = mean of x[n, c] over H and W, the classifier head of
    ResNet/Network-in-Network (one number per feature map; no parameters, and any input
    size works). Output (N, C, 1, 1) as ``AdaptiveAvgPool2d(1)``, or (N, C) with
    ``flatten=True`` (ready for a Linear layer)."""

    def __init__(self, flatten: bool = False):
        super().__init__()
        self.flatten = flatten

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(x, 1)
        return y.flatten(-3) if self.flatten else y

    def extra_repr(self) -> str:
        return f"flatten={self.flatten}"


class GaussianAvgPool2d(Module):
    """Distance-weighted average pooling: each window's pixels weighted by a normalized
    Gaussian exp(-d^2 / (2 sigma^2)) of their distance d to the window centre
    (see ``F.gaussian_avg_pool2d`` for the formula)."""

    def __init__(self, kernel_size, stride=None, padding=0, sigma: float = 1.0):
        super().__init__()
        pool_geometry(type(self).__name__, 2, None, kernel_size, stride, padding)
        F.gaussian_window(kernel_size, sigma)  # validates sigma
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.sigma = padding, sigma

    def forward(self, x: Tensor) -> Tensor:
        return F.gaussian_avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.sigma)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"sigma={self.sigma}")
