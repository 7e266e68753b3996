"""ResNet (He, Zhang, Ren & Sun, 2016): deep networks from residual blocks y = ReLU(F(x) + x).

* ImageNet layout (torchvision's names and parameter counts): a 7x7/2 convolution and a 3x3/2
  max-pooling, four stages (``layer1`` ... ``layer4``, 64-128-256-512 channels, each stage
  after the first halving the size), global average pooling and ``fc``. ResNet-18 has
  [2, 2, 2, 2] basic blocks (11,689,512 parameters), ResNet-34 [3, 4, 6, 3] (21,797,672),
  ResNet-50 [3, 4, 6, 3] bottlenecks (25,557,032).
* CIFAR layout (section 4.2 of the paper), depth 6n + 2 (ResNet-20/32/56/110): a 3x3
  convolution with 16 maps, three stages of n basic blocks with 16, 32 and 64 maps on
  32x32, 16x16 and 8x8, global average pooling and a dense layer. The paper's shortcuts are
  option A: identity, with stride-2 subsampling and zero-padded extra channels when the shape
  changes (no parameters: ResNet-20 has 269,722); ``shortcut="B"`` uses 1x1 projections.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights
from tinygrad_cnn.tensor import Tensor, cat


class ResNet(nn.Module):
    """``ResNet(block, layers, num_classes=1000, in_channels=3)`` with torchvision's layout:
    ``conv1 bn1 relu maxpool layer1..layer4 avgpool fc``."""

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000, in_channels: int = 3,
                 width: int = 64) -> None:
        super().__init__()
        check_positive("ResNet", num_classes=num_classes, in_channels=in_channels, width=width)
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must list 4 stage depths, got {list(layers)}")
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, (blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
            setattr(self, f"layer{i + 1}", self._make_layer(block, width * 2**i, blocks, stride))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        init_weights(self)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        check_positive("ResNet", blocks=blocks)
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(nn.relu_of_batch_norm(self.bn1, self.conv1(x), self.relu))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class ShortcutA(nn.Module):
    """The parameter-free shortcut of the CIFAR ResNets (option A): take every
    ``stride``-th pixel and append zero channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ShortcutA: out_channels {out_channels} < in_channels {in_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        y = x[:, :, ::s, ::s] if s > 1 else x
        extra = self.out_channels - self.in_channels
        if not extra:
            return y
        before = extra // 2
        zeros = [Tensor.zeros(y.shape[0], n, *y.shape[2:], dtype=y.dtype, device=y.device)
                 for n in (before, extra - before)]
        return cat([t for t in (zeros[0], y, zeros[1]) if t.shape[1]], 1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class CifarResNet(nn.Module):
    """``CifarResNet(depth=20, num_classes=10, shortcut="A", width=16)``: depth = 6n + 2.
    Names: ``conv1 bn1 layer1..layer3 avgpool fc``."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A",
                 width: int = 16) -> None:
        super().__init__()
        check_positive("CifarResNet", depth=depth, num_classes=num_classes, in_channels=in_channels,
                       width=width)
        if (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.depth, self.shortcut = depth, shortcut
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        channels = width
        for i in range(3):
            out, stride = width * 2**i, 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                downsample = None
                if shortcut == "A" and (s != 1 or channels != out):
                    downsample = ShortcutA(channels, out, s)
                blocks.append(nn.BasicBlock(channels, out, s, downsample))
                channels = out
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.relu_of_batch_norm(self.bn1, self.conv1(x), self.relu)  # relu(bn1(...)), fused
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18: 11,689,512 parameters with 1000 classes."""
    return ResNet(nn.BasicBlock, [2, 2, 2, 2], num_classes, in_channels)


def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-34: 21,797,672 parameters with 1000 classes."""
    return ResNet(nn.BasicBlock, [3, 4, 6, 3], num_classes, in_channels)


def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50 (bottleneck blocks): 25,557,032 parameters with 1000 classes."""
    return ResNet(nn.Bottleneck, [3, 4, 6, 3], num_classes, in_channels)


def resnet20(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-20 for CIFAR (0.27M parameters)."""
    return CifarResNet(20, num_classes, in_channels, shortcut)


def resnet32(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-32 for CIFAR (0.46M parameters)."""
    return CifarResNet(32, num_classes, in_channels, shortcut)


def resnet56(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters)."""
    return CifarResNet(56, num_classes, in_channels, shortcut)
