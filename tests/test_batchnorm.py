"""Batch normalization against numpy formulas: training and eval outputs, gradients,
running statistics over several steps (PyTorch's momentum and unbiased-variance
conventions), buffers and state_dict names, and argument checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinygrad_cnn.kernels.reference import batchnorm as reference_kernels

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES
from tinygrad_cnn import Tensor
from tinygrad_cnn.testing import gradcheck


def normalize(x, mean, var, weight, bias, eps):
    """y = weight (x - mean) / sqrt(var + eps) + bias, per channel (axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape) \
        + bias.reshape(shape)


def channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def t64(a, device="cpu"):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True, device=device)


shapes = st.one_of(
    st.tuples(st.integers(2, 4), st.integers(1, 3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 4)),
    st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3)),
)


@given(shape=shapes, dtype=DTYPES, affine=st.booleans(), seed=st.integers(0, 2**16))
def test_training_forward_and_gradients(shape, dtype, affine, seed, device):
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 2.0, shape)
    c = shape[1]
    weight, bias = (rng.normal(size=c), rng.normal(size=c)) if affine else (np.ones(c), np.zeros(c))
    mean, var = x.mean(axis=channel_axes(x)), x.var(axis=channel_axes(x))  # biased, as PyTorch
    expected = normalize(x, mean, var, weight, bias, 1e-5)
    w, b = (Tensor(weight.astype(dtype), device=device), Tensor(bias.astype(dtype), device=device)) \
        if affine else (None, None)
    y = F.batch_norm(Tensor(x.astype(dtype), device=device), None, None, w, b, training=True)
    assert y.dtype == dtype and y.shape == shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y.numpy(), expected, rtol=tol, atol=tol)
    inputs = [t64(x, device), t64(weight, device), t64(bias, device)] if affine else [t64(x, device)]
    gradcheck(lambda *ts: F.batch_norm(ts[0], None, None, *ts[1:], training=True), inputs)


@given(shape=shapes, momentum=st.floats(0.0, 1.0), steps=st.integers(1, 4), seed=st.integers(0, 2**16),
       dtype=DTYPES)
def test_running_statistics_follow_the_documented_formula(shape, momentum, steps, seed, dtype):
    rng = np.random.default_rng(seed)
    c = shape[1]
    layer = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(c, momentum=momentum, dtype=dtype)
    running_mean, running_var = np.zeros(c), np.ones(c)
    for _ in range(steps):
        x = rng.normal(rng.normal(), 1.0 + rng.random(), shape)
        y = layer(Tensor(x.astype(dtype)))
        count = x.size // c
        batch_mean = x.mean(axis=channel_axes(x))
        biased = x.var(axis=channel_axes(x))
        unbiased = biased * count / (count - 1)
        running_mean = (1 - momentum) * running_mean + momentum * batch_mean
        running_var = (1 - momentum) * running_var + momentum * unbiased
        # the output of a training step normalizes with the BIASED batch variance
        tol = 1e-4 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(y.numpy(), normalize(x, batch_mean, biased, np.ones(c), np.zeros(c), 1e-5),
                                   rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.running_mean.numpy(), running_mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.running_var.numpy(), running_var, rtol=tol, atol=tol)
    assert layer.running_mean.dtype == dtype and layer.running_var.dtype == dtype
    assert layer.num_batches_tracked.item() == steps and layer.num_batches_tracked.dtype == np.int64


def test_momentum_none_is_the_cumulative_average():
    rng = np.random.default_rng(0)
    layer = nn.BatchNorm1d(2, momentum=None).double()
    batches = [rng.normal(i, 1.0, (5, 2)) for i in range(3)]
    for x in batches:
        layer(Tensor(x))
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([x.mean(axis=0) for x in batches], axis=0))
    np.testing.assert_allclose(layer.running_var.numpy(), np.mean([x.var(axis=0, ddof=1) for x in batches],
                                                                  axis=0))


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_eval_mode_uses_running_statistics(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    layer = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(c, eps=1e-3).double()
    layer.weight.data, layer.bias.data = rng.normal(size=c), rng.normal(size=c)
    for _ in range(2):
        layer(Tensor(rng.normal(size=shape)))
    layer.eval()
    state = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    x = rng.normal(size=shape)
    y = layer(t64(x))
    expected = normalize(x, state["running_mean"], state["running_var"], state["weight"], state["bias"], 1e-3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)
    for key, value in layer.state_dict().items():  # evaluation changes no buffer
        np.testing.assert_array_equal(value.numpy(), state[key])
    # each example is normalized on its own: the first one alone gives the same output
    np.testing.assert_allclose(layer(Tensor(x[:1])).numpy(), expected[:1], rtol=1e-10, atol=1e-10)
    rm, rv = Tensor(state["running_mean"]), Tensor(state["running_var"])
    gradcheck(lambda a, w, b: F.batch_norm(a, rm, rv, w, b, training=False, eps=1e-3),
              [t64(x), t64(state["weight"]), t64(state["bias"])])


def test_without_running_stats_batch_statistics_are_used_in_both_modes():
    layer = nn.BatchNorm2d(3, track_running_stats=False).double()
    assert layer.running_mean is None and layer.num_batches_tracked is None
    assert list(layer.state_dict()) == ["weight", "bias"]
    x = np.random.default_rng(1).normal(2.0, 3.0, (2, 3, 2, 2))
    expected = normalize(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(layer.eval()(Tensor(x)).numpy(), expected, rtol=1e-10)


def test_state_dict_names_and_initial_values_match_pytorch():
    layer = nn.BatchNorm2d(4)
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                        "num_batches_tracked"]
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones(4))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(4))
    np.testing.assert_array_equal(layer.running_mean.numpy(), np.zeros(4))
    np.testing.assert_array_equal(layer.running_var.numpy(), np.ones(4))
    assert layer.num_batches_tracked.shape == () and layer.num_batches_tracked.item() == 0
    assert layer.num_parameters() == 8
    no_affine = nn.BatchNorm1d(3, affine=False)
    assert list(no_affine.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert no_affine.num_parameters() == 0
    # a state dict round-trips into a fresh layer
    layer(Tensor(np.random.default_rng(0).normal(size=(2, 4, 3, 3)).astype(np.float32)))
    fresh = nn.BatchNorm2d(4)
    fresh.load_state_dict(layer.state_dict())
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy())


def test_gradients_reach_weight_and_bias_through_the_layer():
    layer = nn.BatchNorm1d(3).double()
    x = t64(np.random.default_rng(2).normal(size=(4, 3, 2)))
    g = np.random.default_rng(3).normal(size=(4, 3, 2))
    layer(x).backward(g)
    x_hat = (x.numpy() - x.numpy().mean(axis=(0, 2), keepdims=True)) / np.sqrt(
        x.numpy().var(axis=(0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(axis=(0, 2)))
    np.testing.assert_allclose(layer.weight.grad.numpy(), (g * x_hat).sum(axis=(0, 2)))
    # the normalized output is invariant to shifting a channel, so the x gradient sums to zero per channel
    np.testing.assert_allclose(x.grad.numpy().sum(axis=(0, 2)), np.zeros(3), atol=1e-12)


def test_reference_kernels_return_biased_statistics():
    x = np.random.default_rng(4).normal(size=(3, 2, 5))
    y, mean, inv_std = reference_kernels.batch_norm_forward_train(x, np.ones(2), np.zeros(2), 1e-5)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)))
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(x.var(axis=(0, 2)) + 1e-5))
    assert y.shape == x.shape and mean.shape == inv_std.shape == (2,)


@pytest.mark.parametrize("call, match", [
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((2, 3, 4, 4)))),
     r"BatchNorm1d: expected 2D or 3D input, got shape \(2, 3, 4, 4\)"),
    (lambda: nn.BatchNorm2d(3)(Tensor(np.zeros((2, 3, 4)))),
     r"BatchNorm2d: expected 4D input, got shape \(2, 3, 4\)"),
    (lambda: nn.BatchNorm2d(3)(Tensor(np.zeros((2, 4, 1, 1)))), r"has 4 channels, expected num_features=3"),
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((1, 3), np.float32))), r"more than 1 value.*\(1, 3\)"),
    (lambda: nn.BatchNorm1d(0), r"num_features must be a positive int, got 0"),
    (lambda: nn.BatchNorm1d(2, eps=-1.0), r"eps must be a positive number, got -1.0"),
    (lambda: nn.BatchNorm1d(2, momentum=1.5), r"momentum must be in \[0, 1\] or None, got 1.5"),
    (lambda: F.batch_norm(Tensor(np.zeros((2, 3))), Tensor(np.zeros(2)), Tensor(np.ones(2))),
     r"running_mean has shape \(2,\), expected \(3,\)"),
    (lambda: F.batch_norm(Tensor(np.zeros((2, 3))), None, None), r"needed when training=False"),
    (lambda: F.batch_norm(Tensor(np.zeros(3)), None, None, training=True), r"\(N, C, \*\), got shape \(3,\)"),
    (lambda: F.batch_norm_relu(Tensor(np.zeros((2, 3))), Tensor(np.zeros(2)), Tensor(np.ones(2))),
     r"batch_norm_relu: running_mean has shape \(2,\), expected \(3,\)"),
    (lambda: F.batch_norm_relu(Tensor(np.zeros((2, 3))), None, None, training=True, momentum=2.0),
     r"batch_norm_relu: momentum must be a number in \[0, 1\], got 2.0"),
    (lambda: F.batch_norm_relu(Tensor(np.zeros((1, 3))), None, None, training=True),
     r"batch_norm_relu: expected more than 1 value per channel"),
])
def test_invalid_arguments_raise_value_error_naming_the_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("backend", ["reference", "numba", "cython"])
@given(shape=shapes, training=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm_relu_is_relu_of_batch_norm(backend, shape, training, seed):
    """F.batch_norm_relu (the ReLU inside batch norm's kernels in training) gives relu of
    F.batch_norm: the values, the running statistics it updates, and the gradients (against
    finite differences); in both modes, on every CPU backend."""
    from tinygrad_cnn.kernels import use_backend

    rng = np.random.default_rng(seed)
    c = shape[1]
    x, weight, bias = rng.normal(0.3, 1.0, shape), rng.normal(size=c), rng.normal(size=c)
    running = [(Tensor(rng.normal(size=c)), Tensor(rng.uniform(0.5, 2.0, c))) for _ in range(2)]
    running[1] = (Tensor(running[0][0].numpy().copy()), Tensor(running[0][1].numpy().copy()))
    with use_backend(backend):
        fused = F.batch_norm_relu(t64(x), *running[0], t64(weight), t64(bias), training, 0.1, 1e-5)
        plain = F.relu(F.batch_norm(t64(x), *running[1], t64(weight), t64(bias), training, 0.1, 1e-5))
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)
        assert (fused.numpy() >= 0).all()
        for ours, theirs in zip(running[0], running[1]):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
        gradcheck(lambda *ts: F.batch_norm_relu(ts[0], None, None, ts[1], ts[2], training=True),
                  [t64(x), t64(weight), t64(bias)])


def test_residual_blocks_fuse_their_batch_norm_relu_unless_a_hook_watches_the_batch_norm(monkeypatch):
    """BasicBlock's conv -> BN -> ReLU runs as one F.batch_norm_relu; a forward hook on the
    batch norm still sees its output before the ReLU (negative values), and the block's
    output and gradients are the same either way."""
    import tinygrad_cnn.nn.functional.normalization as normalization

    calls = []
    fused = normalization.batch_norm_relu
    monkeypatch.setattr(F, "batch_norm_relu", lambda *a, **k: calls.append(1) or fused(*a, **k))
    rng = np.random.default_rng(0)
    block = nn.BasicBlock(4, 4).double()
    x = rng.standard_normal((2, 4, 5, 5))
    outputs = []
    for hooked in (False, True):
        seen = []
        def watch(module, inputs, output, seen=seen):
            seen.append(output.numpy().copy())
        handle = block.bn1.register_forward_hook(watch) if hooked else None
        inp = Tensor(x, requires_grad=True)
        out = block(inp)
        (out * out).sum().backward()
        outputs.append((out.numpy(), inp.grad.numpy(), block.conv1.weight.grad.numpy().copy()))
        block.zero_grad()
        if hooked:
            handle.remove()
            assert len(seen) == 1 and (seen[0] < 0).any()  # batch norm's own output
    assert calls == [1]  # the unhooked call only
    for a, b in zip(*outputs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_model_relu_module_is_fused_only_while_nothing_hooks_it(monkeypatch):
    """ResNet's stem passes its nn.ReLU: fused while it has no hook; a hook on it is called
    with batch norm's output, as without the fusion."""
    import tinygrad_cnn.nn.functional.normalization as normalization

    calls = []
    fused = normalization.batch_norm_relu
    monkeypatch.setattr(F, "batch_norm_relu", lambda *a, **k: calls.append(1) or fused(*a, **k))
    bn, relu = nn.BatchNorm2d(3).double(), nn.ReLU()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3, 4, 4)))
    first = nn.relu_of_batch_norm(bn, x, relu).numpy()
    seen = []
    relu.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].numpy()))
    second = nn.relu_of_batch_norm(bn, x, relu).numpy()
    assert calls == [1] and len(seen) == 1 and (seen[0] < 0).any()
    np.testing.assert_allclose(first, second, rtol=1e-12, atol=1e-12)


def test_a_replaced_forward_or_a_plain_function_is_called_as_given():
    """Found by a second reading: a batch norm whose forward was replaced on the object, and
    a model whose ReLU is a plain function, run what they were given, unfused."""
    from tinygrad_cnn.models import resnet20

    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4, 4)))
    bn = nn.BatchNorm2d(3).double()
    bn.forward = lambda t: t * 0.0 + 5.0
    np.testing.assert_array_equal(nn.relu_of_batch_norm(bn, x).numpy(), np.full((2, 3, 4, 4), 5.0))
    relu = nn.ReLU()
    relu.forward = lambda t: t * 0.0 - 1.0
    bn2 = nn.BatchNorm2d(3).double()
    np.testing.assert_array_equal(nn.relu_of_batch_norm(bn2, x, relu).numpy(), np.full((2, 3, 4, 4), -1.0))
    model = resnet20()
    model.relu = F.relu
    assert model(Tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 10)
