"""The training loop: Keras's ``fit``/``evaluate``/``predict`` for tinygrad_cnn models.

One epoch of mini-batch gradient descent is, for every batch (x, y):

    logits = model(x);  loss = loss_fn(logits, y)      (forward pass)
    optimizer.zero_grad();  loss.backward()            (back-propagation)
    optimizer.step()                                   (w <- w - lr * update)

then the model is scored on the validation data in evaluation mode (dropout off, batch
norm with running statistics) without building a graph. ``Trainer`` adds what the course's
``model.fit(...)`` prints and keeps: a tqdm progress bar with the running loss, accuracy and
samples per second, a ``history`` of every epoch's metrics, callbacks (early stopping,
checkpoints, CSV and TensorBoard logs, learning-rate schedules) and checkpoints from which a
run continues exactly.

``Trainer(..., distributed=True)`` trains data-parallel over the processes of an MPI run
(``mpirun -n W``; see :mod:`tinygrad_cnn.distributed`): the model is wrapped in
``DistributedDataParallel``, each process reads its share of every batch (``shard_loader``)
and averages gradients after backward, epoch metrics are summed over all processes (so every
process logs, stops early and schedules alike), and only rank 0 shows progress, prints,
runs the callbacks that write files and writes checkpoints. ``batch_size`` is per process.
Every process must call ``fit`` and ``evaluate`` (they communicate; ``predict`` does not and
returns the outputs of all the data on each). In a single process it trains exactly as
without the option, but for random augmentation (each process draws from its own stream).

Longer than 500 lines: fit/evaluate/predict share the loop's state (history, callbacks,
distributed sums, checkpoints), which reads best as one class; callbacks, checkpoints,
the compile watch and plots live in their own files.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.data.loader import DataLoader, Dataset, Subset, TensorDataset
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.optim.optimizer import Optimizer
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.training import checkpoint as ckpt
from tinygrad_cnn.training.callbacks import Callback, LayerStatistics
from tinygrad_cnn.training.compilation import CompileWatch, duration_text

METRICS = ("accuracy", "iou")


class History:
    """What ``fit`` returns, as Keras: ``history.history["val_accuracy"]`` is a list with one
    value per epoch, ``history.epoch`` the epoch numbers (0-based)."""

    def __init__(self, history: dict[str, list[float]] | None = None, epoch: list[int] | None = None):
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}
        self.epoch: list[int] = list(epoch or [])

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def plot(self, path: str | os.PathLike, title: str | None = None) -> None:
        """Write the training curves to a PNG (see :func:`plot_history`)."""
        from tinygrad_cnn.training.plot import plot_history

        plot_history(self, path, title=title)

    def to_dict(self) -> dict:
        return {"history": self.history, "epoch": self.epoch}

    def __repr__(self) -> str:
        """The table of epochs and metrics (the first and last 5 epochs of a long run)."""
        if not self.epoch:
            return "History(no epochs trained yet)"
        keys = list(self.history)
        header = ["epoch", *keys]
        rows = [[str(e + 1), *(f"{self.history[k][i]:.4g}" if i < len(self.history[k]) else ""
                               for k in keys)] for i, e in enumerate(self.epoch)]
        if len(rows) > 10:
            rows = rows[:5] + [["..."] + [""] * len(keys)] + rows[-5:]
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
        epochs = len(self.epoch)
        return f"History: {epochs} epoch{'s' if epochs != 1 else ''}\n" + "\n".join(lines)


class _MetricState:
    """Running sums over an epoch: loss, correct predictions and a confusion matrix."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = metrics
        self.loss_sum, self.samples, self.correct, self.counted = 0.0, 0, 0, 0
        self.confusion: np.ndarray | None = None

    def update(self, loss: float, logits: np.ndarray, target: np.ndarray) -> None:
        n = len(target)
        self.loss_sum += loss * n
        self.samples += n
        if not self.metrics or target.dtype.kind not in "iu":
            return
        predicted = logits.argmax(axis=1)
        self.correct += int((predicted == target).sum())
        self.counted += target.size
        if "iou" in self.metrics:
            k = logits.shape[1]
            if self.confusion is None:
                self.confusion = np.zeros((k, k), dtype=np.int64)
            pairs = target.ravel() * k + predicted.ravel()
            self.confusion += np.bincount(pairs, minlength=k * k).reshape(k, k)

    def reduce_across_processes(self, world) -> None:
        """Sum the running sums of every process of ``world`` (in rank order, so all get the same)."""
        states = world.all_gather_object((self.loss_sum, self.samples, self.correct, self.counted,
                                          self.confusion))
        self.loss_sum = sum(s[0] for s in states)
        self.samples, self.correct, self.counted = (sum(s[i] for s in states) for i in (1, 2, 3))
        confusions = [s[4] for s in states if s[4] is not None]
        self.confusion = sum(confusions[1:], confusions[0].copy()) if confusions else None

    def result(self) -> dict[str, float]:
        out = {"loss": self.loss_sum / max(self.samples, 1)}
        if "accuracy" in self.metrics and self.counted:
            out["accuracy"] = self.correct / self.counted
        if "iou" in self.metrics and self.confusion is not None:
            out["iou"] = mean_iou(self.confusion)
        return out


def mean_iou(confusion: np.ndarray) -> float:
    """Mean intersection over union over the classes that occur (in targets or predictions):
    IoU_c = TP_c / (TP_c + FP_c + FN_c), the segmentation score of the U-Net lecture."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else 0.0


_UNSET = object()  # Trainer(model) without an optimizer: an error, unless optimizer=None is explicit


def _holds_targets(data) -> bool:
    """A DataLoader, a Dataset or an (x, y) pair: data that already pairs inputs with targets."""
    return isinstance(data, (DataLoader, Dataset)) or (isinstance(data, (tuple, list)) and len(data) == 2)


def split_validation(data, fraction: float):
    """``(train, validation)``: the last ``fraction`` of the samples held out, before any
    shuffling (Keras's ``validation_split``). ``data`` is an ``(x, y)`` pair of arrays or a
    Dataset (split into two Subsets)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split must be a fraction in (0, 1), got {fraction!r}")
    if isinstance(data, DataLoader):
        raise TypeError("validation_split needs arrays or a Dataset, not a DataLoader (whose order is its "
                        "own): give validation_data=(x_val, y_val) or a second DataLoader")
    n = len(data[0]) if isinstance(data, (tuple, list)) else len(data)
    cut = int(n * (1.0 - fraction))
    if cut <= 0 or cut >= n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves "
                         f"{'no training' if cut <= 0 else 'no validation'} samples")
    if isinstance(data, (tuple, list)):
        return tuple(a[:cut] for a in data), tuple(a[cut:] for a in data)
    return Subset(data, np.arange(cut)), Subset(data, np.arange(cut, n))


class Trainer:
    """``Trainer(model, optimizer, loss_fn=F.cross_entropy, metrics=("accuracy",),
    callbacks=(), scheduler=None, progress=True, device="cpu", batch_size=32, seed=None,
    distributed=False)``.

    * ``fit(x, y=None, epochs=1, validation_data=None, initial_epoch=0, *, batch_size=None,
      validation_split=0.0, shuffle=True) -> History``, as Keras's ``model.fit``: ``x, y``
      arrays, or ``x`` a DataLoader / Dataset / ``(x, y)`` pair (then ``fit(data, epochs,
      validation_data)`` positionally works too)
    * ``evaluate(data) -> {"loss": ..., "accuracy": ...}``; ``predict(data) -> logits``
    * ``save_checkpoint(path)`` / ``resume(path) -> next epoch``

    ``x`` and ``validation_data`` are DataLoaders, Datasets or ``(x, y)`` array pairs (batched
    with ``batch_size``, shuffled with ``seed``; give a seed, or a seeded DataLoader, for a run
    that resumes exactly). ``validation_split`` holds out the last fraction of the training
    samples instead. The optimizer is required (``optimizer=None``, explicitly, makes a
    Trainer that only evaluates and predicts) and must update parameters of the model.
    ``metrics``: ``"accuracy"`` (per image, or per pixel for segmentation) and ``"iou"``
    (mean intersection over union). ``scheduler`` (e.g. ``optim.StepLR``) is
    stepped after every epoch and saved in checkpoints. ``layer_statistics=True`` (or N: every
    N-th batch) records per-layer gradient norms and activation statistics in
    ``trainer.layer_statistics`` (a :class:`~tinygrad_cnn.training.callbacks.LayerStatistics`).
    ``distributed``: data-parallel over the processes of an MPI run (see the module text);
    ``model`` may also be a ``DistributedDataParallel`` already.
    """

    def __init__(self, model: Module, optimizer: Optimizer | None = _UNSET, loss_fn: Callable | None = None,
                 metrics: Sequence[str] = ("accuracy",), callbacks: Iterable[Callback] = (),
                 scheduler=None, progress: bool = True, device: str = "cpu", batch_size: int = 32,
                 seed: int | None = None, info: dict | None = None,
                 layer_statistics: bool | int = False, distributed: bool = False) -> None:
        self.distributed, self.ddp, self.world = bool(distributed), None, None
        if self.distributed:
            model, progress, callbacks = self._setup_distributed(model, device, progress, callbacks)
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be an nn.Module, got {type(model).__name__}")
        if optimizer is _UNSET:
            raise TypeError("Trainer(model) needs an optimizer to train, e.g. "
                            "Trainer(model, optim.Adam(model.parameters(), lr=1e-3)); "
                            "for a Trainer that only evaluates and predicts, pass optimizer=None")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"Trainer: optimizer must be a tinygrad_cnn.optim Optimizer, got {optimizer!r}")
        if optimizer is not None:
            own = {id(p) for p in model.parameters()}
            if not any(id(p) in own for p in optimizer.parameters()):
                raise ValueError("Trainer: the optimizer updates none of this model's parameters (was it "
                                 "built for another model? use optim.Adam(model.parameters()))")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"Trainer: unknown metrics {unknown}; expected some of {METRICS}")
        self.model, self.optimizer, self.scheduler = model.to(device), optimizer, scheduler
        self.loss_fn = loss_fn if loss_fn is not None else F.cross_entropy
        self.metrics, self.device, self.progress = tuple(metrics), device, progress
        self.batch_size, self.seed = batch_size, seed
        self.callbacks = list(callbacks)
        # layer_statistics=True (or N: every N-th batch): per-layer gradient norms and activations
        self.layer_statistics = None
        if layer_statistics:
            every = 1 if layer_statistics is True else layer_statistics
            self.layer_statistics = LayerStatistics(every=every)
            self.callbacks.append(self.layer_statistics)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"Trainer: {c!r} is not a Callback")
            c.set_trainer(self)
        self.history = History()
        self.info = dict(info or {})
        self.stop_training = False
        self.compile_seconds = 0.0  # spent compiling kernels (the first run), kept out of every timing
        self._watch: CompileWatch | None = None
        self._active_bar = None

    def _setup_distributed(self, model, device: str, progress: bool, callbacks: Iterable[Callback]):
        """Join the MPI world and wrap the model; returns (plain model, progress, callbacks)."""
        from tinygrad_cnn import distributed as dist

        self.world = dist.init()
        if isinstance(model, dist.DistributedDataParallel):
            self.ddp = model
        elif isinstance(model, Module):
            self.ddp = dist.DistributedDataParallel(model.to(device))
        else:
            return model, progress, callbacks  # the type check in __init__ explains
        main = self.world.rank == 0
        callbacks = [c for c in callbacks if main or not getattr(c, "rank_zero_only", False)]
        return self.ddp.module, progress and main, callbacks

    def _shard(self, loader: DataLoader, train: bool) -> DataLoader:
        """This process's share of ``loader`` when distributed (training: equal padded shares)."""
        if not self.distributed:
            return loader
        from tinygrad_cnn.distributed import shard_loader

        return shard_loader(loader, pad=train)

    # ----------------------------------------------------------------- data
    def _loader(self, data, shuffle: bool, name: str, batch_size: int | None = None) -> DataLoader:
        if isinstance(data, DataLoader):
            if batch_size is not None and batch_size != data.batch_size:
                raise ValueError(f"Trainer: batch_size={batch_size} is for arrays; {name} is a DataLoader "
                                 f"with its own batch size ({data.batch_size})")
            return data
        if isinstance(data, (tuple, list)) and len(data) == 2:
            data = TensorDataset(*data)
        if isinstance(data, Dataset):
            return DataLoader(data, batch_size=batch_size or self.batch_size, shuffle=shuffle,
                              seed=self.seed, device=self.device)
        raise TypeError(f"Trainer: {name} must be a DataLoader, a Dataset or an (x, y) pair of arrays, "
                        f"got {type(data).__name__}")

    def _bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="batch", disable=not self.progress, leave=True,
                    file=sys.stderr, dynamic_ncols=True, mininterval=0.25)

    # ------------------------------------------------------------------ fit
    def train_step(self, x: Tensor, y: Tensor) -> tuple[float, np.ndarray]:
        """One step of gradient descent on a batch; returns (loss, logits)."""
        logits = (self.ddp if self.ddp is not None else self.model)(x)
        loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad()
        loss.backward()
        if self.ddp is not None:  # average the gradients over the processes before the step
            self.ddp.allreduce_gradients()
        self.optimizer.step()
        return loss.item(), logits.numpy()

    def fit(self, x, y=None, epochs: int = 1, validation_data=None, initial_epoch: int = 0, *,
            batch_size: int | None = None, validation_split: float = 0.0, shuffle: bool = True) -> History:
        """Train from ``initial_epoch`` up to ``epochs`` (the total, as Keras); returns the history.

        ``fit(x, y, epochs=5, batch_size=64, validation_split=0.1)`` as Keras, or
        ``fit(train_loader, 5, val_loader)``. ``batch_size`` and ``shuffle`` apply to arrays
        (a DataLoader has its own); ``validation_split`` holds out the last fraction of the
        samples (see :func:`split_validation`), ``validation_data`` gives them instead."""
        if _holds_targets(x) and y is not None:
            # fit(data, epochs, validation_data): the data already hold the targets
            if isinstance(y, bool) or not isinstance(y, numbers.Integral):
                raise TypeError(f"Trainer.fit: x is a {type(x).__name__} that already holds the targets, "
                                f"so y must not be given (got {type(y).__name__})")
            if not isinstance(epochs, numbers.Integral):  # the third positional: validation data
                if validation_data is not None:
                    raise TypeError("Trainer.fit: validation data given twice")
                validation_data, epochs = epochs, 1
            if epochs != 1:
                raise TypeError(f"Trainer.fit: epochs given twice ({y} and epochs={epochs})")
            x, y, epochs = x, None, int(y)
        if self.optimizer is None:
            raise ValueError("Trainer.fit needs an optimizer: this Trainer was made with optimizer=None "
                             "(for evaluate/predict); Trainer(model, optimizer) trains")
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs <= 0:
            raise ValueError(f"Trainer.fit: epochs must be a positive int, got {epochs!r}")
        epochs = int(epochs)
        if not 0 <= initial_epoch <= epochs:
            raise ValueError(f"Trainer.fit: initial_epoch {initial_epoch} must be in [0, epochs={epochs}]")
        if y is not None and (np.ndim(y) == 0 or np.ndim(x) == 0):
            raise TypeError(f"Trainer.fit(x, y): x and y must be arrays of inputs and targets, got "
                            f"{type(x).__name__} and {type(y).__name__} (fit(data, epochs) takes a "
                            f"DataLoader, a Dataset or an (x, y) pair)")
        whole = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
        if batch_size is not None and (not whole or batch_size <= 0):
            raise ValueError(f"Trainer.fit: batch_size must be a positive int, got {batch_size!r}")
        train_data = x if y is None else (x, y)
        if validation_split:
            if validation_data is not None:
                raise ValueError("Trainer.fit: give validation_data or validation_split, not both")
            train_data, validation_data = split_validation(train_data, validation_split)
        loader = self._loader(train_data, shuffle, "the training data", batch_size)
        if len(loader.dataset) == 0:
            raise ValueError("Trainer.fit: the training data hold no samples")
        loader = self._shard(loader, train=True)
        val_loader = None
        if validation_data is not None:
            val_loader = self._loader(validation_data, False, "validation_data", batch_size)
        self.stop_training = False
        # what callbacks may read while training (the live view: how many batches, which images)
        self.train_loader, self.validation_loader, self.epochs = loader, val_loader, epochs
        for c in self.callbacks:
            c.on_train_begin()
        logs: dict[str, float] = {}
        with self._watching():
            for epoch in range(initial_epoch, epochs):
                for c in self.callbacks:
                    c.on_epoch_begin(epoch)
                lr = self.optimizer.param_groups[0]["lr"]
                logs = self._train_epoch(loader, epoch, epochs, estimate=epoch == initial_epoch)
                if val_loader is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                logs["lr"] = lr
                self.history.append(epoch, logs)
                if self.scheduler is not None:
                    self.scheduler.step()
                for c in self.callbacks:
                    c.on_epoch_end(epoch, logs)
                if self.distributed:  # rank 0 decides, so no process leaves the loop alone
                    self.stop_training = self.world.broadcast_object(self.stop_training)
                if self.progress:
                    shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
                    print(f"epoch {epoch + 1}/{epochs}  {shown}", file=sys.stderr)
                if self.stop_training:
                    break
        for c in self.callbacks:
            c.on_train_end(logs)
        return self.history

    @contextlib.contextmanager
    def _watching(self):
        """Notice kernel compilations (see :mod:`.compilation`) for the whole block, once."""
        if self._watch is not None:  # evaluate() inside fit(): already watched
            yield self._watch
            return
        self._watch = CompileWatch(self._say)
        try:
            with self._watch:
                yield self._watch
        finally:
            watch, self._watch = self._watch, None
            self.compile_seconds += watch.seconds
            if watch.kernels:
                self._say(watch.summary())

    def _say(self, message: str) -> None:
        """A line for the user on stderr, above the progress bar if one is showing."""
        bar = self._active_bar
        if bar is not None and not bar.disable:
            bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def _train_epoch(self, loader: DataLoader, epoch: int, epochs: int,
                     estimate: bool = False) -> dict[str, float]:
        """One epoch. Seconds spent compiling kernels (first run) are left out of the bar's clock,
        the samples per second and, with ``estimate``, the time per epoch printed after the first
        batches (before the epoch ends: a model too slow for the machine says so at once)."""
        self.model.train()
        loader.set_epoch(epoch)
        state = _MetricState(self.metrics)
        watch = self._watch or CompileWatch(lambda message: None)
        trained_seconds, estimated = 0.0, not estimate or not self.progress
        clean_seconds, clean_batches = 0.0, 0  # batches that compiled nothing: what later epochs cost
        with self._bar(len(loader), f"epoch {epoch + 1}/{epochs}") as bar:
            self._active_bar = bar
            watch.progress = lambda message: (bar.set_postfix_str(message, refresh=True)
                                              if not bar.disable else None)
            try:
                for batch, (x, y) in enumerate(loader):
                    started, compiled_before = time.perf_counter(), watch.seconds
                    x, y = x.to(self.device), y.to(self.device)
                    loss, logits = self.train_step(x, y)
                    if not np.isfinite(loss):
                        raise FloatingPointError(
                            f"the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}: "
                            f"lower the learning rate (now {self.optimizer.param_groups[0]['lr']})"
                        )
                    compiling = watch.seconds - compiled_before
                    seconds = time.perf_counter() - started - compiling
                    trained_seconds += seconds
                    # not typical of later batches: one that compiled (it also loaded and saved
                    # kernels), and a run's first, which loads its kernels from Numba's cache (0.5 s
                    # where later LeNet-5 batches take 0.01 s): the bar's clock skips both
                    warming_up = estimate and batch == 0
                    if not compiling and not warming_up:
                        clean_seconds, clean_batches = clean_seconds + seconds, clean_batches + 1
                    skipped = compiling + (seconds if warming_up else 0.0)
                    if skipped and not bar.disable:
                        bar.start_t += skipped
                        bar.last_print_t += skipped
                    counted, correct = state.counted, state.correct
                    state.update(loss, logits, y.numpy())
                    batch_logs = {"loss": loss, "size": len(logits)}
                    if state.counted > counted:  # the batch's own accuracy, for per-batch curves
                        batch_logs["accuracy"] = (state.correct - correct) / (state.counted - counted)
                    result = state.result()
                    speed = state.samples / max(trained_seconds, 1e-9)
                    postfix = {k: f"{v:.4f}" for k, v in result.items()}
                    bar.set_postfix(**postfix, samples_per_s=f"{speed:.0f}", refresh=False)
                    bar.update(1)
                    if (not estimated and batch + 1 < len(loader) and clean_batches
                            and (clean_batches >= 3 or clean_seconds >= 1.0)):
                        estimated = True
                        self._say(self._estimate(clean_seconds / clean_batches, len(loader), epochs - epoch,
                                                 loader.batch_size))
                    for c in self.callbacks:
                        c.on_batch_end(batch, batch_logs)
            finally:
                self._active_bar = None
                watch.progress = None
        if self.distributed:
            state.reduce_across_processes(self.world)
        return state.result()

    @staticmethod
    def _estimate(seconds_per_batch: float, batches: int, epochs_left: int, batch_size: int) -> str:
        per_epoch = seconds_per_batch * batches
        text = (f"estimated time: {duration_text(per_epoch)} per epoch ({batches} batches of {batch_size} at "
                f"{duration_text(seconds_per_batch)} each, measured on the first batches)")
        if epochs_left > 1:
            text += f", {duration_text(per_epoch * epochs_left)} for the {epochs_left} epochs of this run"
        return text

    # ------------------------------------------------------------- evaluate
    def evaluate(self, data) -> dict[str, float]:
        """Mean loss and metrics over ``data`` in evaluation mode, without gradients."""
        loader = self._shard(self._loader(data, False, "data"), train=False)
        was_training = self.model.training
        self.model.eval()
        state = _MetricState(self.metrics)
        try:
            with no_grad(), self._watching():
                for x, y in loader:
                    x, y = x.to(self.device), y.to(self.device)
                    logits = self.model(x)
                    state.update(self.loss_fn(logits, y).item(), logits.numpy(), y.numpy())
        finally:
            self.model.train(was_training)
        if self.distributed:
            state.reduce_across_processes(self.world)
        return state.result()

    def predict(self, data) -> np.ndarray:
        """The model's outputs (logits) for ``data``: a DataLoader, an (x, y) pair or an array x."""
        if isinstance(data, (np.ndarray, Tensor)):
            x = data.numpy() if isinstance(data, Tensor) else data
            data = DataLoader(TensorDataset(x), batch_size=self.batch_size, device=self.device)
        loader = self._loader(data, False, "data") if not isinstance(data, DataLoader) else data
        was_training = self.model.training
        self.model.eval()
        outputs = []
        try:
            with no_grad(), self._watching():
                for batch in loader:
                    outputs.append(self.model(batch[0].to(self.device)).numpy())
        finally:
            self.model.train(was_training)
        return np.concatenate(outputs)

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | os.PathLike, epoch: int | None = None,
                        info: dict | None = None) -> None:
        """Model, optimizer, scheduler, RNG and history at the end of epoch ``epoch``
        (default: the number of epochs trained so far). Distributed: rank 0 alone writes."""
        if self.distributed and self.world.rank != 0:
            return
        epoch = len(self.history) if epoch is None else epoch
        ckpt.save_checkpoint(path, self.model, self.optimizer, self.scheduler, epoch=epoch,
                             history=self.history.to_dict(), info={**self.info, **(info or {})})

    def resume(self, path: str | os.PathLike) -> int:
        """Load a checkpoint written by ``save_checkpoint``; returns the epoch to continue
        from: ``fit(data, epochs, initial_epoch=trainer.resume(path))``."""
        meta = ckpt.load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        if self.ddp is not None:  # every process read the file; make sure they hold rank 0's state
            self.ddp.broadcast_state()
        saved = meta.get("history") or {}
        self.history = History(saved.get("history"), saved.get("epoch"))
        return int(meta["epoch"])


def fit(model: Module, optimizer: Optimizer, x, y=None, epochs: int = 1, validation_data=None, *,
        batch_size: int | None = None, validation_split: float = 0.0, shuffle: bool = True,
        **trainer_options) -> History:
    """``Trainer(model, optimizer, **options).fit(x, y, epochs, validation_data, ...)``."""
    return Trainer(model, optimizer, **trainer_options).fit(
        x, y, epochs, validation_data, batch_size=batch_size, validation_split=validation_split,
        shuffle=shuffle)


def evaluate(model: Module, data, **trainer_options) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` (see :meth:`Trainer.evaluate`)."""
    return Trainer(model, None, **trainer_options).evaluate(data)


def predict(model: Module, data, **trainer_options) -> np.ndarray:
    """Outputs of ``model`` on ``data`` (see :meth:`Trainer.predict`)."""
    return Trainer(model, None, **trainer_options).predict(data)
