"""What the page may be shown, in one place, guarded by one lock.

Three threads meet here, each holding the lock for a few list operations only:

* the training thread appends a curve point and the status after every batch;
* the snapshot worker stores the latest pictures (already JSON text, made once however many
  pages listen);
* the server's event loop asks, for each page, what is new since that page's last visit.

Nothing queues up per page: a page that reads slowly is simply sent the newest pictures and
all curve points it has not had yet, so no page can make the others, or training, wait.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tinygrad_cnn.live.protocol import PROTOCOL, dumps, finite

SERIES = ("train", "val", "sample")
PICTURES = ("predictions", "activations", "filters")


@dataclass
class Cursor:
    """How far one page has been sent: the run, the status and pictures it has, and how
    many points of each curve."""

    run: int = -1
    status: int = -1
    points: dict[str, int] = field(default_factory=dict)
    pictures: dict[str, int] = field(default_factory=dict)


class LiveState:
    """The live view's shared state (see the module docstring and :mod:`.protocol`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.run = 0
        self.listeners = 0
        self.selected = 0
        self.n_images = 0
        self._hello = dumps({"type": "hello", "protocol": PROTOCOL, "run": 0, "model": None,
                             "backend": None, "device": None, "epochs": 0, "batches": 0,
                             "classes": None, "task": "classification", "interval_s": 0.0})
        self._images: str | None = None
        self._status: dict = {"type": "status", "state": "waiting", "epoch": 0, "epochs": 0, "batch": 0,
                              "batches": 0, "step": 0, "images_seen": 0, "images_per_s": 0.0,
                              "elapsed_s": 0.0, "selected": 0}
        self._status_version = 0
        self._points: dict[str, list[list]] = {name: [] for name in SERIES}
        self._pictures: dict[str, tuple[int, str]] = {}
        self._picture_version = 0

    # ------------------------------------------------------- writers
    def start_run(self, hello: dict, images: list[dict]) -> None:
        """A new ``fit``: every page is told to forget what it shows (a new ``run``)."""
        images_text = dumps({"type": "images", "images": images})
        with self.lock:
            self.run += 1
            self._hello = dumps({"type": "hello", "protocol": PROTOCOL, "run": self.run, **hello})
            self._images = images_text
            self.n_images, self.selected = len(images), 0
            self._points = {name: [] for name in SERIES}
            self._pictures = {}
            self._status.update(state="waiting", epochs=hello["epochs"], batches=hello["batches"],
                                epoch=0, batch=0, step=0, images_seen=0, images_per_s=0.0, elapsed_s=0.0,
                                selected=0)
            self._status_version += 1

    def add_point(self, series: str, x: float, loss, accuracy) -> None:
        point = [finite(x), finite(loss) if loss is not None else None,
                 finite(accuracy) if accuracy is not None else None]
        with self.lock:
            self._points[series].append(point)

    def set_status(self, **fields) -> None:
        with self.lock:
            self._status.update(fields)
            self._status_version += 1

    def status(self) -> dict:
        with self.lock:
            return dict(self._status)

    def select(self, image: int) -> None:
        with self.lock:
            self.selected = image
            self._status["selected"] = image
            self._status_version += 1

    def set_pictures(self, **messages: dict) -> None:
        """Store the newest ``predictions`` / ``activations`` / ``filters`` messages."""
        texts = {kind: dumps({"type": kind, **message}) for kind, message in messages.items()}
        with self.lock:  # the JSON is written before: only the swap happens under the lock
            for kind, text in texts.items():
                self._picture_version += 1
                self._pictures[kind] = (self._picture_version, text)

    def connect(self) -> None:
        with self.lock:
            self.listeners += 1

    def disconnect(self) -> None:
        with self.lock:
            self.listeners -= 1

    # ------------------------------------------------------- readers
    def updates(self, cursor: Cursor) -> list[str]:
        """The messages (JSON text) a page at ``cursor`` has not had yet; moves the cursor.

        Under the lock only references are taken (the slices share the point lists, which are
        never changed once appended); the JSON is written after it is released, so a page
        that asks for a long curve never holds up the training thread."""
        out: list[str | dict] = []
        with self.lock:
            if cursor.run != self.run:  # a new page, or a new run: start from the hello
                cursor.run, cursor.status, cursor.points, cursor.pictures = self.run, -1, {}, {}
                out.append(self._hello)
                if self._images is not None:
                    out.append(self._images)
            new = {name: points[cursor.points.get(name, 0):] for name, points in self._points.items()}
            if any(new.values()):
                out.append({"type": "metrics", **new})
                cursor.points = {name: len(points) for name, points in self._points.items()}
            if cursor.status != self._status_version:  # after the points it speaks of ("paused")
                cursor.status = self._status_version
                out.append(dict(self._status))
            for kind in PICTURES:
                if kind in self._pictures and cursor.pictures.get(kind) != self._pictures[kind][0]:
                    cursor.pictures[kind] = self._pictures[kind][0]
                    out.append(self._pictures[kind][1])
        return [m if isinstance(m, str) else dumps(m) for m in out]

    def snapshot_text(self) -> str:
        """``{"messages": [...]}``: what a new page is sent first (``GET /api/state``)."""
        return '{"messages":[' + ",".join(self.updates(Cursor())) + "]}"
