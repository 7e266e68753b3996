"""The live view's messages: what the training process tells the page, and what the page may ask.

Every message is one JSON object (one WebSocket text frame) with a ``"type"``. Numbers are
plain JSON numbers; a value that is not finite (a diverging loss) is sent as ``null``. Arrays
of pixels travel as an **array record**::

    {"shape": [C, H, W] or [F], "min": float, "max": float, "data": base64 of C*H*W bytes}

where byte ``b`` stands for the value ``min + b / 255 * (max - min)`` (row-major, channels
first). ``min`` and ``max`` are taken over the whole array, so one record is one grey scale:
the maps of a layer share their scale, as ConvNetJS draws them.

Server to page (``PROTOCOL = 1``). A new connection gets ``hello``, ``images``, ``metrics``
(every point so far), ``status`` and the newest ``predictions``, ``activations`` and
``filters``, in that order; then, at every tick of the server (``interval``, a quarter of a
second at most), whatever has changed (new points before the status that follows them):

``hello``
    ``{"type": "hello", "protocol": 1, "run": int, "model": {"name": str, "parameters": int},
    "backend": str, "device": str, "epochs": int, "batches": int, "classes": [str] | null,
    "task": "classification" | "segmentation", "interval_s": float}``. A new ``run`` (a new
    ``fit``) means: forget everything shown so far. Run 0 is the wait before the first
    ``fit``: its ``model``, ``backend`` and ``device`` are null.
``status``
    ``{"type": "status", "state": "waiting" | "training" | "paused" | "finished",
    "epoch": int (1-based), "epochs": int, "batch": int (1-based), "batches": int,
    "step": int, "images_seen": int, "images_per_s": float, "elapsed_s": float,
    "selected": int}`` (``selected``: the position, in ``images``, of the input whose
    activations are shown).
``metrics``
    ``{"type": "metrics", "train": [[x, loss, accuracy], ...], "val": [...], "sample": [...]}``:
    the points *added* since the previous ``metrics`` message to this page. ``x`` is in epochs
    (``epoch + (batch + 1) / batches``, 0-based epoch); ``accuracy`` may be ``null``.
    ``train``: every training batch; ``val``: the trainer's validation scores at each
    epoch's end; ``sample``: loss and accuracy on the shown test images, at every snapshot.
``images``
    ``{"type": "images", "images": [{"index": int, "label": int | null, "pixels": array
    record (C, H, W)}]}``: the test images the page shows (``index``: position in the
    dataset). Sent once per run.
``predictions``
    ``{"type": "predictions", "step": int, "x": float, "predicted": [int], "probability":
    [float], "correct": [bool | null], "loss": float, "accuracy": float | null}``, one entry
    per shown image (for segmentation: ``predicted`` is null, ``probability`` the fraction of
    pixels right).
``activations``
    ``{"type": "activations", "step": int, "image": int, "layers": [{"name": str,
    "type": str, "description": str, "parameters": int, "shape": [int], "maps": array
    record}]}``: every layer's output for the selected image (``shape``: its shape without
    the batch), input first and the class probabilities (``"type": "Softmax"``) last.
    ``maps`` holds the first ``max_maps`` channels of a layer of maps, (C', H, W), or the
    first 1024 values of any other output, flattened to (F,).
``filters``
    ``{"type": "filters", "step": int, "layer": str, "shape": [K, C, KH, KW], "grid": array
    record (3, H, W)}``: the first convolution's kernels laid out on one grid, each kernel
    scaled to its own range (:func:`tinygrad_cnn.training.filter_grid`).

Page to server: ``{"type": "select", "image": int}`` (show another input's activations; the
selection is the training process's, so every open page follows it), ``{"type": "pause"}``
(training stops after the current batch), ``{"type": "resume"}``. Anything else, or a frame over
``MAX_CLIENT_MESSAGE`` bytes, closes that page's connection; nothing a page sends is
evaluated, and no message names a file.

``GET /api/state`` answers ``{"messages": [...]}``: what a new WebSocket connection is sent
first.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np

PROTOCOL = 1
MAX_CLIENT_MESSAGE = 1024
SERVER_TYPES = ("hello", "status", "metrics", "images", "predictions", "activations", "filters")
CLIENT_TYPES = ("select", "pause", "resume")


def finite(value) -> float | None:
    """A JSON-safe float: ``None`` for NaN and infinities."""
    value = float(value)
    return value if math.isfinite(value) else None


def array_record(values: np.ndarray) -> dict:
    """``values`` quantised to bytes between its minimum and maximum (see the module docstring)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    scale = 255.0 / (high - low) if high > low else 0.0
    quantised = np.rint((values - low) * scale).astype(np.uint8)
    return {"shape": list(values.shape), "min": low, "max": high,
            "data": base64.b64encode(quantised.tobytes()).decode("ascii")}


def decode_record(record: dict) -> np.ndarray:
    """The values an array record stands for (to within (max - min) / 510): the page's reading."""
    raw = np.frombuffer(base64.b64decode(record["data"]), dtype=np.uint8).astype(np.float64)
    values = record["min"] + raw / 255.0 * (record["max"] - record["min"])
    return values.reshape(record["shape"])


def dumps(message: dict) -> str:
    """One message as compact JSON text (NaN is not JSON: callers pass ``finite`` values)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def parse_client_message(text: str | bytes | None, n_images: int) -> dict:
    """The page's message, checked: ``{"type": "select", "image": i}`` with ``0 <= i <
    n_images``, or pause/resume. Raises ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError("the live view accepts text frames only")
    if len(text) > MAX_CLIENT_MESSAGE:
        raise ValueError(f"client message of {len(text)} characters (at most {MAX_CLIENT_MESSAGE})")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"client message is not JSON: {error}") from None
    if not isinstance(message, dict) or message.get("type") not in CLIENT_TYPES:
        raise ValueError(f"client message must be an object with type in {CLIENT_TYPES}, got {text[:80]!r}")
    if message["type"] != "select":
        return {"type": message["type"]}
    image = message.get("image")
    if not isinstance(image, int) or isinstance(image, bool) or not 0 <= image < n_images:
        raise ValueError(f"select: image must be an int in [0, {n_images}), got {image!r}")
    return {"type": "select", "image": image}
