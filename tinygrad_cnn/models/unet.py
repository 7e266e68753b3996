"""U-Net (Ronneberger, Fischer & Brox, 2015): per-pixel classification (segmentation).

The encoder (contracting path) alternates two 3x3 convolutions with 2x2 max-pooling,
doubling the channels while halving the size, so the deepest maps see a wide context. The
decoder (expanding path) up-samples with 2x2 transposed convolutions of stride 2, halving
the channels, concatenates the encoder's maps of the same size (skip connections carry
back the fine detail lost by pooling) and applies two 3x3 convolutions. A final 1x1
convolution gives one score per class at every pixel: output (N, num_classes, H, W), trained
with the per-pixel cross-entropy. Padded ("same") convolutions keep the input size, so
H and W must be divisible by 2^depth.
"""

from __future__ import annotations

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive, init_weights
from tinygrad_cnn.tensor import Tensor, cat


class DoubleConv(nn.Module):
    """(3x3 conv -> BN -> ReLU) twice, same padding."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNet(nn.Module):
    """``UNet(in_channels=1, num_classes=2, base_channels=16, depth=2)``: ``depth`` poolings;
    the encoder has base_channels * 2^i maps at level i."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 16,
                 depth: int = 2) -> None:
        super().__init__()
        check_positive("UNet", in_channels=in_channels, num_classes=num_classes,
                       base_channels=base_channels, depth=depth)
        self.depth = depth
        c = [base_channels * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList([DoubleConv(in_channels if i == 0 else c[i - 1], c[i])
                                       for i in range(depth)])
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = DoubleConv(c[depth - 1], c[depth])
        self.upconvs = nn.ModuleList([nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2)
                                      for i in reversed(range(depth))])
        self.decoders = nn.ModuleList([DoubleConv(2 * c[i], c[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        factor = 2**self.depth
        if x.ndim != 4 or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"UNet: expects (N, C, H, W) with H and W divisible by {factor}, "
                             f"got shape {x.shape}")
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips)):
            x = decoder(cat([skip, upconv(x)], 1))
        return self.head(x)


def unet_small(in_channels: int = 1, num_classes: int = 4, base_channels: int = 8, depth: int = 2) -> UNet:
    """A small U-Net (e.g. for the synthetic shapes: background + 3 shape classes)."""
    return UNet(in_channels, num_classes, base_channels, depth)
