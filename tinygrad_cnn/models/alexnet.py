"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012): the network that won ImageNet 2012.

Five convolutions (11x11 stride 4, then 5x5, then three 3x3), three max-poolings with
overlapping 3x3 windows of stride 2, ReLU everywhere, dropout in the two 4096-unit dense
layers. Three layouts:

* :func:`alexnet_original`: the paper's two-GPU network: 96-256-384-384-256 kernels, conv2,
  conv4 and conv5 split in two groups (each half sees only its GPU's maps), local response
  normalisation after conv1 and conv2, input 3x227x227; 60,965,224 parameters.
* :func:`alexnet`: torchvision's single-tower layout (64-192-384-256-256, no LRN, adaptive
  pooling to 6x6 so any input of at least 63x63 works); 61,100,840 parameters.
* :func:`alexnet_small`: the same shape of network scaled for 32x32 images (CIFAR-10).
"""

from __future__ import annotations

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive
from tinygrad_cnn.tensor import Tensor, cat


class LocalResponseNorm(nn.Module):
    """b_c = a_c / (k + alpha / n * sum of a_j^2 over the n channels j around c) ^ beta,
    the "brightness normalisation" of AlexNet (PyTorch's ``LocalResponseNorm``; no parameters)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        check_positive("LocalResponseNorm", size=size)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 3:
            raise ValueError(f"LocalResponseNorm: expects (N, C, ...), got shape {x.shape}")
        n, c = x.shape[0], x.shape[1]
        squares = x * x
        before, after = self.size // 2, (self.size - 1) // 2
        pieces = []
        if before:
            pieces.append(Tensor.zeros(n, before, *x.shape[2:], dtype=x.dtype, device=x.device))
        pieces.append(squares)
        if after:
            pieces.append(Tensor.zeros(n, after, *x.shape[2:], dtype=x.dtype, device=x.device))
        padded = cat(pieces, 1) if len(pieces) > 1 else squares
        window = padded[:, 0:c]
        for i in range(1, self.size):
            window = window + padded[:, i : i + c]
        return x / (window * (self.alpha / self.size) + self.k) ** self.beta

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class AlexNet(nn.Module):
    """torchvision's AlexNet: ``features`` (5 conv), ``avgpool`` (adaptive, 6x6),
    ``classifier`` (dropout, 9216 -> 4096 -> 4096 -> num_classes)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive("AlexNet", num_classes=num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class AlexNetOriginal(nn.Module):
    """The paper's AlexNet on 3x227x227 images: grouped convolutions stand for the two GPUs,
    LRN(size 5, alpha 1e-4, beta 0.75, k 2) after the first two convolutions."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive("AlexNetOriginal", num_classes=num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, 227, 227):
            raise ValueError(f"AlexNetOriginal: expects images (N, 3, 227, 227), got shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


class AlexNetSmall(nn.Module):
    """AlexNet's pattern for 32x32 inputs: 5x5 then 3x3 convolutions (64-192-384-256-256),
    three 3x3/2 max-poolings (32 -> 15 -> 7 -> 3), then 256*3*3 -> 1024 -> 512 -> classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive("AlexNetSmall", num_classes=num_classes, in_channels=in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 3 * 3, 1024), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(1024, 512), nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2:] != (32, 32):
            raise ValueError(f"AlexNetSmall: expects images (N, C, 32, 32), got shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet (61,100,840 parameters with 1000 classes)."""
    return AlexNet(num_classes, dropout)


def alexnet_original(num_classes: int = 1000, dropout: float = 0.5) -> AlexNetOriginal:
    """The paper's two-tower AlexNet (60,965,224 parameters with 1000 classes), input 227x227."""
    return AlexNetOriginal(num_classes, dropout)


def alexnet_small(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> AlexNetSmall:
    """AlexNet for 32x32 images (CIFAR-10)."""
    return AlexNetSmall(num_classes, in_channels, dropout)
