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
"""

from __future__ import annotations

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
    receptive_field: tuple[float, float] | None


@dataclass
class ModelSummary:
    """The table's rows and totals; ``str(summary)`` is the printed table."""

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

    @property
    def total_mb(self) -> float:
        return self.input_mb + self.activations_mb + self.params_mb

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
    h, w = (int(math.ceil(v - 1e-9)) for v in rf)
    return str(h) if h == w else f"{h}x{w}"


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
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        macs = module.in_channels * (module.out_channels // module.groups) * kh * kw * x.shape[2] * x.shape[3]
        return 2 * macs + (per_image if module.bias is not None else 0)
    if isinstance(module, nn.Conv2d):
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
            return per_image * kh * kw
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
        best, stack, seen = None, [t], {id(t)}
        while stack:  # walk the graph back to the nearest tensors we know
            current = stack.pop()
            if id(current) in self.info:
                value = self.info[id(current)]
                best = value if best is None else tuple(max(a, b) for a, b in zip(best, value))
                continue
            creator = current._creator
            for parent in getattr(creator, "inputs", ()) if creator is not None else ():
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append(parent)
        return best if best is not None else (1.0, 1.0, 1.0, 1.0)

    def through(self, module: Module, x: Tensor, y: Tensor) -> tuple[float, float, float, float]:
        from tinygrad_cnn import nn

        rh, rw, jh, jw = self.get(x)
        name = type(module).__name__
        if isinstance(module, nn.ConvTranspose2d):
            (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride)
            jh, jw = jh / sh, jw / sw
            return rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh, jw
        if hasattr(module, "kernel_size") and x.ndim == 4 and ("Conv" in name or "Pool" in name):
            (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
            dh, dw = _pair(getattr(module, "dilation", 1))
            return rh + dh * (kh - 1) * jh, rw + dw * (kw - 1) * jw, jh * sh, jw * sw
        if x.ndim == 4 and (y.ndim < 4 or ("Pool" in name and y.shape[2:] != x.shape[2:])):
            # global/adaptive pooling or flattening: (about) the whole map
            (h, w), (oh, ow) = x.shape[2:], (y.shape[2:] if y.ndim == 4 else (1, 1))
            kh, kw = math.ceil(h / oh), math.ceil(w / ow)
            return rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh * (h // oh), jw * (w // ow)
        return rh, rw, jh, jw


def summary(model: Module, input_shape: Sequence[int], batch_size: int = 1, print_summary: bool = True,
            file=None, dtype="float32") -> ModelSummary:
    """Run ``model`` on a (batch_size, *input_shape) batch and print/return its summary table.

    ``input_shape`` leaves out the batch dimension, as Keras: ``(1, 28, 28)`` for LeNet-5.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    input_shape = tuple(input_shape)
    if not input_shape or any(not isinstance(s, (int, np.integer)) or s <= 0 for s in input_shape):
        raise ValueError(f"summary: input_shape must be positive ints without the batch dimension, "
                         f"got {input_shape}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
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
    if print_summary:
        print(result, file=file if file is not None else sys.stdout)
    return result
