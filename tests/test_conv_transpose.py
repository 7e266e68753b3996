"""Transposed convolution is the adjoint of convolution; convolution is a (sparse) matrix.

    <conv2d(x, w), y> == <x, conv_transpose2d(y, w)>   for every stride/padding/dilation/groups
    conv_matrix(w) @ x.ravel() == conv2d(x, w).ravel()
    conv_matrix(w).T @ y.ravel() == conv_transpose2d(y, w).ravel()
"""

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tests.test_conv_definition import arrays_for, conv_configs
from tinygrad_cnn import Tensor, nn, theory


def adjoint_setup(config, seed):
    """x, w in float64; y shaped like conv2d's output; output_padding that makes the transposed
    convolution return x's size (a strided conv maps several sizes onto one)."""
    x, w, _ = (a.astype(np.float64) for a in arrays_for(config, seed))
    padding = tuple(config["pads"])
    dims = zip(config["size"], config["pads"], config["kernel"], config["stride"], config["dilation"])
    out_pad = tuple((n + before + after - d * (k - 1) - 1) % s for n, (before, after), k, s, d in dims)
    return x, w, padding, out_pad


@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(config, seed):
    x, w, padding, out_pad = adjoint_setup(config, seed)
    options = dict(stride=config["stride"], padding=padding, dilation=config["dilation"],
                   groups=config["groups"])
    conv = F.conv2d(Tensor(x), Tensor(w), **options).numpy()
    y = np.random.default_rng(seed + 7).standard_normal(conv.shape)
    transposed = F.conv_transpose2d(Tensor(y), Tensor(w), output_padding=out_pad, **options).numpy()
    assert transposed.shape == x.shape
    np.testing.assert_allclose((conv * y).sum(), (x * transposed).sum(), rtol=1e-10, atol=1e-10)


@given(config=conv_configs(nd=1), seed=st.integers(0, 2**16))
def test_conv_transpose1d_is_the_adjoint_of_conv1d(config, seed):
    x, w, padding, out_pad = adjoint_setup(config, seed)
    options = dict(stride=config["stride"][0], padding=padding, dilation=config["dilation"][0],
                   groups=config["groups"])
    conv = F.conv1d(Tensor(x), Tensor(w), **options).numpy()
    y = np.random.default_rng(seed + 7).standard_normal(conv.shape)
    transposed = F.conv_transpose1d(Tensor(y), Tensor(w), output_padding=out_pad[0], **options).numpy()
    assert transposed.shape == x.shape
    np.testing.assert_allclose((conv * y).sum(), (x * transposed).sum(), rtol=1e-10, atol=1e-10)


@st.composite
def transpose_configs(draw):
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    padding = []
    for n, k, s, d, op in zip(size, kernel, stride, dilation, out_pad):
        room = (n - 1) * s + d * (k - 1) + op  # output = room - padding + 1 must stay >= 1
        padding.append(draw(st.integers(0, min(2, room // 2))))
    return dict(groups=groups, kernel=kernel, stride=stride, dilation=dilation, output_padding=out_pad,
                size=size, padding=tuple(padding), c_in=groups * draw(st.integers(1, 2)),
                c_out=groups * draw(st.integers(1, 2)), bias=draw(st.booleans()))


@given(c=transpose_configs())
def test_conv_transpose2d_output_shape_matches_formula(c):
    """OH = (H - 1) s - 2 p + d (k - 1) + output_padding + 1, here written out, and via theory."""
    layer = nn.ConvTranspose2d(c["c_in"], c["c_out"], c["kernel"], c["stride"], c["padding"],
                               c["output_padding"], c["groups"], c["bias"], c["dilation"])
    y = layer(Tensor(np.ones((2, c["c_in"], *c["size"]), dtype=np.float32)))
    dims = list(zip(c["size"], c["kernel"], c["stride"], c["padding"], c["dilation"], c["output_padding"]))
    expected = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in dims)
    assert y.shape == (2, c["c_out"], *expected)
    from_theory = tuple(theory.conv_transpose_output_size(n, k, s, p, op, d) for n, k, s, p, d, op in dims)
    assert expected == from_theory


@given(c=transpose_configs(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_scatter_definition(c, seed):
    """Each input pixel stamps weight[c, o] scaled by itself onto the output at
    (s i + d m - p, s j + d n - p): the definition, as loops."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c["c_in"], *c["size"]))
    w = rng.standard_normal((c["c_in"], c["c_out"] // c["groups"], *c["kernel"]))
    y = F.conv_transpose2d(Tensor(x), Tensor(w), None, c["stride"], c["padding"], c["output_padding"],
                           c["groups"], c["dilation"]).numpy()
    expected = np.zeros(y.shape)
    (sh, sw), (dh, dw), (ph, pw) = c["stride"], c["dilation"], c["padding"]
    per_group_in, per_group_out = c["c_in"] // c["groups"], c["c_out"] // c["groups"]
    for ci in range(c["c_in"]):
        g = ci // per_group_in
        for o in range(per_group_out):
            for i in range(c["size"][0]):
                for j in range(c["size"][1]):
                    for m in range(c["kernel"][0]):
                        for n in range(c["kernel"][1]):
                            p, q = sh * i + dh * m - ph, sw * j + dw * n - pw
                            if 0 <= p < y.shape[2] and 0 <= q < y.shape[3]:
                                expected[0, g * per_group_out + o, p, q] += x[0, ci, i, j] * w[ci, o, m, n]
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_conv_transpose_argument_errors():
    x, w = Tensor(np.zeros((1, 2, 3, 3))), Tensor(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than either stride"):
        F.conv_transpose2d(x, w, stride=2, output_padding=(2, 2))
    with pytest.raises(ValueError, match=r"expects 3 input channels"):
        F.conv_transpose2d(x, Tensor(np.zeros((3, 1, 3, 3))))
    with pytest.raises(ValueError, match=r"output height .* = -1 is not positive"):
        F.conv_transpose2d(Tensor(np.zeros((1, 2, 1, 1))), w, padding=2)
    with pytest.raises(ValueError, match=r"not the name 'same'"):
        F.conv_transpose2d(x, w, padding="same")


# ------------------------------------------------------------------ convolution as a matrix
@given(config=conv_configs(), seed=st.integers(0, 2**16), sparse=st.booleans())
def test_conv_matrix_is_conv2d_and_its_transpose_is_conv_transpose2d(config, seed, sparse):
    x, w, padding, out_pad = adjoint_setup(config, seed)
    options = dict(stride=config["stride"], padding=padding, dilation=config["dilation"],
                   groups=config["groups"])
    matrix = theory.conv_matrix(x.shape[1:], w, sparse=sparse, **options)
    assert scipy.sparse.issparse(matrix) == sparse
    conv = F.conv2d(Tensor(x[:1]), Tensor(w), **options).numpy()[0]
    assert matrix.shape == (conv.size, x[0].size)
    np.testing.assert_allclose(matrix @ x[0].ravel(), conv.ravel(), rtol=1e-10, atol=1e-10)
    y = np.random.default_rng(seed + 3).standard_normal(conv.shape)
    transposed = F.conv_transpose2d(Tensor(y[None]), Tensor(w), output_padding=out_pad, **options).numpy()[0]
    np.testing.assert_allclose(matrix.T @ y.ravel(), transposed.ravel(), rtol=1e-10, atol=1e-10)
    # sparse: at most C/groups kH kW nonzeros per row
    dense = matrix.toarray() if sparse else matrix
    assert (np.count_nonzero(dense, axis=1) <= w[0].size).all()


def test_conv_matrix_single_channel_stride_one_is_doubly_block_toeplitz():
    """Blocks (output row i, input row p) depend only on p - i; inside a block, entries depend
    only on q - j."""
    rng = np.random.default_rng(0)
    k = rng.standard_normal((2, 3))
    h, w = 4, 5
    matrix = theory.conv_matrix((h, w), k)
    oh, ow = h - 1, w - 2
    blocks = matrix.reshape(oh, ow, h, w)
    for i in range(oh):
        for p in range(h):
            block = blocks[i, :, p, :]
            np.testing.assert_array_equal(block, blocks[0, :, p - i, :] if 0 <= p - i < h else 0.0)
            for j in range(ow):
                for q in range(w):
                    expected = k[p - i, q - j] if 0 <= p - i < 2 and 0 <= q - j < 3 else 0.0
                    assert block[j, q] == expected


def test_conv_matrix_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"input_shape \(3, 4\) and weight shape \(1, 2, 2, 2\)"):
        theory.conv_matrix((3, 4), np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"kernel_size 5 with dilation 1 spans 5"):
        theory.conv_matrix((3, 4), np.zeros((5, 2)))
