"""A binarized LeNet-style network (Hubara, Courbariaux et al., 2016): +-1 weights and activations.

    layer                              output (C, H, W)   binary weights
    binarized conv 5x5, pad 2 (real input)  (16, 28, 28)        400 = 1*5*5*16
    max pool 2x2 -> batch norm              (16, 14, 14)
    binarized conv 5x5                      (32, 10, 10)     12,800 = 16*5*5*32
    max pool 2x2 -> batch norm              (32, 5, 5)
    binarized dense                         (128,)          102,400 = 800*128
    batch norm
    binarized dense                         (10,)             1,280 = 128*10
    batch norm                                                116,880 in all

As in the paper: the first layer sees the real pixels (only its weights are binary); every
later layer binarizes its input, sign(BN(...)), so the batch norms decide where the sign flips
(they play the role of the biases, which are left out); pooling comes before batch norm and
sign; a final batch norm scales the integer scores into logits. With ``channels`` and
``hidden`` the widths change. The binary weights take 116,880 bits = 14,610 bytes packed,
against 467,520 bytes as float32 (``nn.binarized_size_bytes``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive
from tinygrad_cnn.tensor import Tensor


class BinarizedLeNet(nn.Module):
    """``BinarizedLeNet(num_classes=10, in_channels=1, channels=(16, 32), hidden=128)``:
    input (N, C, 28, 28)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: Sequence[int] = (16, 32),
                 hidden: int = 128) -> None:
        super().__init__()
        if len(tuple(channels)) != 2:
            raise ValueError(f"BinarizedLeNet: channels must be two ints, got {channels!r}")
        c1, c2 = channels
        check_positive("BinarizedLeNet", num_classes=num_classes, in_channels=in_channels, c1=c1, c2=c2,
                       hidden=hidden)
        self.features = nn.Sequential(
            nn.BinarizedConv2d(in_channels, c1, 5, padding=2, bias=False, binarize_input=False),
            nn.MaxPool2d(2), nn.BatchNorm2d(c1),
            nn.BinarizedConv2d(c1, c2, 5, bias=False),
            nn.MaxPool2d(2), nn.BatchNorm2d(c2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.BinarizedLinear(c2 * 25, hidden, bias=False), nn.BatchNorm1d(hidden),
            nn.BinarizedLinear(hidden, num_classes, bias=False), nn.BatchNorm1d(num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2:] != (28, 28):
            raise ValueError(f"BinarizedLeNet: expects images (N, C, 28, 28), got shape {x.shape}")
        return self.classifier(self.features(x))


def binarized_lenet(num_classes: int = 10, in_channels: int = 1) -> BinarizedLeNet:
    """The binarized LeNet-style network for 28x28 images (116,880 binary weights with 10 classes)."""
    return BinarizedLeNet(num_classes, in_channels)
