"""Residual blocks of ResNet (He et al., 2016), with torchvision's layout and state_dict names.

A block computes y = ReLU(F(x) + shortcut(x)): the layers learn only the residual
F(x) = H(x) - x, and the identity shortcut carries the signal and its gradient past
them, which is what lets networks of 50-150 layers train. When the block changes the
shape (stride > 1 or a different channel count) the shortcut is a projection,
a 1x1 convolution with the block's stride followed by batch norm ("option B").

* ``BasicBlock`` (ResNet-18/34, CIFAR ResNet-20/32/56): 3x3 conv - BN - ReLU - 3x3 conv - BN.
* ``Bottleneck`` (ResNet-50/101/152): 1x1 reduce - 3x3 - 1x1 expand (x4), each with BN;
  the stride sits on the 3x3 convolution (torchvision's "ResNet v1.5").

Convolutions have no bias: the batch norm right after would cancel it.
"""

from __future__ import annotations

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.nn.conv import Conv2d
from tinygrad_cnn.nn.functional.checks import positive_int
from tinygrad_cnn.nn.module import Module, Sequential
from tinygrad_cnn.nn.normalization import BatchNorm2d, relu_of_batch_norm
from tinygrad_cnn.tensor import Tensor

__all__ = ["BasicBlock", "Bottleneck"]


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> Module:
    """A bias-free k x k convolution, 'same' padding for odd k (so stride alone sets the size)."""
    return Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                  bias=False)


def _check_positive(cls: str, **values) -> None:
    for key, value in values.items():
        positive_int(cls, key, value)


def _shortcut(in_channels: int, out_channels: int, stride: int, downsample: Module | None) -> Module | None:
    """The given ``downsample``; else identity (None) when the shape is kept; else the
    projection Sequential(1x1 conv with stride, BN), named downsample.0 / downsample.1."""
    if downsample is not None:
        if not isinstance(downsample, Module):
            raise TypeError(f"downsample must be a Module or None, got {type(downsample).__name__}")
        return downsample
    if stride == 1 and in_channels == out_channels:
        return None
    return Sequential(_conv(in_channels, out_channels, 1, stride), BatchNorm2d(out_channels))


class BasicBlock(Module):
    """y = ReLU(BN(conv3x3(ReLU(BN(conv3x3_stride(x))))) + shortcut(x)).

    x (N, in_channels, H, W) -> y (N, out_channels, ceil(H / stride), ceil(W / stride)).
    ``downsample=None`` picks the shortcut: identity when stride == 1 and
    in_channels == out_channels, else the 1x1-conv + BN projection; pass a Module to
    use your own. Parameters: 9 C_in C_out + 9 C_out^2 conv weights and 4 C_out batch-norm
    weights/biases (+ C_in C_out + 2 C_out with a projection).
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 downsample: Module | None = None):
        super().__init__()
        _check_positive("BasicBlock", in_channels=in_channels, out_channels=out_channels,
                        stride=stride)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = _conv(out_channels, out_channels, 3, 1)
        self.bn2 = BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride, downsample)

    def forward(self, x: Tensor) -> Tensor:
        out = relu_of_batch_norm(self.bn1, self.conv1(x))  # F.relu(self.bn1(...)), fused
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.add_relu(out, shortcut)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class Bottleneck(Module):
    """y = ReLU(BN(conv1x1_expand(ReLU(BN(conv3x3_stride(ReLU(BN(conv1x1_reduce(x))))))))
    + shortcut(x)), with ``expansion = 4``: planes channels inside, 4 planes out.

    x (N, in_channels, H, W) -> y (N, 4 planes, ceil(H / stride), ceil(W / stride)).
    The 1x1 convolutions shrink and restore the channels so the costly 3x3 one works
    on few of them. Shortcut as ``BasicBlock`` (projection when stride != 1 or
    in_channels != 4 planes). Parameters: C_in P + 9 P^2 + 4 P^2 conv weights and
    2 (P + P + 4 P) batch-norm weights/biases (+ 4 C_in P + 8 P with a projection).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: Module | None = None):
        super().__init__()
        _check_positive("Bottleneck", in_channels=in_channels, planes=planes, stride=stride)
        out_channels = planes * self.expansion
        self.in_channels, self.planes, self.stride = in_channels, planes, stride
        self.out_channels = out_channels
        self.conv1 = _conv(in_channels, planes, 1, 1)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = _conv(planes, out_channels, 1, 1)
        self.bn3 = BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride, downsample)

    def forward(self, x: Tensor) -> Tensor:
        out = relu_of_batch_norm(self.bn1, self.conv1(x))  # F.relu(self.bn1(...)), fused
        out = relu_of_batch_norm(self.bn2, self.conv2(out))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.add_relu(out, shortcut)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.planes}, stride={self.stride}"
