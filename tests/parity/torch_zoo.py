"""The zoo's architectures written again with torch.nn, from the papers and torchvision's layouts.

Written by hand, not translated from tinygrad_cnn's modules: each builder states the network
as its paper (or torchvision) does, with the same module names, so that
``load_state_dict(strict=True)`` of tinygrad_cnn's weights proves the names and shapes, and
the outputs and gradients prove the rest (strides, paddings, joins, pooling). Widths follow
the tiny configurations of tests/zoo.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def scaled(channels: int, width: float) -> int:
    return max(1, int(math.floor(channels * width + 0.5)))


# ----------------------------------------------------------------------------- LeNet-5
class LeNet5(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


# ----------------------------------------------------------------------------- AlexNet
def _alexnet_classifier(features, num_classes, hidden=(4096, 4096)):
    return nn.Sequential(
        nn.Dropout(), nn.Linear(features, hidden[0]), nn.ReLU(),
        nn.Dropout(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        nn.Linear(hidden[1], num_classes))


class AlexNet(nn.Module):
    """torchvision's single-tower AlexNet."""

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _alexnet_classifier(256 * 6 * 6, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetOriginal(nn.Module):
    """Krizhevsky et al. 2012: two towers as groups=2, LRN(5, 1e-4, 0.75, k=2) after conv 1 and 2."""

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, 4), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = _alexnet_classifier(256 * 6 * 6, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class AlexNetSmall(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = _alexnet_classifier(256 * 3 * 3, num_classes, (1024, 512))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ----------------------------------------------------------------------------- VGG
VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg_features(config, batch_norm, width=1.0):
    layers, channels = [], 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        out = scaled(item, width)
        layers.append(nn.Conv2d(channels, out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        channels = out
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    def __init__(self, depth, num_classes):
        super().__init__()
        self.features, _ = vgg_features(VGG_CONFIGS[depth], False)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGGCifar(nn.Module):
    def __init__(self, depth, num_classes, width):
        super().__init__()
        self.features, channels = vgg_features(VGG_CONFIGS[depth], True, width)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ----------------------------------------------------------------------------- ResNet
def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride on the 3x3 convolution."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes, width):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
            setattr(self, f"layer{i + 1}", self._make_layer(block, width * 2**i, blocks, stride))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            out = planes * block.expansion
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                       nn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ShortcutA(nn.Module):
    """He et al. 2016, option A: identity with stride-s subsampling, new channels zero."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.extra, self.stride = cout - cin, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        before = self.extra // 2
        return nn.functional.pad(x, (0, 0, 0, 0, before, self.extra - before))


class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes, width):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1, self.bn1, self.relu = conv3x3(3, width), nn.BatchNorm2d(width), nn.ReLU()
        channels = width
        for i in range(3):
            out = width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if i and not j else 1
                shortcut = ShortcutA(channels, out, stride) if stride != 1 or channels != out else None
                blocks.append(BasicBlock(channels, out, stride, shortcut))
                channels = out
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- Inception
class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Szegedy et al. 2015: 1x1 | 1x1-3x3 | 1x1-5x5 | 3x3 max-pool-1x1, concatenated."""

    def __init__(self, cin, ch1, ch3red, ch3, ch5red, ch5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3red, 1), BasicConv2d(ch3red, ch3, 3, 1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5red, 1), BasicConv2d(ch5red, ch5, 5, 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), BasicConv2d(cin, pool_proj, 1))
        self.out_channels = ch1 + ch3 + ch5 + pool_proj

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self, num_classes, width):
        super().__init__()

        def w(c):
            return max(1, int(round(c * width)))

        self.stem = BasicConv2d(3, w(64), 3, 1)
        self.inception3a = Inception(w(64), w(64), w(96), w(128), w(16), w(32), w(32))
        self.inception3b = Inception(self.inception3a.out_channels,
                                     w(128), w(128), w(192), w(32), w(96), w(64))
        self.maxpool = nn.MaxPool2d(2, 2)
        self.inception4a = Inception(self.inception3b.out_channels,
                                     w(192), w(96), w(208), w(16), w(48), w(64))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(self.inception4a.out_channels, num_classes)

    def forward(self, x):
        x = self.inception4a(self.maxpool(self.inception3b(self.inception3a(self.stem(x)))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


# ----------------------------------------------------------------------------- U-Net
class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.block(x)


class UNet(nn.Module):
    """Ronneberger et al. 2015 with same padding: skip maps concatenated before the up-sampled ones."""

    def __init__(self, in_channels, num_classes, base, depth):
        super().__init__()
        c = [base * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList([DoubleConv(in_channels if i == 0 else c[i - 1], c[i])
                                       for i in range(depth)])
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = DoubleConv(c[depth - 1], c[depth])
        self.upconvs = nn.ModuleList([nn.ConvTranspose2d(c[i + 1], c[i], 2, 2)
                                      for i in reversed(range(depth))])
        self.decoders = nn.ModuleList([DoubleConv(2 * c[i], c[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips)):
            x = decoder(torch.cat([skip, up(x)], 1))
        return self.head(x)


# ----------------------------------------------------------------------------- DenseNet
class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    def __init__(self, layers, cin, growth, bn_size):
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm, self.relu = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv, self.pool = nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    """torchvision's DenseNet-BC; ``small_input``: a 3x3 stem without pooling (CIFAR)."""

    def __init__(self, growth, blocks, init_features, num_classes, small_input, bn_size=4):
        super().__init__()
        if small_input:
            stem = [("conv0", nn.Conv2d(3, init_features, 3, padding=1, bias=False))]
        else:
            stem = [("conv0", nn.Conv2d(3, init_features, 7, 2, 3, bias=False)),
                    ("norm0", nn.BatchNorm2d(init_features)), ("relu0", nn.ReLU()),
                    ("pool0", nn.MaxPool2d(3, 2, 1))]
        self.features = nn.Sequential()
        for name, module in stem:
            self.features.add_module(name, module)
        channels = init_features
        for i, layers in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(layers, channels, growth, bn_size))
            channels += layers * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ----------------------------------------------------------------------------- MobileNet
def conv_bn_relu(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn2(self.pointwise(torch.relu(self.bn1(self.depthwise(x))))))


MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 \
    + [(1024, 2), (1024, 1)]
MOBILENET_SMALL = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]


class MobileNetV1(nn.Module):
    """Howard et al. 2017; ``small_input``: stride 1 in the stem and the shorter block list."""

    def __init__(self, num_classes, width, small_input):
        super().__init__()
        channels = scaled(32, width)
        blocks = [conv_bn_relu(3, channels, 1 if small_input else 2)]
        for out, stride in MOBILENET_SMALL if small_input else MOBILENET_V1:
            blocks.append(DepthwiseSeparable(channels, scaled(out, width), stride))
            channels = scaled(out, width)
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))


# the torch model of each tiny configuration of tests/zoo.py
def build(name: str, num_classes: int) -> nn.Module:
    builders = {
        "lenet5": lambda: LeNet5(num_classes),
        "alexnet": lambda: AlexNet(num_classes),
        "alexnet_original": lambda: AlexNetOriginal(num_classes),
        "alexnet_small": lambda: AlexNetSmall(num_classes),
        "vgg11": lambda: VGG(11, num_classes),
        "vgg16": lambda: VGG(16, num_classes),
        "vgg11_cifar": lambda: VGGCifar(11, num_classes, 1 / 16),
        "vgg16_cifar": lambda: VGGCifar(16, num_classes, 1 / 16),
        "resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2], num_classes, 2),
        "resnet34": lambda: ResNet(BasicBlock, [3, 4, 6, 3], num_classes, 2),
        "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3], num_classes, 2),
        "resnet20": lambda: CifarResNet(20, num_classes, 2),
        "resnet32": lambda: CifarResNet(32, num_classes, 2),
        "resnet56": lambda: CifarResNet(56, num_classes, 2),
        "inception_small": lambda: InceptionNet(num_classes, 1 / 16),
        "unet_small": lambda: UNet(1, num_classes, 2, 2),
        "densenet121": lambda: DenseNet(2, (6, 12, 24, 16), 4, num_classes, False),
        "densenet_small": lambda: DenseNet(2, (4, 4, 4), 4, num_classes, True),
        "mobilenet_v1": lambda: MobileNetV1(num_classes, 1 / 16, False),
        "mobilenet_small": lambda: MobileNetV1(num_classes, 1 / 16, True),
    }
    return builders[name]().double()
