"""Devices: the GPU is optional, never needed to import, and never mixed silently."""

import re
import subprocess
import sys
import types

import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, nn


def test_import_does_not_import_cupy():
    code = "import sys, tinygrad_cnn; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cuda_queries_never_fail():
    assert isinstance(tc.cuda.is_available(), bool)
    assert tc.cuda.device_count() >= (1 if tc.cuda.is_available() else 0)


@pytest.mark.skipif(tc.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_gpu_gives_a_clear_error():
    missing = "CuPy is not installed|finds no usable CUDA GPU|sees no CUDA GPU"
    with pytest.raises(RuntimeError, match=f"device 'cuda' requested but CuPy .*({missing})"):
        Tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match=missing):
        nn.Linear(2, 2).to("cuda")
    assert tc.cuda.unavailable_reason() and re.search(missing, tc.cuda.unavailable_reason())


def test_the_error_says_which_of_cupy_or_a_gpu_is_missing(monkeypatch):
    from tinygrad_cnn import device

    def no_driver():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    without_gpu = types.SimpleNamespace(__version__="99.1", cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=no_driver)))
    zero_gpus = types.SimpleNamespace(__version__="99.2", cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 0)))
    cases = [(None, r"CuPy is not installed .*pip install -e '\.\[gpu-cuda13\]'"),
             (without_gpu, r"CuPy 99\.1 is installed but finds no usable CUDA GPU \(cudaErrorNoDevice"),
             (zero_gpus, r"CuPy 99\.2 is installed but sees no CUDA GPU")]
    try:
        for module, message in cases:
            monkeypatch.setitem(sys.modules, "cupy", module)  # None: `import cupy` raises ImportError
            device._probe.cache_clear()
            with pytest.raises(RuntimeError, match=message):
                device.check_device("cuda")
            assert not tc.cuda.is_available() and tc.cuda.device_count() == 0
    finally:
        monkeypatch.undo()
        device._probe.cache_clear()


def test_cpu_moves_are_no_ops():
    t = Tensor([1.0], requires_grad=True)
    assert t.to("cpu") is t and t.cpu() is t
    layer = nn.Linear(2, 2)
    assert layer.to("cpu") is layer


def test_backend_selection_and_a_failed_switch_keeps_the_old_backend(monkeypatch):
    import tinygrad_cnn.kernels as kernels

    before = tc.get_backend()
    with tc.use_backend("reference"):
        assert tc.get_backend() == "reference"
        assert kernels.kernel_module("conv").__name__ == "tinygrad_cnn.kernels.reference.conv"
    assert tc.get_backend() == before
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        tc.set_backend("fast")

    def broken(backend, family):
        raise RuntimeError(f"backend {backend!r} cannot load its {family!r} kernels")

    monkeypatch.setattr(kernels, "_load", broken)
    with pytest.raises(RuntimeError, match="cannot load"):
        tc.set_backend("cython")
    assert tc.get_backend() == before


def test_use_backend_in_one_thread_leaves_the_others_on_their_kernels():
    import threading

    entered, release = threading.Event(), threading.Event()
    before = tc.get_backend()
    seen_inside = []

    def other():
        with tc.use_backend("reference"):
            seen_inside.append(tc.get_backend())
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=other)
    worker.start()
    try:
        assert entered.wait(5)
        assert tc.get_backend() == before
    finally:
        release.set()
        worker.join()
    assert seen_inside == ["reference"] and tc.get_backend() == before


def test_set_backend_cuda_points_to_the_device_argument():
    with pytest.raises(ValueError, match="device='cuda'"):
        tc.set_backend("cuda")
