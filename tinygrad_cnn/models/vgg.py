"""VGG (Simonyan & Zisserman, 2014): depth from stacks of 3x3 convolutions.

Two 3x3 convolutions see a 5x5 window and three see 7x7, with fewer parameters
(3 * 9 C^2 = 27 C^2 against 49 C^2) and more non-linearities. A configuration lists the
output channels of each convolution and "M" for a 2x2 max-pooling; torchvision's names:
VGG-11 is configuration "A", VGG-16 "D". ``features`` holds the convolutions (numbered as
torchvision, so ``features.0.weight`` is the first kernel), ``classifier`` the dense layers.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights, scaled
from tinygrad_cnn.tensor import Tensor

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


def make_layers(config: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False,
                width: float = 1.0) -> nn.Sequential:
    """The convolutional part from a configuration (ints: 3x3 conv channels, "M": max-pool)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        if not isinstance(item, int) or item <= 0:
            raise ValueError(f"VGG: configuration entries must be positive ints or 'M', got {item!r}")
        out = scaled(item, width)
        layers.append(nn.Conv2d(channels, out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        channels = out
    return nn.Sequential(*layers)


def _depth_config(depth: int | Sequence) -> list[int | str]:
    if isinstance(depth, int):
        if depth not in CONFIGS:
            raise ValueError(f"VGG: depth must be one of {sorted(CONFIGS)} or a configuration list, "
                             f"got {depth}")
        return CONFIGS[depth]
    return list(depth)


class VGG(nn.Module):
    """torchvision's VGG: ``features``, ``avgpool`` (adaptive 7x7), ``classifier``
    (512*7*7 -> 4096 -> 4096 -> classes with ReLU and dropout)."""

    def __init__(self, depth: int | Sequence = 16, num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        check_positive("VGG", num_classes=num_classes)
        self.features = make_layers(_depth_config(depth), 3, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class VGGCifar(nn.Module):
    """VGG for 32x32 images: the same convolutions (with batch norm by default; ``width``
    scales the channels), five poolings take 32x32 to 1x1, then one dense layer."""

    def __init__(self, depth: int | Sequence = 16, num_classes: int = 10, in_channels: int = 3,
                 batch_norm: bool = True, width: float = 1.0) -> None:
        super().__init__()
        check_positive("VGGCifar", num_classes=num_classes, in_channels=in_channels)
        if not width > 0:
            raise ValueError(f"VGGCifar: width must be positive, got {width}")
        config = _depth_config(depth)
        self.features = make_layers(config, in_channels, batch_norm, width)
        last = [c for c in config if c != "M"][-1]
        self.classifier = nn.Linear(scaled(last, width), num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2:] != (32, 32):
            raise ValueError(f"VGGCifar: expects images (N, C, 32, 32), got shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def vgg11(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-11 (configuration A; 132,863,336 parameters with 1000 classes)."""
    return VGG(11, num_classes, batch_norm)


def vgg16(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-16 (configuration D; 138,357,544 parameters with 1000 classes)."""
    return VGG(16, num_classes, batch_norm)


def vgg_cifar(depth: int = 16, num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True,
              width: float = 1.0) -> VGGCifar:
    """VGG-11/13/16/19 for 32x32 images."""
    return VGGCifar(depth, num_classes, in_channels, batch_norm, width)
