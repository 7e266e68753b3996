"""The convolution kernel contract: every backend x strategy x dtype equals the reference.

The kernel interface (docs/ARCHITECTURE.md) is five functions of a checked ConvGeometry.
Each drawn case (non-square images and kernels, strides, paddings per side, dilations,
groups, the 1x1 pointwise shape) runs through every strategy of every compiled backend,
whatever its rule would pick (Winograd on a layer it does not cover runs as channels-last
on Numba, im2col on Cython), with the batch split into 1-3 shares and 1-3 samples stacked
per GEMM, and is compared with ``kernels/reference/conv.py``, the definition. The Cython
backend's plans are strategy names only, so its Winograd kernels are also called with drawn
thread counts and stack sizes (:func:`cython_winograd`).
"""

from __future__ import annotations

from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import assume, given

from tests.kernel_backends import COMPILED, DTYPES, assert_close, compiled, conv_plans, data, reference
from tinygrad_cnn.nn.functional.geometry import ConvGeometry

ref = reference("conv")


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pointwise = draw(st.integers(0, 4)) == 0  # 1x1, stride 1, no padding: the no-im2col path
    if pointwise:
        kh = kw = sh = sw = dh = dw = 1
        padding = (0, 0, 0, 0)
    else:
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    top, bottom, left, right = padding
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - top - bottom), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - left - right), 9))
    n = draw(st.integers(1, 3))
    geometry = ConvGeometry((n, groups * cg, h, w), (kh, kw), (sh, sw), padding, (dh, dw),
                            out_channels=groups * kg, groups=groups)
    return dict(geometry=geometry, dtype=draw(st.sampled_from(DTYPES)), shares=draw(st.integers(1, 3)),
                stacked=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**16)))


def check_conv(backend: str, case: dict, plans=None, kernels=None) -> None:
    """Forward, both backward kernels, im2col and col2im of ``case`` on every plan of ``backend``
    (or of ``kernels``, a module-like object with the same functions)."""
    g, dtype, seed = case["geometry"], case["dtype"], case["seed"]
    kernels = kernels or compiled(backend, "conv")
    x, weight = data(seed, g.input_shape, dtype), data(seed + 1, g.weight_shape, dtype)
    expected = ref.conv2d_forward(x, weight, g)
    grad_y = data(seed + 2, expected.shape, dtype)
    grad_x_ref = ref.conv2d_backward_input(grad_y, weight, g)
    grad_w_ref = ref.conv2d_backward_weight(grad_y, x, g)
    scale = 10.0 * np.sqrt(weight[0].size * max(1, expected[:, 0].size))
    for plan in plans or conv_plans(backend, case["shares"], case["stacked"]):
        assert_close(kernels.conv2d_forward(x, weight, g, plan), expected, dtype, scale)
        assert_close(kernels.conv2d_backward_input(grad_y, weight, g, plan), grad_x_ref, dtype, scale)
        assert_close(kernels.conv2d_backward_weight(grad_y, x, g, plan), grad_w_ref, dtype, scale)
    cols = kernels.im2col(x, g)
    np.testing.assert_array_equal(cols, ref.im2col(x, g))  # pure copies: exact
    back = data(seed + 3, cols.shape, dtype)
    assert_close(kernels.col2im(back, g), ref.col2im(back, g), dtype, scale=10.0)


@pytest.mark.parametrize("backend", COMPILED)
@given(case=conv_cases())
def test_conv_kernels_equal_reference(backend, case):
    check_conv(backend, case)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_tap_left_of_the_whole_output_row(backend, dtype):
    """Found by the thorough profile: with left padding 2 and dilation 2 the first tap of a
    1x3 kernel reads padding for every output of the row (its first valid column is past
    OW); the Cython im2col zeroed past the row, into the next image's columns of the
    whole-batch buffer, and "whole_batch" gave 0.21 where the definition gives 0.31."""
    g = ConvGeometry((2, 1, 1, 3), (1, 3), (1, 1), (0, 0, 2, 0), (1, 2), out_channels=1, groups=1)
    check_conv(backend, dict(geometry=g, dtype=dtype, seed=0, shares=2, stacked=1))


@st.composite
def fully_connected_cases(draw):
    """Layers whose window is the whole input (LeNet-5's C5 shape and others): the batch may
    be empty, the kernel 1x1 on a 1x1 input, the stride anything (one output pixel)."""
    n, c, k = draw(st.integers(0, 5)), draw(st.integers(1, 20)), draw(st.integers(1, 40))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    g = ConvGeometry((n, c, h, w), (h, w), stride, (0, 0, 0, 0), (1, 1), out_channels=k)
    assert g.window_is_the_input and g.output_shape == (n, k, 1, 1)
    return dict(geometry=g, dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)),
                shares=2, stacked=None)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@given(case=fully_connected_cases())
def test_fully_connected_strategy_equals_reference(backend, case):
    """The rule sends these layers to one matrix product (kernels/fully_connected.py)."""
    kernels = compiled(backend, "conv")
    plan = kernels.choose(case["geometry"])
    assert getattr(plan, "strategy", plan) == ("fully_connected" if case["geometry"].out_channels > 1
                                                or backend == "cython" else "direct")
    check_conv(backend, case, [plan])


def test_the_fully_connected_strategy_is_only_for_windows_that_are_the_input():
    """A padded, dilated or grouped window, or one smaller than the input, is no fully
    connected layer; a plan that names the strategy there runs a convolution that is."""
    layers = [((2, 3, 5, 5), (5, 5), (1, 1, 0, 0), (1, 1), 1),   # padded
              ((2, 3, 5, 5), (3, 3), (0, 0, 0, 0), (2, 2), 1),   # dilated to 5x5
              ((2, 4, 5, 5), (5, 5), (0, 0, 0, 0), (1, 1), 2),   # grouped
              ((2, 3, 5, 6), (5, 5), (0, 0, 0, 0), (1, 1), 1)]   # narrower than the input
    for shape, kernel, padding, dilation, groups in layers:
        g = ConvGeometry(shape, kernel, (1, 1), padding, dilation, out_channels=4, groups=groups)
        assert not g.window_is_the_input
        for backend in ("numba", "cython"):
            kernels = compiled(backend, "conv")
            plan = kernels.Plan("fully_connected", 2) if backend == "numba" else "fully_connected"
            check_conv(backend, dict(geometry=g, dtype=np.float64, seed=1, shares=2, stacked=None), [plan])


@st.composite
def winograd_cases(draw):
    """The layers Numba's Winograd covers: 3x3, stride 1, no dilation, one group, padding 0-2."""
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    top, bottom, left, right = padding
    h = draw(st.integers(max(1, 3 - top - bottom), 9))
    w = draw(st.integers(max(1, 3 - left - right), 9))
    c, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    geometry = ConvGeometry((n, c, h, w), (3, 3), (1, 1), padding, (1, 1), out_channels=k, groups=1)
    return dict(geometry=geometry, dtype=draw(st.sampled_from(DTYPES)), shares=draw(st.integers(1, 3)),
                stacked=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**16)))


def cython_winograd(threads: int, stacked: int):
    """The Cython backend's Winograd kernels on ``threads`` OpenMP threads (at most one per
    sample) with ``stacked`` samples per GEMM, in the kernel interface (the plan is ignored)."""
    conv = compiled("cython", "conv")
    winograd, fallback = conv.winograd, conv._PerImage
    return SimpleNamespace(
        conv2d_forward=lambda x, w, g, plan: winograd.forward(x, w, g, fallback, threads, stacked),
        conv2d_backward_input=lambda gy, w, g, plan: winograd.backward_input(gy, w, g, fallback, threads,
                                                                             stacked),
        conv2d_backward_weight=lambda gy, x, g, plan: winograd.backward_weight(gy, x, g, fallback, threads,
                                                                               stacked),
        im2col=conv.im2col, col2im=conv.col2im)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@given(case=winograd_cases())
def test_winograd_on_the_layers_it_covers(backend, case):
    if backend == "numba":
        plan = compiled("numba", "conv").Plan("winograd", case["shares"], case["stacked"])
        check_conv("numba", case, [plan])
    else:  # through the backend's interface (its threads, its stack size), then drawn ones
        check_conv("cython", case, ["winograd"])
        check_conv("cython", case, ["winograd"], cython_winograd(case["shares"], case["stacked"]))


@pytest.mark.parametrize("strategy", ["winograd", "channels_last", "im2col"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_counts_past_the_kernels_blocks(strategy, dtype):
    """Channel counts that end in partial blocks of the 8x8 transposes, the 16-filter weight
    transform blocks and the 8-channel padding copy (17 in, 33 out; 16+ filters also take the
    im2col weight gradient's transposed GEMM), odd sizes, asymmetric padding and a batch
    split into uneven shares with a partial stacked chunk."""
    g = ConvGeometry((7, 17, 7, 9), (3, 3), (1, 1), (2, 0, 1, 2), (1, 1), out_channels=33, groups=1)
    plan = compiled("numba", "conv").Plan(strategy, 3, 2)
    check_conv("numba", dict(geometry=g, dtype=dtype, seed=5), [plan])


CYTHON_WINOGRAD_LAYERS = [  # (input shape, padding, out_channels, threads, stacked)
    # 17 in, 33 out: partial 16-channel blocks of the NCHW <-> channels-last copies; 3 uneven
    # shares (2, 2, 3 samples) of 2-sample stacks, the last one partial; odd sizes
    ((7, 17, 7, 9), (2, 0, 1, 2), 33, 3, 2),
    # the backend's own threads and stack size: 16x15 outputs are 64 tiles, 2 samples a stack
    # up to 64 channels, so 5 samples on 2 threads are stacks of 2 and 1, then 2 and 1
    ((5, 3, 16, 15), (1, 1, 1, 1), 4, None, None),
    # 2x2 outputs (1 tile): the whole share in one stack; one sample, more threads than samples
    ((1, 40, 4, 4), (0, 0, 0, 0), 36, 4, None),
    ((3, 33, 2, 3), (2, 2, 1, 2), 65, None, None),
]


@pytest.mark.parametrize("layer", CYTHON_WINOGRAD_LAYERS, ids=lambda layer: "x".join(map(str, layer[0])))
@pytest.mark.parametrize("dtype", DTYPES)
def test_cython_winograd_shares_and_stacks(layer, dtype):
    shape, padding, k, threads, stacked = layer
    g = ConvGeometry(shape, (3, 3), (1, 1), padding, (1, 1), out_channels=k, groups=1)
    check_conv("cython", dict(geometry=g, dtype=dtype, seed=sum(shape)), ["winograd"],
               cython_winograd(threads, stacked))


@pytest.mark.parametrize("backend", COMPILED)
def test_grouped_conv_with_many_filters_per_group(backend):
    """Two groups of 17 filters, strided and dilated: the per-group GEMMs of every strategy."""
    g = ConvGeometry((5, 6, 11, 10), (3, 2), (2, 1), (1, 0, 2, 1), (1, 2), out_channels=34, groups=2)
    check_conv(backend, dict(geometry=g, dtype=np.float64, seed=9, shares=2, stacked=3))


@pytest.mark.parametrize("backend", COMPILED)
def test_im2col_non_square_layout(backend):
    """Rows are (c, kh, kw) with KH != KW: a classic bug uses KH for both kernel axes."""
    g = ConvGeometry((1, 2, 4, 5), (2, 3), (1, 1), (0, 1, 1, 0), (1, 1))
    x = np.arange(40, dtype=np.float64).reshape(g.input_shape)
    np.testing.assert_array_equal(compiled(backend, "conv").im2col(x, g), ref.im2col(x, g))


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_keeps_infinities_as_the_other_strategies_do(backend, dtype):
    """Inf - Inf in the Winograd transforms would give NaN where the direct sum gives +-Inf:
    such inputs run on another strategy (channels-last on Numba, im2col on Cython), in the
    forward and both gradients, whether the Inf is in x, the weight or grad_y."""
    kernels = compiled(backend, "conv")
    other, winograd = ((kernels.Plan("channels_last"), kernels.Plan("winograd")) if backend == "numba"
                       else ("im2col", "winograd"))
    g = ConvGeometry((2, 32, 6, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), out_channels=32)
    x, weight = data(0, g.input_shape, dtype), np.abs(data(1, g.weight_shape, dtype))
    grad_y = np.abs(data(2, g.output_shape, dtype))
    x[0, 3, 2, 2] = np.inf
    expected = kernels.conv2d_forward(x, weight, g, other)
    got = kernels.conv2d_forward(x, weight, g, winograd)
    assert np.isinf(expected).sum() > 0 and not np.isnan(expected).any()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    assert not np.isnan(got).any()
    weight_inf, grad_y_inf = weight.copy(), grad_y.copy()
    weight_inf[1, 2, 0, 1] = np.inf
    grad_y_inf[1, 5, 3, 3] = np.inf
    for kernel, args in [(kernels.conv2d_backward_weight, (grad_y, x)),            # Inf in x
                         (kernels.conv2d_backward_input, (grad_y, weight_inf)),     # in the weight
                         (kernels.conv2d_backward_input, (grad_y_inf, weight)),     # in grad_y
                         (kernels.conv2d_backward_weight, (grad_y_inf, np.abs(x)))]:
        expected, got = kernel(*args, g, other), kernel(*args, g, winograd)
        assert np.isinf(expected).any() and not np.isnan(expected).any()
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
        assert not np.isnan(got).any()


SIMD_LAYERS = [  # (input shape, kernel, stride, padding, dilation, out_channels): K a multiple of 16
    ((3, 16, 12, 11), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),
    ((2, 17, 9, 10), (3, 3), (1, 1), (2, 0, 1, 2), (1, 1), 32),   # C not a multiple of the blocks
    ((2, 32, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 64),    # the 4x4 register block
    ((3, 16, 13, 13), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 32),  # strided: backward on the fallback
    ((2, 16, 14, 12), (3, 2), (1, 1), (2, 2, 1, 1), (2, 2), 16),  # dilated, non-square
    ((2, 3, 10, 10), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 16),   # 3 input channels (a first layer)
    ((4, 16, 5, 7), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 16),    # 1x1
    # one vector of output channels: rows of 8-16 pixels, the length that pads OW least
    ((3, 6, 14, 14), (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 16),   # LeNet-5's 6 -> 16: 10-pixel rows
    ((2, 6, 16, 16), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 16),   # 14-pixel rows
    ((2, 5, 17, 17), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 16),   # 15: one block of 16
    # the pixel-vector layout (stride 1, output rows of a vector or more), any K:
    ((2, 16, 32, 32), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),  # two vectors a row, 8-channel blocks
    ((3, 32, 16, 16), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 32),  # one vector a row, 16-channel blocks
    ((2, 8, 18, 20), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 12),   # a partial last vector, 4-channel blocks
    ((2, 5, 33, 35), (3, 2), (1, 1), (2, 0, 1, 3), (2, 2), 6),    # dilated, asymmetric, K % 4 != 0
    ((3, 1, 28, 28), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 6),    # LeNet-5's first layer
    # the 3x3 blocks of 8 channels x two output vectors (AVX-512), paired along the rows:
    ((2, 8, 15, 16), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),    # an odd row count: the last alone
    ((1, 8, 7, 40), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 24),    # pairs across rows, a partial vector
    ((2, 16, 20, 20), (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 16),  # dilated 3x3
]


@st.composite
def pixel_layers(draw):
    """Layers of the SIMD loops' pixel layout (stride 1, output rows of 16 or more): channels
    mostly multiples of 8 (the 3x3 blocks of 8 channels x two vectors, paired along a row or
    across rows) and sometimes not, odd and even row counts, partial last vectors."""
    def channels():
        return draw(st.sampled_from([8, 16, 24, 32])) if draw(st.booleans()) else draw(st.integers(1, 20))
    c, k = channels(), channels()
    kh, kw = (3, 3) if draw(st.integers(0, 3)) else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    out_h, out_w = draw(st.integers(1, 7)), draw(st.integers(16, 50))
    h = out_h + dh * (kh - 1) - padding[0] - padding[1]
    w = out_w + dw * (kw - 1) - padding[2] - padding[3]
    assume(h >= 1 and w >= 1)
    g = ConvGeometry((draw(st.integers(1, 4)), c, h, w), (kh, kw), (1, 1), padding, (dh, dw), out_channels=k)
    return dict(geometry=g, dtype=np.float32, shares=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**16)))


@st.composite
def channel_layers(draw):
    """Layers of the SIMD loops' channel-vector layout (output channels a multiple of the
    vector width; strided, or rows shorter than a vector): one to four vectors of output
    channels (the 8-16-pixel row blocks of one vector, 8x2, 4x4), any input channels, rows
    of 1-40 pixels, strides, dilations, asymmetric padding."""
    vec = draw(st.sampled_from([8, 16]))
    k = vec * draw(st.sampled_from([1, 1, 2, 4]))
    c = draw(st.integers(1, 20))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    out_h, out_w = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    h = (out_h - 1) * sh + dh * (kh - 1) + 1 - padding[0] - padding[1]
    w = (out_w - 1) * sw + dw * (kw - 1) + 1 - padding[2] - padding[3]
    assume(h >= 1 and w >= 1)
    g = ConvGeometry((draw(st.integers(1, 4)), c, h, w), (kh, kw), (sh, sw), padding, (dh, dw),
                     out_channels=k)
    return dict(geometry=g, dtype=np.float32, shares=draw(st.integers(1, 3)),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("backend", ["numba", "cython"])
@given(case=channel_layers())
def test_simd_channel_layout_equals_reference(backend, case):
    """The channel-vector layout's forward blocks and weight gradient on drawn layers."""
    simd = pytest.importorskip("tinygrad_cnn.kernels.simd.conv")
    if not simd.available():
        pytest.skip("the SIMD extension was not built")
    assume(simd.layout(case["geometry"]) == "channels")  # K a multiple of this machine's vector
    kernels = compiled(backend, "conv")
    plans = [kernels.Plan("simd", case["shares"])] if backend == "numba" else ["simd"]
    check_conv(backend, case, plans)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@given(case=pixel_layers())
def test_simd_pixel_layout_equals_reference(backend, case):
    """The pixel layout's loops (and the 3x3 blocks where AVX-512 has them) on drawn layers."""
    simd = pytest.importorskip("tinygrad_cnn.kernels.simd.conv")
    if not simd.available():
        pytest.skip("the SIMD extension was not built")
    assert simd.layout(case["geometry"]) == "pixels"
    kernels = compiled(backend, "conv")
    plans = [kernels.Plan("simd", case["shares"])] if backend == "numba" else ["simd"]
    check_conv(backend, case, plans)


@pytest.mark.parametrize("backend", ["numba", "cython"])  # the CPU backends that offer it
@pytest.mark.parametrize("layer", SIMD_LAYERS, ids=lambda layer: "x".join(map(str, layer[0])))
def test_simd_strategy_on_the_layers_it_covers(backend, layer):
    """The direct SIMD loops (kernels/simd) on float32 layers with 16k output channels, every
    register block (8x1, 8x2, 4x4), shares of 1-3 samples; float64 runs on the fallback."""
    simd = pytest.importorskip("tinygrad_cnn.kernels.simd.conv")
    if not simd.available():
        pytest.skip("the SIMD extension was not built")
    shape, kernel, stride, padding, dilation, k = layer
    g = ConvGeometry(shape, kernel, stride, padding, dilation, out_channels=k)
    assert simd.applies(g)
    assert simd.layout(g) == ("pixels" if g.stride == (1, 1) and g.out_width >= simd.vector_width()
                              else "channels")
    kernels = compiled(backend, "conv")
    plans = [kernels.Plan("simd", shares) for shares in (1, 2, 3)] if backend == "numba" else ["simd"]
    for dtype in DTYPES:
        check_conv(backend, dict(geometry=g, dtype=dtype, seed=sum(shape)), plans)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("shape", [(2, 16, 16, 32), (2, 16, 9, 20)], ids=["full-vectors", "partial-vector"])
def test_simd_weight_gradient_keeps_an_infinity_of_x_where_it_belongs(backend, shape):
    """The pixel loops multiply the lanes past a row's end by grad_y = 0; an Inf of x that a
    lane past the end reads must not turn into NaN (the partial-vector layer then runs on
    the fallback: this checks that it does), and with rows of whole vectors, which the loops
    run whatever x holds, an Inf of x gives the +Inf sums of the direct sum (x and grad_y
    positive), and no NaN."""
    simd = pytest.importorskip("tinygrad_cnn.kernels.simd.conv")
    if not simd.available():
        pytest.skip("the SIMD extension was not built")
    kernels = compiled(backend, "conv")
    other, plan = ((kernels.Plan("channels_last"), kernels.Plan("simd", 2)) if backend == "numba"
                   else ("im2col", "simd"))
    g = ConvGeometry(shape, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), out_channels=16)
    assert simd.layout(g) == "pixels"
    x = np.abs(data(0, g.input_shape, np.float32))
    grad_y = np.abs(data(1, g.output_shape, np.float32))
    x[1, 3, 4, g.input_shape[3] - 1] = np.inf  # the last column: read past the row by the lanes
    expected = kernels.conv2d_backward_weight(grad_y, x, g, other)
    got = kernels.conv2d_backward_weight(grad_y, x, g, plan)
    assert np.isinf(expected).any()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
