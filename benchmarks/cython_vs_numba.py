"""Time every kernel of the Cython backend beside the Numba and reference backends.

    python benchmarks/cython_vs_numba.py [--repeat 7] [--batch 32] [--markdown benchmarks/out/cython.md]

Shapes are the layers of LeNet-5 (28x28 digits, padded to 32x32 by conv1) and of ResNet-20
(CIFAR 32x32, stages of 16/32/64 channels), batch 32, float32. Each cell is the best of
``--repeat`` timed calls after one warm-up call (which also compiles the Numba kernels).
The ratio column is Cython time / the faster compiled backend's time: below 1.5 is the target.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinygrad_cnn.nn.functional.geometry import ConvGeometry, PoolGeometry

BACKENDS = ("reference", "numba", "cython")


def _module(backend: str, family: str):
    try:
        return importlib.import_module(f"tinygrad_cnn.kernels.{backend}.{family}")
    except ImportError:
        return None


def _best_time(call: Callable[[], object], repeat: int) -> float:
    call()  # warm-up: Numba compiles, caches fill
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _conv_cases(batch: int, rng: np.random.Generator):
    """(name, x, weight, stride, padding) for the convolution layers of LeNet-5 and ResNet-20."""
    layers = [
        ("LeNet conv1 1->6 5x5 28x28 pad2", (1, 28), (6, 5), 1, 2),
        ("LeNet conv2 6->16 5x5 14x14", (6, 14), (16, 5), 1, 0),
        ("ResNet conv 16->16 3x3 32x32", (16, 32), (16, 3), 1, 1),
        ("ResNet conv 16->32 3x3 s2 32x32", (16, 32), (32, 3), 2, 1),
        ("ResNet conv 32->32 3x3 16x16", (32, 16), (32, 3), 1, 1),
        ("ResNet conv 64->64 3x3 8x8", (64, 8), (64, 3), 1, 1),
    ]
    for name, (c, size), (k, kernel), stride, pad in layers:
        x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
        weight = rng.standard_normal((k, c, kernel, kernel)).astype(np.float32)
        yield name, x, weight, ConvGeometry(x.shape, (kernel, kernel), (stride, stride), (pad,) * 4,
                                            out_channels=k)


def benchmark(batch: int, repeat: int) -> list[tuple[str, dict[str, float | None]]]:
    rng = np.random.default_rng(0)
    rows: list[tuple[str, dict[str, float | None]]] = []

    def add(name: str, family: str, make_call: Callable[[object], Callable[[], object]]) -> None:
        cells: dict[str, float | None] = {}
        for backend in BACKENDS:
            module = _module(backend, family)
            cells[backend] = None if module is None else _best_time(make_call(module), repeat)
        rows.append((name, cells))
        print(_format_row(name, cells), flush=True)

    for name, x, w, g in _conv_cases(batch, rng):
        gy = rng.standard_normal(g.output_shape).astype(np.float32)
        add(f"{name} fwd", "conv", lambda m, x=x, w=w, g=g: lambda: m.conv2d_forward(x, w, g))
        add(f"{name} bwd input", "conv",
            lambda m, w=w, gy=gy, g=g: lambda: m.conv2d_backward_input(gy, w, g))
        add(f"{name} bwd weight", "conv",
            lambda m, x=x, gy=gy, g=g: lambda: m.conv2d_backward_weight(gy, x, g))

    for name, shape, kernel in [("LeNet maxpool 2x2 6x28x28", (batch, 6, 28, 28), 2),
                                ("LeNet maxpool 2x2 16x10x10", (batch, 16, 10, 10), 2),
                                ("ResNet maxpool 3x3 s2 16x32x32", (batch, 16, 32, 32), 3)]:
        x = rng.standard_normal(shape).astype(np.float32)
        p = (kernel // 2, kernel // 2) if kernel == 3 else (0, 0)
        g = PoolGeometry(shape, (kernel, kernel), (2, 2), p)
        y, idx = _module("reference", "pool").max_pool2d_forward(x, g)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        add(f"{name} fwd", "pool", lambda m, x=x, g=g: lambda: m.max_pool2d_forward(x, g))
        add(f"{name} bwd", "pool",
            lambda m, gy=gy, idx=idx, g=g: lambda: m.max_pool2d_backward(gy, idx, g))

    for name, shape, kernel in [("LeNet avgpool 2x2 6x28x28", (batch, 6, 28, 28), 2),
                                ("ResNet global avgpool 64x8x8", (batch, 64, 8, 8), 8)]:
        x = rng.standard_normal(shape).astype(np.float32)
        g = PoolGeometry(shape, (kernel, kernel), (kernel, kernel))
        gy = rng.standard_normal(g.output_shape).astype(np.float32)
        add(f"{name} fwd", "pool", lambda m, x=x, g=g: lambda: m.avg_pool2d_forward(x, g))
        add(f"{name} bwd", "pool", lambda m, gy=gy, g=g: lambda: m.avg_pool2d_backward(gy, g))

    for channels, size in [(16, 32), (32, 16), (64, 8)]:
        x = rng.standard_normal((batch, channels, size * size)).astype(np.float32)
        gamma = rng.standard_normal(channels).astype(np.float32)
        beta = rng.standard_normal(channels).astype(np.float32)
        _, mean, inv_std = _module("reference", "batchnorm").batch_norm_forward_train(x, gamma, beta, 1e-5)
        gy = rng.standard_normal(x.shape).astype(np.float32)
        name = f"ResNet batchnorm {channels}x{size}x{size}"
        add(f"{name} fwd", "batchnorm",
            lambda m, x=x, g=gamma, b=beta: lambda: m.batch_norm_forward_train(x, g, b, 1e-5))
        add(f"{name} bwd", "batchnorm",
            lambda m, x=x, g=gamma, gy=gy, mu=mean, inv=inv_std: (
                lambda: m.batch_norm_backward(gy, x, mu, inv, g)))

    for channels, size in [(16, 32), (64, 8)]:
        a = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
        b = rng.standard_normal(a.shape).astype(np.float32)
        y = np.maximum(a + b, 0)
        name = f"ResNet add+relu {channels}x{size}x{size}"
        add(f"{name} fwd", "residual", lambda m, a=a, b=b: lambda: m.add_relu_forward(a, b))
        add(f"{name} bwd", "residual", lambda m, y=y, gy=b: lambda: m.add_relu_backward(gy, y))
    return rows


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f}"


def _ratio(cells: dict[str, float | None]) -> str:
    compiled = [cells[b] for b in ("numba", "cython") if cells[b] is not None]
    if cells["cython"] is None or not compiled:
        return "n/a"
    return f"{cells['cython'] / min(compiled):.2f}"


def _winner(cells: dict[str, float | None]) -> str:
    if cells["numba"] is None or cells["cython"] is None:
        return "n/a"
    return "cython" if cells["cython"] < cells["numba"] else "numba"


def _format_row(name: str, cells: dict[str, float | None]) -> str:
    return (f"{name:<46} " + " ".join(f"{_ms(cells[b]):>10}" for b in BACKENDS)
            + f" {_ratio(cells):>7} {_winner(cells):>7}")


def markdown(rows, batch: int) -> str:
    lines = [f"Kernel times in ms (best of repeats, float32, batch {batch}); "
             "ratio = cython / faster compiled backend.",
             "", "| op | reference | numba | cython | ratio | faster |", "|---|---:|---:|---:|---:|---|"]
    for name, cells in rows:
        lines.append(f"| {name} | " + " | ".join(_ms(cells[b]) for b in BACKENDS)
                     + f" | {_ratio(cells)} | {_winner(cells)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    print(f"{'op (ms)':<46} " + " ".join(f"{b:>10}" for b in BACKENDS) + f" {'ratio':>7} {'faster':>7}")
    rows = benchmark(args.batch, args.repeat)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows, args.batch))


if __name__ == "__main__":
    main()
