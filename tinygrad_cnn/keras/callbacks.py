"""Keras's callbacks, with Keras's arguments and defaults, on ``tinygrad_cnn.training``'s callbacks.

``fit`` calls the hooks of :class:`tinygrad_cnn.training.Callback` (``on_train_begin``,
``on_epoch_begin``, ``on_batch_end``, ``on_epoch_end``, ``on_train_end``); a callback sees the
run as ``self.trainer`` and, as in Keras, the model as ``self.model``. Keras 2's metric names
are accepted where Keras 3 logs the long ones and the other way round: a monitor (or a
``ModelCheckpoint`` file-name field) ``val_acc`` reads ``val_accuracy`` when only that was
logged, and ``val_accuracy`` reads ``val_acc``.

Where Keras's rules differ from the training callbacks', the difference is adapted here:

* ``EarlyStopping(patience=p)`` stops after max(p, 1) epochs in a row without improvement
  (Keras), the training callback after p + 1 (so it gets max(p, 1) - 1), and with
  ``restore_best_weights`` the best weights come back at the end of training, stopped or not;
* ``ModelCheckpoint`` writes the training checkpoint (weights, optimizer state, history; an
  ``.npz`` archive whatever the file name, e.g. the course's ``'best_model.h5'``), or with
  ``save_weights_only=True`` the model's ``save_weights`` file; ``model.load_weights`` reads both;
* ``CSVLogger`` numbers its rows from epoch 0, as Keras;
* ``TensorBoard`` logs every metric per epoch (and, with ``histogram_freq``, weight histograms);
  ``write_graph`` is accepted, but no graph is written.
"""

from __future__ import annotations

from tinygrad_cnn.training import callbacks as base
from tinygrad_cnn.training.callbacks import LambdaCallback, LearningRateScheduler
from tinygrad_cnn.training.trainer import History

__all__ = [
    "Callback", "EarlyStopping", "ModelCheckpoint", "TensorBoard", "CSVLogger", "History",
    "LambdaCallback", "LearningRateScheduler",
]


def with_aliases(logs: dict | None) -> dict:
    """``logs`` plus ``acc`` names for ``accuracy`` metrics and the other way round."""
    logs = dict(logs or {})
    for key in list(logs):
        if key.endswith("accuracy"):
            logs.setdefault(key.removesuffix("accuracy") + "acc", logs[key])
        elif key.endswith("acc"):
            logs.setdefault(key.removesuffix("acc") + "accuracy", logs[key])
    return logs


class Callback(base.Callback):
    """Base of a Keras callback: override ``on_epoch_end(epoch, logs)`` and friends; ``self.model``
    is the model being trained (set ``self.model.stop_training = True`` to stop)."""

    @property
    def model(self):
        return None if self.trainer is None else self.trainer.model

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_train_batch_end(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class _Aliased:
    """Monitors that find ``val_acc`` / ``val_accuracy`` under either name."""

    def _value(self, logs):
        return super()._value(with_aliases(logs))


class EarlyStopping(_Aliased, base.EarlyStopping):
    """``EarlyStopping(monitor='val_loss', min_delta=0, patience=0, verbose=0, mode='auto',
    baseline=None, restore_best_weights=False, start_from_epoch=0)``; ``baseline`` must be None."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        if baseline is not None:
            raise ValueError("EarlyStopping: baseline is not supported")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        super().__init__(monitor, max(patience, 1) - 1, min_delta, mode, restore_best_weights)
        self.verbose, self.start_from_epoch = verbose, int(start_from_epoch)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if epoch >= self.start_from_epoch:
            super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None) -> None:
        if self.stopped_epoch is not None and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)


class _WeightsOnly:
    """The run as ModelCheckpoint sees it when only the weights are to be saved."""

    def __init__(self, run) -> None:
        self._run = run

    def __getattr__(self, name):
        return getattr(self._run, name)

    def save_checkpoint(self, path, epoch=None, info=None) -> None:
        self._run.model.save_weights(path)


class ModelCheckpoint(_Aliased, base.ModelCheckpoint):
    """``ModelCheckpoint(filepath, monitor='val_loss', verbose=0, save_best_only=False,
    save_weights_only=False, mode='auto', save_freq='epoch', initial_value_threshold=None)``;
    ``filepath`` may hold fields such as ``'weights-{epoch:02d}-{val_loss:.2f}.h5'``."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq="epoch",
                 initial_value_threshold: float | None = None) -> None:
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: only save_freq='epoch' is supported, got {save_freq!r}")
        super().__init__(filepath, monitor, save_best_only, mode)
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        self.verbose, self.save_weights_only = verbose, bool(save_weights_only)

    def set_trainer(self, trainer) -> None:
        super().set_trainer(_WeightsOnly(trainer) if self.save_weights_only else trainer)

    def on_epoch_end(self, epoch, logs=None) -> None:
        saved = len(self.saved)
        super().on_epoch_end(epoch, with_aliases(logs))
        if self.verbose and len(self.saved) > saved:
            print(f"Epoch {epoch + 1}: saving model to {self.saved[-1]}")


class TensorBoard(base.TensorBoard):
    """``TensorBoard(log_dir='logs', histogram_freq=0, write_graph=True, write_images=False,
    update_freq='epoch')``: scalars per epoch through tensorboardX (``pip install tensorboardX``)."""

    def __init__(self, log_dir="logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, update_freq="epoch") -> None:
        if update_freq != "epoch":
            raise ValueError(f"TensorBoard: only update_freq='epoch' is supported, got {update_freq!r}")
        super().__init__(log_dir, histogram_freq, write_images)
        self.write_graph = write_graph


class CSVLogger(base.CSVLogger):
    """``CSVLogger(filename, separator=',', append=False)``: one row per epoch, from epoch 0."""

    def __init__(self, filename, separator: str = ",", append: bool = False) -> None:
        super().__init__(filename, append, separator)

    def on_epoch_end(self, epoch, logs=None) -> None:
        super().on_epoch_end(epoch - 1, logs)  # the training logger writes epoch + 1
