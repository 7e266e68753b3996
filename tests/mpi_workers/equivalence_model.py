"""The small CNN of the equivalence run (with BatchNorm2d and BatchNorm1d, float64), shared by
the worker and the test that loads its checkpoints in a single process."""

import tinygrad_cnn as tc
from tinygrad_cnn import nn

CLASSES = 3


def network(seed: int, width: int = 4) -> nn.Module:
    """Conv-BN-ReLU-pool, Conv-BN(cumulative momentum)-ReLU, Linear-BN1d-ReLU-Linear on 8x8 images."""
    tc.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width, momentum=None), nn.ReLU(),
        nn.Flatten(), nn.Linear(width * 16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, CLASSES))
    return model.double()
