"""Every convolution variant's gradients (input, weight, bias) pass the finite-difference check.

gradcheck compares autograd with central differences entry by entry, in float64, on small
inputs drawn with every stride/padding/dilation/groups combination.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tests.test_conv_definition import arrays_for, conv_configs
from tinygrad_cnn import Tensor, nn
from tinygrad_cnn.testing import gradcheck

small = conv_configs(max_size=5)


def leaf(array, device="cpu"):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


@given(config=small, seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_conv2d_gradients(config, seed, with_bias, device):
    x, w, b = (leaf(a, device) for a in arrays_for(config, seed))
    options = dict(stride=config["stride"], padding=config["padding"], dilation=config["dilation"],
                   groups=config["groups"])
    if with_bias:
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, **options), [x, w, b])
    else:
        gradcheck(lambda x, w: F.conv2d(x, w, **options), [x, w])


@given(config=conv_configs(nd=1), seed=st.integers(0, 2**16))
def test_conv1d_gradients(config, seed):
    x, w, b = (leaf(a) for a in arrays_for(config, seed))
    options = dict(stride=config["stride"], padding=config["padding"], dilation=config["dilation"],
                   groups=config["groups"])
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, **options), [x, w, b])


def transposed_case(config, seed, extra):
    """conv_transpose's input shaped like the conv output, a weight, a bias, and options that map
    back onto the conv input's size (+1 along a dim where output_padding may still grow)."""
    _, w, _ = arrays_for(config, seed)
    rng = np.random.default_rng(seed)
    sizes, out_pad = [], []
    for n, (before, after), k, s, d in zip(config["size"], config["pads"], config["kernel"], config["stride"],
                                           config["dilation"]):
        span = n + before + after - d * (k - 1) - 1
        sizes.append(span // s + 1)
        out_pad.append(span % s + extra if span % s + extra < max(s, d) else span % s)
    y = rng.uniform(-1, 1, (config["batch"], config["out_channels"], *sizes))
    # the conv weight (out, in/groups, k...) read as a transposed-conv weight (C_in, C_out/groups, k...)
    bias = rng.uniform(-1, 1, config["in_channels"])
    return y, w, bias, tuple(out_pad)


@given(config=small, seed=st.integers(0, 2**16), extra=st.integers(0, 1))
def test_conv_transpose2d_gradients(config, seed, extra, device):
    y, w, bias, out_pad = transposed_case(config, seed, extra)
    options = dict(stride=config["stride"], padding=tuple(config["pads"]), output_padding=out_pad,
                   groups=config["groups"], dilation=config["dilation"])
    gradcheck(lambda y, w, b: F.conv_transpose2d(y, w, b, **options),
              [leaf(y, device), leaf(w, device), leaf(bias, device)])


@given(config=conv_configs(nd=1, names=False, max_size=5), seed=st.integers(0, 2**16),
       extra=st.integers(0, 1))
def test_conv_transpose1d_gradients(config, seed, extra):
    y, w, bias, out_pad = transposed_case(config, seed, extra)
    options = dict(stride=config["stride"][0], padding=tuple(config["pads"]), output_padding=out_pad[0],
                   groups=config["groups"], dilation=config["dilation"][0])
    gradcheck(lambda y, w, b: F.conv_transpose1d(y, w, b, **options), [leaf(y), leaf(w), leaf(bias)])


@st.composite
def signal_case(draw):
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    batch = draw(st.sampled_from([(), (2,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.uniform(-1, 1, (*batch, h, w)), rng.uniform(-1, 1, (kh, kw)), draw(
        st.sampled_from(["full", "same", "valid"]))


@given(case=signal_case())
def test_convolve_and_correlate_gradients(case):
    x, k, mode = case
    gradcheck(lambda x, k: F.convolve2d(x, k, mode), [leaf(x), leaf(k)])
    gradcheck(lambda x, k: F.correlate2d(x, k, mode), [leaf(x), leaf(k)])
    gradcheck(lambda x, k: F.convolve1d(x, k, mode), [leaf(x[..., 0, :]), leaf(k[0])])
    gradcheck(lambda x, k: F.correlate1d(x, k, mode), [leaf(x[..., 0, :]), leaf(k[0])])


@given(h=st.integers(1, 5), w=st.integers(1, 5), c=st.integers(1, 2), k=st.integers(1, 2),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16), data=st.data())
def test_locally_connected_gradients(h, w, c, k, stride, seed, data):
    kh, kw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    rng = np.random.default_rng(seed)
    inputs = [leaf(rng.uniform(-1, 1, shape)) for shape in
              [(2, c, h, w), (oh, ow, k, c, kh, kw), (k, oh, ow)]]
    gradcheck(lambda x, wt, b: F.locally_connected2d(x, wt, b, stride), inputs)


@given(config=small, seed=st.integers(0, 2**16))
def test_unfold_and_fold_gradients(config, seed, device):
    x, _, _ = arrays_for(config, seed)
    options = dict(kernel_size=config["kernel"], dilation=config["dilation"], padding=tuple(config["pads"]),
                   stride=config["stride"])
    gradcheck(lambda x: F.unfold(x, **options), [leaf(x, device)])
    cols = F.unfold(Tensor(x.astype(np.float64), device=device), **options).numpy()
    gradcheck(lambda c: F.fold(c, config["size"], **options), [leaf(cols, device)])


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(2, 2, (2, 3), padding="same", padding_mode="reflect", dtype="float64"),
    lambda: nn.Conv2d(2, 4, 3, padding=1, padding_mode="replicate", groups=2, dtype="float64"),
    lambda: nn.Conv2d(2, 3, 3, padding="full", padding_mode="circular", stride=2, dtype="float64"),
    lambda: nn.Conv1d(2, 3, 2, padding="same", padding_mode="circular", dtype="float64"),
    lambda: nn.DepthwiseConv2d(2, 3, padding=1, depth_multiplier=2, dtype="float64"),
    lambda: nn.SeparableConv2d(2, 3, 2, padding="same", dtype="float64"),
    lambda: nn.ConvTranspose2d(2, 2, 2, stride=2, output_padding=1, dtype="float64"),
    lambda: nn.LocallyConnected2d(2, 2, (4, 3), 2, dtype="float64"),
])
def test_layer_parameter_gradients(make, device):
    tc.manual_seed(0)
    layer = make().to(device)
    x = leaf(np.random.default_rng(0).uniform(-1, 1, (2, 2, 4, 3) if "1d" not in type(layer).__name__
                                             else (2, 2, 5)), device)
    # gradcheck perturbs the Parameters in place, so the layer itself is the function
    gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])
