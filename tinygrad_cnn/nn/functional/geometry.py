"""The geometry of a sliding window: every size a convolution or a pooling layer has.

A convolution and a pooling layer slide a window over an image; the course's output-size
formula (W - F + 2P) / S + 1 says how many places the window stops at. Here it is, once:

    span = dilation (kernel - 1) + 1                      (the dilated window's extent)
    out  = floor((size + pad_before + pad_after - span) / stride) + 1

Pooling may round up instead (``ceil_mode``), keeping a last window that hangs over the
border as long as it starts inside the input or its leading padding (PyTorch's rule).

Each op family parses its arguments once into a geometry object:

* :class:`ConvGeometry` for conv1d/conv2d, conv_transpose (the geometry of the
  convolution it is the adjoint of), unfold/fold and the signal correlations;
* :class:`PoolGeometry` for max and average pooling.

The parse functions (:func:`conv_geometry`, :func:`conv_transpose_geometry`,
:func:`window_geometry`, :func:`pool_geometry`) are the only place where strides,
paddings, dilations, groups and kernel sizes are checked and normalised; they raise a
ValueError/TypeError naming the function and the values at fault. Everything after
them (the Functions of ``nn.functional``, every backend's kernels, ``theory`` and
``summary``) reads the checked numbers from the object. 1-D operations are 2-D ones on
images of height 1, so every geometry is 2-D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinygrad_cnn.nn.functional.checks import LARGEST_ARGUMENT, check_flag, int_tuple, is_int, positive_int

PADDING_NAMES = ("valid", "same", "full")
LARGEST_OUTPUT = 2**31  # elements (8 GiB of float32): beyond that a padding or size is a mistake
DIM_NAMES = {1: ("length",), 2: ("height", "width")}


# ------------------------------------------------------------------------ the formulas
def window_count(size: int, kernel: int, stride: int = 1, before: int = 0, after: int = 0,
                 dilation: int = 1, ceil_mode: bool = False) -> int:
    """How many positions a window of ``kernel`` taps takes along one axis of ``size``:

        out = floor((size + before + after - dilation (kernel - 1) - 1) / stride) + 1

    (``ceil`` with ``ceil_mode``, where a last window starting at or beyond
    ``size + before`` is dropped: it would see nothing but trailing padding). Can be 0 or
    negative when the window does not fit; the parse functions turn that into an error."""
    numerator = size + before + after - dilation * (kernel - 1) - 1
    out = (-(-numerator // stride) if ceil_mode else numerator // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


def transposed_size(size: int, kernel: int, stride: int = 1, before: int = 0, after: int = 0,
                    dilation: int = 1, output_padding: int = 0) -> int:
    """Output length of a transposed convolution, the window formula solved for the size:

        out = (size - 1) stride - before - after + dilation (kernel - 1) + output_padding + 1

    A strided convolution maps ``stride`` different sizes to the same ``size``;
    ``output_padding`` picks one of them."""
    return (size - 1) * stride - before - after + dilation * (kernel - 1) + output_padding + 1


# ------------------------------------------------------------------------ the objects
@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one 2-D convolution, checked: what each backend's kernels are given.

    ``input_shape`` (N, C, H, W); ``kernel`` (KH, KW); ``padding`` (top, bottom, left,
    right) of zeros; ``out_channels`` K and ``groups`` G (None for unfold/fold, which have
    no filters). The output is (N, K, OH, OW) with OH = window_count(H, KH, sh, top,
    bottom, dh) and OW likewise; the weight is (K, C / G, KH, KW).
    """

    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    out_channels: int | None = None
    groups: int = 1

    @property
    def out_height(self) -> int:
        top, bottom = self.padding[:2]
        return window_count(self.input_shape[2], self.kernel[0], self.stride[0], top, bottom,
                            self.dilation[0])

    @property
    def out_width(self) -> int:
        left, right = self.padding[2:]
        return window_count(self.input_shape[3], self.kernel[1], self.stride[1], left, right,
                            self.dilation[1])

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.input_shape[0], self.out_channels, self.out_height, self.out_width)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.input_shape[1] // self.groups, *self.kernel)

    @property
    def columns_shape(self) -> tuple[int, int, int]:
        """im2col's output (N, C KH KW, OH OW)."""
        n, c = self.input_shape[:2]
        return (n, c * self.kernel[0] * self.kernel[1], self.out_height * self.out_width)

    @property
    def window_is_the_input(self) -> bool:
        """One group, no padding, no dilation and a kernel the size of the input: one output
        pixel per channel, and the layer is a fully connected one (LeNet-5's C5)."""
        return (self.groups == 1 and self.kernel == tuple(self.input_shape[2:])
                and self.dilation == (1, 1) and not any(self.padding))

    def flat(self) -> tuple[int, ...]:
        """(KH, KW, sh, sw, top, left, dh, dw, OH, OW) as plain ints, the arguments compiled loops take."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return kh, kw, sh, sw, self.padding[0], self.padding[2], dh, dw, self.out_height, self.out_width


@dataclass(frozen=True)
class PoolGeometry:
    """Every size of one 2-D pooling layer, checked (PyTorch's conventions).

    ``input_shape`` (N, C, H, W); symmetric ``padding`` (ph, pw) of at most half the
    kernel; window position (oh, ow), offset (i, j) reads input row oh sh - ph + i dh
    and column ow sw - pw + j dw. ``count_include_pad`` and ``divisor_override`` only
    matter to average pooling (``dilation`` only to max pooling).
    """

    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    @property
    def out_height(self) -> int:
        p = self.padding[0]
        return window_count(self.input_shape[2], self.kernel[0], self.stride[0], p, p, self.dilation[0],
                            self.ceil_mode)

    @property
    def out_width(self) -> int:
        p = self.padding[1]
        return window_count(self.input_shape[3], self.kernel[1], self.stride[1], p, p, self.dilation[1],
                            self.ceil_mode)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (*self.input_shape[:2], self.out_height, self.out_width)

    def flat(self) -> tuple[int, ...]:
        """(KH, KW, sh, sw, ph, pw, dh, dw, OH, OW) as plain ints, for compiled loops."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        return kh, kw, sh, sw, ph, pw, dh, dw, self.out_height, self.out_width


# ------------------------------------------------------------------------ parsing
def sizes(fn: str, name: str, value, n: int, minimum: int = 1) -> tuple[int, ...]:
    """An int, or a tuple of ``n`` ints (a 1-tuple counts for every dim, as in PyTorch)."""
    if isinstance(value, (tuple, list)) and len(value) == 1 and n > 1:
        value = tuple(value) * n
    return int_tuple(fn, name, value, n, minimum)


def padding_pairs(fn: str, padding, n: int, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    """(before, after) zero padding per spatial dim.

    ``padding`` is an int (every side), a tuple with one entry per spatial dim (an int for
    both sides, or a ``(before, after)`` pair), or a name. With D = dilation (kernel - 1)
    the span a kernel adds:

    * ``'valid'``: no padding, the kernel only visits positions where it fits;
    * ``'same'``: total padding D so that the output has the input's size (stride 1 only).
      When D is odd the odd pixel goes AFTER (right/bottom), as in PyTorch and TensorFlow:
      before = D // 2, after = D - D // 2;
    * ``'full'``: D on each side, every position where kernel and input overlap at all.
    """
    if isinstance(padding, str):
        if padding not in PADDING_NAMES:
            raise ValueError(f"{fn}: padding {padding!r} is not one of {PADDING_NAMES} or an int/tuple")
        spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if padding == "valid":
            return tuple((0, 0) for _ in spans)
        if padding == "full":
            return tuple((s, s) for s in spans)
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' needs stride 1 (the output could not keep the "
                             f"input size), got stride {stride}")
        return tuple((s // 2, s - s // 2) for s in spans)
    if is_int(padding):
        padding = (padding,) * n
    if isinstance(padding, (tuple, list)) and len(padding) == 1 and n > 1:
        padding = tuple(padding) * n
    if not isinstance(padding, (tuple, list)) or len(padding) != n:
        raise ValueError(f"{fn}: padding must be an int, a name in {PADDING_NAMES}, or a tuple of {n} "
                         f"entries (an int or a (before, after) pair per spatial dim), got {padding!r}")
    pairs = []
    for entry in padding:
        if is_int(entry):
            pair = (int(entry), int(entry))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(is_int(v) for v in entry):
            pair = (int(entry[0]), int(entry[1]))
        else:
            raise ValueError(f"{fn}: padding entry {entry!r} of {padding!r} is neither an int nor a "
                             "(before, after) pair of ints")
        if min(pair) < 0:
            raise ValueError(f"{fn}: padding must be non-negative, got {padding!r}")
        if max(pair) > LARGEST_ARGUMENT:
            raise ValueError(f"{fn}: padding {padding!r} is too large (at most {LARGEST_ARGUMENT})")
        pairs.append(pair)
    return tuple(pairs)


def _check_fits(fn: str, nd: int, spatial, pairs, kernel, dilation) -> None:
    """The dilated kernel must fit inside the padded input along every spatial dim."""
    for name, size, (before, after), k, d in zip(DIM_NAMES[nd], spatial, pairs, kernel, dilation):
        span = d * (k - 1) + 1
        if size + before + after < span:
            raise ValueError(
                f"{fn}: kernel size {k} (dilation {d}, spans {span}) is larger than the padded input "
                f"{name} {size + before + after} (input {size} + padding ({before}, {after}))")


def _check_output_size(fn: str, shape) -> None:
    """Refuse outputs of more than LARGEST_OUTPUT elements before anything is allocated (a huge
    padding would otherwise end in numpy's MemoryError from inside a kernel)."""
    if math.prod(shape) > LARGEST_OUTPUT:
        raise ValueError(f"{fn}: the output would have shape {tuple(shape)} ({math.prod(shape):,} "
                         f"elements, more than {LARGEST_OUTPUT:,}): check the padding, stride and sizes")


def _lift(nd: int, shape, kernel, stride, pairs, dilation):
    """2-D geometry arguments from ``nd``-D ones: a signal is an image of height 1."""
    if nd == 1:
        shape = (*shape[:2], 1, shape[2])
        kernel, stride, dilation, pairs = (1, *kernel), (1, *stride), (1, *dilation), ((0, 0), *pairs)
    (top, bottom), (left, right) = pairs
    return tuple(shape), tuple(kernel), tuple(stride), (top, bottom, left, right), tuple(dilation)


def _layout(nd: int) -> str:
    return "(N, C, L)" if nd == 1 else "(N, C, H, W)"


def _channel_hint(nd: int, input_shape, expected: int) -> str:
    """Where the channels are probably last (an NHWC batch), say how to convert it."""
    if nd == 2 and len(input_shape) == 4 and input_shape[-1] == expected and input_shape[1] != expected:
        return ("; tinygrad_cnn uses NCHW (batch, channels, height, width): x.permute(0, 3, 1, 2) "
                "converts an NHWC batch")
    return ""


def conv_geometry(fn: str, nd: int, input_shape, weight_shape, bias_shape, stride, padding, dilation,
                  groups) -> ConvGeometry:
    """Check a convolution's arguments against a batched ``input_shape`` (N, C, *spatial) and
    ``weight_shape`` (K, C / groups, *kernel); ``bias_shape`` None or (K,)."""
    if len(weight_shape) != nd + 2:
        layout = "(out_channels, in_channels/groups, kL)" if nd == 1 else \
            "(out_channels, in_channels/groups, kH, kW)"
        raise ValueError(f"{fn}: weight must be {nd + 2}-D {layout}, got shape {tuple(weight_shape)} "
                         f"({len(weight_shape)}-D)")
    if 0 in weight_shape:
        raise ValueError(f"{fn}: weight of shape {tuple(weight_shape)} is empty")
    groups = positive_int(fn, "groups", groups)
    channels, out_channels = input_shape[1], weight_shape[0]
    if channels % groups or out_channels % groups:
        raise ValueError(f"{fn}: in_channels {channels} and out_channels {out_channels} must both be "
                         f"divisible by groups {groups}")
    if weight_shape[1] * groups != channels:
        raise ValueError(f"{fn}: weight of shape {tuple(weight_shape)} expects {weight_shape[1] * groups} "
                         f"input channels (weight.shape[1] * groups = {weight_shape[1]} * {groups}), but the "
                         f"input of shape {tuple(input_shape)} has {channels}"
                         + _channel_hint(nd, input_shape, weight_shape[1] * groups))
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise ValueError(f"{fn}: bias must have shape ({out_channels},), got {tuple(bias_shape)}")
    kernel = tuple(weight_shape[2:])
    stride = sizes(fn, "stride", stride, nd)
    dilation = sizes(fn, "dilation", dilation, nd)
    pairs = padding_pairs(fn, padding, nd, kernel, stride, dilation)
    _check_fits(fn, nd, input_shape[2:], pairs, kernel, dilation)
    geometry = ConvGeometry(*_lift(nd, input_shape, kernel, stride, pairs, dilation),
                            out_channels=out_channels, groups=groups)
    _check_output_size(fn, geometry.output_shape)
    return geometry


def conv_transpose_geometry(fn: str, nd: int, input_shape, weight_shape, bias_shape, stride, padding,
                            output_padding, groups, dilation) -> tuple[ConvGeometry, tuple[int, int]]:
    """A transposed convolution of ``input_shape`` (N, C_in, *spatial) with ``weight_shape``
    (C_in, C_out / groups, *kernel) is the adjoint of the convolution whose geometry this
    returns (input: the transposed output, (N, C_out, *out), output: (N, C_in, *conv_out)),
    together with conv_out (H, W): the positions that convolution has, which exceed the
    transposed input's by output_padding // stride (zeros of the input: nothing flows there)."""
    if len(weight_shape) != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D (in_channels, out_channels/groups, "
                         f"{'kL' if nd == 1 else 'kH, kW'}), got shape {tuple(weight_shape)}")
    if 0 in weight_shape:
        raise ValueError(f"{fn}: weight of shape {tuple(weight_shape)} is empty")
    groups = positive_int(fn, "groups", groups)
    channels = input_shape[1]
    if channels % groups:
        raise ValueError(f"{fn}: in_channels {channels} must be divisible by groups {groups}")
    if weight_shape[0] != channels:
        raise ValueError(f"{fn}: weight of shape {tuple(weight_shape)} expects {weight_shape[0]} input "
                         f"channels (weight.shape[0]), but the input of shape {tuple(input_shape)} has "
                         f"{channels}" + _channel_hint(nd, input_shape, weight_shape[0]))
    out_channels = weight_shape[1] * groups
    if bias_shape is not None and tuple(bias_shape) != (out_channels,):
        raise ValueError(f"{fn}: bias must have shape ({out_channels},), got {tuple(bias_shape)}")
    kernel = tuple(weight_shape[2:])
    stride = sizes(fn, "stride", stride, nd)
    dilation = sizes(fn, "dilation", dilation, nd)
    out_pad = sizes(fn, "output_padding", output_padding, nd, 0)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple, not the name {padding!r}")
    pairs = padding_pairs(fn, padding, nd, kernel, stride, dilation)
    for op, s, d in zip(out_pad, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"{fn}: output_padding {output_padding!r} must be smaller than either "
                             f"stride {stride} or dilation {dilation}")
    out_sizes, conv_sizes = [], []
    for name, size, (before, after), k, s, d, op in zip(DIM_NAMES[nd], input_shape[2:], pairs, kernel,
                                                        stride, dilation, out_pad):
        out = transposed_size(size, k, s, before, after, d, op)
        if out < 1:
            raise ValueError(f"{fn}: output {name} (size - 1) * stride - padding + dilation * (kernel - 1) "
                             f"+ output_padding + 1 = ({size} - 1) * {s} - {before + after} + {d} * "
                             f"({k} - 1) + {op} + 1 = {out} is not positive")
        out_sizes.append(out)
        conv_sizes.append(size + op // s)
    conv_input = (input_shape[0], out_channels, *out_sizes)
    _check_output_size(fn, conv_input)
    geometry = ConvGeometry(*_lift(nd, conv_input, kernel, stride, pairs, dilation),
                            out_channels=channels, groups=groups)
    conv_hw = (1, *conv_sizes) if nd == 1 else tuple(conv_sizes)
    return geometry, conv_hw


def window_geometry(fn: str, input_shape, kernel_size, dilation, padding, stride) -> ConvGeometry:
    """The sliding window of unfold/fold over a batched (N, C, H, W) ``input_shape``."""
    kernel = sizes(fn, "kernel_size", kernel_size, 2)
    dilation = sizes(fn, "dilation", dilation, 2)
    stride = sizes(fn, "stride", stride, 2)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple, not the name {padding!r}")
    pairs = padding_pairs(fn, padding, 2, kernel, stride, dilation)
    _check_fits(fn, 2, input_shape[2:], pairs, kernel, dilation)
    geometry = ConvGeometry(*_lift(2, input_shape, kernel, stride, pairs, dilation))
    _check_output_size(fn, geometry.columns_shape)
    return geometry


def pool_geometry(fn: str, nd: int, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode=False, count_include_pad=True, divisor_override=None) -> PoolGeometry:
    """Check a pooling window as PyTorch does: positive kernel, stride (default: the kernel)
    and dilation, 0 <= padding <= kernel // 2, an output of at least 1 along every axis.
    ``input_shape`` None checks the window alone (a layer's constructor)."""
    kernel = sizes(fn, "kernel_size", kernel_size, nd)
    # PyTorch: stride None (or an empty list) means stride = kernel_size
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and not stride)
    stride = kernel if no_stride else sizes(fn, "stride", stride, nd)
    padding = sizes(fn, "padding", padding, nd, 0)
    dilation = sizes(fn, "dilation", dilation, nd)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{fn}: pad should be at most half of kernel size, got padding={padding!r} "
                         f"and kernel_size={kernel!r}")
    ceil_mode = check_flag(fn, "ceil_mode", ceil_mode)
    count_include_pad = check_flag(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = positive_int(fn, "divisor_override", divisor_override)
    if nd == 1:
        kernel, stride, padding, dilation = (1, *kernel), (1, *stride), (0, *padding), (1, *dilation)
    shape = (1, 1, kernel[0], kernel[1]) if input_shape is None else \
        ((*input_shape[:2], 1, input_shape[2]) if nd == 1 else tuple(input_shape))
    geometry = PoolGeometry(shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                            divisor_override)
    if input_shape is not None and min(geometry.out_height, geometry.out_width) < 1:
        spatial = tuple(input_shape[2:])
        out = (geometry.out_width,) if nd == 1 else (geometry.out_height, geometry.out_width)
        raise ValueError(f"{fn}: input of spatial size {spatial} is too small for "
                         f"kernel_size={kernel[-nd:]}, stride={stride[-nd:]}, padding={padding[-nd:]}, "
                         f"dilation={dilation[-nd:]}: calculated output size {out}")
    return geometry
