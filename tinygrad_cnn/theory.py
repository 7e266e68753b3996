"""Convolution arithmetic: the formulas of the course, as functions to compute and check with.

* output sizes of convolution, pooling and transposed convolution;
* receptive field and jump (effective stride) of a stack of layers;
* convolution as a matrix: :func:`conv_matrix` builds the sparse, (doubly block) Toeplitz
  matrix M with conv2d(x) = M x, so its transpose M^T is the transposed convolution;
* parameter and FLOP counts of a convolution layer.

Pure Python and numpy: nothing here builds a graph, and scipy is optional (``sparse=True``).
The size formulas are those of ``nn.functional.geometry`` (``window_count``,
``transposed_size``), which the layers themselves use: one formula, checked here per axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tinygrad_cnn.nn.functional.geometry import transposed_size, window_count

__all__ = [
    "conv_output_size", "pool_output_size", "conv_transpose_output_size", "LayerGeometry",
    "ReceptiveField", "receptive_field", "conv_matrix", "conv_parameters", "conv_macs", "conv_flops",
    "count_parameters",
]


def _int(value, name: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        rule = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return int(value)


def _pad_pair(padding, name: str = "padding") -> tuple[int, int]:
    """An int (each side) or a (before, after) pair, as (before, after)."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        return _int(padding[0], name, 0), _int(padding[1], name, 0)
    p = _int(padding, name, 0)
    return p, p


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | Sequence[int] = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one dimension:

        O = floor((W + P_before + P_after - d (F - 1) - 1) / S) + 1

    (the course's (W - F + 2P) / S + 1 with the dilated kernel size d (F - 1) + 1).
    ``padding`` is an int (both sides) or a (before, after) pair. Raises ValueError when the
    dilated kernel does not fit in the padded input.
    """
    n, k = _int(size, "size", 1), _int(kernel_size, "kernel_size", 1)
    s, d = _int(stride, "stride", 1), _int(dilation, "dilation", 1)
    before, after = _pad_pair(padding)
    span = d * (k - 1) + 1
    if n + before + after < span:
        raise ValueError(f"kernel_size {k} with dilation {d} spans {span}, more than the padded input "
                         f"{n + before + after} (size {n}, padding {padding!r})")
    return window_count(n, k, s, before, after, d)


def pool_output_size(size: int, kernel_size: int, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of max/avg pooling, as PyTorch: stride defaults to the kernel size and

        O = floor_or_ceil((W + 2P - d (F - 1) - 1) / S) + 1,

    where with ``ceil_mode`` the last window may hang over the border, but must start inside
    the input or the left padding (else O is reduced by one). Padding is at most half the kernel.
    """
    n, k = _int(size, "size", 1), _int(kernel_size, "kernel_size", 1)
    s = k if stride is None else _int(stride, "stride", 1)
    p, d = _int(padding, "padding", 0), _int(dilation, "dilation", 1)
    if p > k // 2:
        raise ValueError(f"padding {p} must be at most half the kernel size {k}")
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        raise ValueError(f"kernel_size {k} with dilation {d} spans {span}, more than the padded "
                         f"input {n + 2 * p}")
    return window_count(n, k, s, p, p, d, bool(ceil_mode))


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | Sequence[int] = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution, the inverse of the convolution size formula:

        O = (W - 1) S - P_before - P_after + d (F - 1) + output_padding + 1

    A strided convolution maps S different input sizes to the same output size;
    ``output_padding`` (< S or < d) picks one of them.
    """
    n, k = _int(size, "size", 1), _int(kernel_size, "kernel_size", 1)
    s, d = _int(stride, "stride", 1), _int(dilation, "dilation", 1)
    op = _int(output_padding, "output_padding", 0)
    if op >= s and op >= d:
        raise ValueError(f"output_padding {op} must be smaller than either stride {s} or dilation {d}")
    out = transposed_size(n, k, s, *_pad_pair(padding), d, op)
    if out < 1:
        raise ValueError(f"transposed convolution output size {out} is not positive (size {n}, kernel {k}, "
                         f"stride {s}, padding {padding!r}, dilation {d}, output_padding {op})")
    return out


# ------------------------------------------------------------------------ receptive field
@dataclass(frozen=True)
class LayerGeometry:
    """One layer along one spatial axis: a convolution or pooling window."""

    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


@dataclass(frozen=True)
class ReceptiveField:
    """After a layer: ``size`` r (input pixels one output unit sees), ``jump`` j (input pixels
    between neighbouring output units: the product of the strides so far) and ``start`` (input
    coordinate of the centre of the first output unit's field; negative when it lies in the padding)."""

    size: int
    jump: int
    start: float


def _geometry(layer, axis: int) -> LayerGeometry:
    if isinstance(layer, LayerGeometry):
        return layer
    if isinstance(layer, dict):
        return LayerGeometry(**layer)
    if isinstance(layer, (tuple, list)):
        return LayerGeometry(*layer)

    def pick(name, default):  # a layer object, e.g. nn.Conv2d or nn.MaxPool2d
        value = getattr(layer, name, default)
        if value is None and name == "stride":
            value = layer.kernel_size
        if isinstance(value, str):
            raise ValueError(f"receptive_field: {type(layer).__name__} has padding={value!r}; "
                             "give the geometry explicitly")
        if isinstance(value, (tuple, list)):
            value = value[axis]
        if isinstance(value, (tuple, list)):  # a (before, after) pair: the field starts at `before`
            value = value[0]
        return value

    if not hasattr(layer, "kernel_size"):
        raise ValueError(f"receptive_field: cannot read a kernel_size from {layer!r}")
    return LayerGeometry(pick("kernel_size", 1), pick("stride", 1), pick("padding", 0), pick("dilation", 1))


def receptive_field(layers: Iterable, axis: int = 0) -> list[ReceptiveField]:
    """Receptive field, jump and start after each layer of a stack (course: *receptive field*).

    With k' = d (k - 1) + 1 the dilated kernel of a layer and (r, j, start) before it:

        r_out = r + (k' - 1) j,   j_out = j s,   start_out = start + ((k' - 1) / 2 - p) j

    starting from one input pixel, (r, j, start) = (1, 1, 0) (pixel-centre coordinates).
    E.g. two 3x3 convolutions see 5x5, three see 7x7 (the VGG argument), with fewer
    parameters than one 7x7 layer.

    ``layers`` holds :class:`LayerGeometry`, ``(kernel, stride, padding, dilation)`` tuples,
    dicts, or layer objects with ``kernel_size``/``stride``/``padding``/``dilation`` attributes
    (``axis`` picks the spatial dimension of tuple-valued attributes).
    """
    size, jump, start = 1, 1, 0.0
    fields = []
    for layer in layers:
        g = _geometry(layer, axis)
        k, s = _int(g.kernel_size, "kernel_size", 1), _int(g.stride, "stride", 1)
        p, d = _int(g.padding, "padding", 0), _int(g.dilation, "dilation", 1)
        span = d * (k - 1) + 1
        start = start + ((span - 1) / 2 - p) * jump
        size = size + (span - 1) * jump
        jump = jump * s
        fields.append(ReceptiveField(size, jump, start))
    return fields


# ------------------------------------------------------------- convolution as a matrix
def conv_matrix(input_shape: Sequence[int], weight, stride=1, padding=0, dilation=1, groups: int = 1,
                sparse: bool = False):
    """The matrix M of the linear map x -> conv2d(x, weight) (one image, no bias):

        conv2d(x, w).ravel() == M @ x.ravel(),   M[(k, i, j), (c, p, q)] = w[k, c, m, n]
        where p = s_h i + d_h m - pad_top and q = s_w j + d_w n - pad_left

    ``input_shape`` is (C, H, W) with ``weight`` (K, C / groups, kH, kW), or (H, W) with a 2-D
    kernel (one channel). M has shape (K OH OW, C H W) and at most kH kW C / groups nonzeros
    per row: it is sparse. For one channel and stride 1 it is *doubly block Toeplitz*: a block
    Toeplitz matrix (blocks indexed by the row offset p - i) whose blocks are Toeplitz
    (indexed by q - j), because every output row applies the same kernel shifted.

    Convolution is therefore a matrix product, and M.T @ y is the transposed convolution
    (the gradient of conv2d with respect to its input): conv_transpose2d(y, w) == M.T @ y.
    ``padding`` is an int, a (ph, pw) pair, or ((top, bottom), (left, right)). Returns a dense
    numpy array, or a ``scipy.sparse.csr_matrix`` with ``sparse=True`` (needs scipy).
    """
    w = np.asarray(getattr(weight, "data", weight))
    shape = tuple(int(n) for n in input_shape)
    if len(shape) == 2 and w.ndim == 2:
        shape, w = (1, *shape), w[None, None]
    if len(shape) != 3 or w.ndim != 4:
        raise ValueError(f"conv_matrix: need input_shape (C, H, W) with a 4-D weight or (H, W) with a 2-D "
                         f"kernel, got input_shape {tuple(input_shape)} and weight shape {w.shape}")
    channels, height, width = shape
    out_channels, group_channels, kh, kw = w.shape
    groups = _int(groups, "groups", 1)
    if channels % groups or out_channels % groups or group_channels != channels // groups:
        raise ValueError(f"conv_matrix: weight {w.shape} with groups {groups} does not fit {channels} input "
                         f"channels")
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    (top, bottom), (left, right) = _padding(padding)
    oh = conv_output_size(height, kh, sh, (top, bottom), dh)
    ow = conv_output_size(width, kw, sw, (left, right), dw)
    i, j = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    rows, cols, values = [], [], []
    per_group = out_channels // groups
    for k in range(out_channels):
        first_channel = (k // per_group) * group_channels
        for c in range(group_channels):
            for m in range(kh):
                for n in range(kw):
                    p, q = sh * i + dh * m - top, sw * j + dw * n - left
                    inside = (p >= 0) & (p < height) & (q >= 0) & (q < width)  # else: a padded zero
                    rows.append((k * oh + i[inside]) * ow + j[inside])
                    cols.append(((first_channel + c) * height + p[inside]) * width + q[inside])
                    values.append(np.full(inside.sum(), w[k, c, m, n], dtype=w.dtype))
    rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    size = (out_channels * oh * ow, channels * height * width)
    if sparse:
        try:
            from scipy.sparse import coo_matrix  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise ImportError("conv_matrix(sparse=True) needs scipy; use the dense default") from None
        return coo_matrix((values, (rows, cols)), shape=size).tocsr()
    matrix = np.zeros(size, dtype=w.dtype)
    np.add.at(matrix, (rows, cols), values)
    return matrix


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _int(value[0], name, minimum), _int(value[1], name, minimum)
    v = _int(value, name, minimum)
    return v, v


def _padding(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        return tuple(_pair(p, "padding", 0) for p in padding)  # type: ignore[return-value]
    p = _int(padding, "padding", 0)
    return (p, p), (p, p)


# ------------------------------------------------------------------- parameters and FLOPs
def conv_parameters(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                    bias: bool = True) -> int:
    """Learnable parameters of a convolution layer: (C_in / groups) prod(kernel) C_out (+ C_out biases).

    Course examples: 3 input maps, 16 kernels 5x5: 3*25*16 + 16 = 1216; 3 maps, two 3x3
    kernels: 3*9*2 + 2 = 56. Independent of the image size (weight sharing).
    """
    c, k = _int(in_channels, "in_channels", 1), _int(out_channels, "out_channels", 1)
    g = _int(groups, "groups", 1)
    if c % g or k % g:
        raise ValueError(f"in_channels {c} and out_channels {k} must be divisible by groups {g}")
    area = math.prod(_kernel_dims(kernel_size))
    return (c // g) * area * k + (k if bias else 0)


def _kernel_dims(kernel_size) -> tuple[int, ...]:
    if isinstance(kernel_size, (tuple, list)):
        return tuple(_int(k, "kernel_size", 1) for k in kernel_size)
    k = _int(kernel_size, "kernel_size", 1)
    return (k, k)


def conv_macs(in_channels: int, out_channels: int, kernel_size, output_size, groups: int = 1,
              batch_size: int = 1) -> int:
    """Multiply-accumulates of a convolution: each of the N C_out prod(output_size) outputs sums
    (C_in / groups) prod(kernel) products."""
    per_output = conv_parameters(in_channels, out_channels, kernel_size, groups, bias=False) // out_channels
    outputs = out_channels * math.prod(_kernel_dims(output_size)) * _int(batch_size, "batch_size", 1)
    return per_output * outputs


def conv_flops(in_channels: int, out_channels: int, kernel_size, output_size, groups: int = 1,
               bias: bool = True, batch_size: int = 1) -> int:
    """Floating point operations of a convolution's forward pass: an output of n = (C_in / groups)
    prod(kernel) products needs n multiplications and n - 1 additions, plus one for the bias:
    2 n with bias, 2 n - 1 without, so FLOPs = 2 MACs (with bias)."""
    macs = conv_macs(in_channels, out_channels, kernel_size, output_size, groups, batch_size)
    outputs = out_channels * math.prod(_kernel_dims(output_size)) * batch_size
    return 2 * macs - (0 if bias else outputs)


def count_parameters(module, trainable_only: bool = False) -> int:
    """Total number of scalar parameters of a module (e.g. ``nn.Conv2d(3, 16, 5)``: 1216)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
