"""Every differentiable op: forward equals numpy, backward equals finite differences.

Shapes are drawn broadcast-compatible, inputs are sometimes transposed views,
and dtypes are drawn from float32/float64 for the forward pass (the gradient
check itself runs in float64, as it must).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES, finite_arrays, maybe_transposed
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import gradcheck

pair_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


def t64(a, device="cpu"):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True, device=device)


BINARY = {
    "add": (lambda a, b: a + b, np.add, None),
    "sub": (lambda a, b: a - b, np.subtract, None),
    "mul": (lambda a, b: a * b, np.multiply, None),
    "div": (lambda a, b: a / b, np.divide, "nonzero_b"),
    "pow": (lambda a, b: a**b, np.power, "positive_a"),
    "maximum": (lambda a, b: a.maximum(b), np.maximum, None),
    "minimum": (lambda a, b: a.minimum(b), np.minimum, None),
}


def _condition(a, b, rule):
    if rule == "nonzero_b":
        b = np.where(np.abs(b) < 0.2, 0.5, b)
    if rule == "positive_a":
        a = np.abs(a) + 0.5
    return a, b


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), shapes=pair_shapes, dtype=DTYPES)
def test_binary_ops(name, data, shapes, dtype, device):
    op, reference, rule = BINARY[name]
    a = data.draw(maybe_transposed(shapes.input_shapes[0]))
    b = data.draw(maybe_transposed(shapes.input_shapes[1]))
    a, b = _condition(a, b, rule)
    if name in ("maximum", "minimum"):  # keep away from ties, where the derivative jumps
        b = np.where(np.abs(a - b) < 1e-2, b + 0.1, b)
    out = op(Tensor(a.astype(dtype), device=device), Tensor(b.astype(dtype), device=device))
    expected = reference(a.astype(dtype), b.astype(dtype))
    assert out.shape == expected.shape and out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    gradcheck(op, [t64(a, device), t64(b, device)])


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
@given(x=finite_arrays(hnp.array_shapes(max_dims=3, max_side=4), low=0.5, high=2.0),
       scalar=st.floats(0.5, 2.0), reverse=st.booleans())
def test_scalar_operands_on_both_sides(name, x, scalar, reverse):
    op, reference, _ = BINARY[name]
    out = op(scalar, Tensor(x)) if reverse else op(Tensor(x), scalar)
    expected = reference(scalar, x) if reverse else reference(x, scalar)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    assert out.dtype == np.float64  # a Python number keeps the tensor's dtype
    gradcheck(lambda t: op(scalar, t) if reverse else op(t, scalar), [t64(x)])


UNARY = {
    "neg": (lambda t: -t, np.negative, (-3, 3)),
    "exp": (lambda t: t.exp(), np.exp, (-3, 3)),
    "log": (lambda t: t.log(), np.log, (0.2, 3)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, (0.2, 3)),
    "abs": (lambda t: t.abs(), np.abs, (-3, 3)),
    "tanh": (lambda t: t.tanh(), np.tanh, (-3, 3)),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), (-3, 3)),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0), (-3, 3)),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda a: np.where(a > 0, a, 0.1 * a), (-3, 3)),
    "clamp": (lambda t: t.clamp(-1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5), (-3, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), dtype=DTYPES)
def test_unary_ops(name, data, shape, dtype, device):
    op, reference, (low, high) = UNARY[name]
    x = data.draw(maybe_transposed(shape, low=low, high=high))
    if name in ("abs", "relu", "leaky_relu"):  # derivative jumps at 0
        x = np.where(np.abs(x) < 1e-2, 0.5, x)
    if name == "clamp":  # and at the clamp edges
        x = np.where(np.abs(x + 1.0) < 1e-2, 0.0, x)
        x = np.where(np.abs(x - 1.5) < 1e-2, 0.0, x)
    out = op(Tensor(x.astype(dtype), device=device))
    np.testing.assert_allclose(out.numpy(), reference(x.astype(dtype)), rtol=1e-5, atol=1e-6)
    assert out.dtype == dtype
    gradcheck(op, [t64(x, device)])


def test_sigmoid_does_not_overflow():
    out = Tensor([-1000.0, 0.0, 1000.0]).sigmoid().numpy()
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


@st.composite
def tensor_and_dims(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, max_side=4))
    x = draw(maybe_transposed(shape))
    dims = draw(st.none() | st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                     max_size=len(shape), unique=True))
    if dims is not None and draw(st.booleans()):
        dims = [d - len(shape) for d in dims]  # negative dims too
    return x, (None if dims is None else tuple(dims)), draw(st.booleans())


@given(case=tensor_and_dims())
def test_sum_mean_var(case, device):
    x, dims, keepdim = case
    for method, reference in (("sum", np.sum), ("mean", np.mean),
                              ("var", lambda a, axis, keepdims: np.var(a, axis=axis,
                                                                        keepdims=keepdims,
                                                                        ddof=1))):
        count = x.size if dims is None else np.prod([x.shape[d] for d in dims])
        if method == "var" and count < 2:
            continue
        out = getattr(Tensor(x, device=device), method)(dims, keepdim=keepdim)
        np.testing.assert_allclose(out.numpy(), reference(x, axis=dims, keepdims=keepdim),
                                   rtol=1e-10, atol=1e-12)
        gradcheck(lambda t, m=method: getattr(t, m)(dims, keepdim=keepdim), [t64(x, device)])


@given(case=tensor_and_dims())
def test_amax_amin(case):
    x, dims, keepdim = case
    x = x + np.arange(x.size).reshape(x.shape) * 1e-3  # no ties
    for method, reference in (("amax", np.max), ("amin", np.min)):
        out = getattr(Tensor(x), method)(dims, keepdim=keepdim)
        np.testing.assert_allclose(out.numpy(), reference(x, axis=dims, keepdims=keepdim))
        gradcheck(lambda t, m=method: getattr(t, m)(dims, keepdim=keepdim), [t64(x)])


def test_max_ties_share_the_gradient_and_max_dim_returns_indices():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.amax().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    values, indices = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]).max(dim=1)
    np.testing.assert_allclose(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])


@given(data=st.data(), batch=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2,
                                                               max_side=3),
       n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), dtype=DTYPES)
def test_matmul_batched(data, batch, n, k, m, dtype, device):
    a = data.draw(maybe_transposed(batch.input_shapes[0] + (n, k)))
    b = data.draw(maybe_transposed(batch.input_shapes[1] + (k, m)))
    out = Tensor(a.astype(dtype), device=device) @ Tensor(b.astype(dtype), device=device)
    np.testing.assert_allclose(out.numpy(), a.astype(dtype) @ b.astype(dtype), rtol=1e-4, atol=1e-5)
    gradcheck(lambda x, y: x @ y, [t64(a, device), t64(b, device)])


@given(a=finite_arrays((3,)), b=finite_arrays((3, 2)), c=finite_arrays((2, 3)))
def test_matmul_vectors(a, b, c):
    gradcheck(lambda x, y: x @ y, [t64(a), t64(b)])
    gradcheck(lambda x, y: x @ y, [t64(c), t64(a)])
    gradcheck(lambda x, y: x @ y, [t64(a), t64(a)])


@given(x=maybe_transposed((2, 3, 4)), order=st.permutations([0, 1, 2]))
def test_movement_ops(x, order, device):
    cases = [
        (lambda t: t.reshape(4, 6), x.reshape(4, 6)),
        (lambda t: t.view(-1), x.reshape(-1)),
        (lambda t: t.permute(*order), x.transpose(order)),
        (lambda t: t.transpose(0, 2), x.swapaxes(0, 2)),
        (lambda t: t.flatten(1), x.reshape(2, 12)),
        (lambda t: t.unsqueeze(1).squeeze(1), x),
        (lambda t: t[:, None].squeeze(), x),
        (lambda t: t[:1].expand(3, 3, 4), np.broadcast_to(x[:1], (3, 3, 4))),
    ]
    for op, expected in cases:
        np.testing.assert_array_equal(op(Tensor(x, device=device)).numpy(), expected)
        gradcheck(op, [t64(x, device)])


@given(x=maybe_transposed((4, 3)), rows=st.lists(st.integers(-4, 3), min_size=1, max_size=6))
def test_indexing_basic_and_integer_arrays(x, rows, device):
    cases = [
        (lambda t: t[1:3, ::2], x[1:3, ::2]),
        (lambda t: t[-1], x[-1]),
        (lambda t: t[rows], x[rows]),  # repeated rows: gradients must add up
        (lambda t: t[rows, 0], x[rows, 0]),
        (lambda t: t[Tensor(np.array(rows), device=device)], x[rows]),
        # the assignment path of GetItem's backward (each element picked at most once) ...
        (lambda t: t[..., None, ::-2], x[..., None, ::-2]),
        (lambda t: t[x[:, 0] > 0], x[x[:, 0] > 0]),
        (lambda t: t[np.int64(rows[0])], x[rows[0]]),
        # ... and a slice beside a repeating integer index (the add.at path)
        (lambda t: t[1:, [r % 3 for r in rows]], x[1:, [r % 3 for r in rows]]),
    ]
    for op, expected in cases:
        np.testing.assert_array_equal(op(Tensor(x, device=device)).numpy(), expected)
        gradcheck(op, [t64(x, device)])


@given(a=maybe_transposed((2, 3)), b=maybe_transposed((2, 3)), dim=st.integers(-2, 1))
def test_cat_and_stack(a, b, dim, device):
    np.testing.assert_array_equal(tc.cat([Tensor(a, device=device), Tensor(b, device=device)], dim).numpy(),
                                  np.concatenate([a, b], axis=dim))
    np.testing.assert_array_equal(tc.stack([Tensor(a, device=device), Tensor(b, device=device)], dim).numpy(),
                                  np.stack([a, b], axis=dim))
    gradcheck(lambda x, y: tc.cat([x, y, x], dim), [t64(a, device), t64(b, device)])
    gradcheck(lambda x, y: tc.stack([x, y], dim), [t64(a, device), t64(b, device)])


@pytest.mark.parametrize("mode,numpy_mode", [("constant", "constant"), ("reflect", "reflect"),
                                             ("replicate", "edge"), ("circular", "wrap")])
@given(data=st.data())
def test_pad_modes(mode, numpy_mode, data, device):
    h, w = data.draw(st.integers(2, 5)), data.draw(st.integers(2, 5))
    x = data.draw(maybe_transposed((2, h, w)))
    limit_h, limit_w = (h - 1, w - 1) if mode == "reflect" else (h, w)
    left, right = data.draw(st.integers(0, limit_w)), data.draw(st.integers(0, limit_w))
    top, bottom = data.draw(st.integers(0, limit_h)), data.draw(st.integers(0, limit_h))
    out = F.pad(Tensor(x, device=device), (left, right, top, bottom), mode=mode)
    expected = np.pad(x, ((0, 0), (top, bottom), (left, right)), mode=numpy_mode)
    np.testing.assert_array_equal(out.numpy(), expected)
    gradcheck(lambda t: F.pad(t, (left, right, top, bottom), mode=mode), [t64(x, device)])


@given(cond=hnp.arrays(bool, (3, 4)), a=maybe_transposed((3, 4)), b=finite_arrays((4,)))
def test_where(cond, a, b, device):
    np.testing.assert_array_equal(tc.where(cond, Tensor(a, device=device), Tensor(b, device=device)).numpy(),
                                  np.where(cond, a, b))
    gradcheck(lambda x, y: tc.where(cond, x, y), [t64(a, device), t64(b, device)])


@given(x=maybe_transposed((3, 5), low=-30, high=30), dim=st.sampled_from([0, 1, -1]))
def test_softmax_and_log_softmax(x, dim, device):
    shifted = x - x.max(axis=dim, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(Tensor(x, device=device).softmax(dim).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(Tensor(x, device=device).log_softmax(dim).numpy(), np.log(expected), rtol=1e-8,
                               atol=1e-10)
    gradcheck(lambda t: t.softmax(dim), [t64(x, device)])
    gradcheck(lambda t: t.log_softmax(dim), [t64(x, device)])


def test_log_softmax_is_stable_for_huge_logits():
    out = Tensor([[1000.0, 0.0, -1000.0]]).log_softmax(1).numpy()
    assert np.all(np.isfinite(out)) and out[0, 0] == 0.0
