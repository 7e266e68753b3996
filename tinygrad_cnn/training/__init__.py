"""``tinygrad_cnn.training``: the training loop (``Trainer``, ``fit``), callbacks, checkpoints
and training-curve plots."""

from tinygrad_cnn.training.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LayerStatistics,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    filter_grid,
)
from tinygrad_cnn.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from tinygrad_cnn.training.plot import plot_history
from tinygrad_cnn.training.trainer import History, Trainer, evaluate, fit, mean_iou, predict, split_validation

__all__ = [
    "Trainer", "History", "fit", "evaluate", "predict", "mean_iou", "Callback", "EarlyStopping",
    "ModelCheckpoint", "CSVLogger", "TensorBoard", "LearningRateScheduler", "ReduceLROnPlateau",
    "LambdaCallback", "filter_grid", "save_checkpoint", "load_checkpoint", "read_checkpoint",
    "plot_history", "LayerStatistics", "split_validation",
]
