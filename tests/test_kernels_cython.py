"""What is particular to the Cython backend: its memory-safety checks, its parallel path,
backend selection and the build. (That its kernels equal the reference is the kernel
contract: tests/test_kernel_contract_*.py.)

If the extensions were not built the module is skipped, except where the environment variable
TINYGRAD_CNN_REQUIRE_COMPILED=1 (CI) demands compiled backends: there it fails.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from tests.kernel_backends import assert_close, reference
from tinygrad_cnn.nn.functional.geometry import ConvGeometry, PoolGeometry

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


def test_max_pool2d_backward_rejects_bad_indices():
    """The compiled scatter runs without bounds checks, so indices outside the plane must raise."""
    grad_y = np.ones((1, 1, 2, 2))
    indices = np.array([[[[0, 1], [2, 99]]]], dtype=np.int64)
    with pytest.raises(ValueError, match="outside"):
        cy_pool.max_pool2d_backward(grad_y, indices, PoolGeometry((1, 1, 3, 3), (2, 2), (1, 1)))


def test_arrays_must_match_the_geometry():
    """The loops trust the shapes: an array of another shape than the geometry's is refused."""
    g = ConvGeometry((1, 2, 5, 5), (3, 3), out_channels=4)
    with pytest.raises(ValueError, match=r"weight has shape \(4, 2, 2, 2\), the geometry expects"):
        cy_conv.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((4, 2, 2, 2)), g)
    with pytest.raises(TypeError, match="one dtype"):
        cy_conv.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3), np.float32), g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_use_the_parallel_path(dtype):
    """Arrays above the parallel threshold (OpenMP team, if built with it) give the same results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 30, 23)).astype(dtype)
    weight = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    g = ConvGeometry(x.shape, (3, 2), (2, 1), (1, 0, 2, 1), (1, 2), out_channels=4, groups=2)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    for plan in cy_conv.STRATEGIES:
        np.testing.assert_allclose(cy_conv.conv2d_forward(x, weight, g, plan),
                                   reference("conv").conv2d_forward(x, weight, g), **tol)
    pool = PoolGeometry(x.shape, (3, 2), (2, 2), (1, 1), (1, 1), True)
    np.testing.assert_array_equal(cy_pool.max_pool2d_forward(x, pool)[1],
                                  reference("pool").max_pool2d_forward(x, pool)[1])
    avg = PoolGeometry(x.shape, (2, 3), (2, 1), (1, 1), ceil_mode=False, count_include_pad=False)
    np.testing.assert_allclose(cy_pool.avg_pool2d_forward(x, avg),
                               reference("pool").avg_pool2d_forward(x, avg), **tol)
    gamma, beta = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    got = cy_batchnorm.batch_norm_forward_train(x.reshape(4, 6, -1), gamma, beta, 1e-5)[0]
    want = reference("batchnorm").batch_norm_forward_train(x.reshape(4, 6, -1), gamma, beta, 1e-5)[0]
    assert_close(got, want, dtype, scale=100.0)
    np.testing.assert_array_equal(cy_residual.add_relu_forward(x, x[::-1].copy()),
                                  reference("residual").add_relu_forward(x, x[::-1].copy()))


def test_conv_strategy_rule():
    """Winograd on the layers Numba's rule sends there (3x3 stride 1, 32+ channels) when every
    thread has an image, except 32-channel 8x8 layers, which the SIMD loops do faster (and,
    as in Numba's rule, 32-channel layers on planes a vector wide with AVX-512); the
    SIMD loops up to 64 channels where they cover the layer (setup.py built them), im2col +
    GEMM per image beyond, whole-batch GEMMs with fewer images than threads; one matrix
    product where the window is the whole input."""
    def rule(x_shape, k, threads=2, kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1)):
        g = ConvGeometry(x_shape, kernel, stride, padding, (1, 1), out_channels=k)
        return cy_conv.choose(g, threads)

    gemm = "im2col" if cy_conv.HAVE_BLAS else "whole_batch"
    simd = "simd" if "simd" in cy_conv.STRATEGIES else gemm
    winograd = "winograd" if cy_conv.HAVE_BLAS else gemm
    assert rule((8, 16, 32, 32), 16) == simd  # ResNet-20's 16-channel layers: below 32 channels
    blocks3x3 = simd == "simd" and cy_conv.simd.vector_width() == 16  # AVX-512's 3x3 blocks
    assert rule((8, 32, 16, 16), 32) == ("simd" if blocks3x3 else winograd)  # its 32-channel ones
    assert rule((8, 48, 16, 16), 48) == winograd
    assert rule((8, 64, 8, 8), 64) == winograd  # its 64-channel ones
    assert rule((8, 32, 8, 8), 32) == simd  # a small plane with 32 channels: SIMD wins
    assert rule((8, 32, 8, 8), 64) == simd
    assert rule((8, 48, 8, 8), 48) == winograd
    assert rule((8, 64, 16, 16), 128) == winograd
    assert rule((8, 128, 16, 16), 128) == winograd
    assert rule((8, 128, 16, 16), 128, stride=(2, 2)) == gemm  # strided: no Winograd
    assert rule((8, 128, 16, 16), 128, padding=(3, 3, 3, 3)) == gemm  # padding > 2
    assert rule((8, 128, 16, 16), 128, kernel=(5, 5)) == gemm
    assert rule((8, 16, 32, 32), 16, stride=(2, 2)) == simd
    assert rule((1, 128, 16, 16), 128) == "whole_batch"  # fewer images than threads
    assert rule((1, 128, 16, 16), 128, threads=1) == winograd
    assert rule((64, 16, 5, 5), 120, kernel=(5, 5), padding=(0, 0, 0, 0)) == "fully_connected"  # LeNet's C5
    assert rule((1, 16, 5, 5), 120, kernel=(5, 5), padding=(0, 0, 0, 0)) == "fully_connected"


def test_winograd_kernels_check_their_arrays():
    """The compiled Winograd loops run without bounds checks: transformed weights, outputs or
    work buffers of the wrong size are refused before they run."""
    from tinygrad_cnn.kernels.cython import _winograd

    x, y = np.ones((2, 3, 6, 6)), np.empty((2, 4, 6, 6))
    size = _winograd.work_size(3, 4, 6, 6, 1)
    with pytest.raises(ValueError, match="must be"):
        _winograd.forward(x, np.ones((16, 4, 3)), y, np.empty((2, size)), 1, 1, 1)
    with pytest.raises(ValueError, match="too small"):
        _winograd.forward(x, np.ones((16, 3, 4)), y, np.empty((2, size - 1)), 1, 1, 1)
    with pytest.raises(ValueError, match="does not fit"):  # padding 3: the input would pass the frame
        _winograd.forward(x, np.ones((16, 3, 4)), y, np.empty((2, size)), 3, 1, 1)
    with pytest.raises(ValueError, match="must be"):
        _winograd.backward_weight(y, x, np.zeros((1, 16, 3, 4)), np.empty((2, size)), 1, 1, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_finite_test_finds_every_inf_and_nan(dtype):
    """all_finite decides whether Winograd runs (Inf - Inf would be NaN): an Inf or NaN in
    the first, a middle or the last place, in a partial lane group or block, is found; the
    largest finite values are finite."""
    from tinygrad_cnn.kernels.cython import _winograd

    for n in (1, 15, 17, 16384, 16385, 50001):
        a = np.random.default_rng(n).standard_normal(n).astype(dtype)
        assert _winograd.all_finite(a, 2)
        assert _winograd.all_finite(np.full(n, np.finfo(dtype).max, dtype), 2)
        for bad in (np.inf, -np.inf, np.nan):
            for position in (0, n // 2, n - 1):
                b = a.copy()
                b[position] = bad
                assert not _winograd.all_finite(b, 2) and not _winograd.all_finite(b, 1)
    assert _winograd.all_finite(np.empty(0, dtype), 2)


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
