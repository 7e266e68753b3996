"""Padding an N-D tensor: the frame added around an image before convolution."""

from __future__ import annotations

from tinygrad_cnn import ops
from tinygrad_cnn.arguments import is_int
from tinygrad_cnn.tensor import Tensor

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(x: Tensor, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions, PyTorch-style: ``pad`` lists
    (before, after) pairs starting from the LAST dimension, so for an image
    ``(left, right, top, bottom)``.

    Modes: ``constant`` (fill with ``value``), ``reflect`` (mirror without repeating
    the edge: 2 1 | 0 1 2 | 1 0), ``replicate`` (repeat the edge: 0 0 | 0 1 2 | 2 2),
    ``circular`` (wrap around: 1 2 | 0 1 2 | 0 1). In constant mode a negative width crops
    that many elements from that side instead, as PyTorch.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad: unknown mode {mode!r}; expected one of {PAD_MODES}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(
            f"pad: {pad} must hold (before, after) pairs for at most {x.ndim} dims"
        )
    if any(not is_int(p) for p in pad):
        raise ValueError(f"pad: widths must be ints, got {pad}")
    if any(p < 0 for p in pad) and mode != "constant":
        raise ValueError(f"pad: negative widths (cropping) need mode='constant', got {pad} with {mode!r}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if any(min(w) < 0 for w in widths):  # crop first (a slice), then pad what is positive
        crop = tuple(slice(-min(before, 0), n + min(after, 0)) for (before, after), n in zip(widths, x.shape))
        if any(c.stop < c.start for c in crop):
            raise ValueError(f"pad: widths {pad} crop more than the shape {x.shape} holds")
        x = x[crop]
        widths = [(max(before, 0), max(after, 0)) for before, after in widths]
    for axis, (before, after) in enumerate(widths):
        n = x.shape[axis]
        if mode == "reflect" and max(before, after) >= n and (before or after):
            raise ValueError(
                f"pad: reflect padding ({before}, {after}) must be smaller than the "
                f"dimension size {n} (dim {axis} of shape {x.shape})"
            )
        if mode == "circular" and max(before, after) > n:
            raise ValueError(
                f"pad: circular padding ({before}, {after}) cannot exceed the "
                f"dimension size {n} (dim {axis} of shape {x.shape})"
            )
        if mode == "replicate" and n == 0 and (before or after):
            raise ValueError(f"pad: cannot replicate-pad an empty dimension (shape {x.shape})")
    if all(w == (0, 0) for w in widths):
        return x
    return ops.Pad.apply(x, widths=tuple(widths), mode=mode, value=value)
