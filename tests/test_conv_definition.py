"""conv1d/conv2d equal the summation formula, written here with plain loops.

    y[b, k, i, j] = bias[k] + sum_{c in group(k)} sum_{m, n}
                    xpad[b, c, s_h i + d_h m, s_w j + d_w n] w[k, c, m, n]

The oracle below never calls library code. Hypothesis draws non-square images and
kernels, strides, dilations, every padding form (int, per-dim, per-side pairs, the names
'valid'/'same'/'full'), groups, batch and channel counts, float32 and float64. Output
shapes must follow the theory formula and invalid arguments must raise a ValueError
naming the offending values. The raw kernels (im2col/col2im and the backward kernels)
are checked against the same definitions.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinygrad_cnn.kernels import kernel_module

import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES
from tinygrad_cnn import Tensor, theory
from tinygrad_cnn.nn.functional.geometry import ConvGeometry


# ----------------------------------------------------------------------------- oracle
def conv2d_loops(x, w, bias, stride, pads, dilation, groups):
    """The definition, one output element at a time. pads = ((top, bottom), (left, right))."""
    n_batch, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = w.shape
    (top, bottom), (left, right) = pads
    padded = np.zeros((n_batch, channels, height + top + bottom, width + left + right))
    padded[:, :, top : top + height, left : left + width] = x
    sh, sw = stride
    dh, dw = dilation
    oh = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    per_group = out_channels // groups
    y = np.zeros((n_batch, out_channels, oh, ow))
    for b in range(n_batch):
        for k in range(out_channels):
            first = (k // per_group) * group_channels
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if bias is None else float(bias[k])
                    for c in range(group_channels):
                        for m in range(kh):
                            for n in range(kw):
                                pixel = padded[b, first + c, sh * i + dh * m, sw * j + dw * n]
                                total += pixel * w[k, c, m, n]
                    y[b, k, i, j] = total
    return y


def resolve_padding(spec, kernel, dilation):
    """Per-dim (before, after) pairs for each padding form, from the documented rules."""
    if spec == "valid":
        return tuple((0, 0) for _ in kernel)
    if spec == "full":
        return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
    if spec == "same":  # PyTorch: the odd pixel after (right/bottom)
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    if isinstance(spec, int):
        return tuple((spec, spec) for _ in kernel)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in spec)


def tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------- strategies
@st.composite
def conv_configs(draw, nd=2, names=True, max_size=7):
    """One convolution: shapes, stride, dilation, padding (in one of its forms) and groups."""
    groups = draw(st.integers(1, 3))
    config = dict(
        batch=draw(st.integers(1, 2)), groups=groups,
        in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 2)),
        kernel=tuple(draw(st.integers(1, 3)) for _ in range(nd)),
        stride=tuple(draw(st.integers(1, 3)) for _ in range(nd)),
        dilation=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
        dtype=draw(DTYPES),
    )
    forms = ["int", "per_dim", "per_side"] + (["valid", "full"] if names else [])
    if names and all(s == 1 for s in config["stride"]):
        forms.append("same")
    form = draw(st.sampled_from(forms))
    if form == "int":
        spec = draw(st.integers(0, 2))
    elif form == "per_dim":
        spec = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    elif form == "per_side":
        spec = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    else:
        spec = form
    pads = resolve_padding(spec, config["kernel"], config["dilation"])
    sizes = []
    for k, d, (before, after) in zip(config["kernel"], config["dilation"], pads):
        smallest = max(1, d * (k - 1) + 1 - before - after)
        sizes.append(draw(st.integers(smallest, max(smallest, max_size))))
    config.update(padding=spec, pads=pads, size=tuple(sizes))
    return config


def arrays_for(config, seed_data, nd=2):
    rng = np.random.default_rng(seed_data)
    dtype = config["dtype"]
    x = rng.uniform(-2, 2, (config["batch"], config["in_channels"], *config["size"])).astype(dtype)
    w = rng.uniform(-2, 2, (config["out_channels"], config["in_channels"] // config["groups"],
                            *config["kernel"])).astype(dtype)
    b = rng.uniform(-2, 2, config["out_channels"]).astype(dtype)
    return x, w, b


# ----------------------------------------------------------------------------- tests
@given(config=conv_configs(), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_conv2d_equals_summation_formula(config, seed, with_bias, device):
    x, w, b = arrays_for(config, seed)
    y = F.conv2d(Tensor(x, device=device), Tensor(w, device=device),
                 Tensor(b, device=device) if with_bias else None, stride=config["stride"],
                 padding=config["padding"], dilation=config["dilation"], groups=config["groups"])
    expected = conv2d_loops(x.astype(np.float64), w.astype(np.float64), b if with_bias else None,
                            config["stride"], config["pads"], config["dilation"], config["groups"])
    assert y.dtype == config["dtype"]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, **tolerance(config["dtype"]))


@given(config=conv_configs(nd=1), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_conv1d_equals_summation_formula(config, seed, with_bias, device):
    x, w, b = arrays_for(config, seed, nd=1)
    stride, dilation = config["stride"][0], config["dilation"][0]
    y = F.conv1d(Tensor(x, device=device), Tensor(w, device=device),
                 Tensor(b, device=device) if with_bias else None, stride=stride,
                 padding=config["padding"], dilation=dilation, groups=config["groups"])
    # a signal is a one-row image; the oracle is the 2-D loop with height 1
    expected = conv2d_loops(x[:, :, None].astype(np.float64), w[:, :, None].astype(np.float64),
                            b if with_bias else None, (1, stride), ((0, 0), config["pads"][0]),
                            (1, dilation), config["groups"])[:, :, 0]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, **tolerance(config["dtype"]))


@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_unbatched_input_is_a_batch_of_one(config, seed):
    x, w, b = arrays_for(config, seed)
    options = dict(stride=config["stride"], padding=config["padding"], dilation=config["dilation"],
                   groups=config["groups"])
    single = F.conv2d(Tensor(x[0]), Tensor(w), Tensor(b), **options)
    batch = F.conv2d(Tensor(x[:1]), Tensor(w), Tensor(b), **options)
    np.testing.assert_array_equal(single.numpy(), batch.numpy()[0])


@given(config=conv_configs())
def test_output_shape_equals_theory_formula(config):
    x, w, _ = arrays_for(config, 0)
    y = F.conv2d(Tensor(x), Tensor(w), stride=config["stride"], padding=config["padding"],
                 dilation=config["dilation"], groups=config["groups"])
    dims = zip(config["size"], config["kernel"], config["stride"], config["pads"], config["dilation"])
    expected = tuple(theory.conv_output_size(n, k, s, pair, d) for n, k, s, pair, d in dims)
    assert y.shape == (config["batch"], config["out_channels"], *expected)
    if config["padding"] == "same":
        assert y.shape[2:] == config["size"]


def test_same_padding_puts_the_odd_pixel_bottom_right():
    # kernel 2: total padding 1, all of it after; the output at (i, j) reads x[i:i+2, j:j+2]
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    w = np.ones((1, 1, 2, 2))
    y = F.conv2d(Tensor(x), Tensor(w), padding="same").numpy()[0, 0]
    assert y[0, 0] == x[0, 0, :2, :2].sum()
    assert y[-1, -1] == x[0, 0, -1, -1]  # only the last pixel: the zeros are below and right


# ----------------------------------------------------------------------- invalid input
X = Tensor(np.zeros((1, 4, 5, 6)))
W = Tensor(np.zeros((2, 4, 3, 3)))


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(X, W, stride=0), r"stride must be positive, got 0"),
    (lambda: F.conv2d(X, W, stride=(1, -2)), r"stride must be positive, got \(1, -2\)"),
    (lambda: F.conv2d(X, W, dilation=0), r"dilation must be positive, got 0"),
    (lambda: F.conv2d(X, W, padding=-1), r"padding must be non-negative, got \(-1, -1\)|got -1"),
    (lambda: F.conv2d(X, W, padding=((1, -1), 0)), r"non-negative.*-1"),
    (lambda: F.conv2d(X, W, padding="half"), r"padding 'half' is not one of"),
    (lambda: F.conv2d(X, W, padding="same", stride=2), r"'same' needs stride 1.*\(2, 2\)"),
    (lambda: F.conv2d(X, Tensor(np.zeros((2, 4, 7, 3)))), r"kernel size 7.*padded input height 5"),
    (lambda: F.conv2d(X, W, dilation=3), r"kernel size 3 \(dilation 3, spans 7\).*height 5"),
    (lambda: F.conv2d(X, Tensor(np.zeros((3, 2, 3, 3))), groups=2), r"out_channels 3.*groups 2"),
    (lambda: F.conv2d(X, Tensor(np.zeros((2, 4, 3, 3))), groups=3), r"in_channels 4.*groups 3"),
    (lambda: F.conv2d(X, Tensor(np.zeros((2, 3, 3, 3)))), r"expects 3 input channels.*has 4"),
    (lambda: F.conv2d(X, Tensor(np.zeros((2, 4, 3)))), r"weight must be 4-D.*\(2, 4, 3\)"),
    (lambda: F.conv2d(X, Tensor(np.zeros((2, 4, 3, 3, 1)))), r"weight must be 4-D"),
    (lambda: F.conv2d(Tensor(np.zeros((5, 6))), W), r"input must be 4-D.*\(5, 6\)"),
    (lambda: F.conv2d(X, W, Tensor(np.zeros(3))), r"bias must have shape \(2,\), got \(3,\)"),
    (lambda: F.conv2d(X, W, groups=0), r"groups must be a positive int, got 0"),
    (lambda: F.conv2d(X, W, stride=(1, 2, 3)), r"stride must be an int or a tuple of 2 ints"),
    (lambda: F.conv1d(Tensor(np.zeros((1, 2, 5))), Tensor(np.zeros((1, 2, 6)))), r"kernel size 6.*length 5"),
    (lambda: F.conv1d(Tensor(np.zeros((1, 2, 5))), Tensor(np.zeros((1, 2, 2))), padding=(1, 2)),
     r"tuple of 1 entries"),
])
def test_invalid_arguments_raise_value_error_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="input must be a Tensor, got ndarray"):
        F.conv2d(np.zeros((1, 4, 5, 6)), W)
    with pytest.raises(TypeError, match="input float32, weight float64"):
        F.conv2d(Tensor(np.zeros((1, 4, 5, 6), dtype=np.float32)), W)


@given(config=conv_configs(names=False), extra=st.integers(1, 3))
def test_kernel_larger_than_padded_input_is_rejected(config, extra):
    # make the kernel just longer than the padded height allows
    (before, after), d = config["pads"][0], config["dilation"][0]
    height = config["size"][0]
    k = (height + before + after - 1) // d + 1 + extra  # d (k - 1) + 1 > padded height
    weight = Tensor(np.zeros((config["out_channels"], config["in_channels"] // config["groups"], k,
                              config["kernel"][1])))
    with pytest.raises(ValueError, match=rf"kernel size {k} .*padded input height {height + before + after}"):
        F.conv2d(Tensor(np.zeros((1, config["in_channels"], *config["size"]))), weight,
                 padding=config["padding"], dilation=config["dilation"], groups=config["groups"])


# --------------------------------------------------------------------- the raw kernels
def _kernel_args(config):
    (top, bottom), (left, right) = config["pads"]
    return config["stride"], (top, bottom, left, right), config["dilation"]


def _geometry(config, x, w) -> ConvGeometry:
    """The checked geometry the kernels take (built directly: these tests feed the kernels)."""
    stride, pads, dilation = _kernel_args(config)
    return ConvGeometry(x.shape, tuple(config["kernel"]), tuple(stride), pads, tuple(dilation),
                        out_channels=w.shape[0], groups=config["groups"])


@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_im2col_copies_every_receptive_field(config, seed):
    x, w, _ = arrays_for(config, seed)
    stride, pads, dilation = _kernel_args(config)
    kernels = kernel_module("conv")
    geometry = _geometry(config, x, w)
    cols = kernels.im2col(x, geometry)
    (top, _), (left, _) = config["pads"]
    kh, kw = config["kernel"]
    n_batch, channels, height, width = x.shape
    oh = (height + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    assert cols.shape == (n_batch, channels * kh * kw, oh * ow) and cols.dtype == x.dtype
    for c in range(channels):
        for m in range(kh):
            for n in range(kw):
                for i in range(oh):
                    for j in range(ow):
                        p, q = stride[0] * i + dilation[0] * m - top, stride[1] * j + dilation[1] * n - left
                        inside = 0 <= p < height and 0 <= q < width
                        expected = x[:, c, p, q] if inside else 0.0
                        np.testing.assert_array_equal(cols[:, (c * kh + m) * kw + n, i * ow + j], expected)
    # col2im is its adjoint: <im2col(x), c> = <x, col2im(c)>
    other = np.random.default_rng(seed + 1).standard_normal(cols.shape).astype(x.dtype)
    back = kernels.col2im(other, geometry)
    np.testing.assert_allclose((cols * other).sum(), (x * back).sum(), rtol=1e-4, atol=1e-3)
    # and conv2d_forward is the weight matrix times the columns (groups = 1 slice of the weight)
    if config["groups"] == 1:
        y = kernels.conv2d_forward(x, w, geometry)
        via_cols = np.einsum("kj,njl->nkl", w.reshape(w.shape[0], -1), cols).reshape(y.shape)
        np.testing.assert_allclose(y, via_cols, **tolerance(config["dtype"]))


@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_backward_kernels_are_the_adjoint_and_the_weight_derivative(config, seed):
    """<conv(x), g> = <x, backward_input(g)> and d<conv(x, w), g>/dw = backward_weight(g, x):
    both follow from conv being linear in x and in w; checked in float64 against the loops."""
    x, w, _ = arrays_for(config, seed)
    x, w = x.astype(np.float64), w.astype(np.float64)
    kernels = kernel_module("conv")
    geometry = _geometry(config, x, w)
    y = kernels.conv2d_forward(x, w, geometry)
    g = np.random.default_rng(seed + 2).standard_normal(y.shape)
    gx = kernels.conv2d_backward_input(g, w, geometry)
    gw = kernels.conv2d_backward_weight(g, x, geometry)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose((y * g).sum(), (x * gx).sum(), rtol=1e-10, atol=1e-10)
    # the weight gradient entry by entry: conv is linear in w, so dL/dw[e] = <conv(x, e_unit), g>
    for index in np.ndindex(*w.shape):
        unit = np.zeros_like(w)
        unit[index] = 1.0
        y_unit = conv2d_loops(x, unit, None, config["stride"], config["pads"], config["dilation"],
                              config["groups"])
        np.testing.assert_allclose(gw[index], (y_unit * g).sum(), rtol=1e-9, atol=1e-9)
