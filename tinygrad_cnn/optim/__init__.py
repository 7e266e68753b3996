"""``tinygrad_cnn.optim``: gradient-descent optimizers and learning-rate schedules."""

from tinygrad_cnn.optim import lr_scheduler
from tinygrad_cnn.optim.adam import Adam, AdamW
from tinygrad_cnn.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, StepLR
from tinygrad_cnn.optim.optimizer import Optimizer
from tinygrad_cnn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "LambdaLR",
           "lr_scheduler"]
