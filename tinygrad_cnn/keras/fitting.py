"""``compile``, ``fit``, ``evaluate`` and ``predict`` of Keras models, on tinygrad_cnn's DataLoader,
autograd and optimizers (the same engine the ``Trainer`` drives; no second one).

One training step on a batch (x, y), as in every framework:

    outputs = model(x)                                (forward, training mode)
    loss = sum over outputs of weight * loss(y, output)
    loss.backward();  optimizer step                  (back-propagation, w <- w - lr * update)

An epoch runs the steps over the (shuffled) batches, then scores the validation data in
inference mode without a graph. The logged numbers are Keras's: the epoch's mean loss and
metrics over the samples seen (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``; with several
outputs also ``<output>_loss`` and ``<output>_<metric>``), collected in a ``History``, passed to
the callbacks, and printed in Keras's progress-bar format.

Data: arrays (a list or a dict by input name for several inputs; labels likewise), or a
batch iterator such as ``ImageDataGenerator(...).flow(...)``: anything with ``__next__`` (and
``__len__``, or ``steps_per_epoch``) yielding ``(x, y)`` batches, or a Keras-style sequence with
``__getitem__`` and ``__len__``. ``validation_split`` holds out the LAST fraction of the arrays
(before shuffling), as Keras.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.keras import losses as losses_module
from tinygrad_cnn.keras import metrics as metrics_module
from tinygrad_cnn.keras import optimizers
from tinygrad_cnn.keras.data_adapters import ArrayData, BatchData, arrays, is_batches
from tinygrad_cnn.keras.layers.base import flatten, training_mode
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.training import checkpoint as ckpt
from tinygrad_cnn.training.callbacks import Callback
from tinygrad_cnn.training.trainer import History

DEFAULT_BATCH_SIZE = 32


# ----------------------------------------------------------------- logs and progress
class _Means:
    """Running sums of the logged values over an epoch, each with its count."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, key: str, total: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(total)
        self.counts[key] = self.counts.get(key, 0) + int(count)

    def result(self) -> dict[str, float]:
        return {k: self.sums[k] / max(self.counts[k], 1) for k in self.sums}


class Progbar:
    """Keras's progress line: ``250/250 [==============================] - 4s 15ms/step - loss: 0.3``.
    Redrawn in place on a terminal, written once per epoch otherwise."""

    def __init__(self, target: int | None, verbose: int, stream=None) -> None:
        self.target, self.verbose, self.stream = target, verbose, stream or sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self.last = time.perf_counter()

    def update(self, step: int, logs: dict[str, float], final: bool = False) -> None:
        now = time.perf_counter()
        redraw = self.interactive and self.verbose == 1 and now - self.last >= 0.1
        if self.verbose == 0 or not (final or redraw):
            return
        self.last = now
        elapsed = now - self.start
        metrics = "".join(f" - {k}: {v:.4f}" for k, v in logs.items())
        per_step = f"{1000 * elapsed / max(step, 1):.0f}ms/step"
        if self.verbose == 2:
            line = f"{step}/{self.target or step} - {elapsed:.0f}s - {per_step}{metrics}"
        else:
            target = self.target or step
            done = int(30 * min(step / target, 1.0))
            bar = "=" * 30 if step >= target else "=" * max(done - 1, 0) + ">" + "." * (30 - done)
            line = f"{step}/{target} [{bar}] - {elapsed:.0f}s {per_step}{metrics}"
        start = "\r" if self.interactive and self.verbose == 1 else ""
        self.stream.write(start + line + ("\n" if final else ""))
        self.stream.flush()


def _verbosity(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


class _Run:
    """A fit as tinygrad_cnn.training's callbacks see it (``self.trainer``): the model, the engine
    optimizer, the history, ``stop_training`` and ``save_checkpoint``."""

    def __init__(self, model, optimizer, history: History) -> None:
        self.model, self.optimizer, self.history = model, optimizer, history

    @property
    def stop_training(self) -> bool:
        return self.model.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.model.stop_training = bool(value)

    def save_checkpoint(self, path, epoch: int | None = None, info: dict | None = None) -> None:
        write_checkpoint(self.model, path, epoch, info)


def write_checkpoint(model, path, epoch: int | None = None, info: dict | None = None) -> None:
    """The model's weights, its optimizer's state and its history so far as a training checkpoint
    (``tinygrad_cnn.training.save_checkpoint``)."""
    history = getattr(model, "history", None) or History()
    engine = model.optimizer.engine if model.optimizer is not None else None
    ckpt.save_checkpoint(path, model, engine, None, epoch=len(history) if epoch is None else epoch,
                         history=history.to_dict(), info={"model": model.name, **(info or {})})


# ----------------------------------------------------------------- the API
class _Head:
    """One output: its name, loss, loss weight and metrics."""

    def __init__(self, name: str, loss, weight: float, metrics: list) -> None:
        self.name, self.loss, self.weight, self.metrics = name, loss, weight, metrics


def _per_output(spec, names: list[str], what: str) -> list:
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"compile: {what} for unknown outputs {unknown}; the outputs are {names}")
        return [spec.get(n) for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"compile: {len(spec)} {what} for {len(names)} outputs {names}")
        return list(spec)
    return [spec] * len(names)


class Fitting:
    """The training API of a Keras model (mixed into ``Model``)."""

    def _reset_compile(self) -> None:
        self.optimizer, self.loss, self.compiled = None, None, False
        self._metric_spec, self._loss_weights, self._heads = None, None, None

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, run_eagerly=None,
                jit_compile=None, steps_per_execution=None) -> None:
        """Choose the optimizer (a name or an instance), the loss (a name, a Loss, a function, or
        one per output) and the metrics (``['accuracy']``). ``run_eagerly``, ``jit_compile`` and
        ``steps_per_execution`` are accepted and change nothing: everything runs eagerly here."""
        self.optimizer = optimizers.get(optimizer)
        self.loss, self._metric_spec, self._loss_weights = loss, metrics, loss_weights
        self._heads, self.compiled = None, True

    def _compiled_heads(self) -> list[_Head]:
        if not self.compiled:
            raise RuntimeError(f"model '{self.name}' must be compiled first: "
                               "model.compile(optimizer=..., loss=..., metrics=[...])")
        if self._heads is None:
            names = self.output_names
            losses = [None if s is None else losses_module.get(s)
                      for s in _per_output(self.loss, names, "losses")]
            given_weights = 1.0 if self._loss_weights is None else self._loss_weights
            weights = _per_output(given_weights, names, "loss weights")
            spec = self._metric_spec or []
            nested = isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (list, tuple))
            if nested and len(names) > 1:
                per = _per_output(spec, names, "metric lists")
            elif isinstance(spec, dict):
                per = _per_output(spec, names, "metrics")
            else:
                per = [spec] * len(names)
            self._heads = [_Head(n, loss, 1.0 if w is None else float(w),
                                 [metrics_module.get(m) for m in flatten(ms or [])])
                           for n, loss, w, ms in zip(names, losses, weights, per)]
        return self._heads

    # ------------------------------------------------------------- steps
    def _input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs] if self._graph_outputs is not None else ["input"]

    def _forward(self, xs: list, training: bool) -> list[Tensor]:
        out = self(xs if len(xs) > 1 else xs[0], training=training)
        return flatten(out)

    def _loss(self, ys: list[np.ndarray], outputs: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        heads = self._compiled_heads()
        if len(ys) != len(outputs):
            raise ValueError(f"model '{self.name}' has {len(outputs)} outputs, got {len(ys)} targets")
        total, parts = None, {}
        for head, y, out in zip(heads, ys, outputs):
            if head.loss is None:
                continue
            parts[head.name] = value = head.loss(y, out)
            total = value * head.weight if total is None else total + value * head.weight
        if total is None:
            raise ValueError("compile(loss=...) is needed: no output has a loss")
        return total, parts

    def _log_batch(self, means: _Means, loss: Tensor, parts: dict, ys, outputs, prefix: str = "") -> None:
        n = len(ys[0])
        means.add(prefix + "loss", loss.item() * n, n)
        several = len(outputs) > 1
        for head, y, out in zip(self._compiled_heads(), ys, outputs):
            if several and head.name in parts:
                means.add(f"{prefix}{head.name}_loss", parts[head.name].item() * n, n)
            predictions = out.numpy()
            for name, fn in head.metrics:
                values = np.asarray(fn(y, predictions), dtype=np.float64)
                key = f"{prefix}{head.name}_{name}" if several else prefix + name
                means.add(key, values.sum(), values.size)

    def _train_batch(self, xs, ys, means: _Means) -> None:
        engine = self.optimizer.bind([p for p in self.parameters() if p.requires_grad])
        outputs = self._forward(xs, training=True)
        loss, parts = self._loss(ys, outputs)
        engine.zero_grad()
        loss.backward()
        self.optimizer.apply_gradients()
        self._log_batch(means, loss, parts, ys, outputs)

    def _evaluate_data(self, data, prefix: str = "", epoch: int = 0) -> dict[str, float]:
        means = _Means()
        with no_grad():
            for xs, ys in data.epoch(epoch):
                if ys is None:
                    raise ValueError("evaluation data must have targets (x, y)")
                outputs = self._forward(xs, training=False)
                loss, parts = self._loss(ys, outputs)
                self._log_batch(means, loss, parts, ys, outputs, prefix)
        return means.result()

    def _data(self, x, y, batch_size, shuffle: bool, steps=None, targets: bool = True):
        names = self._input_names()
        if is_batches(x):
            if y is not None or batch_size is not None:
                raise ValueError("y and batch_size must be None when x is a batch iterator or generator "
                                 "(it yields (x, y) batches of its own size)")
            return BatchData(x, steps, names, self.output_names, self.dtype)
        if x is None:
            raise ValueError("no input data: give x")
        if targets and y is None:
            raise ValueError("training and evaluation need targets y")
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        xs = arrays(x, names, "x", self.dtype)
        ys = arrays(y, self.output_names, "y") if y is not None else None
        return ArrayData(xs, ys, batch_size, shuffle)

    def _build_for(self, data) -> None:
        if not self.built:
            with no_grad(), training_mode(self, False):
                sample = data.sample()
                self(sample if len(sample) > 1 else sample[0])

    # ------------------------------------------------------------- public
    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1, verbose="auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None) -> History:
        """Train for ``epochs`` epochs (counting from ``initial_epoch``); returns the History."""
        self._compiled_heads()
        if not isinstance(epochs, int) or epochs < 1 or not 0 <= initial_epoch < epochs:
            raise ValueError(f"fit: epochs must be a positive int above initial_epoch, got "
                             f"epochs={epochs!r}, "
                             f"initial_epoch={initial_epoch!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
        if validation_split:
            if is_batches(x):
                raise ValueError("fit: validation_split needs arrays; give validation_data for a generator")
            if validation_data is not None:
                raise ValueError("fit: give validation_split or validation_data, not both")
            xs, ys = arrays(x, self._input_names(), "x"), arrays(y, self.output_names, "y")
            cut = int(len(xs[0]) * (1.0 - validation_split))
            if cut == 0 or cut == len(xs[0]):
                raise ValueError(f"fit: validation_split={validation_split} leaves no training or validation "
                                 f"samples out of {len(xs[0])}")
            x, y = [a[:cut] for a in xs], [a[:cut] for a in ys]
            validation_data = ([a[cut:] for a in xs], [a[cut:] for a in ys])
            x, y = (x if len(x) > 1 else x[0]), (y if len(y) > 1 else y[0])
            validation_data = tuple(v if len(v) > 1 else v[0] for v in validation_data)
        train = self._data(x, y, batch_size, shuffle, steps_per_epoch)
        val = None
        if validation_data is not None:
            if is_batches(validation_data):
                val = self._data(validation_data, None, None, False, validation_steps)
            elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                val = self._data(*validation_data, validation_batch_size or batch_size, False)
            else:
                raise ValueError("fit: validation_data must be (x_val, y_val) or a batch iterator")
        self._build_for(train)
        engine = self.optimizer.bind([p for p in self.parameters() if p.requires_grad])
        history = self.history = History()
        history.model = self
        history.params = {"epochs": epochs, "steps": len(train) or None, "verbose": verbose}
        run = _Run(self, engine, history)
        callbacks = list(callbacks or [])
        for c in callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"fit: {c!r} is not a callback")
            c.set_trainer(run)
        verbose = _verbosity(verbose)
        self.stop_training = False
        logs: dict[str, float] = {}
        for c in callbacks:
            c.on_train_begin(logs)
        for epoch in range(initial_epoch, epochs):
            for c in callbacks:
                c.on_epoch_begin(epoch, logs)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar, means, step = Progbar(len(train) or None, verbose), _Means(), 0
            for step, (xs, ys) in enumerate(train.epoch(epoch), start=1):
                if ys is None:
                    raise ValueError("fit: the training data must yield (x, y) pairs")
                self._train_batch(xs, ys, means)
                logs = means.result()
                bar.update(step, logs)
                for c in callbacks:
                    c.on_batch_end(step - 1, dict(logs))
            logs = means.result()
            if val is not None:
                logs.update(self._evaluate_data(val, "val_", epoch))
            bar.update(step, logs, final=True)
            history.append(epoch, logs)
            for c in callbacks:
                c.on_epoch_end(epoch, dict(logs))
            if self.stop_training:
                break
        for c in callbacks:
            c.on_train_end(dict(logs))
        return history

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose="auto",
                 steps: int | None = None, return_dict: bool = False):
        """Mean loss (and metrics) on (x, y) in inference mode: a number, ``[loss, *metrics]``, or a dict."""
        heads = self._compiled_heads()
        data = self._data(x, y, batch_size, False, steps)
        self._build_for(data)
        bar = Progbar(len(data) or None, _verbosity(verbose))
        logs = self._evaluate_data(data)
        bar.update(len(data), logs, final=True)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 and not any(h.metrics for h in heads) else values

    def predict(self, x, batch_size: int | None = None, verbose="auto", steps: int | None = None):
        """The model's outputs on x in inference mode, as numpy arrays (a list for several outputs)."""
        data = self._data(x, None, batch_size, False, steps, targets=False)
        self._build_for(data)
        chunks: list[list[np.ndarray]] = []
        with no_grad():
            for xs, _ in data.epoch(0):
                chunks.append([t.numpy() for t in self._forward(xs, training=False)])
        if not chunks:
            raise ValueError("predict: no batches")
        outputs = [np.concatenate(parts) for parts in zip(*chunks)]
        return outputs[0] if len(outputs) == 1 else outputs

    # Keras 2's names for fitting on generators (the course's ``fit_generator``)
    def fit_generator(self, generator, steps_per_epoch: int | None = None, epochs: int = 1, verbose="auto",
                      callbacks=None, validation_data=None, validation_steps: int | None = None,
                      initial_epoch: int = 0) -> History:
        """``fit`` on a batch iterator, with Keras 2's argument order."""
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps: int | None = None, verbose=0):
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self, generator, steps: int | None = None, verbose=0):
        return self.predict(generator, steps=steps, verbose=verbose)

    def _one_batch(self, x, y):
        data = self._data(x, y, 2**31 - 1, False, targets=y is not None)
        self._build_for(data)
        return next(iter(data.epoch(0)))

    def _batch_result(self, means: _Means):
        logs = means.result()
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y):
        """One gradient step on (x, y); returns the loss (and metrics) of that batch before the step."""
        self._compiled_heads()
        xs, ys = self._one_batch(x, y)
        means = _Means()
        self._train_batch(xs, ys, means)
        return self._batch_result(means)

    def test_on_batch(self, x, y):
        self._compiled_heads()
        xs, ys = self._one_batch(x, y)
        means = _Means()
        with no_grad():
            outputs = self._forward(xs, training=False)
            loss, parts = self._loss(ys, outputs)
            self._log_batch(means, loss, parts, ys, outputs)
        return self._batch_result(means)

    def predict_on_batch(self, x):
        xs, _ = self._one_batch(x, None)
        with no_grad():
            outputs = [t.numpy() for t in self._forward(xs, training=False)]
        return outputs[0] if len(outputs) == 1 else outputs
