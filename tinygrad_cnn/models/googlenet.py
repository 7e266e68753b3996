"""GoogLeNet (Szegedy et al., 2015, "Going deeper with convolutions"): the full Inception v1.

Nine Inception modules (``inception.py`` explains one: four parallel branches, 1x1
"bottleneck" reductions in front of the larger kernels, outputs concatenated) stacked on a
small convolutional stem:

    conv 7x7/2 (64) -> max pool 3x3/2 -> conv 1x1 (64) -> conv 3x3 (192) -> max pool 3x3/2
    -> inception 3a, 3b -> max pool -> 4a, 4b, 4c, 4d, 4e -> max pool 2x2/2 -> 5a, 5b
    -> global average pooling -> dropout 0.2 -> dense 1000

22 layers deep with weights, yet 6,624,904 parameters (AlexNet: 61 million): the 1x1
reductions and the global average pooling instead of large dense layers keep it small. Two
optional auxiliary classifiers (``aux_logits=True``, after 4a and 4d; 13,004,888 parameters with
them) add their losses during training to push gradient into the middle of the network; in
evaluation only the main output is returned.

This is torchvision's GoogLeNet, names included (``conv1.conv.weight``, ``inception3a.branch2.1.bn
.running_var``, ``aux1.fc2.bias``, ``fc.weight``), so its state dicts load strictly. Two details
follow torchvision rather than the paper: batch norm after every convolution (with eps 0.001,
torchvision's value), and a 3x3 kernel in the branch the paper gives a 5x5 (torchvision issue
#906, kept for its pretrained weights). Pools use ``ceil_mode`` as torchvision.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, scaled
from tinygrad_cnn.models.inception import BasicConv2d, Inception
from tinygrad_cnn.random import generator
from tinygrad_cnn.tensor import Tensor

BN_EPS = 0.001  # torchvision's GoogLeNet

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of each module; in_channels follow from the one before
INCEPTION_CHANNELS = {
    "inception3a": (64, 96, 128, 16, 32, 32), "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64), "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64), "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128), "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


def basic_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding: int = 0) -> BasicConv2d:
    """conv (no bias) -> BN (eps 0.001) -> ReLU."""
    unit = BasicConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    unit.bn.eps = BN_EPS
    return unit


def googlenet_inception(in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                        pool_proj: int) -> Inception:
    """torchvision's Inception module: :class:`~tinygrad_cnn.models.inception.Inception` with BN eps
    0.001 and a 3x3 kernel after the ``ch5x5red`` reduction."""
    block = Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
    setattr(block.branch3, "1", basic_conv(ch5x5red, ch5x5, 3, padding=1))  # replaces the 5x5 unit
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = BN_EPS
    return block


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool to 4x4 -> conv 1x1 (128) -> dense 1024 + ReLU ->
    dropout 0.7 -> dense ``num_classes``."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        maps = scaled(128, width)
        self.conv = basic_conv(in_channels, maps, 1)
        self.fc1 = nn.Linear(maps * 16, scaled(1024, width))
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(scaled(1024, width), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(self.fc1(x).relu()))


def _trunc_normal_(tensor: Tensor, std: float) -> None:
    """N(0, std^2) cut at two standard deviations (redrawn outside): torchvision's GoogLeNet init."""
    values = generator().standard_normal(tensor.shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = generator().standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    tensor.data[...] = (values * std).astype(tensor.dtype)


class GoogLeNet(nn.Module):
    """``GoogLeNet(num_classes=1000, aux_logits=False, in_channels=3, width=1.0, dropout=0.2,
    small_input=False)``. ``width`` scales every channel count; ``small_input`` (32x32 images)
    makes the stem a 3x3/1 convolution and drops its two max pools, so the Inception modules
    see 32x32, 16x16 and 8x8 maps."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, in_channels: int = 3,
                 width: float = 1.0, dropout: float = 0.2, small_input: bool = False) -> None:
        super().__init__()
        check_positive("GoogLeNet", num_classes=num_classes, in_channels=in_channels)
        if not width > 0:
            raise ValueError(f"GoogLeNet: width must be positive, got {width!r}")
        self.aux_logits = bool(aux_logits)

        def w(c: int) -> int:
            return scaled(c, width)

        if small_input:
            self.conv1 = basic_conv(in_channels, w(64), 3, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = basic_conv(in_channels, w(64), 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = basic_conv(w(64), w(64), 1)
        self.conv3 = basic_conv(w(64), w(192), 3, padding=1)
        self.maxpool2 = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = w(192)
        for name, spec in INCEPTION_CHANNELS.items():
            block = googlenet_inception(channels, *(w(c) for c in spec))
            setattr(self, name, block)
            channels = block.out_channels
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        if self.aux_logits:
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, width)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():  # torchvision: truncated N(0, 0.01^2) weights, BN gamma 1 and beta 0
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _trunc_normal_(m.weight, 0.01)

    def forward(self, x: Tensor):
        """The logits; in training mode with ``aux_logits``, ``GoogLeNetOutputs(logits,
        aux_logits2, aux_logits1)`` as torchvision (add the auxiliary losses, weighted 0.3)."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        if self.aux_logits and self.training:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


def googlenet(num_classes: int = 1000, aux_logits: bool = False, dropout: float = 0.2) -> GoogLeNet:
    """GoogLeNet for 224x224 images: 6,624,904 parameters (13,004,888 with ``aux_logits``)."""
    return GoogLeNet(num_classes, aux_logits, dropout=dropout)


def googlenet_small(num_classes: int = 10, in_channels: int = 3, width: float = 0.25,
                    dropout: float = 0.2) -> GoogLeNet:
    """GoogLeNet for 32x32 images (stem without downsampling), a quarter of the width by default."""
    return GoogLeNet(num_classes, False, in_channels, width, dropout, small_input=True)
