"""The zoo's architectures written again with torch.nn, from the papers and torchvision's layouts.

Written by hand, not translated from tinygrad_cnn's modules: each builder states the network
as its paper (or torchvision, or Keras for Xception) does, with the same module names, so that
``load_state_dict(strict=True)`` of tinygrad_cnn's weights proves the names and shapes, and
the outputs and gradients prove the rest (strides, paddings, joins, pooling). Widths follow
the tiny configurations of tests/zoo.py. The binarized LeNet's sign and its straight-through
estimator are a torch.autograd.Function (SignSTE).

Longer than 500 lines: one section per architecture, each read on its own; they share one
file so that :func:`build` at the end names every configuration of the zoo.
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
    def __init__(self, cin, cout, kernel_size, padding=0, stride=1, eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Szegedy et al. 2015: 1x1 | 1x1-3x3 | 1x1-5x5 | 3x3 max-pool-1x1, concatenated
    (``kernel5=3``: torchvision's GoogLeNet, whose "5x5" branch is a 3x3 one)."""

    def __init__(self, cin, ch1, ch3red, ch3, ch5red, ch5, pool_proj, kernel5=5, eps=1e-5):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1, 1, eps=eps)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3red, 1, eps=eps),
                                     BasicConv2d(ch3red, ch3, 3, 1, eps=eps))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5red, 1, eps=eps),
                                     BasicConv2d(ch5red, ch5, kernel5, kernel5 // 2, eps=eps))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), BasicConv2d(cin, pool_proj, 1, eps=eps))
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


# ----------------------------------------------------------------------------- GoogLeNet
# Szegedy et al. 2015, table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module
GOOGLENET_MODULES = [
    ("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64),
    ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64), ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128), ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
]


class InceptionAux(nn.Module):
    """The auxiliary classifier: 4x4 average pooling, 1x1 conv (128), dense 1024, dropout 0.7."""

    def __init__(self, cin, num_classes, width):
        super().__init__()
        self.conv = BasicConv2d(cin, scaled(128, width), 1, eps=0.001)
        self.fc1 = nn.Linear(scaled(128, width) * 16, scaled(1024, width))
        self.fc2 = nn.Linear(scaled(1024, width), num_classes)
        self.dropout = nn.Dropout(0.7)

    def forward(self, x):
        x = torch.flatten(self.conv(nn.functional.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (batch norm with eps 0.001, 3x3 "5x5" branches, ceil-mode pools);
    ``small_input``: a 3x3 stem and no pooling before the Inception modules. In training with
    ``aux_logits`` it returns (logits, aux2, aux1), as torchvision."""

    def __init__(self, num_classes, width, aux_logits=False, small_input=False):
        super().__init__()
        self.aux_logits = aux_logits
        if small_input:
            self.conv1, self.maxpool1 = BasicConv2d(3, scaled(64, width), 3, 1, eps=0.001), nn.Identity()
        else:
            self.conv1 = BasicConv2d(3, scaled(64, width), 7, 3, stride=2, eps=0.001)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(scaled(64, width), scaled(64, width), 1, eps=0.001)
        self.conv3 = BasicConv2d(scaled(64, width), scaled(192, width), 3, 1, eps=0.001)
        self.maxpool2 = nn.Identity() if small_input else nn.MaxPool2d(3, 2, ceil_mode=True)
        channels = scaled(192, width)
        for name, *spec in GOOGLENET_MODULES:
            module = Inception(channels, *(scaled(c, width) for c in spec), kernel5=3, eps=0.001)
            setattr(self, name, module)
            channels = module.out_channels
            if name == "inception4a" and aux_logits:
                self.aux1 = InceptionAux(channels, num_classes, width)
            if name == "inception4d" and aux_logits:
                self.aux2 = InceptionAux(channels, num_classes, width)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.inception4a(self.maxpool3(self.inception3b(self.inception3a(x))))
        heads = self.aux_logits and self.training
        aux1 = self.aux1(x) if heads else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if heads else None
        x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (logits, aux2, aux1) if heads else logits


# ----------------------------------------------------------------------------- MobileNetV2
# Sandler et al. 2018, table 2: expansion t, output channels c, repeats n, first stride s
MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]


def round_to_eight(value):
    """torchvision's channel rounding: the nearest multiple of 8 (at least 8), one more step of 8
    if that loses over 10%."""
    rounded = 8 * max(1, math.floor(value / 8 + 0.5))
    return rounded if rounded >= 0.9 * value else rounded + 8


def conv_bn_relu6(cin, cout, kernel_size, stride=1, groups=1):
    conv = nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = round(cin * expansion)
        expand = [conv_bn_relu6(cin, hidden, 1)] if expansion != 1 else []
        self.conv = nn.Sequential(*expand, conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2; ``small_input`` (32x32 images): stride 1 in the stem and in the
    second stage, and the last convolution scaled with the width."""

    def __init__(self, num_classes, width, small_input=False):
        super().__init__()
        channels = round_to_eight(32 * width)
        last = round_to_eight(1280 * width) if small_input else round_to_eight(1280 * max(1.0, width))
        layers = [conv_bn_relu6(3, channels, 3, 1 if small_input else 2)]
        for stage, (t, c, n, s) in enumerate(MOBILENET_V2):
            if small_input and stage == 1:
                s = 1
            for i in range(n):
                layers.append(InvertedResidual(channels, round_to_eight(c * width), s if i == 0 else 1, t))
                channels = round_to_eight(c * width)
        layers.append(conv_bn_relu6(channels, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


# ----------------------------------------------------------------------------- Xception
def same_max_pool(x, kernel_size=3, stride=2):
    """TensorFlow's max pooling with padding='same': ceil(H / stride) outputs; the padding needed,
    max((out - 1) stride + kernel - H, 0), goes half before and the rest after; padded cells never win."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad's order: last dimension first
        total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return nn.functional.max_pool2d(nn.functional.pad(x, pads, value=-math.inf), kernel_size, stride)


class SeparableConv2d(nn.Module):
    """Keras's SeparableConv2D(3x3, 'same', no bias): depthwise 3x3, then pointwise 1x1."""

    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Entry/exit flow: [ReLU] sepconv BN ReLU sepconv BN, 'same' max pool 3x3/2, plus the 1x1/2
    convolution (and BN) of the block's input."""

    def __init__(self, cin, cout, mid=None, relu_first=True):
        super().__init__()
        mid = cout if mid is None else mid
        self.relu_first = relu_first
        self.residual, self.residual_bn = nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout, 0.001)
        self.sepconv1, self.sepconv1_bn = SeparableConv2d(cin, mid), nn.BatchNorm2d(mid, 0.001)
        self.sepconv2, self.sepconv2_bn = SeparableConv2d(mid, cout), nn.BatchNorm2d(cout, 0.001)

    def forward(self, x):
        y = self.sepconv1_bn(self.sepconv1(torch.relu(x) if self.relu_first else x))
        y = self.sepconv2_bn(self.sepconv2(torch.relu(y)))
        return same_max_pool(y) + self.residual_bn(self.residual(x))


class XceptionMiddle(nn.Module):
    """Middle flow: (ReLU, sepconv, BN) three times, plus the block's input."""

    def __init__(self, channels):
        super().__init__()
        for i in (1, 2, 3):
            self.add_module(f"sepconv{i}", SeparableConv2d(channels, channels))
            self.add_module(f"sepconv{i}_bn", nn.BatchNorm2d(channels, 0.001))

    def forward(self, x):
        y = x
        for i in (1, 2, 3):
            y = getattr(self, f"sepconv{i}_bn")(getattr(self, f"sepconv{i}")(torch.relu(y)))
        return x + y


class Xception(nn.Module):
    """Chollet 2017 as keras.applications.Xception (its layer names); ``small_input``: padded
    stem convolutions, the first one with stride 1."""

    def __init__(self, num_classes, width, middle_blocks=8, small_input=False):
        super().__init__()

        def w(c):
            return scaled(c, width)

        pad = 1 if small_input else 0
        self.block1_conv1 = nn.Conv2d(3, w(32), 3, 1 if small_input else 2, pad, bias=False)
        self.block1_conv1_bn = nn.BatchNorm2d(w(32), 0.001)
        self.block1_conv2 = nn.Conv2d(w(32), w(64), 3, 1, pad, bias=False)
        self.block1_conv2_bn = nn.BatchNorm2d(w(64), 0.001)
        self.block2 = XceptionBlock(w(64), w(128), relu_first=False)
        self.block3 = XceptionBlock(w(128), w(256))
        self.block4 = XceptionBlock(w(256), w(728))
        self.middle = [f"block{5 + i}" for i in range(middle_blocks)]
        for name in self.middle:
            self.add_module(name, XceptionMiddle(w(728)))
        self.exit = f"block{5 + middle_blocks}"
        self.add_module(self.exit, XceptionBlock(w(728), w(1024), mid=w(728)))
        self.block14_sepconv1 = SeparableConv2d(w(1024), w(1536))
        self.block14_sepconv1_bn = nn.BatchNorm2d(w(1536), 0.001)
        self.block14_sepconv2 = SeparableConv2d(w(1536), w(2048))
        self.block14_sepconv2_bn = nn.BatchNorm2d(w(2048), 0.001)
        self.predictions = nn.Linear(w(2048), num_classes)

    def forward(self, x):
        x = torch.relu(self.block1_conv1_bn(self.block1_conv1(x)))
        x = torch.relu(self.block1_conv2_bn(self.block1_conv2(x)))
        x = self.block4(self.block3(self.block2(x)))
        for name in self.middle + [self.exit]:
            x = getattr(self, name)(x)
        x = torch.relu(self.block14_sepconv1_bn(self.block14_sepconv1(x)))
        x = torch.relu(self.block14_sepconv2_bn(self.block14_sepconv2(x)))
        return self.predictions(x.mean((2, 3)))


# ----------------------------------------------------------------------------- binarized LeNet
class SignSTE(torch.autograd.Function):
    """Courbariaux et al.: sign(u) in {-1, +1} (+1 at 0) forward; the straight-through estimator
    with clipping backward, the gradient passed where |u| <= 1 and cancelled elsewhere."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return torch.where(u >= 0, 1.0, -1.0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (u.abs() <= 1).to(grad.dtype)


class _BinaryWeights:
    """In training the latent weights are clipped to [-1, 1] before they are used (BinaryConnect)."""

    def operands(self, x):
        if self.training:
            with torch.no_grad():
                self.weight.clamp_(-1.0, 1.0)
        return (SignSTE.apply(x) if self.binarize_input else x), SignSTE.apply(self.weight)


class BinarizedConv2d(_BinaryWeights, nn.Conv2d):
    def __init__(self, cin, cout, kernel_size, padding=0, binarize_input=True):
        super().__init__(cin, cout, kernel_size, padding=padding, bias=False)
        self.binarize_input = binarize_input

    def forward(self, x):
        x, weight = self.operands(x)
        return nn.functional.conv2d(x, weight, None, self.stride, self.padding)


class BinarizedLinear(_BinaryWeights, nn.Linear):
    def __init__(self, cin, cout):
        super().__init__(cin, cout, bias=False)
        self.binarize_input = True

    def forward(self, x):
        x, weight = self.operands(x)
        return nn.functional.linear(x, weight)


class BinarizedLeNet(nn.Module):
    """Hubara, Courbariaux et al. 2016: real pixels into the first binary convolution, then
    max pool, batch norm and sign (in the next layer) after each layer; a final batch norm."""

    def __init__(self, num_classes, channels, hidden):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            BinarizedConv2d(1, c1, 5, padding=2, binarize_input=False), nn.MaxPool2d(2), nn.BatchNorm2d(c1),
            BinarizedConv2d(c1, c2, 5), nn.MaxPool2d(2), nn.BatchNorm2d(c2))
        self.classifier = nn.Sequential(
            nn.Flatten(), BinarizedLinear(c2 * 5 * 5, hidden), nn.BatchNorm1d(hidden),
            BinarizedLinear(hidden, num_classes), nn.BatchNorm1d(num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


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
        "mobilenet_v2": lambda: MobileNetV2(num_classes, 0.35),
        "mobilenet_v2_small": lambda: MobileNetV2(num_classes, 0.5, small_input=True),
        "googlenet": lambda: GoogLeNet(num_classes, 1 / 16),
        "googlenet_small": lambda: GoogLeNet(num_classes, 1 / 16, small_input=True),
        "googlenet+aux_logits": lambda: GoogLeNet(num_classes, 1 / 16, aux_logits=True),
        "xception": lambda: Xception(num_classes, 1 / 16),
        "xception_small": lambda: Xception(num_classes, 1 / 16, 2, small_input=True),
        "binarized_lenet": lambda: BinarizedLeNet(num_classes, (2, 3), 4),
        "mobilenet_v2@full": lambda: MobileNetV2(num_classes, 1.0),
        "googlenet@full": lambda: GoogLeNet(num_classes, 1.0),
        "xception@full": lambda: Xception(num_classes, 1.0),
    }
    return builders[name]().double()
