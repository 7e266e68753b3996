"""Devices: the GPU is optional, never needed to import, and never mixed silently."""

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
    reason = tc.cuda.unavailable_reason()
    assert reason and ("CuPy" in reason or "GPU" in reason)
    with pytest.raises(RuntimeError, match="device 'cuda' requested, but") as info:
        Tensor([1.0]).to("cuda")
    assert reason in str(info.value)
    with pytest.raises(RuntimeError, match="device 'cuda' requested, but"):
        nn.Linear(2, 2).to("cuda")


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend CuPy and the NVIDIA driver are in a given state: ``fake_cuda(cupy, driver)``
    with cupy None (not installed), an exception (getDeviceCount raises) or a device count,
    and driver None (no libcuda) or (GPUs, CUDA major version)."""

    from tinygrad_cnn import device

    def arrange(cupy, driver):
        if cupy is None:
            monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
        else:
            def count():
                if isinstance(cupy, Exception):
                    raise cupy
                return cupy

            runtime = types.SimpleNamespace(getDeviceCount=count)
            monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(
                runtime=runtime)))
        monkeypatch.setattr(device, "_driver_gpus", lambda: driver)
        device._cupy_or_reason.cache_clear()

    yield arrange
    device._cupy_or_reason.cache_clear()


@pytest.mark.parametrize("cupy, driver, says, never", [
    (None, None, "no NVIDIA GPU (no NVIDIA driver found) and CuPy is not installed", "pip install"),
    (None, (0, 0), "the NVIDIA driver sees no GPU", "pip install"),
    (None, (2, 12), "has 2 NVIDIA GPU(s) (driver for CUDA 12) but CuPy", "gpu-cuda13"),
    (None, (1, 13), "pip install -e '.[gpu-cuda13]'", "no NVIDIA GPU"),
    (RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"), None,
     "CuPy is installed but cannot use a GPU: RuntimeError: cudaErrorNoDevice", "pip install"),
    (0, None, "CuPy is installed but sees no CUDA GPU", "pip install"),
])
def test_device_errors_say_which_of_cupy_or_a_gpu_is_missing(fake_cuda, cupy, driver, says, never):
    fake_cuda(cupy, driver)
    assert not tc.cuda.is_available() and tc.cuda.device_count() == 0
    with pytest.raises(RuntimeError) as info:
        Tensor([1.0]).to("cuda")
    message = str(info.value)
    assert says in message and never not in message, message
    with pytest.raises(RuntimeError, match="no CUDA device: "):
        tc.cuda.device_name()


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
