"""MobileNet (Howard et al., 2017): convolutions factored into depthwise and pointwise parts.

A depthwise-separable block filters each channel with its own 3x3 kernel (depthwise:
9 C weights) and then mixes channels with a 1x1 convolution (pointwise: C C' weights), each
followed by batch norm and ReLU: 9 C + C C' weights and multiply-adds per pixel instead of
9 C C', about 8-9 times cheaper for 3x3 kernels. ``width_mult`` (alpha) thins every layer.
MobileNet-v1 1.0 on 224x224: a 3x3/2 convolution with 32 maps, 13 separable blocks
(64 ... 1024 maps), global average pooling, a dense layer.
"""

from __future__ import annotations

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, conv_bn_relu, init_weights, scaled
from tinygrad_cnn.tensor import Tensor

# (output channels, stride) of the 13 depthwise-separable blocks of MobileNet v1
V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
             (512, 1), (512, 1), (1024, 2), (1024, 1)]
# a shorter stack for 32x32 images
SMALL_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]


class DepthwiseSeparable(nn.Module):
    """depthwise 3x3 (stride) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.DepthwiseConv2d(in_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu2(self.bn2(self.pointwise(self.relu1(self.bn1(self.depthwise(x))))))


class MobileNetV1(nn.Module):
    """``MobileNetV1(num_classes=1000, width_mult=1.0, in_channels=3, small_input=False)``.
    ``small_input`` (32x32): stride 1 in the stem and the shorter block list."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive("MobileNetV1", num_classes=num_classes, in_channels=in_channels)
        if not width_mult > 0:
            raise ValueError(f"MobileNetV1: width_mult must be positive, got {width_mult}")
        channels = scaled(32, width_mult)
        blocks: list[nn.Module] = [conv_bn_relu(in_channels, channels, 3, stride=1 if small_input else 2)]
        for out, stride in SMALL_BLOCKS if small_input else V1_BLOCKS:
            blocks.append(DepthwiseSeparable(channels, scaled(out, width_mult), stride))
            channels = scaled(out, width_mult)
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))


def mobilenet_v1(num_classes: int = 1000, width_mult: float = 1.0) -> MobileNetV1:
    """MobileNet v1 for 224x224 images."""
    return MobileNetV1(num_classes, width_mult)


def mobilenet_small(num_classes: int = 10, in_channels: int = 3, width_mult: float = 0.5) -> MobileNetV1:
    """A small MobileNet for 32x32 images (half width by default)."""
    return MobileNetV1(num_classes, width_mult, in_channels, small_input=True)
