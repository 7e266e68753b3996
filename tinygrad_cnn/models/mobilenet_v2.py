"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov & Chen, 2018): inverted residuals and linear
bottlenecks.

MobileNet v1 (``mobilenet.py``) factors a convolution into depthwise + pointwise. MobileNetV2's
block turns the bottleneck of a ResNet inside out: a thin tensor of C channels is *expanded*
by a 1x1 convolution to t C channels (t = 6), filtered there by a cheap 3x3 depthwise
convolution, and *projected* back by a 1x1 convolution to C' channels, with no ReLU after the
projection (a **linear bottleneck**: in a thin space a ReLU destroys information). When stride
is 1 and C = C', the block's input is added to its output, a residual connection between the
thin ends (an **inverted residual**). Activations are ReLU6, min(max(x, 0), 6).

Per block: C (tC) + 9 tC + tC C' weights (plus batch norm), against 9 C C' for one full 3x3
convolution. The network: a 3x3/2 convolution with 32 maps, 17 blocks in 7 stages
(``INVERTED_RESIDUAL_SETTING``: t, c, n, s = expansion, channels, repeats, first stride), a 1x1
convolution to 1280 maps, global average pooling, dropout and a dense layer; 3,504,872
parameters at width 1.0 with 1000 classes.

Layer names follow torchvision (``features.0.0.weight``, ``features.1.conv.0.0.weight``,
``features.2.conv.1.0.weight``, ``classifier.1.weight``, ...), so a torchvision state dict loads
strictly.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights
from tinygrad_cnn.tensor import Tensor

# t (expansion), c (output channels), n (blocks), s (stride of the first block), for 224x224
INVERTED_RESIDUAL_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                             [6, 160, 3, 2], [6, 320, 1, 1]]
# for 32x32 images: stride 1 in the stem and in the second stage, so the last maps are 4x4
CIFAR_SETTING = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                 [6, 320, 1, 1]]


class ReLU6(nn.Module):
    """min(max(x, 0), 6): a ReLU capped at 6, whose bounded range suits low-precision arithmetic."""

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(0.0, 6.0)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The multiple of ``divisor`` nearest to ``value`` (at least ``min_value``, and never more than
    10% below ``value``): torchvision's rule for the channel counts of a thinned network."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    """conv (no bias) -> BN -> ReLU6, torchvision's ``Conv2dNormActivation`` (names 0, 1, 2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        ReLU6(),
    )


class InvertedResidual(nn.Module):
    """expand 1x1 (t C, ReLU6; left out when t = 1) -> depthwise 3x3 (stride, ReLU6) ->
    project 1x1 (C', batch norm, no activation), plus the input when stride = 1 and C = C'."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        check_positive("InvertedResidual", in_channels=in_channels, out_channels=out_channels,
                       expand_ratio=expand_ratio)
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride!r}")
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    """``MobileNetV2(num_classes=1000, width_mult=1.0, inverted_residual_setting=None,
    round_nearest=8, in_channels=3, stem_stride=2, last_channel=None, dropout=0.2)``.

    ``width_mult`` scales every channel count (rounded by :func:`make_divisible`); the last
    1x1 convolution keeps 1280 maps for ``width_mult`` <= 1 (torchvision) unless
    ``last_channel`` says otherwise. ``features`` holds the stem, the blocks and the last
    convolution, ``classifier`` dropout and the dense layer.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: Sequence[Sequence[int]] | None = None, round_nearest: int = 8,
                 in_channels: int = 3, stem_stride: int = 2, last_channel: int | None = None,
                 dropout: float = 0.2) -> None:
        super().__init__()
        check_positive("MobileNetV2", num_classes=num_classes, in_channels=in_channels,
                       round_nearest=round_nearest, stem_stride=stem_stride)
        if not width_mult > 0:
            raise ValueError(f"MobileNetV2: width_mult must be positive, got {width_mult!r}")
        setting = inverted_residual_setting
        setting = INVERTED_RESIDUAL_SETTING if setting is None else setting
        if not setting or any(len(row) != 4 for row in setting):
            raise ValueError(f"MobileNetV2: inverted_residual_setting must be a non-empty list of "
                             f"[t, c, n, s] rows, got {setting!r}")
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = last_channel if last_channel is not None else \
            make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [conv_bn_relu6(in_channels, channels, 3, stride=stem_stride)]
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        features.append(conv_bn_relu6(channels, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        init_weights(self, linear_std=0.01)  # torchvision: He normal (fan_out) convs, N(0, 0.01) dense

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 for 224x224 images (3,504,872 parameters at width 1.0, as torchvision)."""
    return MobileNetV2(num_classes, width_mult, dropout=dropout)


def mobilenet_v2_small(num_classes: int = 10, in_channels: int = 3, width_mult: float = 0.5,
                       dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 for 32x32 images: stride 1 in the stem and the second stage
    (``CIFAR_SETTING``), half width and 640 maps before pooling by default."""
    return MobileNetV2(num_classes, width_mult, CIFAR_SETTING, in_channels=in_channels, stem_stride=1,
                       last_channel=make_divisible(1280 * width_mult), dropout=dropout)
