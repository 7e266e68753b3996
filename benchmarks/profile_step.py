"""Where a training step's time goes: kernels, numpy between them, Python and autograd.

    python -m benchmarks.profile_step                 # ResNet-20 b32 and LeNet-5 b64
    python -m benchmarks.profile_step resnet20 128

One SGD step (forward, cross-entropy, backward, update, as benchmarks/run.py times it) runs
under cProfile, and each function's own time is put in one of four bins:

* ``kernels``: code under ``kernels/`` and what it calls (the compiled Numba and C loops,
  the GEMMs, waiting for the other share threads);
* ``numpy between kernels``: the array math of the rest of the library: the forward and
  backward methods in ``ops.py`` and ``nn/functional/`` and the optimizer's update (numpy
  operators such as ``a + b`` run inside those methods' own time, which cProfile cannot
  split from the few lines of Python around them), and numpy functions they call;
* ``python + autograd``: the library's own Python (Tensor methods, Function.apply, the
  backward traversal, modules' forward, argument checks);
* ``other``: the standard library and the rest.

A built-in function (a numpy ufunc, a Numba dispatch) has no file: its time goes to the bin
of its callers, in proportion to the time each caller spent in it. cProfile slows Python
code more than compiled code, so the unprofiled step time is printed beside the shares.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import numpy as np

BINS = ("kernels", "numpy between kernels", "python + autograd", "other")
ARRAY_MATH = ("/tinygrad_cnn/ops.py", "/tinygrad_cnn/nn/functional/", "/tinygrad_cnn/optim/")


def _bin_of_file(filename: str) -> str | None:
    if "/kernels/" in filename:
        return "kernels"
    if "/numpy/" in filename:
        return "numpy"
    if any(part in filename for part in ARRAY_MATH):
        return "numpy between kernels"
    if "/tinygrad_cnn/" in filename:
        return "python + autograd"
    if filename == "~":  # a built-in: decided by its callers
        return None
    return "other"


def _caller_bin(caller: tuple, stats: dict, seen: frozenset = frozenset()) -> str:
    """The bin of a caller: its file's, or for numpy's own Python functions and built-ins, the
    bin of whoever called them (numpy called from kernels/ is kernel work)."""
    kind = _bin_of_file(caller[0])
    if kind not in (None, "numpy"):
        return kind
    callers = stats.get(caller, (0, 0, 0, 0, {}))[4]
    if not callers or caller in seen:
        return "numpy between kernels" if kind == "numpy" else "other"
    heaviest = max(callers, key=lambda c: callers[c][2])
    outer = _caller_bin(heaviest, stats, seen | {caller})
    return "numpy between kernels" if outer == "python + autograd" else outer


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per bin (the profile's own times, summed)."""
    table = stats.stats  # {func: (primitive calls, calls, own time, cumulative, callers)}
    seconds = dict.fromkeys(BINS, 0.0)
    for func, (_, _, own, _, callers) in table.items():
        kind = _bin_of_file(func[0])
        if kind in ("kernels", "numpy between kernels", "python + autograd", "other"):
            seconds[kind] += own
            continue
        # numpy Python code and built-ins: split by caller, weighted by the time under each
        weights = {c: v[2] for c, v in callers.items()} or {func: own}
        total = sum(weights.values()) or 1.0
        numpy_work = kind == "numpy" or "numpy" in func[2]  # numpy's code, or a ufunc/numpy built-in
        for caller, weight in weights.items():
            where = _caller_bin(caller, table) if caller != func else "other"
            if numpy_work and where == "python + autograd":  # numpy called from the library's Python
                where = "numpy between kernels"
            seconds[where] += own * weight / total
    return seconds


def profile(model_name: str, batch: int, steps: int = 5) -> dict:
    """The unprofiled step time and the profiled step's seconds per bin, on the numba backend."""
    import numba
    from tinygrad_cnn.kernels import use_backend

    from benchmarks.run import THREADS, _ours_step

    numba.set_num_threads(THREADS)
    with use_backend("numba"):
        _, step = _ours_step(model_name, batch)
        for _ in range(3):
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(steps):
            step()
        profiler.disable()
    seconds = breakdown(pstats.Stats(profiler))
    total = sum(seconds.values())
    return {"model": model_name, "batch": batch, "step_ms": float(np.median(times)) * 1e3,
            "profiled_step_ms": total / steps * 1e3,
            "shares": {name: value / total for name, value in seconds.items()}}


def main(argv: list[str]) -> None:
    cases = [(argv[0], int(argv[1]))] if len(argv) >= 2 else [("resnet20", 32), ("lenet5", 64)]
    print("| step | ms (unprofiled) | ms (profiled) | " + " | ".join(BINS) + " |")
    print("|---|---:|---:|" + "---:|" * len(BINS))
    for model_name, batch in cases:
        row = profile(model_name, batch)
        shares = " | ".join(f"{100 * row['shares'][name]:.0f}%" for name in BINS)
        print(f"| {model_name} b{batch} | {row['step_ms']:.1f} | {row['profiled_step_ms']:.1f} | {shares} |",
              flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])
