"""Training curves as a PNG, with matplotlib (no display needed).

The course reads these plots to diagnose training: a validation loss that rises while the
training loss falls is over-fitting (time for regularisation, augmentation or early
stopping); two curves that stay high together is under-fitting.
"""

from __future__ import annotations

import os
from pathlib import Path


def plot_history(history, path: str | os.PathLike, title: str | None = None) -> Path:
    """One panel per metric (loss, accuracy, ...), training and validation curves per epoch.

    ``history`` is a :class:`~tinygrad_cnn.training.History` or its ``.history`` dict.
    Uses matplotlib's Agg canvas directly, so it never touches the global backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = getattr(history, "history", history)
    if not isinstance(data, dict) or not data:
        raise ValueError("plot_history: the history is empty: train for at least one epoch")
    names = [k for k in data if not k.startswith("val_") and k != "lr"]
    names += [k[4:] for k in data if k.startswith("val_") and k[4:] not in names]
    figure = Figure(figsize=(5 * len(names), 4), dpi=100)
    FigureCanvasAgg(figure)
    for i, name in enumerate(names):
        ax = figure.add_subplot(1, len(names), i + 1)
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            if key in data:
                values = data[key]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
