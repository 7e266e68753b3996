"""``tinygrad_cnn.models``: the networks of the course, from LeNet-5 to ResNet, as plain
``nn.Module`` s with torchvision's layer names.

``get_model(name, **options)`` builds one by name (``list_models()`` lists them) and
``INPUT_SHAPES[name]`` is the (C, H, W) it expects by default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from tinygrad_cnn.models.alexnet import (
    AlexNet,
    AlexNetOriginal,
    AlexNetSmall,
    LocalResponseNorm,
    alexnet,
    alexnet_original,
    alexnet_small,
)
from tinygrad_cnn.models.binarized_lenet import BinarizedLeNet, binarized_lenet
from tinygrad_cnn.models.causal_cnn import CausalCNN
from tinygrad_cnn.models.densenet import (
    DenseBlock,
    DenseLayer,
    DenseNet,
    Transition,
    densenet121,
    densenet_small,
)
from tinygrad_cnn.models.googlenet import (
    GoogLeNet,
    GoogLeNetOutputs,
    InceptionAux,
    googlenet,
    googlenet_small,
)
from tinygrad_cnn.models.inception import BasicConv2d, Inception, InceptionNet, inception_small
from tinygrad_cnn.models.lenet import LeNet5, lenet5
from tinygrad_cnn.models.mobilenet import DepthwiseSeparable, MobileNetV1, mobilenet_small, mobilenet_v1
from tinygrad_cnn.models.mobilenet_v2 import (
    InvertedResidual,
    MobileNetV2,
    ReLU6,
    make_divisible,
    mobilenet_v2,
    mobilenet_v2_small,
)
from tinygrad_cnn.models.resnet import (
    CifarResNet,
    ResNet,
    ShortcutA,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet50,
    resnet56,
)
from tinygrad_cnn.models.unet import DoubleConv, UNet, unet_small
from tinygrad_cnn.models.vgg import VGG, VGGCifar, vgg11, vgg16, vgg_cifar
from tinygrad_cnn.models.xception import MaxPool2dSame, Xception, xception, xception_small
from tinygrad_cnn.nn.module import Module

MODELS: dict[str, Callable[..., Module]] = {
    "lenet5": lenet5,
    "alexnet": alexnet,
    "alexnet_original": alexnet_original,
    "alexnet_small": alexnet_small,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "vgg11_cifar": lambda num_classes=10, in_channels=3, **kw: vgg_cifar(11, num_classes, in_channels, **kw),
    "vgg16_cifar": lambda num_classes=10, in_channels=3, **kw: vgg_cifar(16, num_classes, in_channels, **kw),
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "inception_small": inception_small,
    "unet_small": unet_small,
    "densenet121": densenet121,
    "densenet_small": densenet_small,
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_small": mobilenet_small,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v2_small": mobilenet_v2_small,
    "googlenet": googlenet,
    "googlenet_small": googlenet_small,
    "xception": xception,
    "xception_small": xception_small,
    "binarized_lenet": binarized_lenet,
}

# (channels, height, width) each model expects by default
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "lenet5": (1, 28, 28), "alexnet": (3, 224, 224), "alexnet_original": (3, 227, 227),
    "alexnet_small": (3, 32, 32), "vgg11": (3, 224, 224), "vgg16": (3, 224, 224),
    "vgg11_cifar": (3, 32, 32), "vgg16_cifar": (3, 32, 32), "resnet18": (3, 224, 224),
    "resnet34": (3, 224, 224), "resnet50": (3, 224, 224), "resnet20": (3, 32, 32), "resnet32": (3, 32, 32),
    "resnet56": (3, 32, 32), "inception_small": (3, 32, 32), "unet_small": (1, 32, 32),
    "densenet121": (3, 224, 224), "densenet_small": (3, 32, 32), "mobilenet_v1": (3, 224, 224),
    "mobilenet_small": (3, 32, 32),
    "mobilenet_v2": (3, 224, 224), "mobilenet_v2_small": (3, 32, 32), "googlenet": (3, 224, 224),
    "googlenet_small": (3, 32, 32), "xception": (3, 299, 299), "xception_small": (3, 32, 32),
    "binarized_lenet": (1, 28, 28),
}

# models whose output is a map of per-pixel scores (segmentation), not one score vector per image
SEGMENTATION_MODELS = frozenset({"unet_small"})


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`."""
    return sorted(MODELS)


def default_input_shape(model: Module) -> tuple[int, int, int] | None:
    """The (C, H, W) ``model`` expects, when it is one of these networks: the height and width
    of ``INPUT_SHAPES`` for the factories that build its class (when they agree: MobileNetV1 is
    built for 224x224 and for 32x32 images), with the channels of its first convolution.
    None when it is not known (``summary`` then asks for the shape)."""
    sizes = set()
    for name, factory in MODELS.items():
        returned = inspect.signature(factory).return_annotation
        if getattr(returned, "__name__", returned) == type(model).__name__:
            sizes.add(INPUT_SHAPES[name])
    if len({size[1:] for size in sizes}) != 1:
        return None
    channels, height, width = next(iter(sizes))
    first = next((m for m in model.modules() if getattr(getattr(m, "weight", None), "ndim", 0) == 4), None)
    return (getattr(first, "in_channels", channels), height, width)


def get_model(name: str, **options) -> Module:
    """Build the model called ``name`` (e.g. ``get_model("resnet20", num_classes=10)``)."""
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    try:
        return MODELS[key](**options)
    except TypeError as error:
        raise TypeError(f"get_model({name!r}): {error}") from None


__all__ = [
    "get_model", "list_models", "MODELS", "INPUT_SHAPES", "SEGMENTATION_MODELS", "default_input_shape",
    "LeNet5", "lenet5", "AlexNet", "AlexNetOriginal", "AlexNetSmall", "LocalResponseNorm", "alexnet",
    "alexnet_original", "alexnet_small", "VGG", "VGGCifar", "vgg11", "vgg16", "vgg_cifar", "ResNet",
    "CifarResNet", "ShortcutA", "resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet56",
    "BasicConv2d", "Inception", "InceptionNet", "inception_small", "DoubleConv", "UNet", "unet_small",
    "DenseLayer", "DenseBlock", "Transition", "DenseNet", "densenet121", "densenet_small",
    "DepthwiseSeparable", "MobileNetV1", "mobilenet_v1", "mobilenet_small",
    "InvertedResidual", "MobileNetV2", "ReLU6", "make_divisible", "mobilenet_v2", "mobilenet_v2_small",
    "GoogLeNet", "GoogLeNetOutputs", "InceptionAux", "googlenet", "googlenet_small",
    "MaxPool2dSame", "Xception", "xception", "xception_small", "BinarizedLeNet", "binarized_lenet",
]
__all__ += ["CausalCNN"]
