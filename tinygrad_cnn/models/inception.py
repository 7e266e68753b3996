"""GoogLeNet's Inception module (Szegedy et al., 2015) and a small Inception network.

An Inception module runs four branches on the same input and concatenates their maps:
a 1x1 convolution; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pooling (stride 1) then 1x1. The
1x1 convolutions in front of the 3x3 and 5x5 ones reduce the channels first ("bottleneck"
layers, the network-in-network idea), which keeps the module cheap: module 3a of GoogLeNet
(192 -> 64 + 128 + 32 + 32 = 256 maps) has about 164K weights instead of the 2.5M of the
same branches without the reductions. Names follow torchvision (``branch1`` ... ``branch4``).
"""

from __future__ import annotations

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights
from tinygrad_cnn.tensor import Tensor, cat


class BasicConv2d(nn.Module):
    """conv -> (BN) -> ReLU; with batch norm the convolution has no bias (torchvision's unit)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """``Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)``:
    output channels ch1x1 + ch3x3 + ch5x5 + pool_proj, same height and width."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, batch_norm: bool = True) -> None:
        super().__init__()
        check_positive("Inception", in_channels=in_channels, ch1x1=ch1x1, ch3x3red=ch3x3red, ch3x3=ch3x3,
                       ch5x5red=ch5x5red, ch5x5=ch5x5, pool_proj=pool_proj)
        bn = batch_norm
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1, batch_norm=bn),
                                     BasicConv2d(ch3x3red, ch3x3, 3, padding=1, batch_norm=bn))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1, batch_norm=bn),
                                     BasicConv2d(ch5x5red, ch5x5, 5, padding=2, batch_norm=bn))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     BasicConv2d(in_channels, pool_proj, 1, batch_norm=bn))

    def forward(self, x: Tensor) -> Tensor:
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionNet(nn.Module):
    """A small GoogLeNet for 32x32 images: a 3x3 stem (64 maps), Inception 3a/3b as in the
    paper (256 and 480 maps), max-pooling to 16x16, Inception 4a (512 maps), global average
    pooling, dropout and a dense layer. ``width`` scales every channel count."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 dropout: float = 0.2) -> None:
        super().__init__()
        check_positive("InceptionNet", num_classes=num_classes, in_channels=in_channels)
        if not width > 0:
            raise ValueError(f"InceptionNet: width must be positive, got {width}")

        def w(c: int) -> int:
            return max(1, int(round(c * width)))

        self.stem = BasicConv2d(in_channels, w(64), 3, padding=1)
        self.inception3a = Inception(w(64), w(64), w(96), w(128), w(16), w(32), w(32))
        self.inception3b = Inception(self.inception3a.out_channels, w(128), w(128), w(192), w(32), w(96),
                                     w(64))
        self.maxpool = nn.MaxPool2d(2, 2)
        self.inception4a = Inception(self.inception3b.out_channels, w(192), w(96), w(208), w(16), w(48),
                                     w(64))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.inception4a.out_channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inception3b(self.inception3a(self.stem(x)))
        x = self.inception4a(self.maxpool(x))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


def inception_small(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> InceptionNet:
    """The small Inception network for 32x32 images."""
    return InceptionNet(num_classes, in_channels, width)
