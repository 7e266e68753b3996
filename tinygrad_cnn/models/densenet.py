"""DenseNet (Huang, Liu, van der Maaten & Weinberger, 2017): every layer sees all earlier maps.

Inside a dense block layer l receives the concatenation [x_0, x_1, ..., x_{l-1}] and adds
``growth_rate`` (k) new maps: BN-ReLU-1x1 conv (to bn_size * k maps, the bottleneck) then
BN-ReLU-3x3 conv (k maps). Feature re-use makes the layers narrow (k = 12 or 32). Between
blocks a transition (BN-ReLU-1x1 conv compressing the channels by ``compression``, 2x2
average pooling) halves the size. Names follow torchvision (``features.denseblock1.denselayer1``,
``features.transition1``, ``classifier``); DenseNet-121 has 7,978,856 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights
from tinygrad_cnn.tensor import Tensor, cat


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1(bn_size k) -> BN-ReLU-conv3x3(k): k new maps from all earlier ones."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; output channels in_channels + num_layers * growth_rate."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
            setattr(self, f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.children():
            features.append(layer(cat(features, 1)))
        return cat(features, 1)


class Transition(nn.Module):
    """BN-ReLU-1x1 conv (fewer channels) -> 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNet(nn.Module):
    """``DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
    compression=0.5, num_classes=1000, small_input=False)``. ``small_input`` (32x32 images)
    replaces the 7x7/2 stem and its max-pooling by one 3x3 convolution."""

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, compression: float = 0.5,
                 num_classes: int = 1000, in_channels: int = 3, small_input: bool = False) -> None:
        super().__init__()
        check_positive("DenseNet", growth_rate=growth_rate, num_init_features=num_init_features,
                       bn_size=bn_size, num_classes=num_classes, in_channels=in_channels)
        if not 0 < compression <= 1:
            raise ValueError(f"DenseNet: compression must be in (0, 1], got {compression}")
        if small_input:
            stem = {"conv0": nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False)}
        else:
            stem = {"conv0": nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False),
                    "norm0": nn.BatchNorm2d(num_init_features), "relu0": nn.ReLU(),
                    "pool0": nn.MaxPool2d(3, stride=2, padding=1)}
        layers = dict(stem)
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            check_positive("DenseNet", block_layers=num_layers)
            block = DenseBlock(num_layers, channels, growth_rate, bn_size)
            layers[f"denseblock{i + 1}"] = block
            channels = block.out_channels
            if i != len(block_config) - 1:
                out = int(channels * compression)
                layers[f"transition{i + 1}"] = Transition(channels, out)
                channels = out
        layers["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(layers)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.relu(self.features(x))).flatten(1))


def densenet121(num_classes: int = 1000) -> DenseNet:
    """DenseNet-121 (k = 32, blocks 6-12-24-16): 7,978,856 parameters with 1000 classes."""
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)


def densenet_small(num_classes: int = 10, in_channels: int = 3, growth_rate: int = 12,
                   block_config: Sequence[int] = (4, 4, 4)) -> DenseNet:
    """A small DenseNet-BC for 32x32 images: k = 12, three blocks, 3x3 stem with 2k maps."""
    return DenseNet(growth_rate, block_config, 2 * growth_rate, 4, 0.5, num_classes, in_channels,
                    small_input=True)
