"""Callbacks: code that runs at fixed points of training, as in Keras.

The :class:`~tinygrad_cnn.training.Trainer` calls ``on_train_begin``, then per epoch
``on_epoch_begin(epoch)``, ``on_batch_end(batch, logs)`` after every step (the batch's
``loss``, ``size`` and, with the accuracy metric, ``accuracy``) and
``on_epoch_end(epoch, logs)`` with the epoch's metrics (``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``, ``lr``, ...), and finally ``on_train_end(logs)``. A callback
sees the trainer as ``self.trainer`` (model, optimizer, history; during ``fit`` also
``train_loader``, ``validation_loader`` and ``epochs``) and can stop training by
setting ``self.trainer.stop_training = True``.

In a distributed run (``Trainer(..., distributed=True)``) every process runs the callbacks
with the same logs, so they decide alike; callbacks with ``rank_zero_only = True`` (the ones
that write files: CSV and TensorBoard logs) run on rank 0 alone, and checkpoints are written
by rank 0 alone.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


class Callback:
    """Base class: override the hooks you need."""

    trainer = None
    rank_zero_only = False  # True: in a distributed run only rank 0 runs this callback

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "iou", "f1")) else "min"


class _Monitor(Callback):
    """Tracks the best value of ``monitor`` (lower is better for losses, higher for accuracy)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        self.monitor, self.mode, self.min_delta = monitor, _mode(monitor, mode), abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def _value(self, logs: dict | None) -> float | None:
        logs = logs or {}
        if self.monitor not in logs:
            available = ", ".join(sorted(logs)) or "none"
            raise ValueError(
                f"{type(self).__name__}: metric '{self.monitor}' is not logged (available: {available}); "
                f"'val_*' metrics need validation data"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for more than ``patience``
    epochs (``patience`` epochs without improvement are tolerated, training stops at the next;
    Keras's and the CLI's ``patience`` counts the stopping epoch too, one more);
    with ``restore_best_weights`` the model gets back the weights of its best epoch
    (regularisation by early stopping: stop before the network over-fits)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        super().__init__(monitor, mode, min_delta)
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, None, None, None

    def on_train_begin(self, logs=None) -> None:
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None) -> None:
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.numpy().copy() for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.trainer.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save a full training checkpoint (model, optimizer, scheduler, RNG, history; the atomic
    ``.npz`` format) after each epoch, or only when ``monitor`` improves
    (``save_best_only``). ``filepath`` may contain ``{epoch}`` and metric names, e.g.
    ``"ckpt-{epoch:02d}-{val_accuracy:.3f}.npz"``."""

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", info: dict | None = None) -> None:
        super().__init__(monitor, mode)
        self.filepath, self.save_best_only, self.info = os.fspath(filepath), save_best_only, info or {}
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.trainer.save_checkpoint(path, epoch=epoch + 1, info=self.info)
        self.saved.append(path)


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` and every logged metric) to a CSV file."""

    rank_zero_only = True

    def __init__(self, filename: str | os.PathLike, append: bool = False, separator: str = ",") -> None:
        self.filename, self.append, self.separator = Path(filename), append, separator
        self.keys: list[str] | None = None

    def on_train_begin(self, logs=None) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        if not self.append and self.filename.exists():
            self.filename.unlink()
        self.keys = None
        if self.append and self.filename.exists():
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self.keys = header[1:] if header else None

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        new_file = not self.filename.exists() or self.filename.stat().st_size == 0
        if self.keys is None:
            self.keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch", *self.keys])
            writer.writerow([epoch + 1, *(logs.get(k, "") for k in self.keys)])


class LearningRateScheduler(Callback):
    """Set the learning rate each epoch: ``schedule`` is either a function
    ``(epoch, lr) -> new lr`` (Keras) or a ``tinygrad_cnn.optim`` scheduler such as
    ``StepLR``/``CosineAnnealingLR``, stepped at every epoch's end."""

    def __init__(self, schedule, verbose: bool = False) -> None:
        if not callable(schedule) and not hasattr(schedule, "step"):
            raise TypeError(f"LearningRateScheduler: schedule must be a function or an LR scheduler, "
                            f"got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if hasattr(self.schedule, "step"):
            return
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = float(self.schedule(epoch, group["lr"]))
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {self.trainer.optimizer.param_groups[0]['lr']:.3g}")

    def on_epoch_end(self, epoch, logs=None) -> None:
        if hasattr(self.schedule, "step"):
            self.schedule.step()


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 2,
                 mode: str = "auto", min_delta: float = 1e-4, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.factor, self.patience, self.min_lr, self.wait = factor, patience, min_lr, 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            for group in self.trainer.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.wait = 0


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks: Callable) -> None:
        allowed = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")
        for name, fn in hooks.items():
            if name not in allowed:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; expected one of {allowed}")
            setattr(self, name, fn)


def filter_grid(weight: np.ndarray, padding: int = 1) -> np.ndarray:
    """First-layer filters (K, C, KH, KW) as one image (3, H, W) in [0, 1]: each filter
    normalised to its own range and laid out on a square grid (what the course plots to see
    the edge and colour detectors a CNN learns)."""
    weight = np.asarray(weight, dtype=np.float32)
    k, c, kh, kw = weight.shape
    if c not in (1, 3):
        weight, c = weight[:, :1], 1
    low = weight.min(axis=(1, 2, 3), keepdims=True)
    high = weight.max(axis=(1, 2, 3), keepdims=True)
    weight = (weight - low) / np.maximum(high - low, 1e-12)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    grid = np.zeros((3, rows * (kh + padding) + padding, cols * (kw + padding) + padding), np.float32)
    for i in range(k):
        r, col = divmod(i, cols)
        y, x = padding + r * (kh + padding), padding + col * (kw + padding)
        grid[:, y : y + kh, x : x + kw] = weight[i] if c == 3 else np.repeat(weight[i], 3, axis=0)
    return grid


class TensorBoard(Callback):
    """Log to TensorBoard through ``tensorboardX`` (``pip install tensorboardX``), as Keras's
    ``TensorBoard`` callback: scalars of every metric and the learning rate each epoch,
    histograms of the weights every ``histogram_freq`` epochs, and the first convolution's
    filters as an image (``write_images``). View with ``tensorboard --logdir <log_dir>``."""

    rank_zero_only = True

    def __init__(self, log_dir: str | os.PathLike = "logs", histogram_freq: int = 1,
                 write_images: bool = True) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("TensorBoard callback needs tensorboardX: pip install tensorboardX") from None
        self.log_dir, self.histogram_freq = os.fspath(log_dir), histogram_freq
        self.write_images = write_images
        self._writer_class = SummaryWriter
        self.writer = None

    def on_train_begin(self, logs=None) -> None:
        self.writer = self._writer_class(self.log_dir)

    def on_epoch_end(self, epoch, logs=None) -> None:
        step = epoch + 1
        for name, value in (logs or {}).items():
            if isinstance(value, (int, float, np.number)):
                group = "validation" if name.startswith("val_") else "train"
                self.writer.add_scalar(f"{name.removeprefix('val_')}/{group}", float(value), step)
        model = self.trainer.model
        if self.histogram_freq and step % self.histogram_freq == 0:
            for name, p in model.named_parameters():
                self.writer.add_histogram(name, p.numpy(), step)
        if self.write_images:
            for name, p in model.named_parameters():
                if p.ndim == 4:  # the first convolution's filters
                    self.writer.add_image(f"filters/{name}", filter_grid(p.numpy()), step)
                    break
        self.writer.flush()

    def on_train_end(self, logs=None) -> None:
        if self.writer is not None:
            self.writer.close()


class LayerStatistics(Callback):
    """Per-layer gradient norms and activation statistics while training: what goes wrong,
    where (``Trainer(..., layer_statistics=True)`` adds one as ``trainer.layer_statistics``).

    Every ``every``-th training batch it records, for each watched layer (default: every
    module without children, by its dotted name):

    * ``gradient_norms[name]``: the L2 norm of the gradients of the layer's own parameters
      (after ``backward``; layers without parameters have none). Norms that shrink by orders
      of magnitude towards the input are vanishing gradients, growing ones exploding;
      ``update_ratios[name]`` = lr * gradient norm / weight norm (about 1e-3 is healthy;
      near 1 the learning rate is too large);
    * ``activations[name]``: ``mean``, ``std``, ``zero_fraction`` (outputs exactly 0) and
      ``dead_fraction`` (channels, or features, that are <= 0 for every example and position
      of the batch: dead ReLUs), from a forward hook on the layer;
    * with ``output_gradients``, ``output_gradient_norms[name]``: the norm of dL/d(output)
      of every watched layer, from a full backward hook (parameter-free layers included).

    Each entry is a list with one value per recorded batch; ``batches`` lists the
    ``(epoch, batch)`` of each record. Hooks are registered when training begins and
    removed when it ends; evaluation passes (no graph) are not recorded.
    """

    ACTIVATION_KEYS = ("mean", "std", "zero_fraction", "dead_fraction")

    def __init__(self, every: int = 1, layers=None, output_gradients: bool = False) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
            raise ValueError(f"LayerStatistics: every must be a positive int, got {every!r}")
        self.every, self.layers, self.output_gradients = every, layers, bool(output_gradients)
        self.gradient_norms: dict[str, list[float]] = {}
        self.update_ratios: dict[str, list[float]] = {}
        self.activations: dict[str, dict[str, list[float]]] = {}
        self.output_gradient_norms: dict[str, list[float]] = {}
        self.batches: list[tuple[int, int]] = []
        self._handles: list = []
        self._pending: dict[str, dict[str, float]] = {}
        self._pending_gradients: dict[str, float] = {}
        self._step, self._epoch = 0, 0
        self._watched: dict = {}
        self._order: list[str] = []

    def watched(self, model) -> dict:
        modules = dict(model.named_modules())
        if self.layers is None:
            return {name: m for name, m in modules.items() if name and not any(True for _ in m.children())}
        missing = [name for name in self.layers if name not in modules]
        if missing:
            raise ValueError(f"LayerStatistics: the model has no layers named {missing}")
        return {name: modules[name] for name in self.layers}

    def on_train_begin(self, logs=None) -> None:
        self.remove_hooks()
        self._watched = self.watched(self.trainer.model)
        self._order = list(self._watched)
        for name, module in self._watched.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
            if self.output_gradients:
                self._handles.append(module.register_full_backward_hook(self._backward_hook(name)))

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch = epoch

    def _recording(self) -> bool:
        from tinygrad_cnn.autograd import is_grad_enabled

        return self._step % self.every == 0 and is_grad_enabled()

    def _forward_hook(self, name: str):
        def hook(module, args, output):
            if self._recording() and hasattr(output, "data"):
                self._pending[name] = activation_statistics(output.data)
        return hook

    def _backward_hook(self, name: str):
        def hook(module, grad_input, grad_output):
            if self._step % self.every == 0 and grad_output[0] is not None:
                self._pending_gradients[name] = _norm(grad_output[0].data)
        return hook

    def on_batch_end(self, batch, logs=None) -> None:
        if self._step % self.every == 0:
            self.batches.append((self._epoch, batch))
            lr = self.trainer.optimizer.param_groups[0]["lr"] if self.trainer.optimizer else 0.0
            for name, module in self._watched.items():
                trained = [p for p in module._parameters.values() if p is not None and p.grad is not None]
                if trained:
                    norm = math.sqrt(sum(_norm(p.grad.data) ** 2 for p in trained))
                    weight = math.sqrt(sum(_norm(p.data) ** 2 for p in trained))
                    self.gradient_norms.setdefault(name, []).append(norm)
                    self.update_ratios.setdefault(name, []).append(lr * norm / max(weight, 1e-12))
            for name, stats in self._pending.items():
                table = self.activations.setdefault(name, {k: [] for k in self.ACTIVATION_KEYS})
                for key in self.ACTIVATION_KEYS:
                    table[key].append(stats[key])
            for name, norm in self._pending_gradients.items():
                self.output_gradient_norms.setdefault(name, []).append(norm)
        self._pending, self._pending_gradients = {}, {}
        self._step += 1

    def on_train_end(self, logs=None) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def last(self) -> dict[str, dict[str, float]]:
        """The latest record of every layer: ``{name: {"gradient_norm": ..., "mean": ..., ...}}``."""
        table: dict[str, dict[str, float]] = {}
        for key, source in (("gradient_norm", self.gradient_norms), ("update_ratio", self.update_ratios),
                            ("output_gradient_norm", self.output_gradient_norms)):
            for name, values in source.items():
                table.setdefault(name, {})[key] = values[-1]
        for name, stats in self.activations.items():
            table.setdefault(name, {}).update({k: v[-1] for k, v in stats.items() if v})
        order = {name: i for i, name in enumerate(self._order)}
        return dict(sorted(table.items(), key=lambda item: order.get(item[0], len(order))))

    def report(self) -> str:
        """The latest record as a text table, one row per layer."""
        columns = ("gradient_norm", "update_ratio", "output_gradient_norm", *self.ACTIVATION_KEYS)
        rows = self.last()
        shown = [c for c in columns if any(c in r for r in rows.values())]
        width = max([len(n) for n in rows] + [5])
        lines = ["layer".ljust(width) + "".join(f"{c:>22}" for c in shown)]
        for name, values in rows.items():
            lines.append(name.ljust(width) + "".join(
                f"{values[c]:>22.4g}" if c in values else " " * 22 for c in shown))
        return "\n".join(lines)


def _host(array) -> np.ndarray:
    """A numpy view (or, from the GPU, copy) of a numpy or cupy array."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _norm(array) -> float:
    flat = _host(array).ravel()
    return math.sqrt(float(np.dot(flat, flat.astype(np.float64, copy=False))))


def activation_statistics(output) -> dict[str, float]:
    """mean, std, zero_fraction and dead_fraction (channels <= 0 everywhere) of a layer's
    output array (N, C, ...), the numbers :class:`LayerStatistics` records (sums in float64)."""
    a = _host(output)
    if not a.size:
        return dict.fromkeys(LayerStatistics.ACTIVATION_KEYS, float("nan"))
    dead = float("nan")
    if a.ndim >= 2:  # a channel (or feature) is dead if it is <= 0 for every example and position
        dead = float((a.max(axis=(0, *range(2, a.ndim))) <= 0).mean())
    return {"mean": float(a.mean(dtype=np.float64)), "std": float(a.std(dtype=np.float64)),
            "zero_fraction": np.count_nonzero(a == 0) / a.size, "dead_fraction": dead}
