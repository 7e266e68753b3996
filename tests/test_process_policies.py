"""The two process-wide policies the kernels set when they load: BLAS on one thread
(kernels/blas_threads.py) and freed memory kept for the next step (kernels/allocator.py)."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from tinygrad_cnn.kernels import allocator, blas_threads


def test_bad_settings_are_errors(monkeypatch):
    monkeypatch.setenv("TINYGRAD_CNN_MALLOC", "sometimes")
    with pytest.raises(ValueError, match="TINYGRAD_CNN_MALLOC must be 'keep' or 'default', got 'sometimes'"):
        allocator.keep_freed_memory()
    monkeypatch.setenv("TINYGRAD_CNN_BLAS_THREADS", "0")
    with pytest.raises(ValueError, match="TINYGRAD_CNN_BLAS_THREADS must be a positive int, got '0'"):
        blas_threads.claim_cores()


def test_default_keeps_glibcs_policy(monkeypatch):
    monkeypatch.setenv("TINYGRAD_CNN_MALLOC", "default")
    assert allocator.keep_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt's thresholds are glibc's")
def test_glibc_thresholds_are_raised(monkeypatch):
    monkeypatch.delenv("TINYGRAD_CNN_MALLOC", raising=False)
    assert allocator.keep_freed_memory() is True
    # arrays still allocate, free and hold their values under the raised thresholds
    arrays = [np.full(n, float(n), dtype=np.float32) for n in (1, 1 << 16, 1 << 22)]
    assert [float(a[-1]) for a in arrays] == [1.0, 65536.0, 4194304.0]


def test_the_pin_restores_blas_threads():
    from threadpoolctl import threadpool_info

    with blas_threads.single_thread_blas:  # loads SciPy's BLAS too, so both lists see it
        pass
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with blas_threads.single_thread_blas:
        with blas_threads.single_thread_blas:  # re-entrant
            inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert all(n == 1 for n in inside) and after == before


def test_the_pin_sets_and_restores_counts_other_than_one():
    """Where a user gave the BLAS more threads (claim_cores leaves 1, which the pin skips),
    the pin still makes them 1 inside and gives the user's count back after."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with blas_threads.single_thread_blas:  # loads SciPy's BLAS too
        pass
    with threadpool_limits(limits=2, user_api="blas"):
        before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        if all(n == 1 for n in before):
            pytest.skip(f"the BLAS libraries would not take 2 threads here: {before}")
        with blas_threads.single_thread_blas:
            inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert all(n == 1 for n in inside) and after == before
