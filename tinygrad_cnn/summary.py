"""``summary(model, input_shape)``: Keras's ``model.summary()`` table, plus FLOPs and receptive fields.

The model runs once on a zero batch (in evaluation mode, then restored); every layer that
holds parameters or has no sub-layers becomes a row, in the order the forward pass calls
them, with

* its output shape (``None`` for the batch dimension, as Keras; NCHW layout);
* its parameters: weights + biases, e.g. a 5x5 convolution from 6 to 16 maps has
  6*5*5*16 + 16 = 2416 (weight sharing: the count does not depend on the image size);
* its FLOPs for one image: a convolution output sums n = (C_in / groups) kH kW products, 2n
  operations with the bias (``theory.conv_flops``); a dense layer 2 * in * out; batch norm 2
  per element; pooling one per window element; activations one per element;
* its receptive field: how many input pixels one output value depends on. Through a layer
  of kernel k, dilation d and stride s, r_out = r_in + d (k - 1) j_in and j_out = j_in s
  (j, the jump, is the distance in input pixels between neighbouring outputs). Branches
  (residual additions, concatenations) take the largest field of their inputs.

The totals separate trainable from non-trainable parameters (``requires_grad=False``) and list
the buffers (batch-norm running statistics) and an estimate of the memory for one forward pass.

The returned :class:`ModelSummary` *is* the table: ``print(s)``, ``repr(s)`` and, in Jupyter,
its HTML all show it. It is printed once: in a script ``summary`` prints it (as Keras's
``model.summary()``); in the interactive interpreter it does not print, because the
interpreter shows the returned table; in IPython and Jupyter it prints and the echo of the
returned object in the same cell is skipped.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tinygrad_cnn.autograd import enable_grad
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor


@dataclass
class LayerRow:
    """One row of the summary table."""

    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: int
    flops: int
    receptive_field: tuple[float, ...] | None  # (h, w) for images, (length,) for signals


@dataclass(repr=False)
class ModelSummary:
    """The table's rows and totals; ``str(summary)``, ``repr(summary)`` and its HTML are the table."""

    model_name: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    buffer_elements: int = 0
    total_flops: int = 0
    input_mb: float = 0.0
    activations_mb: float = 0.0
    params_mb: float = 0.0

    shown_in_cell: int | None = None  # the IPython cell that printed it (its echo there is skipped)

    @property
    def total_mb(self) -> float:
        return self.input_mb + self.activations_mb + self.params_mb

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"

    def _ipython_display_(self) -> None:
        shell = _ipython_shell()
        if shell is not None and self.shown_in_cell == shell.execution_count:
            return  # summary() printed it in this cell already
        from IPython.display import display

        display({"text/plain": str(self), "text/html": self._repr_html_()}, raw=True)

    def __str__(self) -> str:
        headers = ("Layer (type)", "Output Shape", "Param #", "FLOPs", "Receptive field")
        table = [(f"{r.name} ({r.type})", _shape_text(r.output_shape), f"{r.params:,}", _flops_text(r.flops),
                  _rf_text(r.receptive_field)) for r in self.rows]
        widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h)
                  for i, h in enumerate(headers)]
        width = sum(widths) + 2 * (len(widths) - 1)

        def line(cells) -> str:
            aligned = (c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
            return "  ".join(aligned)

        out = [f'Model: "{self.model_name}"', "=" * width, line(headers), "=" * width]
        out += [line(row) for row in table]
        out += ["=" * width,
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.non_trainable_params:,}",
                f"Buffers (non-trainable state, e.g. batch-norm statistics): {self.buffer_elements:,}",
                f"Total FLOPs (forward, per image): {_flops_text(self.total_flops)}",
                "-" * width,
                f"Input size (MB): {self.input_mb:.2f}",
                f"Forward pass activations (MB): {self.activations_mb:.2f}",
                f"Params size (MB): {self.params_mb:.2f}",
                f"Estimated total size (MB): {self.total_mb:.2f}",
                "-" * width]
        return "\n".join(out)


def _ipython_shell():
    """The running IPython shell (IPython, Jupyter), or None."""
    ipython = sys.modules.get("IPython")
    try:
        return ipython.get_ipython() if ipython is not None else None
    except Exception:  # an IPython too old or half-imported: behave as a script
        return None


def _printed_by_summary(print_summary: bool | None) -> bool:
    """``print_summary=None``: print in a script and in IPython, not in the plain interactive
    interpreter, which shows the returned table itself."""
    if print_summary is not None:
        return bool(print_summary)
    return _ipython_shell() is not None or not hasattr(sys, "ps1")


def _batch_and_shape(model: Module, input_shape) -> tuple[int | None, tuple[int, ...]]:
    """``(batch, shape of one sample)``: the shape is given with or without its batch dimension,
    as torchsummary (without) and torchinfo (with) users write it. The model's first layer
    tells which: a Conv2d reads (C, H, W) samples, a Conv1d (C, L), a Linear (features,);
    after any other first layer (a Flatten) the shape is taken as one sample's."""
    from tinygrad_cnn import nn

    first = next((m for m in model.modules() if not _is_container(m)), None)
    rank = {nn.Conv2d: 3, nn.ConvTranspose2d: 3, nn.Conv1d: 2, nn.ConvTranspose1d: 2, nn.Linear: 1}
    sample_rank = next((r for cls, r in rank.items() if isinstance(first, cls)), None)
    if sample_rank is not None and len(input_shape) == sample_rank + 1:
        return int(input_shape[0]), tuple(input_shape[1:])
    return None, tuple(input_shape)


def _shape_text(shape: tuple) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(["None", *(str(s) for s in shape[1:])]) + ")"


def _flops_text(flops: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.2f}{unit}"
    return str(int(flops))


def _rf_text(rf) -> str:
    if rf is None:
        return "-"
    sizes = [int(math.ceil(v - 1e-9)) for v in rf]
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (1, 1)
    return int(value), int(value)


def _is_container(module: Module) -> bool:
    return any(True for _ in module.children())


# ------------------------------------------------------------------ per-layer arithmetic
def _layer_flops(module: Module, x: Tensor, y: Tensor) -> int:
    """FLOPs of one layer for one image (see the module docstring)."""
    from tinygrad_cnn import nn, theory

    n = max(y.shape[0], 1) if y.ndim else 1
    per_image = y.numel() // n
    if isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose1d)):
        macs = module.in_channels * (module.out_channels // module.groups) * math.prod(module.kernel_size) \
            * math.prod(x.shape[2:])
        return 2 * macs + (per_image if module.bias is not None else 0)
    if isinstance(module, (nn.Conv2d, nn.Conv1d)):
        return theory.conv_flops(module.in_channels, module.out_channels, module.kernel_size, y.shape[2:],
                                 module.groups, module.bias is not None)
    if isinstance(module, nn.Linear):
        outputs = per_image
        return outputs * (2 * module.in_features - (0 if module.bias is not None else 1))
    name = type(module).__name__
    if "BatchNorm" in name:
        return 2 * per_image
    if "Pool" in name:
        if hasattr(module, "kernel_size"):
            kh, kw = _pair(module.kernel_size)
            return per_image * (kw if x.ndim == 3 else kh * kw)
        return x.numel() // max(x.shape[0], 1)  # adaptive / global pooling reads every input once
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax)):
        return per_image
    return 0


class _FieldTracker:
    """Receptive field (rf_h, rf_w) and jump (j_h, j_w) of every tensor of the forward pass."""

    def __init__(self) -> None:
        self.info: dict[int, tuple[float, float, float, float]] = {}
        self.keep: list[Tensor] = []  # keeps ids unique while the summary runs

    def set(self, t: Tensor, value) -> None:
        self.info[id(t)] = value
        self.keep.append(t)

    def get(self, t: Tensor) -> tuple[float, float, float, float]:
        if id(t) in self.info:
            return self.info[id(t)]
        best, stack, seen = None, [t], set()
        while stack:  # walk the graph back to the nearest tensors we know
            current = stack.pop()
            if id(current) in self.info:  # (tensors in info are kept alive: ids stay theirs)
                value = self.info[id(current)]
                best = value if best is None else tuple(max(a, b) for a, b in zip(best, value))
                continue
            creator = current._creator
            # seen by creator, not by tensor: a freed intermediate's stand-in may be gone, and
            # its id reused, before the walk ends; its creator lives as long as the graph
            if creator is None or id(creator) in seen:
                continue
            seen.add(id(creator))
            stack.extend(getattr(creator, "inputs", ()))
        return best if best is not None else (1.0, 1.0, 1.0, 1.0)

    def through(self, module: Module, x: Tensor, y: Tensor) -> tuple[float, float, float, float]:
        from tinygrad_cnn import nn

        rh, rw, jh, jw = self.get(x)
        name = type(module).__name__
        if isinstance(module, nn.ConvTranspose2d):
            (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride)
            jh, jw = jh / sh, jw / sw
            return rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh, jw
        if hasattr(module, "kernel_size") and x.ndim in (3, 4) and ("Conv" in name or "Pool" in name):
            (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
            dh, dw = _pair(getattr(module, "dilation", 1))
            if x.ndim == 3:  # a signal: its one axis is the width, the height stays 1
                kh, sh, dh = 1, 1, 1
            return rh + dh * (kh - 1) * jh, rw + dw * (kw - 1) * jw, jh * sh, jw * sw
        if x.ndim == 4 and (y.ndim < 4 or ("Pool" in name and y.shape[2:] != x.shape[2:])):
            # global/adaptive pooling or flattening: (about) the whole map
            (h, w), (oh, ow) = x.shape[2:], (y.shape[2:] if y.ndim == 4 else (1, 1))
            kh, kw = math.ceil(h / oh), math.ceil(w / ow)
            return rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh * (h // oh), jw * (w // ow)
        return rh, rw, jh, jw


def summary(model: Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None,
            print_summary: bool | None = None, file=None, dtype="float32") -> ModelSummary:
    """Run ``model`` on a zero batch and return (and print, see the module docstring) its table.

    ``input_shape`` is one sample's shape, ``(1, 28, 28)`` for LeNet-5, or the batch's,
    ``(64, 1, 28, 28)``; without it, the shape the model knows (``model.input_shape`` if set,
    else :func:`tinygrad_cnn.models.default_input_shape` for the course's networks).
    ``batch_size`` (default 1, or the batch dimension given) scales the memory estimates.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    if input_shape is None:
        from tinygrad_cnn.models import default_input_shape

        input_shape = getattr(model, "input_shape", None) or default_input_shape(model)
        if input_shape is None:
            raise ValueError(f"summary: {type(model).__name__} does not know its input size; pass it, e.g. "
                             f"summary(model, (3, 32, 32)) or model.summary((3, 32, 32)) for 3x32x32 images "
                             f"(channels, height, width; a batch dimension in front is fine too)")
    input_shape = tuple(input_shape)
    if not input_shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0
                              for s in input_shape):
        raise ValueError(f"summary: input_shape must be positive ints, e.g. (1, 28, 28), got {input_shape}")
    given_batch, input_shape = _batch_and_shape(model, input_shape)
    if batch_size is None:
        batch_size = given_batch or 1
    elif given_batch is not None and given_batch != batch_size:
        raise ValueError(f"summary: the input shape has batch dimension {given_batch}, "
                         f"but batch_size={batch_size}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    result = ModelSummary(type(model).__name__, input_shape)
    tracker = _FieldTracker()
    rows: list[LayerRow] = []
    patched: list[Module] = []

    def wrap(name: str, module: Module):
        forward = module.forward

        def hooked(*args, **kwargs):
            out = forward(*args, **kwargs)
            x = args[0] if args and isinstance(args[0], Tensor) else None
            y = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor) else out
            own = [p for p in module._parameters.values() if p is not None]
            if (own or not _is_container(module)) and isinstance(y, Tensor):
                field_ = None
                if x is not None:
                    value = tracker.through(module, x, y)
                    tracker.set(y, value)
                    if x.ndim == 3 or y.ndim == 3:  # signals: the field along their one axis
                        field_ = (value[1],) if x.ndim == 3 and y.ndim == 3 else (tracker.get(x)[1],)
                    else:
                        field_ = value[:2] if x.ndim == 4 or y.ndim == 4 else tracker.get(x)[:2]
                rows.append(LayerRow(
                    name=name, type=type(module).__name__, output_shape=tuple(y.shape),
                    params=sum(p.numel() for p in own),
                    trainable=sum(p.numel() for p in own if p.requires_grad),
                    flops=_layer_flops(module, x, y) if x is not None else 0,
                    receptive_field=field_))
            return out

        return hooked

    for name, module in model.named_modules():
        if module is model and _is_container(model):
            continue
        object.__setattr__(module, "forward", wrap(name or type(module).__name__.lower(), module))
        patched.append(module)
    was_training = model.training
    model.eval()
    x = Tensor(np.zeros((batch_size, *input_shape), dtype=dtype), requires_grad=True)
    tracker.set(x, (1.0, 1.0, 1.0, 1.0))
    try:
        with enable_grad():
            model(x)
    except (ValueError, TypeError) as error:
        raise ValueError(f"summary: {type(model).__name__} cannot run on input shape "
                         f"{(batch_size, *input_shape)}: {error}") from None
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)
        model.train(was_training)
    result.rows = rows
    params = list(model.parameters())
    result.total_params = sum(p.numel() for p in params)
    result.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    result.non_trainable_params = result.total_params - result.trainable_params
    buffers = [b for _, b in model.named_buffers()]
    result.buffer_elements = sum(b.numel() for b in buffers if b.ndim > 0)
    result.total_flops = sum(r.flops for r in rows)
    itemsize = np.dtype(dtype).itemsize
    result.input_mb = batch_size * math.prod(input_shape) * itemsize / 2**20
    result.activations_mb = sum(math.prod(r.output_shape) for r in rows) * itemsize / 2**20
    result.params_mb = (sum(p.data.nbytes for p in params) + sum(b.data.nbytes for b in buffers)) / 2**20
    if _printed_by_summary(print_summary if file is None else True):
        print(result, file=file if file is not None else sys.stdout)
        shell = _ipython_shell()
        result.shown_in_cell = getattr(shell, "execution_count", None) if shell is not None else None
    return result
