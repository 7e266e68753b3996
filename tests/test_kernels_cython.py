"""The Cython backend agrees with the reference kernels (and the Numba backend) on every kernel.

Shapes, kernels, strides, paddings and dilations are drawn per axis, so non-square images and
non-square kernels (KH != KW) are the rule: a classic im2col bug computes the row index with
KH for both kernel axes and only square kernels hide it.

If the extensions were not built the module is skipped, except where the environment variable
TINYGRAD_CNN_REQUIRE_COMPILED=1 (CI) demands compiled backends: there it fails.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import DTYPES, finite_arrays

REQUIRE_COMPILED = os.environ.get("TINYGRAD_CNN_REQUIRE_COMPILED") == "1"

try:
    from tinygrad_cnn.kernels.cython import _conv
    from tinygrad_cnn.kernels.cython import batchnorm as cy_batchnorm
    from tinygrad_cnn.kernels.cython import conv as cy_conv
    from tinygrad_cnn.kernels.cython import pool as cy_pool
    from tinygrad_cnn.kernels.cython import residual as cy_residual
except ImportError as error:
    if REQUIRE_COMPILED:
        pytest.fail(f"TINYGRAD_CNN_REQUIRE_COMPILED=1 but the Cython kernels do not import: {error}",
                    pytrace=False)
    pytest.skip(f"Cython kernels not built: {error}", allow_module_level=True)

CYTHON = {"conv": cy_conv, "pool": cy_pool, "batchnorm": cy_batchnorm, "residual": cy_residual}


def _oracles(family: str) -> dict:
    """The modules the Cython kernels are compared with: the reference always, Numba if present."""
    oracles = {"reference": importlib.import_module(f"tinygrad_cnn.kernels.reference.{family}")}
    try:
        oracles["numba"] = importlib.import_module(f"tinygrad_cnn.kernels.numba.{family}")
    except ImportError:
        if REQUIRE_COMPILED and importlib.util.find_spec("numba") is not None:
            raise
    return oracles


ORACLES = {family: _oracles(family) for family in CYTHON}


def _tolerance(dtype) -> dict:
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)


def _agree(family: str, name: str, args: tuple, dtype) -> None:
    """Cython's ``name(*args)`` equals every oracle's, output by output (dtype and shape too)."""
    got = getattr(CYTHON[family], name)(*args)
    got = got if isinstance(got, tuple) else (got,)
    for backend, module in ORACLES[family].items():
        want = getattr(module, name)(*args)
        want = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, f"{name} vs {backend}: shape {g.shape} != {w.shape}"
            assert g.dtype == w.dtype, f"{name} vs {backend}: dtype {g.dtype} != {w.dtype}"
            if g.dtype == np.int64:
                np.testing.assert_array_equal(g, w, err_msg=f"{name} vs {backend}")
            else:
                np.testing.assert_allclose(g, w, err_msg=f"{name} vs {backend}", **_tolerance(dtype))


# --- convolution --------------------------------------------------------------------------------

@contextlib.contextmanager
def _conv_strategy(batched: bool):
    """Force the batched (per-thread images, SciPy GEMM) or the whole-batch (numpy matmul) path."""
    saved = cy_conv.HAVE_BLAS
    cy_conv.HAVE_BLAS = saved and batched
    try:
        yield
    finally:
        cy_conv.HAVE_BLAS = saved


def _agree_conv(x, weight, grad_y, stride, padding, dilation, groups) -> None:
    """Forward, backward-input and backward-weight agree, on both convolution strategies."""
    for batched in (True, False):
        with _conv_strategy(batched):
            _agree("conv", "conv2d_forward", (x, weight, stride, padding, dilation, groups), x.dtype)
            _agree("conv", "conv2d_backward_input",
                   (grad_y, weight, x.shape, stride, padding, dilation, groups), x.dtype)
            _agree("conv", "conv2d_backward_weight",
                   (grad_y, x, weight.shape, stride, padding, dilation, groups), x.dtype)


@st.composite
def conv_problems(draw, square_kernel: bool | None = None):
    """(x, weight, grad_y, stride, padding, dilation, groups) with every size drawn per axis."""
    dtype = draw(DTYPES)
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    kh = draw(st.integers(1, 4))
    kw = kh if square_kernel else draw(st.integers(1, 4).filter(lambda v: square_kernel is None or v != kh))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))  # (top, bottom, left, right)
    # the smallest input the dilated kernel fits once padded, plus a few
    h = max(1, dilation[0] * (kh - 1) + 1 - padding[0] - padding[1]) + draw(st.integers(0, 6))
    w = max(1, dilation[1] * (kw - 1) + 1 - padding[2] - padding[3]) + draw(st.integers(0, 6))
    x = draw(finite_arrays((n, groups * cg, h, w), dtype))
    weight = draw(finite_arrays((groups * kg, cg, kh, kw), dtype))
    oh = (h + padding[0] + padding[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + padding[2] + padding[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    grad_y = draw(finite_arrays((n, groups * kg, oh, ow), dtype))
    return x, weight, grad_y, stride, padding, dilation, groups


@given(conv_problems())
def test_conv2d_forward_and_backward(problem):
    _agree_conv(*problem)


@given(conv_problems(square_kernel=False))
def test_conv2d_non_square_kernels(problem):
    """KH != KW in every example: the row index of im2col must use KW for the column offset."""
    x, weight, grad_y, stride, padding, dilation, groups = problem
    assert weight.shape[2] != weight.shape[3]
    _agree_conv(x, weight, grad_y, stride, padding, dilation, groups)


@given(conv_problems(), st.data())
def test_im2col_col2im(problem, data):
    x, weight, _, stride, padding, dilation, _ = problem
    kernel_size = weight.shape[2:]
    _agree("conv", "im2col", (x, kernel_size, stride, padding, dilation), x.dtype)
    cols = cy_conv.im2col(x, kernel_size, stride, padding, dilation)
    c = data.draw(finite_arrays(cols.shape, x.dtype))
    _agree("conv", "col2im", (c, x.shape, kernel_size, stride, padding, dilation), x.dtype)
    # col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)> (no oracle involved)
    folded = cy_conv.col2im(c, x.shape, kernel_size, stride, padding, dilation)
    left, right = np.vdot(cols.astype(np.float64), c), np.vdot(x.astype(np.float64), folded)
    assert np.isclose(left, right, rtol=1e-3 if x.dtype == np.float32 else 1e-10, atol=1e-3)


def test_im2col_non_square_layout():
    """A hand-checked row of a 2x3 kernel: row (c, i, j) = (0, 1, 2) is x shifted down 1, right 2."""
    x = np.arange(2 * 4 * 5, dtype=np.float64).reshape(1, 2, 4, 5)
    cols = cy_conv.im2col(x, (2, 3), (1, 1), (0, 0, 0, 0), (1, 1))
    assert cols.shape == (1, 2 * 2 * 3, 3 * 3)
    np.testing.assert_array_equal(cols[0, 1 * 3 + 2].reshape(3, 3), x[0, 0, 1:4, 2:5])
    np.testing.assert_array_equal(cols[0, (1 * 2 + 0) * 3 + 1].reshape(3, 3), x[0, 1, 0:3, 1:4])


# --- pooling ------------------------------------------------------------------------------------

@st.composite
def pool_problems(draw, max_pool: bool):
    dtype = draw(DTYPES)
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if max_pool else (1, 1)
    ceil_mode = draw(st.booleans())
    h = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 6))
    w = max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 6))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # few distinct values, so that windows hold ties and the first-maximum rule is exercised
    if max_pool and draw(st.booleans()):
        x = draw(finite_arrays((n, c, h, w), dtype, low=-2, high=2)).round()
    else:
        x = draw(finite_arrays((n, c, h, w), dtype))
    return x, kernel, stride, padding, dilation, ceil_mode


@given(pool_problems(max_pool=True), st.data())
def test_max_pool2d(problem, data):
    x, kernel, stride, padding, dilation, ceil_mode = problem
    _agree("pool", "max_pool2d_forward", (x, kernel, stride, padding, dilation, ceil_mode), x.dtype)
    y, indices = cy_pool.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    grad_y = data.draw(finite_arrays(y.shape, x.dtype))
    _agree("pool", "max_pool2d_backward", (grad_y, indices, x.shape), x.dtype)


@given(pool_problems(max_pool=False), st.booleans(), st.data())
def test_avg_pool2d(problem, count_include_pad, data):
    x, kernel, stride, padding, _, ceil_mode = problem
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    _agree("pool", "avg_pool2d_forward", (x, *args), x.dtype)
    y = cy_pool.avg_pool2d_forward(x, *args)
    grad_y = data.draw(finite_arrays(y.shape, x.dtype))
    _agree("pool", "avg_pool2d_backward", (grad_y, x.shape, *args), x.dtype)


def test_max_pool2d_backward_rejects_bad_indices():
    """The compiled scatter runs without bounds checks, so indices outside the plane must raise."""
    grad_y = np.ones((1, 1, 2, 2))
    indices = np.array([[[[0, 1], [2, 99]]]], dtype=np.int64)
    with pytest.raises(ValueError, match="outside"):
        cy_pool.max_pool2d_backward(grad_y, indices, (1, 1, 3, 3))


# --- batch norm and residual --------------------------------------------------------------------

@st.composite
def batch_norm_problems(draw):
    dtype = draw(DTYPES)
    shape = draw(st.sampled_from([(2, 3), (3, 2, 5), (2, 4, 3, 5), (1, 3, 4, 2), (4, 1, 6)]))
    c = shape[1]
    x = draw(finite_arrays(shape, dtype))
    weight = draw(finite_arrays((c,), dtype))
    bias = draw(finite_arrays((c,), dtype))
    grad_y = draw(finite_arrays(shape, dtype))
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return x, weight, bias, grad_y, eps


@given(batch_norm_problems())
def test_batch_norm(problem):
    x, weight, bias, grad_y, eps = problem
    # the reference views x as (N, C, L); the Cython kernels also accept (N, C, *spatial)
    x3, g3 = x.reshape(x.shape[0], x.shape[1], -1), grad_y.reshape(x.shape[0], x.shape[1], -1)
    _agree("batchnorm", "batch_norm_forward_train", (x3, weight, bias, eps), x.dtype)
    _, mean, inv_std = cy_batchnorm.batch_norm_forward_train(x3, weight, bias, eps)
    _agree("batchnorm", "batch_norm_backward", (g3, x3, mean, inv_std, weight), x.dtype)
    y4, _, _ = cy_batchnorm.batch_norm_forward_train(x, weight, bias, eps)
    assert y4.shape == x.shape


@given(DTYPES.flatmap(lambda dtype: st.tuples(*(finite_arrays((2, 3, 4, 5), dtype) for _ in range(3)))))
def test_add_relu(arrays):
    a, b, grad_y = arrays
    _agree("residual", "add_relu_forward", (a, b), a.dtype)
    y = cy_residual.add_relu_forward(a, b)
    _agree("residual", "add_relu_backward", (grad_y, y), a.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_use_the_parallel_path(dtype):
    """Arrays above the parallel threshold (OpenMP team, if built with it) give the same results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 30, 23)).astype(dtype)
    weight = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    args = ((2, 1), (1, 0, 2, 1), (1, 2), 2)
    grad_y = rng.standard_normal(cy_conv.conv2d_forward(x, weight, *args).shape).astype(dtype)
    _agree_conv(x, weight, grad_y, *args)
    _agree("pool", "max_pool2d_forward", (x, (3, 2), (2, 2), (1, 1), (1, 1), True), dtype)
    _agree("pool", "avg_pool2d_forward", (x, (2, 3), (2, 1), (1, 1), False, False), dtype)
    gamma, beta = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    _agree("batchnorm", "batch_norm_forward_train", (x.reshape(4, 6, -1), gamma, beta, 1e-5), dtype)
    _agree("residual", "add_relu_forward", (x, x[::-1].copy()), dtype)


# --- backend selection --------------------------------------------------------------------------

def test_set_backend_cython_uses_these_kernels():
    from tinygrad_cnn import kernels

    with kernels.use_backend("cython"):
        for family, module in CYTHON.items():
            assert kernels.kernel_module(family) is module


def test_missing_extension_gives_a_clear_error(monkeypatch):
    """Without the compiled module set_backend("cython") says it was not built and how to build it."""
    from tinygrad_cnn import kernels

    monkeypatch.setitem(sys.modules, "tinygrad_cnn.kernels.cython._conv", None)  # import now fails
    monkeypatch.delitem(sys.modules, "tinygrad_cnn.kernels.cython.conv")
    previous = kernels.get_backend()
    with pytest.raises(RuntimeError, match="not built") as raised:
        kernels.set_backend("cython")
    assert "pip install" in str(raised.value)
    assert kernels.get_backend() == previous or kernels.get_backend() == "cython"
    kernels._backend = previous  # set_backend records the name before it loads


def test_openmp_flag_is_reported():
    assert isinstance(_conv.OPENMP, bool)
