"""Training curves of a run as a PNG (the drawing itself is :func:`tinygrad_cnn.viz.training_curves`)."""

from __future__ import annotations

import os
from pathlib import Path

from tinygrad_cnn.viz import training_curves


def plot_history(history, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write one panel per metric (loss, accuracy, ...), training and validation curves per
    epoch, to ``path``. ``history`` is a :class:`~tinygrad_cnn.training.History` or its dict."""
    training_curves(history, path, title=title)
    return Path(path)
