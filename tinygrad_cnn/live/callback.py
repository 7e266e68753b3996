"""``LiveView``: watch a network learn in the browser, as ConvNetJS shows it.

    view = LiveView(port=8765)             # serves http://127.0.0.1:8765/ and prints it
    Trainer(model, optimizer, callbacks=[view]).fit(train, epochs, validation_data=test)

The page draws the loss and accuracy curves as batches finish, every layer's activation maps
for one test image (click another to change it), the first layer's filters, a grid of test
images with the predicted class and its probability (wrong ones framed in red), throughput,
backend and device, and a pause button. After training it keeps the final state.

Training never waits for the browser. After a batch the training thread appends one curve
point; only while a page is connected, and at most every ``interval`` seconds, does it also
copy the weights (:func:`~tinygrad_cnn.live.snapshot.copy_weights`) and hand them to the
snapshot worker, a low-priority thread that computes the pictures on its own copy of the
model. When the worker is still busy the copy is not taken, and the worker's own cost sets
the pace (it rests nine times the CPU time it worked, ``cpu_share=0.1``), so it takes about a
tenth of one core at most; a click on another image recomputes that image only. The web
server runs in a third thread (:mod:`tinygrad_cnn.live.server`). The only time training stops
is when a page presses pause; when the last page goes away it resumes.
"""

from __future__ import annotations

import collections
import sys
import threading
import time

import numpy as np

from tinygrad_cnn.live.protocol import array_record, finite
from tinygrad_cnn.live.state import LiveState
from tinygrad_cnn.nn.functional.checks import is_int, positive_int
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.training.callbacks import Callback

INSTALL_HINT = ("the live view needs the 'live' extra: pip install 'tinygrad_cnn[live]' "
                "(starlette, uvicorn, websockets)")


def check_dependencies() -> None:
    """ImportError with the install command when starlette, uvicorn or a WebSocket library is missing."""
    missing = []
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    websocket_libraries = 0
    for module in ("websockets", "wsproto"):
        try:
            __import__(module)
            websocket_libraries += 1
        except ImportError:
            pass
    if not websocket_libraries:
        missing.append("websockets (or wsproto)")
    if missing:
        raise ImportError(f"{INSTALL_HINT}; missing: {', '.join(missing)}")


class SnapshotWorker(threading.Thread):
    """Computes the pictures (predictions, activations, filters) from the newest weights."""

    def __init__(self, state: LiveState, cpu_share: float = 0.1) -> None:
        super().__init__(name="tinygrad_cnn live snapshots", daemon=True)
        self.state = state
        self.rest_factor = (1.0 - cpu_share) / cpu_share  # rest this many times the CPU time worked
        self.condition = threading.Condition()
        self.setup_args = None          # (mirror, images, labels, classes) of the current run
        self.pending = None             # (weights, step, x): the newest weights, not computed yet
        self.redraw = False             # the selected image changed
        self.stopping = False
        self.busy = False
        self.computed = 0               # snapshots done (tests and waiters watch it)
        self.next_allowed = 0.0         # perf_counter time before which no new weights are wanted
        self.last_seconds = 0.0
        self.reported = False

    def setup(self, mirror, images: np.ndarray, labels, classes) -> None:
        with self.condition:
            self.setup_args, self.pending, self.redraw = (mirror, images, labels, classes), None, False

    def submit(self, weights: dict, step: int, x: float) -> None:
        with self.condition:
            self.pending = (weights, step, x)
            self.condition.notify_all()

    def request_redraw(self) -> None:
        with self.condition:
            self.redraw = True
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.stopping = True
            self.condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted snapshot is computed; False on timeout."""
        with self.condition:
            return self.condition.wait_for(lambda: not self.busy and self.pending is None and not self.redraw,
                                           timeout)

    def run(self) -> None:
        weights_step = (0, 0.0)
        while True:
            with self.condition:
                self.condition.wait_for(lambda: self.stopping or self.pending is not None or self.redraw)
                if self.stopping:
                    return
                job, self.pending, self.redraw, self.busy = self.pending, None, False, True
                setup = self.setup_args
            start, cpu_start = time.perf_counter(), time.thread_time()
            try:
                if setup is not None and setup[0] is not None:
                    if job is not None:
                        setup[0].load(job[0])
                        weights_step = job[1:]
                    self._draw(*setup, *weights_step, new_weights=job is not None)
            except Exception as error:  # noqa: BLE001 - a picture that fails must not end training
                if not self.reported:
                    self.reported = True
                    print(f"live view: cannot draw the model ({type(error).__name__}: {error}); "
                          f"training goes on", file=sys.stderr)
            finally:
                self.last_seconds = time.perf_counter() - start
                # the rest is counted in this thread's CPU time, not wall time: a worker that waited
                # for the cores (or for the GIL) has not cost training that long
                rest = self.rest_factor * (time.thread_time() - cpu_start)
                with self.condition:
                    self.busy = False
                    self.computed += 1
                    self.next_allowed = time.perf_counter() + rest
                    self.condition.notify_all()

    def _draw(self, mirror, images, labels, classes, step: int, x: float, new_weights: bool) -> None:
        """New weights: the whole grid through the model (the selected image's layers recorded
        on the way); a new selection only: that one image."""
        from tinygrad_cnn.live.snapshot import predictions_message

        selected = min(self.state.selected, len(images) - 1)
        if not new_weights:
            logits = mirror.run(images[selected : selected + 1], keep=0)[0]
            layers = mirror.activations_message(images[selected], logits, classes)
            self.state.set_pictures(activations={"step": step, "image": selected, "layers": layers})
            return
        logits = mirror.run(images, keep=selected)
        predictions = predictions_message(logits, labels)
        if predictions["loss"] is not None:
            self.state.add_point("sample", x, predictions["loss"], predictions["accuracy"])
        pictures = {"predictions": {"step": step, "x": finite(x), **predictions},
                    "activations": {"step": step, "image": selected,
                                    "layers": mirror.activations_message(images[selected], logits[selected],
                                                                         classes)}}
        filters = mirror.filters_message()
        if filters is not None:
            pictures["filters"] = {"step": step, **filters}
        self.state.set_pictures(**pictures)


class LiveView(Callback):
    """``LiveView(port=8765, host="127.0.0.1", images=None, num_images=32, class_names=None,
    interval=0.5, max_maps=64, cpu_share=0.1, verbose=True)``: a Trainer callback that serves a live page of
    training at ``view.url`` (see the module docstring; the messages are in
    :mod:`tinygrad_cnn.live.protocol`).

    * ``port``: 0 picks a free one. ``host``: the loopback unless you ask for another address
      (``"0.0.0.0"`` shows the page to your network).
    * ``images``: the test images to show, an array (N, C, H, W) or an ``(x, y)`` pair; by
      default ``num_images`` evenly spaced ones of the trainer's validation data (else its
      training data). ``class_names`` label them (default: the dataset's, else numbers).
    * ``interval``: seconds between snapshots at most; ``max_maps``: maps shown per layer;
      ``cpu_share``: the share of one core the pictures may take (0.1: the worker rests nine
      times as long as it works; the pictures of a big model then change slowly).

    Needs the ``live`` extra (starlette, uvicorn, websockets). The server stops at
    :meth:`close` (or when the process ends); :meth:`keep_serving` waits meanwhile.
    """

    def __init__(self, port: int = 8765, host: str = "127.0.0.1", images=None, num_images: int = 32,
                 class_names=None, interval: float = 0.5, max_maps: int = 64, cpu_share: float = 0.1,
                 verbose: bool = True) -> None:
        if not is_int(port) or not 0 <= port <= 65535:
            raise ValueError(f"LiveView: port must be an int in [0, 65535], got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"LiveView: host must be an address such as '127.0.0.1', got {host!r}")
        self.num_images = positive_int("LiveView", "num_images", num_images)
        self.max_maps = positive_int("LiveView", "max_maps", max_maps)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"LiveView: interval must be a positive number of seconds, got {interval!r}")
        self.interval = float(interval)
        if isinstance(cpu_share, bool) or not isinstance(cpu_share, (int, float)) or not 0 < cpu_share <= 1:
            raise ValueError(f"LiveView: cpu_share must be in (0, 1], got {cpu_share!r}")
        self.images = self._check_images(images)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        check_dependencies()
        from tinygrad_cnn.live.server import LOOPBACK, LiveServer, create_app

        self.state = LiveState()
        self.worker = SnapshotWorker(self.state, float(cpu_share))
        self.worker.start()
        self._running = threading.Event()
        self._running.set()
        self.app = create_app(self.state, self._command, interval=min(self.interval, 0.25),
                              allowed_hosts=LOOPBACK if host in LOOPBACK else None)
        try:
            self.server = LiveServer(self.app, host, port)
        except BaseException:
            self.worker.stop()
            raise
        self.url = self.server.url
        self._reset_counters()
        if verbose:
            print(f"live view: {self.url}", flush=True)

    @staticmethod
    def _check_images(images):
        if images is None:
            return None
        x, y = images if isinstance(images, (tuple, list)) and len(images) == 2 else (images, None)
        x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        if x.ndim != 4 or len(x) == 0 or x.dtype.kind != "f":
            raise ValueError(f"LiveView: images must be float images (N, C, H, W) with N >= 1, "
                             f"got shape {x.shape} of {x.dtype}")
        if y is not None:
            y = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
            if len(y) != len(x):
                raise ValueError(f"LiveView: {len(x)} images but {len(y)} labels")
        return np.ascontiguousarray(x), y

    def _reset_counters(self) -> None:
        self._epoch, self._step, self._seen = 0, 0, 0
        self._batches = self._epochs = 0
        self._start = time.perf_counter()
        self._window: collections.deque = collections.deque()
        self._next_snapshot, self._x = 0.0, 0.0

    # ------------------------------------------------------------ page commands
    def _command(self, command: dict) -> None:
        """A page's command (in the server's thread): never blocks."""
        if command["type"] == "select":
            self.state.select(command["image"])
            self.worker.request_redraw()
        elif command["type"] == "pause":
            self.pause()
        else:
            self.resume()

    def pause(self) -> None:
        """Stop training after the current batch until :meth:`resume` (or the last page closes)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    # ------------------------------------------------------------ the trainer's hooks
    def on_train_begin(self, logs=None) -> None:
        from tinygrad_cnn import kernels
        from tinygrad_cnn.live.snapshot import ModelMirror

        trainer = self.trainer
        self._reset_counters()
        train_loader = getattr(trainer, "train_loader", None)
        self._batches = len(train_loader) if train_loader is not None else 0
        self._epochs = int(getattr(trainer, "epochs", 0))
        x, y, classes = self._shown_images(trainer)
        segmentation = y is not None and y.ndim >= 2
        device = trainer.device
        hello = {"model": {"name": str(trainer.info.get("model", type(trainer.model).__name__)),
                           "parameters": int(trainer.model.num_parameters())},
                 "backend": kernels.get_backend() if device == "cpu" else "cupy", "device": device,
                 "epochs": self._epochs, "batches": self._batches, "classes": classes,
                 "task": "segmentation" if segmentation else "classification", "interval_s": self.interval}
        images = [{"index": int(i), "label": int(y[k]) if y is not None and y.ndim == 1 else None,
                   "pixels": array_record(x[k])} for k, i in enumerate(self._indices)]
        self.state.start_run(hello, images)
        if x is None:
            self.worker.setup(None, x, y, classes)
            return
        try:
            mirror = ModelMirror(trainer.model, self.max_maps)
        except Exception as error:  # noqa: BLE001 - a model that cannot be copied: curves only
            print(f"live view: cannot copy the model ({type(error).__name__}: {error}); the page shows "
                  f"the curves only", file=sys.stderr)
            mirror = None
        self.worker.setup(mirror, x, y, classes)
        self._snapshot(time.perf_counter(), force=True)

    def _shown_images(self, trainer):
        """(x, y, class names) of the images the page shows, taken without any random draw."""
        if self.images is not None:
            x, y = self.images
            self._indices = range(min(len(x), self.num_images))
            return x[: self.num_images], None if y is None else y[: self.num_images], self.class_names
        loader = getattr(trainer, "validation_loader", None) or getattr(trainer, "train_loader", None)
        dataset = getattr(loader, "dataset", None)
        if dataset is None:  # a training loop that does not say what it trains on
            print("live view: no test images to show (pass LiveView(images=(x, y))); the page shows the "
                  "curves only", file=sys.stderr)
            self._indices = []
            return None, None, self.class_names
        n = len(dataset)
        indices = np.unique(np.linspace(0, n - 1, min(self.num_images, n)).round().astype(np.int64))
        self._indices = indices
        if hasattr(dataset, "get_batch"):
            batch = dataset.get_batch(indices)
        else:
            batch = tuple(np.stack(column) for column in zip(*(dataset[int(i)] for i in indices)))
        x = np.ascontiguousarray(batch[0], dtype=np.float32)
        y = np.asarray(batch[1]) if len(batch) > 1 else None
        classes = self.class_names or getattr(dataset, "classes", None)
        return x, y, None if classes is None else [str(c) for c in classes]

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None) -> None:
        logs = logs or {}
        now = time.perf_counter()
        self._step += 1
        self._seen += int(logs.get("size", 0))
        self._window.append((now, self._seen))
        while len(self._window) > 2 and now - self._window[0][0] > 2.0:
            self._window.popleft()
        first_time, first_seen = self._window[0]
        speed = (self._seen - first_seen) / (now - first_time) if now > first_time else 0.0
        x = self._epoch + (batch + 1) / self._batches if self._batches else float(self._step)
        self.state.add_point("train", x, logs.get("loss"), logs.get("accuracy"))
        self.state.set_status(state="training", epoch=self._epoch + 1, batch=batch + 1, step=self._step,
                              images_seen=self._seen, images_per_s=finite(speed),
                              elapsed_s=finite(now - self._start))
        self._x = x
        if self.state.listeners and now >= self._next_snapshot:
            self._snapshot(now)
        if not self._running.is_set():
            self._wait_while_paused()

    def _snapshot(self, now: float, force: bool = False) -> None:
        """Hand the newest weights to the worker, unless it is busy or resting (or ``force``)."""
        worker = self.worker
        if not force and (worker.busy or worker.pending is not None or now < worker.next_allowed):
            return
        from tinygrad_cnn.live.snapshot import copy_weights

        weights = copy_weights(self.trainer.model)
        copied = time.perf_counter() - now
        # copying costs the training thread; keep it under ~2% of the time between copies
        self._next_snapshot = time.perf_counter() + max(self.interval, 50 * copied)
        worker.submit(weights, self._step, self._x)

    def _wait_while_paused(self) -> None:
        self._snapshot(time.perf_counter(), force=True)
        self.state.set_status(state="paused")
        paused_at = time.perf_counter()
        while not self._running.wait(0.1):
            if self.state.listeners == 0:  # the page that paused is gone: nobody can resume
                self._running.set()
        self._start += time.perf_counter() - paused_at  # elapsed and speed count training only
        self._window.clear()
        self._window.append((time.perf_counter(), self._seen))
        self.state.set_status(state="training")

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        if "val_loss" in logs:
            self.state.add_point("val", epoch + 1, logs["val_loss"], logs.get("val_accuracy"))
        if self.state.listeners:  # the epoch's last weights, if the worker is free (short epochs: not always)
            self._snapshot(time.perf_counter())

    def on_train_end(self, logs=None) -> None:
        """The final weights' pictures (whether or not a page listens), then ``finished``."""
        self._snapshot(time.perf_counter(), force=True)
        self.worker.wait_idle(timeout=30.0)
        elapsed = time.perf_counter() - self._start
        speed = self._seen / elapsed if elapsed > 0 else 0.0
        self.state.set_status(state="finished", images_per_s=finite(speed))

    # ------------------------------------------------------------ lifetime
    def keep_serving(self, seconds: float | None = None) -> None:
        """Block while the page stays up: ``seconds``, or until Ctrl+C (KeyboardInterrupt)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))

    def close(self) -> None:
        """Stop the server and the worker (a paused training resumes)."""
        self._running.set()
        self.worker.stop()
        self.server.close()

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
