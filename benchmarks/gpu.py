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


# ----------------------------------------------------------------------------- the GPU check
def _goal(goal: str, value: float | None, met) -> tuple[str, str, bool | None]:
    return goal, "-" if value is None else f"{value:.2f}", None if value is None else met(value)


def goals(results: dict) -> list[tuple[str, str, bool | None]]:
    """The issue's speed goals, read off a benchmark run: (goal, measured, met); met is None
    where a contestant is missing (no GPU, or PyTorch without CUDA)."""
    def ratio(row, a, b):
        return row[a]["median"] / row[b]["median"] if row and a in row and b in row else None

    convs = [row for row in results.get("ops", [])
             if row.get("kind") == "conv" and row["op"].startswith("resnet") and row["op"].endswith("b128")]
    ratios = [ratio(row, "cupy fwd+bwd", "torch-cuda fwd+bwd") for row in convs]
    worst = max(ratios) if ratios and None not in ratios else None
    step = next((row for row in results.get("training", [])
                 if row["model"] == "resnet20" and row["batch"] == 128), None)
    return [
        _goal("conv2d fwd+bwd at the ResNet-20 shapes, b128: cupy / PyTorch+cuDNN <= 3 (worst layer)", worst,
              lambda r: r <= 3),
        _goal("ResNet-20 step b128: cupy / PyTorch-CUDA <= 2 (goal 1.2)", ratio(step, "cupy", "torch-cuda"),
              lambda r: r <= 2),
        _goal("ResNet-20 step b128: Numba CPU / cupy >= 10", ratio(step, "numba", "cupy"), lambda r: r >= 10),
    ]


def junit_counts(path: str) -> dict:
    """passed / failed / errors / skipped of a pytest ``--junitxml`` file, and the failures' names."""
    import xml.etree.ElementTree as ElementTree

    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), None)
        key = {"failure": "failed", "error": "errors", "skipped": "skipped", None: "passed"}[outcome]
        counts[key] += 1
        if outcome in ("failure", "error"):
            counts["failures"].append(f"{case.get('classname')}::{case.get('name')}")
    return counts


def summary(results: dict, counts: dict | None) -> str:
    """The GPU check's report: the machine, the test counts (None: the tests wrote no report),
    the goals and the GPU tables."""
    info = results.get("machine", {})
    keys = ("gpu", "cupy", "cuda_runtime", "cuda_driver", "torch", "torch_cuda", "cudnn", "cpu", "threads")
    lines = ["# GPU check", "", *(f"- {key}: {info[key]}" for key in keys if key in info),
             ""]
    if counts is None:
        lines += ["Tests: no report (the test run was stopped before it wrote one)"]
    else:
        lines += [f"Tests (`-k 'cuda or cupy'`): {counts['passed']} passed, {counts['failed']} failed, "
                  f"{counts['errors']} errors, {counts['skipped']} skipped", ""]
        lines += [f"- FAILED {name}" for name in counts["failures"][:40]]
    lines += ["", "| goal | measured | met |", "|---|---:|---|"]
    lines += [f"| {goal} | {value} | {'-' if met is None else ('yes' if met else 'NO')} |"
              for goal, value, met in goals(results)]
    return "\n".join(lines + markdown(results)) + "\n"


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="write the GPU check's summary")
    parser.add_argument("results", help="results.json of benchmarks/run.py")
    parser.add_argument("junit", help="the GPU tests' --junitxml file")
    args = parser.parse_args()
    from pathlib import Path

    with open(args.results) as f:
        report = summary(json.load(f), junit_counts(args.junit) if Path(args.junit).is_file() else None)
    print(report)
