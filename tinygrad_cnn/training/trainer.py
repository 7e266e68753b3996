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
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.data.loader import DataLoader, TensorDataset
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.optim.optimizer import Optimizer
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.training import checkpoint as ckpt
from tinygrad_cnn.training.callbacks import Callback

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


class Trainer:
    """``Trainer(model, optimizer, loss_fn=F.cross_entropy, metrics=("accuracy",),
    callbacks=(), scheduler=None, progress=True, device="cpu", distributed=False)``.

    * ``fit(train, epochs, validation_data=None, initial_epoch=0) -> History``
    * ``evaluate(data) -> {"loss": ..., "accuracy": ...}``; ``predict(data) -> logits``
    * ``save_checkpoint(path)`` / ``resume(path) -> next epoch``

    ``train`` and ``validation_data`` are DataLoaders or ``(x, y)`` array pairs (batched with
    ``batch_size``, shuffled with ``seed``; give a seed, or a seeded DataLoader, for a run that
    resumes exactly). ``metrics``: ``"accuracy"`` (per image, or per pixel for segmentation)
    and ``"iou"`` (mean intersection over union). ``scheduler`` (e.g. ``optim.StepLR``) is
    stepped after every epoch and saved in checkpoints. ``distributed``: data-parallel over
    the processes of an MPI run (see the module text); ``model`` may also be a
    ``DistributedDataParallel`` already.
    """

    def __init__(self, model: Module, optimizer: Optimizer | None = None, loss_fn: Callable | None = None,
                 metrics: Sequence[str] = ("accuracy",), callbacks: Iterable[Callback] = (),
                 scheduler=None, progress: bool = True, device: str = "cpu", batch_size: int = 32,
                 seed: int | None = None, info: dict | None = None, distributed: bool = False) -> None:
        self.distributed, self.ddp, self.world = bool(distributed), None, None
        if self.distributed:
            model, progress, callbacks = self._setup_distributed(model, device, progress, callbacks)
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be an nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"Trainer: optimizer must be a tinygrad_cnn.optim Optimizer, got {optimizer!r}")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"Trainer: unknown metrics {unknown}; expected some of {METRICS}")
        self.model, self.optimizer, self.scheduler = model.to(device), optimizer, scheduler
        self.loss_fn = loss_fn if loss_fn is not None else F.cross_entropy
        self.metrics, self.device, self.progress = tuple(metrics), device, progress
        self.batch_size, self.seed = batch_size, seed
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"Trainer: {c!r} is not a Callback")
            c.set_trainer(self)
        self.history = History()
        self.info = dict(info or {})
        self.stop_training = False

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
    def _loader(self, data, shuffle: bool, name: str) -> DataLoader:
        if isinstance(data, DataLoader):
            return data
        if isinstance(data, (tuple, list)) and len(data) == 2:
            return DataLoader(TensorDataset(*data), batch_size=self.batch_size, shuffle=shuffle,
                              seed=self.seed, device=self.device)
        raise TypeError(f"Trainer: {name} must be a DataLoader or an (x, y) pair of arrays, got {type(data)}")

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

    def fit(self, train_data, epochs: int = 1, validation_data=None, initial_epoch: int = 0) -> History:
        """Train from ``initial_epoch`` up to ``epochs`` (the total, as Keras); returns the history."""
        if self.optimizer is None:
            raise ValueError("Trainer.fit needs an optimizer: Trainer(model, optimizer)")
        if not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"Trainer.fit: epochs must be a positive int, got {epochs!r}")
        if not 0 <= initial_epoch <= epochs:
            raise ValueError(f"Trainer.fit: initial_epoch {initial_epoch} must be in [0, epochs={epochs}]")
        loader = self._shard(self._loader(train_data, True, "train_data"), train=True)
        val_loader = None
        if validation_data is not None:
            val_loader = self._loader(validation_data, False, "validation_data")
        self.stop_training = False
        for c in self.callbacks:
            c.on_train_begin()
        logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            for c in self.callbacks:
                c.on_epoch_begin(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            logs = self._train_epoch(loader, epoch, epochs)
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

    def _train_epoch(self, loader: DataLoader, epoch: int, epochs: int) -> dict[str, float]:
        self.model.train()
        loader.set_epoch(epoch)
        state = _MetricState(self.metrics)
        start = time.perf_counter()
        with self._bar(len(loader), f"epoch {epoch + 1}/{epochs}") as bar:
            for batch, (x, y) in enumerate(loader):
                x, y = x.to(self.device), y.to(self.device)
                loss, logits = self.train_step(x, y)
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}: "
                        f"lower the learning rate (now {self.optimizer.param_groups[0]['lr']})"
                    )
                state.update(loss, logits, y.numpy())
                result = state.result()
                speed = state.samples / max(time.perf_counter() - start, 1e-9)
                postfix = {k: f"{v:.4f}" for k, v in result.items()}
                bar.set_postfix(**postfix, samples_per_s=f"{speed:.0f}", refresh=False)
                bar.update(1)
                for c in self.callbacks:
                    c.on_batch_end(batch, {"loss": loss})
        if self.distributed:
            state.reduce_across_processes(self.world)
        return state.result()

    # ------------------------------------------------------------- evaluate
    def evaluate(self, data) -> dict[str, float]:
        """Mean loss and metrics over ``data`` in evaluation mode, without gradients."""
        loader = self._shard(self._loader(data, False, "data"), train=False)
        was_training = self.model.training
        self.model.eval()
        state = _MetricState(self.metrics)
        try:
            with no_grad():
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
            with no_grad():
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


def fit(model: Module, optimizer: Optimizer, train_data, epochs: int = 1, validation_data=None,
        **trainer_options) -> History:
    """``Trainer(model, optimizer, **options).fit(train_data, epochs, validation_data)``."""
    return Trainer(model, optimizer, **trainer_options).fit(train_data, epochs, validation_data)


def evaluate(model: Module, data, **trainer_options) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` (see :meth:`Trainer.evaluate`)."""
    return Trainer(model, **trainer_options).evaluate(data)


def predict(model: Module, data, **trainer_options) -> np.ndarray:
    """Outputs of ``model`` on ``data`` (see :meth:`Trainer.predict`)."""
    return Trainer(model, **trainer_options).predict(data)
