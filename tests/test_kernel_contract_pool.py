"""The pooling kernel contract: every compiled backend x dtype equals the reference.

Drawn windows (non-square kernels, strides, paddings up to half the kernel, dilations,
ceil_mode, count_include_pad, divisor_override) over drawn images; max pooling on
tie-free inputs must match values and arg-max indices exactly, and on inputs full of ties
and NaNs must pick the same element (the first maximum; the last NaN, as PyTorch).
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from tests.kernel_backends import COMPILED, DTYPES, assert_close, compiled, data, reference
from tinygrad_cnn.nn.functional.geometry import PoolGeometry

ref = reference("pool")


@st.composite
def pool_cases(draw, dilated: bool):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))  # PyTorch: pad <= k/2
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    divisor = None if dilated or draw(st.booleans()) else draw(st.integers(1, 7))
    geometry = PoolGeometry((draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w), (kh, kw), (sh, sw),
                            (ph, pw), (dh, dw), draw(st.booleans()), draw(st.booleans()), divisor)
    return dict(geometry=geometry, dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 2**16)))


def check_max_pool(backend: str, x: np.ndarray, g, seed: int = 0) -> None:
    kernels = compiled(backend, "pool")
    y, indices = kernels.max_pool2d_forward(x, g)
    y_ref, indices_ref = ref.max_pool2d_forward(x, g)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(indices, indices_ref)
    assert indices.dtype == np.int64
    grad_y = data(seed, y.shape, x.dtype)
    assert_close(kernels.max_pool2d_backward(grad_y, indices, g),
                 ref.max_pool2d_backward(grad_y, indices_ref, g), x.dtype.type, scale=10.0)


@pytest.mark.parametrize("backend", COMPILED)
@given(case=pool_cases(dilated=True))
def test_max_pool_equals_reference(backend, case):
    """Tie-free input (a permutation of distinct values): values and indices match exactly."""
    g, dtype = case["geometry"], case["dtype"]
    rng = np.random.default_rng(case["seed"])
    x = (rng.permutation(int(np.prod(g.input_shape))) - 7.5).reshape(g.input_shape).astype(dtype)
    check_max_pool(backend, x, g, case["seed"])


WINDOWS = [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 2), (1, 1), (1, 1), (1, 1), True),
           ((2, 3), (1, 2), (1, 1), (2, 1), True)]


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_pick_first_maximum(backend, dtype):
    """Constant 2x2 blocks and overlapping windows (stride 1): every window is full of ties."""
    x = np.repeat(np.repeat(np.arange(12.0).reshape(1, 2, 2, 3) % 4, 2, axis=2), 2, axis=3).astype(dtype)
    x[0, 1] = 5.0  # a fully constant plane
    for window in WINDOWS:
        check_max_pool(backend, x, PoolGeometry(x.shape, *window))


@pytest.mark.parametrize("backend", ["reference", *COMPILED])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_propagates_nan_as_pytorch(backend, dtype):
    """A NaN anywhere in a window is its maximum; the last NaN in row-major window order
    is the arg-max (PyTorch: ``val > max || isnan(val)``). The issue's example: a 4x4 ramp
    with x[0, 0, 1, 1] = NaN pools to [NaN, 7, 13, 15]."""
    kernels = ref if backend == "reference" else compiled(backend, "pool")
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    g = PoolGeometry(x.shape, (2, 2), (2, 2))
    y, indices = kernels.max_pool2d_forward(x, g)
    np.testing.assert_array_equal(y[0, 0], np.array([[np.nan, 7], [13, 15]], dtype=dtype))
    np.testing.assert_array_equal(indices[0, 0], [[5, 7], [13, 15]])
    x[0, 0, 0, 0] = np.nan  # two NaNs in a window: the later one (5) keeps the gradient
    y, indices = kernels.max_pool2d_forward(x, g)
    assert indices[0, 0, 0, 0] == 5
    grad = kernels.max_pool2d_backward(np.ones_like(y), indices, g)
    assert grad[0, 0, 1, 1] == 1 and grad[0, 0, 0, 0] == 0


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_with_many_nans_equals_reference(backend, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    x[rng.random(x.shape) < 0.2] = np.nan
    for window in WINDOWS:
        check_max_pool(backend, x, PoolGeometry(x.shape, *window))


@pytest.mark.parametrize("backend", COMPILED)
@given(case=pool_cases(dilated=False))
def test_avg_pool_equals_reference(backend, case):
    g, dtype = case["geometry"], case["dtype"]
    kernels = compiled(backend, "pool")
    x = data(case["seed"], g.input_shape, dtype)
    y = kernels.avg_pool2d_forward(x, g)
    assert_close(y, ref.avg_pool2d_forward(x, g), dtype, scale=10.0)
    grad_y = data(case["seed"] + 1, y.shape, dtype)
    assert_close(kernels.avg_pool2d_backward(grad_y, g), ref.avg_pool2d_backward(grad_y, g), dtype,
                 scale=10.0)


@pytest.mark.parametrize("backend", COMPILED)
def test_max_pool_with_a_huge_kernel_over_a_small_image(backend):
    """A kernel of 2^31 - 1 taps with padding over a 4x4 image: the window loops visit the
    16 input pixels only (unclipped loops over 2^62 offsets once took 8.4 s for this one
    output; benchmarks, not tests, time things)."""
    kernels = compiled(backend, "pool")
    k = 2**31 - 1
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    g = PoolGeometry(x.shape, (k, k), (k, k), (k // 2, k // 2))
    y, indices = kernels.max_pool2d_forward(x, g)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 15 and indices[0, 0, 0, 0] == 15


@pytest.mark.parametrize("backend", COMPILED)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9),
       ceil_mode=st.booleans(), divisor=st.sampled_from([None, 1, 3]), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
def test_pool_2x2_stride_2_equals_reference(backend, n, c, h, w, ceil_mode, divisor, dtype, seed):
    """The common window (LeNet's, VGG's: 2x2 at stride 2, no padding), which the Numba
    backend runs on loops of its own when every window lies inside the input (even sizes,
    or floor mode), with ties and NaNs among the values; odd sizes in ceil mode take the
    general loops."""
    g = PoolGeometry((n, c, h, w), (2, 2), (2, 2), (0, 0), (1, 1), ceil_mode, True, divisor)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=g.input_shape).astype(dtype)  # small integers: many ties
    x[rng.random(x.shape) < 0.1] = np.nan
    check_max_pool(backend, x, g, seed)
    kernels = compiled(backend, "pool")
    x = data(seed, g.input_shape, dtype)
    y = kernels.avg_pool2d_forward(x, g)
    assert_close(y, ref.avg_pool2d_forward(x, g), dtype, scale=10.0)
    grad_y = data(seed + 1, y.shape, dtype)
    assert_close(kernels.avg_pool2d_backward(grad_y, g), ref.avg_pool2d_backward(grad_y, g), dtype,
                 scale=10.0)
