"""Every model of ``models.list_models()`` at a tiny size, for the gradient and parity checks.

A gradient check needs the model's graph, not its width: each entry builds the named
architecture (same layers, same blocks, same joins) with few channels (the builder's own
width option where it has one) and a small input. Where the builder of a name has no width
option the entry calls the class the builder calls, with the builder's layout and a smaller
width. For every entry thinner than its named model, :func:`layout_difference` proves that
the two have the same modules, name for name, type for type and hyperparameter for
hyperparameter (kernel sizes, strides, paddings, eps, dropout rates, residual flags): all but
the widths. AlexNet's and VGG's ImageNet classes have no width option: they are checked at
full size (their dense layers dominate the cost of these tests; VGG's only under the thorough
profile, see FULL_SIZE_ONLY, as the full-width MobileNetV2, GoogLeNet and Xception).

OPTIONS adds configurations that a builder's option changes (GoogLeNet's auxiliary heads) and
the full-width networks; CHECKED lists everything the gradient and parity tests run.

:func:`prepared` converts a model to float64 and moves every bias, batch-norm scale and
shift and running statistic off its initial value (zeros and ones), so that no unit sits
exactly on a ReLU kink and eval-mode batch norm is not the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

import tinygrad_cnn as tc
from tinygrad_cnn import models, nn

CLASSES = 3

# name: (build the tiny model, input shape (C, H, W))
TINY: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "lenet5": (lambda: models.lenet5(num_classes=CLASSES), (1, 28, 28)),
    "alexnet": (lambda: models.alexnet(num_classes=CLASSES), (3, 63, 63)),
    "alexnet_original": (lambda: models.alexnet_original(num_classes=CLASSES), (3, 227, 227)),
    "alexnet_small": (lambda: models.alexnet_small(num_classes=CLASSES), (3, 32, 32)),
    "vgg11": (lambda: models.vgg11(num_classes=CLASSES), (3, 32, 32)),
    "vgg16": (lambda: models.vgg16(num_classes=CLASSES), (3, 32, 32)),
    "vgg11_cifar": (lambda: models.get_model("vgg11_cifar", num_classes=CLASSES, width=1 / 16), (3, 32, 32)),
    "vgg16_cifar": (lambda: models.get_model("vgg16_cifar", num_classes=CLASSES, width=1 / 16), (3, 32, 32)),
    "resnet18": (lambda: models.ResNet(nn.BasicBlock, [2, 2, 2, 2], CLASSES, width=2), (3, 32, 32)),
    "resnet34": (lambda: models.ResNet(nn.BasicBlock, [3, 4, 6, 3], CLASSES, width=2), (3, 32, 32)),
    "resnet50": (lambda: models.ResNet(nn.Bottleneck, [3, 4, 6, 3], CLASSES, width=2), (3, 32, 32)),
    "resnet20": (lambda: models.CifarResNet(20, CLASSES, width=2), (3, 8, 8)),
    "resnet32": (lambda: models.CifarResNet(32, CLASSES, width=2), (3, 8, 8)),
    "resnet56": (lambda: models.CifarResNet(56, CLASSES, width=2), (3, 8, 8)),
    "inception_small": (lambda: models.inception_small(CLASSES, width=1 / 16), (3, 8, 8)),
    "unet_small": (lambda: models.unet_small(num_classes=CLASSES, base_channels=2), (1, 8, 8)),
    "densenet121": (lambda: models.DenseNet(2, (6, 12, 24, 16), 4, num_classes=CLASSES), (3, 32, 32)),
    "densenet_small": (lambda: models.densenet_small(CLASSES, growth_rate=2), (3, 8, 8)),
    "mobilenet_v1": (lambda: models.mobilenet_v1(CLASSES, width_mult=1 / 16), (3, 32, 32)),
    "mobilenet_small": (lambda: models.mobilenet_small(CLASSES, width_mult=1 / 16), (3, 8, 8)),
    # MobileNetV2 rounds its channels to multiples of 8 (at least 8), and a block with stride 1
    # whose input and output widths round alike gains a residual join the named model lacks
    # (same_layout sees it): at 0.25 the stem and the first stage both get 8 maps. 0.35 is the
    # thinnest of torchvision's widths that keeps the graph; the 32x32 variant also runs its
    # second stage at stride 1 (16 -> 24 maps: both 8 at 0.35), so it keeps its own width, 0.5
    "mobilenet_v2": (lambda: models.mobilenet_v2(CLASSES, width_mult=0.35), (3, 32, 32)),
    "mobilenet_v2_small": (lambda: models.mobilenet_v2_small(CLASSES), (3, 8, 8)),
    "googlenet": (lambda: models.GoogLeNet(CLASSES, width=1 / 16), (3, 32, 32)),
    "googlenet_small": (lambda: models.googlenet_small(CLASSES, width=1 / 16), (3, 8, 8)),
    # 35 x 35: the unpadded stem gives 15 x 15, then the 'same' pools 8, 4, 2, 1, with the odd
    # pixel of the padding after the map (8 -> 4 -> 2 -> 1) and split evenly (15 -> 8)
    "xception": (lambda: models.Xception(CLASSES, width=1 / 16), (3, 35, 35)),
    "xception_small": (lambda: models.xception_small(CLASSES, width=1 / 16), (3, 16, 16)),
    "binarized_lenet": (lambda: models.BinarizedLeNet(CLASSES, channels=(2, 3), hidden=4), (1, 28, 28)),
}

# configurations of a named model with an option that changes its graph: checked like the
# models of list_models() (name: (build the tiny model, input shape, build the named model))
OPTIONS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int], Callable[[], nn.Module]]] = {
    # 96 x 96: the auxiliary heads see 6 x 6 maps, which their adaptive pooling averages to 4 x 4
    # over overlapping windows (at 32 x 32 they see 2 x 2 maps, which it only repeats)
    "googlenet+aux_logits": (lambda: models.GoogLeNet(CLASSES, aux_logits=True, width=1 / 16), (3, 96, 96),
                             lambda: models.googlenet(CLASSES, aux_logits=True)),
}
# the ImageNet networks that the entries above build thinner, at full width (their builders) on
# small inputs: under the thorough profile only (see FULL_SIZE_ONLY). MobileNetV2 gets 64 x 64:
# on 32 x 32 its last stages see 1 x 1 maps, train-mode batch norm normalizes 2 numbers per
# channel, and the loss is so curved there that no step of finite differences resolves it
OPTIONS.update({f"{name}@full": (partial(models.get_model, name, num_classes=CLASSES), shape,
                                 partial(models.get_model, name, num_classes=CLASSES))
                for name, shape in {"mobilenet_v2": (3, 64, 64), "googlenet": (3, 32, 32),
                                    "xception": (3, 71, 71)}.items()})
CHECKED = models.list_models() + sorted(OPTIONS)  # every configuration the gradient and parity tests run

# VGG's ImageNet layout has no width option and a 25088 x 4096 dense layer: about 7 GB and half a
# minute of CPU per gradient check in float64, so it runs under the thorough profile only. Its
# parts are checked in every run: its convolutions are vgg*_cifar's (make_layers), its head
# (adaptive pooling, dropout, dense layers) is AlexNet's, which is checked at full size.
# name: why it runs under the thorough profile only
FULL_SIZE_ONLY = {
    "vgg11": "7 GB in float64; its convolutions and its head are checked by vgg11_cifar and alexnet",
    "vgg16": "7 GB in float64; its convolutions and its head are checked by vgg16_cifar and alexnet",
    "mobilenet_v2@full": "5 s of CPU, kept out of CI's budget; the same graph runs thinner as mobilenet_v2",
    "googlenet@full": "6 s of CPU, kept out of CI's budget; the same graph runs thinner as googlenet",
    "xception@full": "20 s of CPU, kept out of CI's budget; the same graph runs thinner as xception",
}

# the entries that call a class directly (not the builder of their name)
BUILT_FROM_THE_CLASS = ("resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet56", "densenet121",
                        "googlenet", "xception", "binarized_lenet", "googlenet+aux_logits")
# the entries that are the named model itself (only num_classes differs): nothing to prove
AS_NAMED = ("lenet5", "alexnet", "alexnet_original", "alexnet_small", "vgg11", "vgg16", "mobilenet_v2@full",
            "googlenet@full", "xception@full")
# every other entry is a thinner build: checked by same_layout
SHRUNK = tuple(name for name in CHECKED if name not in AS_NAMED)

# the attributes of a module that are widths; every other public attribute is structure
WIDTHS = frozenset({"in_channels", "out_channels", "num_features", "in_features", "out_features", "planes",
                    "inplanes", "last_channel"})


def structure(module: nn.Module) -> dict:
    """A module's hyperparameters without its widths: kernel sizes, strides, paddings, eps,
    dropout rates, flags such as ``use_res_connect``, and its groups, recorded as "depthwise"
    when there is one per input channel (their number is a width then)."""
    found = {key: value for key, value in vars(module).items()
             if not key.startswith("_") and key not in WIDTHS and key not in ("training", "groups")}
    if "groups" in vars(module):
        groups = module.groups
        found["groups"] = "depthwise" if groups == module.in_channels and groups > 1 else groups
    return found


def layout(model: nn.Module) -> list[tuple[str, str, dict]]:
    """(name, type, structure) of every module: the architecture without its widths."""
    return [(name, type(module).__name__, structure(module)) for name, module in model.named_modules()]


def named_model(name: str) -> nn.Module:
    """The model called ``name`` as its builder makes it (``CLASSES`` classes)."""
    if name in OPTIONS:
        return OPTIONS[name][2]()
    return models.get_model(name, num_classes=CLASSES)


def layout_difference(name: str) -> list:
    """The modules where the tiny entry ``name`` and the named model differ (empty: same layout)."""
    tiny, named = layout(_entry(name)[0]()), layout(named_model(name))
    differences = [(a, b) for a, b in zip(tiny, named) if a != b]
    if len(tiny) != len(named):
        differences.append(f"{len(tiny)} modules, the named model has {len(named)}")
    return differences


def prepared(model: nn.Module, seed: int = 0) -> nn.Module:
    """float64, with biases, batch-norm affine parameters and running statistics moved off
    their initial values (see the module docstring)."""
    rng = np.random.default_rng(seed)
    model.double()
    for module in model.modules():
        is_norm = isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        for name, tensor in list(module._parameters.items()) + list(module._buffers.items()):
            if tensor is None or tensor.dtype.kind != "f":
                continue
            if name == "bias":
                tensor.data = rng.normal(0.0, 0.2, tensor.shape)
            elif is_norm and name in ("weight", "running_var"):
                tensor.data = rng.uniform(0.5, 1.5, tensor.shape)
            elif is_norm and name == "running_mean":
                tensor.data = rng.normal(0.0, 0.2, tensor.shape)
    return model


def _entry(name: str):
    return OPTIONS[name] if name in OPTIONS else TINY[name]


def tiny_model(name: str, seed: int = 0) -> nn.Module:
    """The prepared tiny model called ``name`` (the same weights for the same seed)."""
    tc.manual_seed(seed)
    return prepared(_entry(name)[0](), seed)


def tiny_input(name: str, batch: int = 2, seed: int = 1) -> np.ndarray:
    """A float64 input batch for the tiny model called ``name``."""
    return np.random.default_rng(seed).standard_normal((batch, *_entry(name)[1]))
