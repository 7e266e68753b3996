"""LeNet-5 (LeCun et al., 1998) as the course builds it for 28x28 MNIST digits.

    layer            output (C, H, W)   parameters
    conv 5x5, 6, pad 2   (6, 28, 28)        156  = 1*5*5*6 + 6
    avg pool 2x2         (6, 14, 14)          0
    conv 5x5, 16         (16, 10, 10)      2,416 = 6*5*5*16 + 16
    avg pool 2x2         (16, 5, 5)           0
    conv 5x5, 120        (120, 1, 1)      48,120 = 16*5*5*120 + 120
    dense 84             (84,)            10,164 = 120*84 + 84
    dense 10             (10,)               850 = 84*10 + 10
                                          61,706 in all

The padding of 2 plays the role of the original 32x32 input; the 5x5 kernel of C5 covers
the whole 5x5 map, so C5 is "a convolution that is a dense layer".
"""

from __future__ import annotations

from tinygrad_cnn import nn
from tinygrad_cnn.models._common import check_positive
from tinygrad_cnn.tensor import Tensor

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class LeNet5(nn.Module):
    """``LeNet5(num_classes=10, in_channels=1, activation="relu")``: input (N, C, 28, 28).

    ``activation`` is ``"tanh"`` (the paper's squashing function), ``"sigmoid"`` or ``"relu"``
    (trains faster; the default). ``features`` holds C1-S2-C3-S4-C5, ``classifier`` F6 and the
    output layer.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu") -> None:
        super().__init__()
        check_positive("LeNet5", num_classes=num_classes, in_channels=in_channels)
        if activation not in ACTIVATIONS:
            raise ValueError(f"LeNet5: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), act(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2:] != (28, 28):
            raise ValueError(f"LeNet5: expects images (N, C, 28, 28), got shape {x.shape}")
        return self.classifier(self.features(x))


def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "relu") -> LeNet5:
    """LeNet-5 for 28x28 images (61,706 parameters with 10 classes and one channel)."""
    return LeNet5(num_classes, in_channels, activation)
