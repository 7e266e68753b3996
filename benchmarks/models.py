"""The benchmarked networks, twice: tinygrad_cnn's (from ``tinygrad_cnn.models``, built on the
public layers nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d, nn.BasicBlock, ...) and the same
architectures written in PyTorch, layer for layer, with the weights copied across so both
frameworks compute the same function.
"""

from __future__ import annotations

import numpy as np


def ours(name: str):
    """tinygrad_cnn's LeNet-5 (``"lenet5"``: ReLU; ``"lenet5_tanh"``: the paper's tanh) or
    CIFAR ResNet-20 (``"resnet20"``)."""
    from tinygrad_cnn import models

    if name == "lenet5_tanh":
        return models.lenet5(activation="tanh")
    return {"lenet5": models.lenet5, "resnet20": models.resnet20}[name]()


def torch_model(name: str):
    """The same architecture in PyTorch (float32, CPU)."""
    import torch
    from torch import nn

    if name in ("lenet5", "lenet5_tanh"):
        act = nn.Tanh if name == "lenet5_tanh" else nn.ReLU
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), act(),
            nn.Flatten(), nn.Linear(120, 84), act(), nn.Linear(84, 10),
        )

    class ShortcutA(nn.Module):
        """Option-A shortcut: subsample by the stride, pad the new channels with zeros."""

        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.extra, self.stride = cout - cin, stride

        def forward(self, x):
            y = x[:, :, ::self.stride, ::self.stride]
            before = self.extra // 2
            return torch.nn.functional.pad(y, (0, 0, 0, 0, before, self.extra - before))

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = ShortcutA(cin, cout, stride) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet20(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            blocks, channels = [], 16
            for i in range(3):
                out = 16 * 2**i
                for j in range(3):
                    blocks.append(BasicBlock(channels, out, 2 if (i > 0 and j == 0) else 1))
                    channels = out
            self.layers = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(torch.relu(self.bn1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return ResNet20()


def copy_weights(src, dst) -> int:
    """Copy tinygrad_cnn parameters into the PyTorch model, in order, where the shapes agree
    (BatchNorm running statistics are buffers, not parameters, and are left alone).
    Returns how many tensors were copied."""
    import torch

    theirs = list(dst.parameters())
    mine = [p for p in src.parameters()]
    copied = 0
    with torch.no_grad():
        for a, b in zip(mine, theirs):
            if tuple(a.shape) == tuple(b.shape):
                b.copy_(torch.from_numpy(np.asarray(a.data, dtype=np.float32)))
                copied += 1
    return copied


INPUT_SHAPES = {"lenet5": (1, 28, 28), "lenet5_tanh": (1, 28, 28), "resnet20": (3, 32, 32)}


def step_flops(name: str, batch: int) -> float:
    """Floating-point operations of one training step: the forward's (``tinygrad_cnn.summary``:
    convolutions, dense layers, batch norm, pooling, with their biases) times 3 (the backward
    computes two products of the forward's size, one for the inputs, one for the weights)."""
    from tinygrad_cnn.summary import summary

    return 3.0 * batch * summary(ours(name), INPUT_SHAPES[name], print_summary=False).total_flops

