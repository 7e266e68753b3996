"""Xception (Chollet, 2017, "Deep learning with depthwise separable convolutions").

Inception's idea taken to its extreme: an Inception module maps cross-channel correlations
(1x1 convolutions) and spatial correlations (3x3 convolutions on a few channel groups)
separately; Xception separates them completely, with **depthwise separable convolutions**
(a 3x3 depthwise convolution per channel, then a 1x1 pointwise one) everywhere, in a linear
stack with residual connections around every block:

* entry flow: two 3x3 convolutions (32, 64 maps; the first with stride 2, both unpadded), then
  three blocks (128, 256, 728 maps), each two separable convolutions and a 3x3/2 max pool,
  added to a strided 1x1 convolution of the block's input;
* middle flow: eight blocks of three separable convolutions (728 maps) with identity shortcuts;
* exit flow: a block (728 then 1024 maps, max pool, 1x1 shortcut), two separable convolutions
  (1536, 2048 maps), global average pooling and the dense classifier.

ReLU comes *before* each separable convolution inside a block (none before the first one of
the entry flow), batch norm after every convolution. With 1000 classes: 22,855,952 trainable
parameters (Keras's count: its batch-norm statistics are non-trainable weights, buffers here).

Layer structure and names follow Keras's ``keras.applications.Xception``: ``block1_conv1``,
``block1_conv1_bn``, ``block2.sepconv1`` (Keras ``block2_sepconv1``), ``block2.sepconv1_bn``,
``block2.pool``, ``block14_sepconv2``, ``predictions``; Keras leaves the shortcut layers unnamed,
here ``blockN.residual`` and ``blockN.residual_bn``. As in Keras, separable convolutions have no
bias, batch norm uses eps 0.001, weights are Glorot-uniform, and the max pools use TensorFlow's
``'same'`` padding (:class:`MaxPool2dSame`). The default input is 299x299.
"""

from __future__ import annotations

import math

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, scaled
from tinygrad_cnn.tensor import Tensor

BN_EPS = 0.001  # Keras's BatchNormalization default


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _separable(in_channels: int, out_channels: int) -> nn.SeparableConv2d:
    """Keras's ``SeparableConv2D(out, (3, 3), padding="same", use_bias=False)``."""
    return nn.SeparableConv2d(in_channels, out_channels, 3, padding=1, bias=False)


class MaxPool2dSame(nn.Module):
    """Max pooling with TensorFlow's ``padding="same"``: OH = ceil(H / stride); the total padding
    max((OH - 1) stride + kernel - H, 0) is split with the odd pixel *after* (bottom, right), and
    padded positions never win (they hold -inf). Which side gets the odd pixel depends on H, so
    the padding is worked out for each input."""

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        check_positive("MaxPool2dSame", kernel_size=kernel_size, stride=stride)
        self.kernel_size, self.stride = kernel_size, stride

    def _pads(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:
        (top, bottom), (left, right) = self._pads(x.shape[-2]), self._pads(x.shape[-1])
        x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"


class XceptionBlock(nn.Module):
    """Entry and exit flow block: [ReLU] -> sepconv (mid) -> BN -> ReLU -> sepconv (out) -> BN
    -> max pool 3x3/2 ('same'), plus the shortcut 1x1/2 conv -> BN of the input.
    ``relu_first=False`` (block 2) leaves out the first ReLU: the stem already ended with one."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None,
                 relu_first: bool = True) -> None:
        super().__init__()
        mid = out_channels if mid_channels is None else mid_channels
        self.residual = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.residual_bn = _bn(out_channels)
        self.sepconv1_act = nn.ReLU() if relu_first else nn.Identity()
        self.sepconv1 = _separable(in_channels, mid)
        self.sepconv1_bn = _bn(mid)
        self.sepconv2_act = nn.ReLU()
        self.sepconv2 = _separable(mid, out_channels)
        self.sepconv2_bn = _bn(out_channels)
        self.pool = MaxPool2dSame(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.residual_bn(self.residual(x))
        y = self.sepconv1_bn(self.sepconv1(self.sepconv1_act(x)))
        y = self.sepconv2_bn(self.sepconv2(self.sepconv2_act(y)))
        return self.pool(y) + shortcut


class XceptionMiddleBlock(nn.Module):
    """Middle flow block: three times (ReLU -> sepconv -> BN), plus the input (identity shortcut)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for i in (1, 2, 3):
            setattr(self, f"sepconv{i}_act", nn.ReLU())
            setattr(self, f"sepconv{i}", _separable(channels, channels))
            setattr(self, f"sepconv{i}_bn", _bn(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for i in (1, 2, 3):
            act, conv, bn = (getattr(self, f"sepconv{i}{part}") for part in ("_act", "", "_bn"))
            y = bn(conv(act(y)))
        return y + x


class Xception(nn.Module):
    """``Xception(num_classes=1000, in_channels=3, width=1.0, middle_blocks=8, small_input=False)``.

    ``width`` scales every channel count, ``middle_blocks`` sets the depth of the middle flow
    (blocks 5 ... 4 + middle_blocks; the exit block keeps the name after them). ``small_input``
    (32x32 images) pads the two stem convolutions and gives the first one stride 1."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
                 middle_blocks: int = 8, small_input: bool = False) -> None:
        super().__init__()
        check_positive("Xception", num_classes=num_classes, in_channels=in_channels)
        if isinstance(middle_blocks, bool) or not isinstance(middle_blocks, int) or middle_blocks < 0:
            raise ValueError(f"Xception: middle_blocks must be a non-negative int, got {middle_blocks!r}")
        if not width > 0:
            raise ValueError(f"Xception: width must be positive, got {width!r}")

        def w(c: int) -> int:
            return scaled(c, width)

        pad = 1 if small_input else 0
        self.block1_conv1 = nn.Conv2d(in_channels, w(32), 3, stride=1 if small_input else 2, padding=pad,
                                      bias=False)
        self.block1_conv1_bn = _bn(w(32))
        self.block1_conv1_act = nn.ReLU()
        self.block1_conv2 = nn.Conv2d(w(32), w(64), 3, padding=pad, bias=False)
        self.block1_conv2_bn = _bn(w(64))
        self.block1_conv2_act = nn.ReLU()
        self.block2 = XceptionBlock(w(64), w(128), relu_first=False)
        self.block3 = XceptionBlock(w(128), w(256))
        self.block4 = XceptionBlock(w(256), w(728))
        self.middle_names = [f"block{5 + i}" for i in range(middle_blocks)]
        for name in self.middle_names:
            setattr(self, name, XceptionMiddleBlock(w(728)))
        self.exit_name = f"block{5 + middle_blocks}"
        setattr(self, self.exit_name, XceptionBlock(w(728), w(1024), mid_channels=w(728)))
        self.block14_sepconv1 = _separable(w(1024), w(1536))
        self.block14_sepconv1_bn = _bn(w(1536))
        self.block14_sepconv1_act = nn.ReLU()
        self.block14_sepconv2 = _separable(w(1536), w(2048))
        self.block14_sepconv2_bn = _bn(w(2048))
        self.block14_sepconv2_act = nn.ReLU()
        self.avg_pool = nn.GlobalAvgPool2d(flatten=True)
        self.predictions = nn.Linear(w(2048), num_classes)
        for m in self.modules():  # Keras: Glorot-uniform kernels, zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block1_conv1_act(self.block1_conv1_bn(self.block1_conv1(x)))
        x = self.block1_conv2_act(self.block1_conv2_bn(self.block1_conv2(x)))
        x = self.block4(self.block3(self.block2(x)))
        for name in self.middle_names:
            x = getattr(self, name)(x)
        x = getattr(self, self.exit_name)(x)
        x = self.block14_sepconv1_act(self.block14_sepconv1_bn(self.block14_sepconv1(x)))
        x = self.block14_sepconv2_act(self.block14_sepconv2_bn(self.block14_sepconv2(x)))
        return self.predictions(self.avg_pool(x))


def xception(num_classes: int = 1000) -> Xception:
    """Xception for 299x299 images: 22,855,952 parameters with 1000 classes (Keras's trainable count)."""
    return Xception(num_classes)


def xception_small(num_classes: int = 10, in_channels: int = 3, width: float = 0.25,
                   middle_blocks: int = 2) -> Xception:
    """Xception for 32x32 images: padded stride-1 stem, a quarter of the width, two middle blocks."""
    return Xception(num_classes, in_channels, width, middle_blocks, small_input=True)
