"""The GPU columns of ``benchmarks/run.py``: tinygrad_cnn on CuPy and PyTorch on CUDA.

They appear only where a GPU is: ``"cupy"`` where tinygrad_cnn's CUDA device works (CuPy sees
a GPU), ``"torch-cuda"`` where the installed PyTorch is a CUDA build and sees one (the
``torch==2.13.0`` that CI and the developers install is a CPU build: PyTorch on the GPU
needs a CUDA build, such as the one the GPU machines come with).

A GPU runs kernels asynchronously: a call returns once its kernels are queued. Every GPU
contestant therefore waits for the device at the end of each call (:func:`synced`), so the
round-robin timer of ``run.race`` measures the work, not the queueing.
"""

from __future__ import annotations

from collections.abc import Callable


def _cupy_sync() -> None:
    import cupy

    cupy.cuda.Device().synchronize()


def _torch_sync() -> None:
    import torch

    torch.cuda.synchronize()


def have_torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def available() -> dict[str, Callable[[], None]]:
    """{GPU contestant: its synchronize function} for the ones this machine has."""
    import tinygrad_cnn

    found = {}
    if tinygrad_cnn.cuda.is_available():
        found["cupy"] = _cupy_sync
    if have_torch_cuda():
        found["torch-cuda"] = _torch_sync
    return found


def synced(fn: Callable[[], object], sync: Callable[[], None]) -> Callable[[], object]:
    """``fn`` followed by waiting for the GPU to finish what it queued."""
    def call():
        result = fn()
        sync()
        return result
    return call


def info() -> dict:
    """The GPU, CuPy's and CUDA's versions, and whether PyTorch has CUDA (empty without a GPU)."""
    import tinygrad_cnn

    result: dict = {}
    if tinygrad_cnn.cuda.is_available():
        import cupy

        runtime = cupy.cuda.runtime
        result.update(gpu=tinygrad_cnn.cuda.device_name(), cupy=cupy.__version__,
                      cuda_runtime=runtime.runtimeGetVersion(), cuda_driver=runtime.driverGetVersion())
    if have_torch_cuda():
        import torch

        result.update(torch_cuda=torch.version.cuda, torch_gpu=torch.cuda.get_device_name(0),
                      cudnn=torch.backends.cudnn.version())
    return result


def markdown(results: dict) -> list[str]:
    """The GPU tables (no lines where no GPU contestant ran)."""
    def ms(row, key):
        return f"{row[key]['median'] * 1e3:.3f}" if key in row else "-"

    def ratio(row, a, b):
        return f"{row[a]['median'] / row[b]['median']:.2f}" if a in row and b in row else "-"

    lines: list[str] = []
    ops = [row for row in results.get("ops", []) if "cupy fwd" in row or "torch-cuda fwd" in row]
    if ops:
        lines += ["", "| op (GPU) | cupy fwd ms | torch-cuda fwd ms | cupy fwd+bwd ms | "
                  "torch-cuda fwd+bwd ms | cupy/torch-cuda (fwd+bwd) | numba/cupy (fwd+bwd) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in ops:
            lines.append(f"| {row['op']} | {ms(row, 'cupy fwd')} | {ms(row, 'torch-cuda fwd')} | "
                         f"{ms(row, 'cupy fwd+bwd')} | {ms(row, 'torch-cuda fwd+bwd')} | "
                         f"{ratio(row, 'cupy fwd+bwd', 'torch-cuda fwd+bwd')} | "
                         f"{ratio(row, 'numba fwd+bwd', 'cupy fwd+bwd')} |")
    steps = [row for row in results.get("training", []) if "cupy" in row or "torch-cuda" in row]
    if steps:
        lines += ["", "| training step (GPU) | cupy ms | torch-cuda ms | cupy/torch-cuda | numba/cupy |",
                  "|---|---:|---:|---:|---:|"]
        for row in steps:
            lines.append(f"| {row['model']} b{row['batch']} | {ms(row, 'cupy')} | {ms(row, 'torch-cuda')} | "
                         f"{ratio(row, 'cupy', 'torch-cuda')} | {ratio(row, 'numba', 'cupy')} |")
    return lines
