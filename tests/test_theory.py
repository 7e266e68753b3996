"""Convolution arithmetic: output sizes against brute force, receptive fields, counts."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn, theory


@given(size=st.integers(1, 12), kernel=st.integers(1, 5), stride=st.integers(1, 4), before=st.integers(0, 3),
       after=st.integers(0, 3), dilation=st.integers(1, 3))
def test_conv_output_size_counts_the_window_positions(size, kernel, stride, before, after, dilation):
    """Brute force: a window starting at padded position t fits when t + d (k - 1) < padded size."""
    span = dilation * (kernel - 1)
    padded = size + before + after
    positions = [t for t in range(0, padded, stride) if t + span < padded]
    if not positions:
        with pytest.raises(ValueError, match=rf"kernel_size {kernel} with dilation {dilation} spans"):
            theory.conv_output_size(size, kernel, stride, (before, after), dilation)
        return
    assert theory.conv_output_size(size, kernel, stride, (before, after), dilation) == len(positions)
    if before == after:
        assert theory.conv_output_size(size, kernel, stride, before, dilation) == len(positions)


@given(size=st.integers(1, 12), kernel=st.integers(1, 5), stride=st.integers(1, 4), padding=st.integers(0, 2),
       dilation=st.integers(1, 2), ceil_mode=st.booleans())
def test_pool_output_size_follows_pytorch_rule(size, kernel, stride, padding, dilation, ceil_mode):
    """Windows start every `stride` along the padded input. Floor mode counts the windows that fit;
    ceil mode adds one partial window when elements are left uncovered at the end, unless that
    window would start in the right padding."""
    if padding > kernel // 2 or size + 2 * padding < dilation * (kernel - 1) + 1:
        with pytest.raises(ValueError):
            theory.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
        return
    span, padded = dilation * (kernel - 1), size + 2 * padding
    starts = [t for t in range(0, padded, stride) if t + span <= padded - 1]
    count = len(starts)
    leftover = padded - 1 - (starts[-1] + span)
    if ceil_mode and leftover > 0 and starts[-1] + stride < size + padding:
        count += 1
    assert theory.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode) == count


@pytest.mark.parametrize("args, expected", [
    ((5, 2, 2, 0, 1, True), 3),  # PyTorch: MaxPool2d(2, ceil_mode=True) on 5 -> 3
    ((5, 2, 2, 0, 1, False), 2),
    ((6, 3, 2, 1, 1, True), 4),  # the last window would start in the right padding: dropped
    ((32, 3, None, 0, 1, False), 10),  # stride defaults to the kernel size
])
def test_pool_output_size_examples(args, expected):
    size, kernel, stride, padding, dilation, ceil_mode = args
    assert theory.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode) == expected


@given(size=st.integers(1, 8), kernel=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
       dilation=st.integers(1, 2), data=st.data())
def test_conv_transpose_output_size_inverts_the_conv_formula(size, kernel, stride, padding, dilation, data):
    output_padding = data.draw(st.integers(0, stride - 1))
    room = (size - 1) * stride + dilation * (kernel - 1) + output_padding + 1 - 2 * padding
    if room < 1:
        with pytest.raises(ValueError, match="is not positive"):
            theory.conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation)
        return
    out = theory.conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation)
    assert out == room
    assert theory.conv_output_size(out, kernel, stride, padding, dilation) == size  # conv maps it back
    y = F.conv_transpose2d(Tensor(np.ones((1, 1, size, 1))), Tensor(np.ones((1, 1, kernel, 1))),
                           stride=(stride, 1), padding=(padding, 0), output_padding=(output_padding, 0),
                           dilation=(dilation, 1))
    assert y.shape[2] == out


def test_invalid_sizes_raise():
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        theory.conv_output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match="padding must be a non-negative int, got -1"):
        theory.conv_output_size(5, 3, padding=-1)
    with pytest.raises(ValueError, match="output_padding 2 must be smaller than either stride 2 or dilation"):
        theory.conv_transpose_output_size(5, 3, 2, output_padding=2)


# ---------------------------------------------------------------------- receptive field
def test_stacked_3x3_convolutions_see_5x5_and_7x7():
    fields = theory.receptive_field([(3, 1, 1)] * 3)
    assert [f.size for f in fields] == [3, 5, 7]
    assert all(f.jump == 1 for f in fields)


def test_receptive_field_with_strides_pools_and_dilation():
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2),
              theory.LayerGeometry(kernel_size=2, stride=2), dict(kernel_size=3, dilation=2)]
    fields = theory.receptive_field(layers)
    assert [(f.size, f.jump) for f in fields] == [(3, 1), (5, 2), (7, 4), (7 + 4 * 4, 4)]
    assert fields[0].start == 0.0 and fields[1].start == 1.0 and fields[2].start == 2.0


@given(kernels=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2)), min_size=1,
                        max_size=4), seed=st.integers(0, 2**16))
def test_receptive_field_is_the_set_of_pixels_that_influence_an_output(kernels, seed):
    """Check by autograd: the gradient of the first output w.r.t. the input is nonzero exactly on
    its receptive field (random positive weights, no padding), of size r starting at `start` - (r-1)/2."""
    span = 1
    jump = 1
    for k, s, d in kernels:
        span += d * (k - 1) * jump
        jump *= s
    size = span + 6
    x = Tensor(np.ones((1, 1, 1, size)), requires_grad=True)
    rng = np.random.default_rng(seed)
    y = x
    for k, s, d in kernels:
        y = F.conv2d(y, Tensor(rng.uniform(0.5, 1.5, (1, 1, 1, k))), stride=(1, s), dilation=(1, d))
    y[0, 0, 0, 0].sum().backward()
    touched = np.flatnonzero(x.grad.numpy()[0, 0, 0])
    last = theory.receptive_field([(k, s, 0, d) for k, s, d in kernels])[-1]
    assert last.size == span and last.jump == jump
    assert touched[0] == last.start - (last.size - 1) / 2 and touched[-1] - touched[0] + 1 == last.size


# ----------------------------------------------------------------------------- counts
def test_parameter_counts_from_the_course():
    assert theory.conv_parameters(3, 16, 5) == 1216
    assert theory.conv_parameters(3, 2, 3) == 56
    assert theory.conv_parameters(3, 2, (3, 3), bias=False) == 54
    assert theory.conv_parameters(32, 32, 3, groups=32) == 32 * 9 + 32
    with pytest.raises(ValueError, match="in_channels 3 and out_channels 4 must be divisible by groups 2"):
        theory.conv_parameters(3, 4, 3, groups=2)


@given(c=st.integers(1, 4), k=st.integers(1, 4), kh=st.integers(1, 3), kw=st.integers(1, 3),
       h=st.integers(3, 6), w=st.integers(3, 6), bias=st.booleans())
def test_flops_count_the_multiplications_and_additions(c, k, kh, kw, h, w, bias):
    oh, ow = h - kh + 1, w - kw + 1
    macs = theory.conv_macs(c, k, (kh, kw), (oh, ow), batch_size=2)
    assert macs == 2 * k * oh * ow * c * kh * kw  # each output: c kh kw products
    additions = 2 * k * oh * ow * (c * kh * kw - 1 + (1 if bias else 0))
    assert theory.conv_flops(c, k, (kh, kw), (oh, ow), bias=bias, batch_size=2) == macs + additions
