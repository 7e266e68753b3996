"""Pictures of what networks compute and learn (matplotlib, headless Agg backend).

Every plotting function returns the matplotlib Figure and, given ``path``,
also saves it as a PNG. Two helpers compute images by gradient on the input
rather than plotting arrays: :func:`activation_maximization` (gradient *ascent*
on an input image to excite one unit) and :func:`saliency_map` (|d score / d pixel|).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.tensor import Tensor

METRIC_NAMES = {"iou": "mean IoU", "lr": "learning rate"}  # axis labels for the metrics' short names


def _figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg canvas: no display, no pyplot. pyplot would keep
    every figure alive in its global registry until closed; these are freed like any object."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _array(x) -> np.ndarray:
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def _finish(fig, path: str | os.PathLike | None):
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


def _as_image(a: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) or (H, W) to something imshow shows: grey for 1 channel, RGB for 3."""
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    if a.ndim == 3:  # RGB: scale into [0, 1]
        lo, hi = a.min(), a.max()
        return (a - lo) / (hi - lo + 1e-12), None
    if a.ndim != 2:
        raise ValueError(f"cannot show an image of shape {a.shape}; expected (H, W), (1|3, H, W)")
    return a, "gray"


def annotate_cells(ax, image, values: np.ndarray, fmt: Callable[[float], str] = "{:g}".format,
                   fontsize: float = 8, skip_zeros: bool = False) -> None:
    """Write each value of a 2-D array on its cell of ``image`` (what ``ax.imshow`` returned), in
    black on light cells and white on dark ones, so that every number stays readable."""
    values = _array(values)
    colours = image.cmap(image.norm(values))
    for (r, c), v in np.ndenumerate(values):
        if skip_zeros and v == 0:
            continue
        red, green, blue = colours[r, c, :3]
        luminance = 0.299 * red + 0.587 * green + 0.114 * blue
        ax.text(c, r, fmt(v), ha="center", va="center", fontsize=fontsize,
                color="black" if luminance > 0.5 else "white")


def filter_grid(weights, path=None, ncols: int = 8, title: str = "filters", channel: int | None = None,
                captions: Sequence[str] | None = None, colorbar: bool = True):
    """Show convolution kernels of shape (K, C, kh, kw): one tile per output map. With 3 input
    channels the kernels are shown in colour (each scaled to [0, 1]), otherwise channel
    ``channel`` (default: the mean over input channels) on one shared blue-white-red scale,
    symmetric around 0 so that white is 0, with a colour bar ("blue < 0 < red").
    ``captions`` puts a line under each tile (e.g. what the filter detects)."""
    w = _array(weights)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: weights must be (K, C, kh, kw), got shape {w.shape}")
    if captions is not None and len(captions) != w.shape[0]:
        raise ValueError(f"filter_grid: {len(captions)} captions for {w.shape[0]} filters")
    rows, cols = _grid(w.shape[0], ncols)
    signed = not (w.shape[1] == 3 and channel is None)
    tiles = (w.mean(1) if channel is None else w[:, channel]) if signed else w
    bound = float(np.abs(tiles).max()) + 1e-12
    width = 1.3 * cols + (1.0 if signed and colorbar else 0)
    fig = _figure(width, 1.3 * rows + 0.5 + 0.2 * (captions is not None))
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= w.shape[0]:
            continue
        if not signed:
            ax.imshow(_as_image(w[i])[0], interpolation="nearest")
        else:
            image = ax.imshow(tiles[i], cmap="bwr", vmin=-bound, vmax=bound, interpolation="nearest")
        if captions is not None:
            ax.set_title(captions[i], fontsize=7, y=-0.3)
    if image is not None and colorbar:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        bar.set_label("weight (blue < 0 < red)")
    fig.suptitle(title)
    return _finish(fig, path)


def activation_maps(activations, path=None, ncols: int = 8, title: str = "activation maps",
                    max_maps: int = 64):
    """Show the feature maps of one image, shape (C, H, W) (or (1, C, H, W))."""
    a = _array(activations)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"activation_maps: expected (C, H, W), got shape {a.shape}")
    a = a[:max_maps]
    rows, cols = _grid(a.shape[0], ncols)
    fig = _figure(1.3 * cols, 1.3 * rows + 0.4 + 0.25 * title.count("\n"))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < a.shape[0]:
            ax.imshow(a[i], cmap="viridis", interpolation="nearest")
            ax.set_title(f"map {i}", fontsize=7)
    fig.suptitle(title)
    return _finish(fig, path)


def training_curves(history, path=None, title: str | None = None):
    """Plot Keras-style histories, one panel per metric (loss, accuracy, ...), each with the
    training curve and, where present, the ``val_`` curve.

    ``history`` is a dict of per-epoch lists (or an object with such a ``.history`` dict, as
    ``Trainer.fit`` returns), or a dict of several of those keyed by run name, to compare runs
    in the same panels (e.g. ``{"plain": h1, "batch norm": h2}``). The course reads these
    curves to diagnose training: a validation loss that rises while the training loss falls
    is over-fitting; two curves that stay high together is under-fitting.
    """
    from matplotlib.ticker import MaxNLocator

    data = getattr(history, "history", history)
    if not isinstance(data, Mapping) or not data:
        raise ValueError("training_curves: the history is empty: train for at least one epoch")
    first = getattr(next(iter(data.values())), "history", next(iter(data.values())))
    runs = ({name: getattr(h, "history", h) for name, h in data.items()}
            if isinstance(first, Mapping) else {"": data})
    metrics: list[str] = []
    for run in runs.values():
        for key in run:
            metric = key[4:] if key.startswith("val_") else key
            if key != "lr" and metric not in metrics:
                metrics.append(metric)
    fig = _figure(5 * len(metrics), 4)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for run_name, run in runs.items():
            for key, kind in ((metric, "training"), (f"val_{metric}", "validation")):
                if key in run:
                    values = run[key]
                    label = f"{run_name} ({kind})" if run_name else kind
                    ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """counts[i, j] = number of samples of true class i predicted as class j."""
    y_true, y_pred = _array(y_true).astype(int).ravel(), _array(y_pred).astype(int).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: {y_true.shape[0]} labels but {y_pred.shape[0]} predictions")
    n = int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1) if n_classes is None else n_classes
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def plot_confusion_matrix(counts, class_names: Sequence[str] | None = None, path=None,
                          title: str = "confusion matrix"):
    counts = _array(counts)
    n = counts.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else list(class_names)
    fig = _figure(0.5 * n + 2.5, 0.5 * n + 2)
    ax = fig.subplots()
    annotate_cells(ax, ax.imshow(counts, cmap="Blues"), counts, fmt=str, fontsize=7)
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _finish(fig, path)


def image_grid(images, labels=None, predictions=None, path=None, ncols: int = 8,
               class_names: Sequence[str] | None = None, title: str = ""):
    """Images (N, C, H, W) or (N, H, W) in a grid, captioned 'label' or 'label -> prediction'
    (red when they differ)."""
    images = _array(images)
    rows, cols = _grid(len(images), ncols)
    caption_lines = max((str(k).count("\n") + 1 for k in _array(labels).ravel()), default=1) \
        if labels is not None else 1
    fig = _figure(1.4 * cols, (1.4 + 0.15 * caption_lines) * rows + 0.3 + 0.25 * (title.count("\n") + 1))
    fig.set_layout_engine("constrained")  # multi-line captions and titles never overlap the images
    axes = fig.subplots(rows, cols, squeeze=False)

    def name(k):
        return str(k) if class_names is None else class_names[int(k)]

    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        image, cmap = _as_image(images[i])
        ax.imshow(image, cmap=cmap, interpolation="nearest")
        if labels is not None:
            caption, colour = name(_array(labels)[i]), "black"
            if predictions is not None:
                predicted = _array(predictions)[i]
                caption += f" -> {name(predicted)}"
                colour = "black" if predicted == _array(labels)[i] else "red"
            ax.set_title(caption, fontsize=8, color=colour)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def activation_maximization(
    model: Callable[[Tensor], Tensor],
    input_shape: Sequence[int],
    unit: Callable[[Tensor], Tensor] | int,
    steps: int = 100,
    lr: float = 0.1,
    l2: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """Find an input that excites one unit: gradient ascent on the image x,
    x <- x + lr * d/dx [a(x) - l2 * ||x||^2], starting from small noise.

    ``unit`` is a class index (the logit of that class is maximised) or a function that takes
    the model output and returns a scalar Tensor (e.g. the mean of one feature map).
    ``input_shape`` is one image's shape, e.g. (1, 28, 28). Returns the image (C, H, W).
    """
    if steps < 1 or lr <= 0:
        raise ValueError(f"activation_maximization: need steps >= 1 and lr > 0, got {steps}, {lr}")
    x = np.random.default_rng(seed).normal(0, 0.01, (1, *input_shape)).astype(np.float32)
    objective = unit if callable(unit) else (lambda out: out[0, unit])
    for _ in range(steps):
        image = Tensor(x, requires_grad=True)
        score = objective(model(image)) - l2 * (image * image).sum()
        score.backward()
        gradient = image.grad.numpy()
        x = x + lr * gradient / (np.abs(gradient).mean() + 1e-12)  # normalised step size
    return x[0]


def saliency_map(model: Callable[[Tensor], Tensor], image, target: int | None = None) -> np.ndarray:
    """Simonyan et al.'s saliency: |d score_target / d pixel|, max over channels, for one image
    (C, H, W). ``target`` defaults to the predicted class. Returns (H, W)."""
    x = _array(image).astype(np.float32)
    if x.ndim != 3:
        raise ValueError(f"saliency_map: expected one image (C, H, W), got shape {x.shape}")
    inp = Tensor(x[None], requires_grad=True)
    scores = model(inp)
    if target is None:
        with no_grad():
            target = int(scores.numpy()[0].argmax())
    scores[0, target].backward()
    return np.abs(inp.grad.numpy()[0]).max(axis=0)
