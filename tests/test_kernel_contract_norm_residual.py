"""The batch-norm and residual kernel contracts: every compiled backend x dtype equals the reference.

Batch norm: drawn (N, C, L) shapes, offsets and spreads (the float32 variance of data far
from zero is where a naive one-pass formula fails), forward statistics and all three
gradients. Residual: add + ReLU and the plain ReLU on small and parallel-sized arrays, with
NaNs, which must stay NaN forward and pass their gradient backward (PyTorch's relu).
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tests.kernel_backends import COMPILED, DTYPES, assert_close, compiled, data, reference

ref_bn, ref_res = reference("batchnorm"), reference("residual")


@pytest.mark.parametrize("backend", COMPILED)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 70)),
       dtype=st.sampled_from(DTYPES), offset=st.floats(-3, 3), spread=st.floats(0.1, 10),
       seed=st.integers(0, 2**16), relu=st.booleans())
def test_batch_norm_equals_reference(backend, shape, dtype, offset, spread, seed, relu):
    """Forward and backward against the reference, and with ``relu`` the fused ReLU: the
    output max(y, 0), and the backward given the reference's output as ``relu_output``
    (one mask for both), which must equal the unfused backward of the masked gradient.
    Rows of up to 70 values reach the compiled loops' 8- and 16-lane blocks."""
    kernels = compiled(backend, "batchnorm")
    if shape[0] * shape[2] < 2:
        shape = (2, shape[1], shape[2])  # one value per channel: variance 0, nothing to compare
    x = (offset + spread * data(seed, shape, np.float64)).astype(dtype)
    weight, bias = data(seed + 1, shape[1], dtype), data(seed + 2, shape[1], dtype)
    y, mean, inv_std = kernels.batch_norm_forward_train(x, weight, bias, 1e-5, relu=relu)
    y_ref, mean_ref, inv_std_ref = ref_bn.batch_norm_forward_train(x, weight, bias, 1e-5, relu=relu)
    assert_close(mean, mean_ref, dtype, scale=10 * (abs(offset) + spread))
    assert_close(inv_std, inv_std_ref, dtype, scale=10 / spread)
    assert_close(y, y_ref, dtype, scale=100.0)
    if relu:
        assert (y >= 0).all()
    grad_y = data(seed + 3, shape, dtype)
    mask = y_ref if relu else None
    grads = kernels.batch_norm_backward(grad_y, x, mean_ref, inv_std_ref, weight, relu_output=mask)
    grads_ref = ref_bn.batch_norm_backward(grad_y, x, mean_ref, inv_std_ref, weight, relu_output=mask)
    scales = (100 / spread, 100 * np.sqrt(x.size), 10 * np.sqrt(x.size))
    for got, want, scale in zip(grads, grads_ref, scales):
        # float32 grad_x subtracts sums of M terms: its error grows with M (and the tests' M is small)
        assert_close(got, want, dtype, scale=scale * (1 if dtype == np.float64 else 10))
    if relu:
        masked = np.where(y_ref <= 0, 0, grad_y).astype(dtype)
        unfused = kernels.batch_norm_backward(masked, x, mean_ref, inv_std_ref, weight)
        for got, want, scale in zip(grads, unfused, scales):
            assert_close(got, want, dtype, scale=scale)


@pytest.mark.parametrize("backend", COMPILED)
def test_batch_norm_keeps_image_shape(backend):
    kernels = compiled(backend, "batchnorm")
    x = data(0, (3, 2, 4, 5), np.float64)
    y, _, _ = kernels.batch_norm_forward_train(x, np.ones(2), np.zeros(2), 1e-5)
    y_ref, _, _ = ref_bn.batch_norm_forward_train(x.reshape(3, 2, 20), np.ones(2), np.zeros(2), 1e-5)
    assert y.shape == x.shape
    assert_close(y.reshape(3, 2, 20), y_ref, np.float64, scale=10.0)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3,), (2, 3, 4, 5), (8, 32, 32, 32)])  # the last one runs in parallel
def test_add_relu_equals_reference(backend, shape, dtype):
    kernels = compiled(backend, "residual")
    a, b, g = data(0, shape, dtype), data(1, shape, dtype), data(2, shape, dtype)
    a.reshape(-1)[::7] = np.nan
    y = kernels.add_relu_forward(a, b)
    y_ref = ref_res.add_relu_forward(a, b)
    np.testing.assert_array_equal(y, y_ref)
    assert np.isnan(y).sum() == np.isnan(a).sum()
    grad = kernels.add_relu_backward(g, y)
    np.testing.assert_array_equal(grad, ref_res.add_relu_backward(g, y))
    np.testing.assert_array_equal(grad[np.isnan(y)], g[np.isnan(y)])  # a NaN passes the gradient


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (), (3,), (2, 3, 4, 5), (8, 32, 32, 32)])
def test_the_mask_of_a_sum_equals_the_mask_of_the_added_gradients(backend, shape, dtype):
    """add_relu_backward_of_sum(a, b, y) is the backend's add_relu_backward(a + b, y), bit
    for bit, also with zeros, -0 and NaN in y and Inf or NaN in a gradient; and with finite
    gradients it is the reference's (which masks by a product, so 0 * Inf would be NaN
    there). The kernels may hand a 0-d result back 1-d (the Functions reshape)."""
    kernels = compiled(backend, "residual")
    g_a, g_b, y = data(0, shape, dtype), data(1, shape, dtype), data(2, shape, dtype)
    flat = y.reshape(-1)
    flat[::5], flat[1::5], flat[2::5] = np.nan, 0.0, -0.0
    finite = kernels.add_relu_backward_of_sum(g_a, g_b, y)
    assert finite.size == y.size and finite.dtype == dtype
    np.testing.assert_array_equal(finite.reshape(shape), ref_res.add_relu_backward_of_sum(g_a, g_b, y))
    passes = ~(y <= 0)
    np.testing.assert_array_equal(finite.reshape(shape)[passes], (g_a + g_b)[passes])  # the definition
    g_a.reshape(-1)[3::11] = np.inf
    g_b.reshape(-1)[4::13] = np.nan
    got = kernels.add_relu_backward_of_sum(g_a, g_b, y)
    np.testing.assert_array_equal(got, kernels.add_relu_backward(np.asarray(g_a + g_b), y))  # 0-d: an array


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (3,), (2, 3, 4, 5), (8, 32, 32, 32)])
def test_relu_equals_reference(backend, shape, dtype):
    kernels = compiled(backend, "residual")
    x = data(0, shape, dtype)
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[1::7] = 0.0
    x.reshape(-1)[2::7] = -0.0
    y = kernels.relu_forward(x)
    np.testing.assert_array_equal(y, ref_res.relu_forward(x))
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    np.testing.assert_array_equal(y[~np.isnan(x)], np.where(x > 0, x, 0)[~np.isnan(x)])  # the definition
