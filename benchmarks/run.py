"""Benchmark the compiled kernels against the reference kernels and PyTorch, in one command.

    python -m benchmarks.run            # everything (a few minutes)
    python -m benchmarks.run --quick    # fewer repeats, smaller reference runs

Sections (printed as tables, written to benchmarks/out/results.json and results.md):

* ``ops``: per op at named shapes (LeNet-5 and ResNet-20 layers, a 128-channel conv, pooling,
  batch norm, the residual add+ReLU), forward (no graph) and forward+backward through the
  public ``nn.functional`` ops, for the ``reference`` backend, the ``numba`` backend and
  PyTorch CPU with the same thread count, all in this process. Contestants are timed
  round-robin (one call each per round) so a noisy machine hits them alike; we report the
  median and the minimum of the rounds after warm-up, the ratio numba / PyTorch (median) and
  GFLOP/s for the convolutions (forward: 2*N*K*OH*OW*Cg*KH*KW; backward twice that).
  The reference backend runs at batch 1 and is extrapolated linearly in N when a full-batch
  call takes longer than 5 s (marked ``*``; an overestimate, see RESULTS.md).
* ``loops`` (with ``ops``): the forward op written as the formula in plain Python
  (``definition_loops.py``), timed on one image and scaled by N, at the LeNet-5 and ResNet-20
  shapes: the "reference loops" that compiled kernels replace.
* ``first_call``: a fresh subprocess times ``import`` + its first ``conv2d`` with an empty
  ``NUMBA_CACHE_DIR`` (cold: compiles) and again with that now-filled cache (warm).
* ``training``: whole SGD steps (forward, cross-entropy, backward, update) of LeNet-5 (ReLU and tanh)
  (batch 64) and ResNet-20 (batch 32, 128) against the same PyTorch models, plus peak memory
  measured in separate subprocesses (see :func:`memory_probe`).

Where a GPU is, ``ops`` and ``training`` race two more contestants in the same rounds:
``cupy`` (tinygrad_cnn on ``device="cuda"``) and ``torch-cuda`` (a CUDA build of PyTorch),
each waiting for the GPU at the end of every call (``benchmarks/gpu.py``); their tables
appear only then. ``--gpu`` keeps the ops that a GPU check needs (ResNet-20's convolutions,
pooling, batch norm, add+ReLU) quick.

Longer than 500 lines: the one command runs every section and writes one report, so the
timing harness, each section and the markdown writer sit together in the order they run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


# ----------------------------------------------------------------------------- timing
def race(contestants: dict[str, Callable[[], object]], rounds: int, warmup: int = 2,
         settle_s: float = 0.03) -> dict[str, dict]:
    """Time each contestant ``rounds`` times, round-robin, after ``warmup`` untimed calls each.
    In every round each contestant first repeats its call untimed for ``settle_s`` seconds (at
    least once; not at all for 0), then makes the timed call: a framework's OpenMP threads spin after its call
    (PyTorch's and the Cython backend's, ~20 ms measured here) and its data fill the caches,
    so a call right after another framework's ran up to 2x slower than the same call after
    its own (RESULTS.md, "Method"). Timed after its own calls, each runs as in a training loop.
    Returns {name: {"median": s, "min": s}}."""
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            settled = time.perf_counter() + settle_s
            while settle_s > 0:  # settle_s = 0: no untimed call at all
                fn()
                if time.perf_counter() >= settled:
                    break
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


# ----------------------------------------------------------------------------- per-op cases
def conv_flops(x_shape, w_shape, y_shape) -> float:
    n, k, oh, ow = y_shape
    return 2.0 * n * k * oh * ow * w_shape[1] * w_shape[2] * w_shape[3]


OP_CASES = [
    # name, kind, x shape, options
    ("lenet conv1 1->6 5x5 p2 28x28 b64", "conv", (64, 1, 28, 28), dict(w=(6, 1, 5, 5), padding=2)),
    ("lenet conv2 6->16 5x5 14x14 b64", "conv", (64, 6, 14, 14), dict(w=(16, 6, 5, 5), padding=0)),
    ("resnet 3x3 16ch 32x32 b32", "conv", (32, 16, 32, 32), dict(w=(16, 16, 3, 3), padding=1)),
    ("resnet 3x3 32ch 16x16 b32", "conv", (32, 32, 16, 16), dict(w=(32, 32, 3, 3), padding=1)),
    ("resnet 3x3 64ch 8x8 b32", "conv", (32, 64, 8, 8), dict(w=(64, 64, 3, 3), padding=1)),
    ("resnet 3x3 16ch 32x32 b128", "conv", (128, 16, 32, 32), dict(w=(16, 16, 3, 3), padding=1)),
    ("resnet 3x3 32ch 16x16 b128", "conv", (128, 32, 16, 16), dict(w=(32, 32, 3, 3), padding=1)),
    ("resnet 3x3 64ch 8x8 b128", "conv", (128, 64, 8, 8), dict(w=(64, 64, 3, 3), padding=1)),
    ("conv 3x3 128->128 16x16 b32", "conv", (32, 128, 16, 16), dict(w=(128, 128, 3, 3), padding=1)),
    ("max pool 2x2 6ch 28x28 b64", "max_pool", (64, 6, 28, 28), {}),
    ("max pool 2x2 16ch 32x32 b128", "max_pool", (128, 16, 32, 32), {}),
    ("avg pool 2x2 6ch 28x28 b64", "avg_pool", (64, 6, 28, 28), {}),
    ("avg pool 2x2 16ch 32x32 b128", "avg_pool", (128, 16, 32, 32), {}),
    ("batch norm 16ch 32x32 b128", "batch_norm", (128, 16, 32, 32), {}),
    ("batch norm 64ch 8x8 b32", "batch_norm", (32, 64, 8, 8), {}),
    ("add+relu 16ch 32x32 b128", "add_relu", (128, 16, 32, 32), {}),
]


def _ours_op(kind: str, x_shape, options, batch: int | None = None, device: str = "cpu"):
    """(forward, forward+backward, flops) closures for tinygrad_cnn's functional op on ``device``."""
    import tinygrad_cnn.nn.functional as F
    from tinygrad_cnn.autograd import no_grad
    from tinygrad_cnn.tensor import Tensor

    rng = np.random.default_rng(0)
    shape = (batch or x_shape[0],) + tuple(x_shape[1:])
    x = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True, device=device)
    params: list = []
    if kind == "conv":
        w = Tensor(rng.standard_normal(options["w"]).astype(np.float32) * 0.1, requires_grad=True,
                   device=device)
        params = [w]

        def op():
            return F.conv2d(x, w, None, 1, options["padding"])
    elif kind == "max_pool":
        def op():
            return F.max_pool2d(x, 2)
    elif kind == "avg_pool":
        def op():
            return F.avg_pool2d(x, 2)
    elif kind == "batch_norm":
        c = shape[1]
        weight = Tensor(np.ones(c, np.float32), requires_grad=True, device=device)
        bias = Tensor(np.zeros(c, np.float32), requires_grad=True, device=device)
        params = [weight, bias]

        def op():
            return F.batch_norm(x, None, None, weight, bias, training=True)
    else:
        other = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True, device=device)
        params = [other]

        def op():
            return F.add_relu(x, other)

    with no_grad():
        y_shape = op().shape
    grad = Tensor(rng.standard_normal(y_shape).astype(np.float32), device=device)

    def forward():
        with no_grad():
            return op()

    def forward_backward():
        for t in [x, *params]:
            t.grad = None
        op().backward(grad)

    flops = conv_flops(shape, options["w"], y_shape) if kind == "conv" else 0.0
    return forward, forward_backward, flops


def _torch_op(kind: str, x_shape, options, device: str = "cpu"):
    import torch
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(x_shape).astype(np.float32)).to(device).requires_grad_()
    params: list = []
    if kind == "conv":
        w = torch.from_numpy(rng.standard_normal(options["w"]).astype(np.float32) * 0.1).to(device)
        w.requires_grad_()
        params = [w]

        def op():
            return TF.conv2d(x, w, None, 1, options["padding"])
    elif kind == "max_pool":
        def op():
            return TF.max_pool2d(x, 2)
    elif kind == "avg_pool":
        def op():
            return TF.avg_pool2d(x, 2)
    elif kind == "batch_norm":
        c = x_shape[1]
        weight = torch.ones(c, requires_grad=True, device=device)
        bias = torch.zeros(c, requires_grad=True, device=device)
        params = [weight, bias]

        def op():
            return TF.batch_norm(x, None, None, weight, bias, training=True)
    else:
        other = torch.from_numpy(rng.standard_normal(x_shape).astype(np.float32)).to(device).requires_grad_()
        params = [other]

        def op():
            return torch.relu(x + other)

    with torch.no_grad():
        grad = torch.from_numpy(rng.standard_normal(tuple(op().shape)).astype(np.float32)).to(device)

    def forward():
        with torch.no_grad():
            return op()

    def forward_backward():
        for t in [x, *params]:
            t.grad = None
        op().backward(grad)

    return forward, forward_backward


def _have_cython() -> bool:
    try:
        import tinygrad_cnn.kernels.cython.conv  # noqa: F401
    except ImportError:
        return False
    return True


def _on(backend: str, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run under ``backend`` (kernels are looked up at call time), to race it beside numba."""
    from tinygrad_cnn.kernels import use_backend

    def call():
        with use_backend(backend):
            return fn()
    return call


def _definition_loops(kind: str, name: str, x_shape, options, numba_forward) -> dict:
    """Time the plain-Python formula (``definition_loops.py``) on the op's data: one image for
    convolution and pooling (times N for the batch), the whole batch for batch norm, whose
    statistics span it. Checks the loops against the numba forward on the same data. Only at
    the LeNet-5 and ResNet-20 shapes (the issue's target); {} for the other ops."""
    from benchmarks import definition_loops

    if not (kind in ("max_pool", "batch_norm") or (kind == "conv" and name.startswith(("lenet", "resnet")))):
        return {}
    rng = np.random.default_rng(0)  # the same arrays as _ours_op
    x = rng.standard_normal(x_shape).astype(np.float32)
    with_numba = numba_forward().numpy()
    w = rng.standard_normal(options["w"]).astype(np.float32) * 0.1 if kind == "conv" else None
    images = x_shape[0] if kind == "batch_norm" else 1
    expected = with_numba if kind == "batch_norm" else with_numba[0]
    start = time.perf_counter()
    if kind == "conv":
        looped = definition_loops.conv2d_one_image(x[0], w, options["padding"])
    elif kind == "max_pool":
        looped = definition_loops.max_pool2d_one_image(x[0], 2)
    else:
        looped = definition_loops.batch_norm_batch(x)
    seconds = (time.perf_counter() - start) * x_shape[0] / images
    np.testing.assert_allclose(looped, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    return {"loops fwd": {"median": seconds, "min": seconds}, "loops images timed": images}


GPU_OPS = ("resnet", "pool 2x2 16ch", "batch norm 16ch", "add+relu")  # --gpu: what the GPU check needs


def bench_ops(rounds: int, reference: bool, only: str | None = None, loops: bool = True,
              gpu_only: bool = False) -> list[dict]:
    from tinygrad_cnn.kernels import use_backend

    from benchmarks import gpu

    have_torch = _have_torch()
    gpus = gpu.available()
    rows = []
    for name, kind, x_shape, options in OP_CASES:
        if (only and only not in name) or (gpu_only and not any(part in name for part in GPU_OPS)):
            continue
        row: dict = {"op": name, "kind": kind, "shape": list(x_shape), **{k: v for k, v in options.items()}}
        with use_backend("numba"):
            fwd, fwdbwd, flops = _ours_op(kind, x_shape, options)
            contest = {"numba fwd": fwd, "numba fwd+bwd": fwdbwd}
            if _have_cython():
                cf, cfb, _ = _ours_op(kind, x_shape, options)
                contest.update({"cython fwd": _on("cython", cf), "cython fwd+bwd": _on("cython", cfb)})
            if have_torch:
                tf, tfb = _torch_op(kind, x_shape, options)
                contest.update({"torch fwd": tf, "torch fwd+bwd": tfb})
            for label, sync in gpus.items():
                gf, gfb = (_ours_op(kind, x_shape, options, device="cuda")[:2] if label == "cupy"
                           else _torch_op(kind, x_shape, options, device="cuda"))
                contest.update({f"{label} fwd": gpu.synced(gf, sync),
                                f"{label} fwd+bwd": gpu.synced(gfb, sync)})
            result = race(contest, rounds)
            if loops:
                row.update(_definition_loops(kind, name, x_shape, options, fwd))
        row.update({k: v for k, v in result.items()})
        row["flops_fwd"] = flops
        if reference:
            with use_backend("reference"):
                fwd, fwdbwd, _ = _ours_op(kind, x_shape, options)
                start = time.perf_counter()
                fwdbwd()
                full = time.perf_counter() - start
                scale = 1.0
                # too slow for repeats: batch 1, scaled by N. That overestimates the vectorised
                # reference (its per-call cost does not shrink with N), so only when really slow.
                if full > 5.0:
                    fwd, fwdbwd, _ = _ours_op(kind, x_shape, options, batch=1)
                    scale = float(x_shape[0])
                ref = race({"reference fwd": fwd, "reference fwd+bwd": fwdbwd}, max(2, rounds // 4), warmup=1,
                           settle_s=0)
            for key, value in ref.items():
                row[key] = {k: v * scale for k, v in value.items()}
            row["reference extrapolated"] = scale != 1.0
        rows.append(row)
        print(_op_line(row), flush=True)
    return rows


def _op_line(row: dict) -> str:
    def ms(key):
        return f"{row[key]['median'] * 1e3:9.2f}" if key in row else "        -"

    ratio = (f"{row['numba fwd+bwd']['median'] / row['torch fwd+bwd']['median']:5.2f}"
             if "torch fwd+bwd" in row else "    -")
    return (f"{row['op']:38s} fwd {ms('numba fwd')} torch {ms('torch fwd')} ref {ms('reference fwd')} | "
            f"fwd+bwd {ms('numba fwd+bwd')} torch {ms('torch fwd+bwd')} ref {ms('reference fwd+bwd')} | "
            f"numba/torch {ratio} | cython fwd {ms('cython fwd')} fwd+bwd {ms('cython fwd+bwd')}"
            + (f" | cupy fwd {ms('cupy fwd')} fwd+bwd {ms('cupy fwd+bwd')} torch-cuda fwd "
               f"{ms('torch-cuda fwd')} fwd+bwd {ms('torch-cuda fwd+bwd')}"
               if "cupy fwd" in row or "torch-cuda fwd" in row else ""))


# ----------------------------------------------------------------------------- first call
FIRST_CALL = r"""
import time
t0 = time.perf_counter()
import numpy as np
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.kernels import set_backend
from tinygrad_cnn.tensor import Tensor
set_backend("numba")
t1 = time.perf_counter()
x = Tensor(np.ones((8, 64, 8, 8), np.float32), requires_grad=True)  # a Winograd layer (Numba-compiled)
w = Tensor(np.ones((64, 64, 3, 3), np.float32), requires_grad=True)
F.conv2d(x, w, None, 1, 1).sum().backward()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def bench_first_call() -> dict:
    """Import time and first conv2d forward+backward time in a fresh process, with the Numba
    cache empty (cold) and then filled by that first run (warm); then the first
    ``tinygrad-cnn train`` (the default main job: LeNet-5 on the bundled digits) with an empty
    cache, wall time of the whole command, and again warm, and the main job's training
    seconds (as it prints them) on each CPU backend."""
    import re
    import shutil
    import tempfile

    cache_dir = tempfile.mkdtemp(prefix="numba_cache_probe_")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    result = {}
    for label in ("cold", "warm"):
        out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True,
                             check=True, cwd=ROOT.parent)
        imported, first = (float(v) for v in out.stdout.split()[-2:])
        result[label] = {"import_s": imported, "first_conv2d_fwd_bwd_s": first}
        print(f"first call ({label} cache): import {imported:.2f} s, first conv2d fwd+bwd {first:.2f} s",
              flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)

    cache_dir = tempfile.mkdtemp(prefix="numba_cache_train_")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    result["train"] = {}
    runs = [("numba cold", "numba"), ("numba warm", "numba"), ("cython", "cython"),
            ("reference", "reference")]
    for label, backend in runs:
        if backend == "cython" and not _have_cython():
            continue
        with tempfile.TemporaryDirectory() as output:
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "tinygrad_cnn", "train", "--backend", backend,
                                  "--output", output], env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
        training = float(re.search(r"\(([0-9.]+) s training\)", out.stdout).group(1))
        result["train"][label] = {"wall_s": wall, "training_s": training}
        print(f"tinygrad-cnn train ({label}): {wall:.1f} s wall, {training:.1f} s training", flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------- training steps
def _ours_step(model_name: str, batch: int, device: str = "cpu"):
    import tinygrad_cnn.nn.functional as F
    from benchmarks.models import INPUT_SHAPES, ours
    from tinygrad_cnn.optim import SGD
    from tinygrad_cnn.tensor import Tensor

    model = ours(model_name).to(device)
    model.train()
    optimizer = SGD(list(model.parameters()), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, *INPUT_SHAPES[model_name])).astype(np.float32), device=device)
    target = Tensor(rng.integers(0, 10, batch), device=device)

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        return loss

    return model, step


def _torch_step(model_name: str, batch: int, copy_from=None, device: str = "cpu"):
    import torch

    from benchmarks.models import INPUT_SHAPES, copy_weights, torch_model

    model = torch_model(model_name)
    if copy_from is not None:
        copy_weights(copy_from, model)
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, *INPUT_SHAPES[model_name])).astype(np.float32))
    x = x.to(device)
    target = torch.from_numpy(rng.integers(0, 10, batch)).to(device)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        return loss

    return step


TRAINING_CASES = [("lenet5", 64), ("lenet5_tanh", 64), ("resnet20", 32), ("resnet20", 128)]


def peak_gflops(size: int = 2048, rounds: int = 5) -> float:
    """The machine's attainable float32 rate: the best of ``rounds`` size x size SGEMMs, on
    numpy's BLAS and on PyTorch's (where installed), each with THREADS threads. A training
    step's GFLOP/s divided by this is the fraction of the peak it reaches."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    products = [lambda: a @ b]
    if _have_torch():
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        products.append(lambda: ta @ tb)
    best = float("inf")
    with threadpool_limits(THREADS, user_api="blas"):
        for product in products:
            product()
            for _ in range(rounds):
                start = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9

MEMORY_PROBE = r"""
import resource, sys, time, tracemalloc
sys.path.insert(0, {root!r})
framework, model_name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
from benchmarks import run
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024
if framework == "torch":
    import torch
    torch.set_num_threads({threads})
    make = lambda b: run._torch_step(model_name, b)
else:
    from tinygrad_cnn.kernels import set_backend
    set_backend("numba")
    make = lambda b: run._ours_step(model_name, b)[1]
make(1)()  # a batch-1 step loads the compiled kernels (JIT memory is not step memory)
step = make(batch)
base = status("VmRSS")
for _ in range(2):  # warm-up: allocator pools, optimizer state
    step()
try:  # reset the high-water mark (Linux >= 4.0), so the peak is that of steady-state steps
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
for _ in range(3):
    step()
peak = status("VmHWM")
lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
traced = -1
if framework != "torch":
    tracemalloc.start()
    step()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
print(base, peak, lifetime, traced)
"""


def memory_probe(framework: str, model_name: str, batch: int) -> dict:
    """Peak memory of training steps in a fresh subprocess (Linux /proc).

    A batch-1 step first loads the compiled kernels; then ``rss_base_mb`` is VmRSS with the
    full-batch model and input built (libraries, parameters, input). After 2 warm-up steps
    (allocator pools, optimizer state) the high-water mark is reset (``clear_refs``) and
    ``rss_peak_mb`` is VmHWM over 3 more steps: ``step_rss_mb`` = peak - base is the memory
    training needs on top (activations saved for backward, gradients, momentum buffers,
    temporaries, and whatever the allocator keeps cached).
    ``lifetime_maxrss_mb`` is ru_maxrss of the whole process. For tinygrad_cnn,
    ``tracemalloc_peak_mb`` counts exactly the Python and numpy allocations live at the peak of
    one step (numpy reports its buffers to tracemalloc; PyTorch's allocator does not).
    """
    code = MEMORY_PROBE.format(root=str(ROOT.parent), threads=THREADS)
    out = subprocess.run([sys.executable, "-c", code, framework, model_name, str(batch)],
                         capture_output=True, text=True, check=True, cwd=ROOT.parent)
    base, peak, lifetime, traced = (float(v) for v in out.stdout.split()[-4:])
    return {"rss_base_mb": base, "rss_peak_mb": peak, "step_rss_mb": peak - base,
            "lifetime_maxrss_mb": lifetime, "tracemalloc_peak_mb": traced if traced >= 0 else None}


def bench_training(rounds: int, memory: bool) -> list[dict]:
    from tinygrad_cnn.kernels import use_backend

    from benchmarks import gpu
    from benchmarks.models import step_flops

    rows = []
    for model_name, batch in TRAINING_CASES:
        with use_backend("numba"):
            model, ours_step = _ours_step(model_name, batch)
            contest = {"numba": ours_step}
            if _have_cython():
                contest["cython"] = _on("cython", _ours_step(model_name, batch)[1])
            if _have_torch():
                contest["torch"] = _torch_step(model_name, batch, copy_from=model)
            for label, sync in gpu.available().items():
                step = (_ours_step(model_name, batch, device="cuda")[1] if label == "cupy"
                        else _torch_step(model_name, batch, copy_from=model, device="cuda"))
                contest[label] = gpu.synced(step, sync)
            result = race(contest, rounds)
        row = {"model": model_name, "batch": batch, "flops": step_flops(model_name, batch), **result}
        if memory:
            row["memory"] = {"numba": memory_probe("numba", model_name, batch)}
            if _have_torch():
                row["memory"]["torch"] = memory_probe("torch", model_name, batch)
        rows.append(row)
        ratio = (f"{row['numba']['median'] / row['torch']['median']:.2f}" if "torch" in row else "-")
        cython = f"cython {row['cython']['median'] * 1e3:.1f} ms, " if "cython" in row else ""
        gpus = "".join(f", {label} {row[label]['median'] * 1e3:.2f} ms" for label in ("cupy", "torch-cuda")
                       if label in row)
        torch_ms = row.get("torch", {}).get("median", float("nan")) * 1e3
        print(f"train step {model_name} b{batch}: numba {row['numba']['median'] * 1e3:.1f} ms, {cython}torch "
              f"{torch_ms:.1f} ms, ratio {ratio}{gpus}, {row['flops'] / 1e9:.2f} GFLOP a step", flush=True)
    return rows


# ----------------------------------------------------------------------------- report
def _have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def machine() -> dict:
    import numba

    from benchmarks import gpu

    info = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "threads": THREADS, "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    info.update(gpu.info())
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = sorted({f"{i['internal_api']} {i['version']} ({i['filepath'].split('/')[-1]})"
                               for i in threadpool_info() if i["user_api"] == "blas"})
    except ImportError:
        pass
    return info


def markdown(results: dict) -> str:
    from benchmarks import gpu

    lines = ["| op | numba fwd ms | torch fwd ms | ref fwd ms | numba fwd+bwd ms | torch fwd+bwd ms | "
             "ref fwd+bwd ms | numba/torch (fwd+bwd) | numba/torch (fwd+bwd, min) | ref/numba (fwd+bwd) | "
             "numba GFLOP/s | torch GFLOP/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    has_cython = any("cython fwd" in row for row in results.get("ops", []))
    if has_cython:  # the Cython backend, raced in the same rounds
        lines[0] += " cython fwd ms | cython fwd+bwd ms | cython/numba (fwd+bwd) |"
        lines[1] += "---:|---:|---:|"

    def ms(row, key):
        return f"{row[key]['median'] * 1e3:.2f}" if key in row else "-"

    for row in results.get("ops", []):
        nb = row["numba fwd+bwd"]["median"]
        th = row.get("torch fwd+bwd", {}).get("median")
        ref = row.get("reference fwd+bwd", {}).get("median")
        flops = 3 * row["flops_fwd"]
        star = "*" if row.get("reference extrapolated") else ""
        cells = [row["op"], ms(row, "numba fwd"), ms(row, "torch fwd"), ms(row, "reference fwd") + star,
                 ms(row, "numba fwd+bwd"), ms(row, "torch fwd+bwd"), ms(row, "reference fwd+bwd") + star,
                 f"{nb / th:.2f}" if th else "-",
                 f"{row['numba fwd+bwd']['min'] / row['torch fwd+bwd']['min']:.2f}" if th else "-",
                 (f"{ref / nb:.0f}x" if ref / nb >= 10 else f"{ref / nb:.1f}x") if ref else "-",
                 f"{flops / nb / 1e9:.1f}" if flops else "-",
                 f"{flops / th / 1e9:.1f}" if flops and th else "-"]
        if has_cython:
            cy = row.get("cython fwd+bwd", {}).get("median")
            cells += [ms(row, "cython fwd"), ms(row, "cython fwd+bwd"), f"{cy / nb:.2f}" if cy else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if not results.get("ops"):
        lines = []
    looped = [row for row in results.get("ops", []) if "loops fwd" in row]
    if looped:
        lines += ["", "| op | definition loops fwd s (plain Python) | numba fwd ms | loops/numba (fwd) |",
                  "|---|---:|---:|---:|"]
        for row in looped:
            seconds, images = row["loops fwd"]["median"], row["loops images timed"]
            scaled = "" if images == row["shape"][0] else f" ({images} image x N)"
            lines.append(f"| {row['op']} | {seconds:.1f}{scaled} | {ms(row, 'numba fwd')} | "
                         f"{seconds / row['numba fwd']['median']:,.0f}x |")
    if results.get("training"):
        peak = results.get("peak_gflops")
        if peak:
            lines += ["", f"Peak: {peak:.0f} GFLOP/s (best {THREADS}-thread 2048x2048 SGEMM, numpy's or "
                      "PyTorch's BLAS); a step's rate is its FLOPs (3x the forward's) over its median time."]
        lines += ["", "| training step | numba ms | torch ms | numba/torch | numba/torch (min) | "
                  "numba % of peak | torch % of peak | numba step RSS MB | torch step RSS MB | "
                  "numba tracemalloc MB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        if any("cython" in row for row in results["training"]):
            lines[-2] += " cython ms |"
            lines[-1] += "---:|"
        for row in results["training"]:
            mem = row.get("memory", {})
            nb_mem, th_mem = mem.get("numba", {}), mem.get("torch", {})
            th = row.get("torch", {}).get("median")

            def percent(seconds, flops=row["flops"]):
                return f"{100 * flops / seconds / 1e9 / peak:.1f}" if peak and seconds else "-"

            lines.append(
                f"| {row['model']} b{row['batch']} | {row['numba']['median'] * 1e3:.1f} | "
                f"{th * 1e3:.1f} | {row['numba']['median'] / th:.2f} | "
                f"{row['numba']['min'] / row['torch']['min']:.2f} | "
                f"{percent(row['numba']['median'])} | {percent(th)} | "
                f"{nb_mem.get('step_rss_mb', float('nan')):.0f} | "
                f"{th_mem.get('step_rss_mb', float('nan')):.0f} | "
                f"{(nb_mem.get('tracemalloc_peak_mb') or float('nan')):.0f} |"
                + (f" {row['cython']['median'] * 1e3:.1f} |" if "cython" in row else ""))
    if results.get("first_call"):
        fc = results["first_call"]
        lines += ["", "| first conv2d fwd+bwd in a fresh process | import s | first call s |",
                  "|---|---:|---:|"]
        for label in ("cold", "warm"):
            lines.append(f"| {label} Numba cache | {fc[label]['import_s']:.2f} | "
                         f"{fc[label]['first_conv2d_fwd_bwd_s']:.2f} |")
        if fc.get("train"):
            lines += ["", "| `tinygrad-cnn train` (LeNet-5, bundled digits, 10 epochs) | wall s | "
                      "training s |", "|---|---:|---:|"]
            for label, row in fc["train"].items():
                lines.append(f"| {label} | {row['wall_s']:.1f} | {row['training_s']:.1f} |")
    lines += gpu.markdown(results)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", help="run the ops whose name contains this text")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["ops", "reference", "loops", "first_call", "training", "memory"])
    parser.add_argument("--gpu", action="store_true",
                        help="only the ops a GPU check needs (ResNet-20, pooling, batch norm, add+ReLU)")
    parser.add_argument("--out", default=str(OUT), help="folder for results.json and results.md")
    args = parser.parse_args(argv)
    import numba

    numba.set_num_threads(THREADS)
    if _have_torch():
        import torch

        torch.set_num_threads(THREADS)
    rounds = 5 if args.quick else 15
    # other processes on the machine make timings noisy: the load average says how much
    results: dict = {"machine": machine(), "rounds": rounds, "load_average_start": os.getloadavg()}
    print(json.dumps(results["machine"]), flush=True)
    results["peak_gflops"] = peak_gflops()
    print(f"peak: {results['peak_gflops']:.1f} GFLOP/s ({THREADS}-thread SGEMM)", flush=True)
    if "first_call" not in args.skip:
        results["first_call"] = bench_first_call()
    if "ops" not in args.skip:
        results["ops"] = bench_ops(rounds, reference="reference" not in args.skip, only=args.only,
                                   loops="loops" not in args.skip, gpu_only=args.gpu)
    if "training" not in args.skip:
        results["training"] = bench_training(max(3, rounds // 2), memory="memory" not in args.skip)
    results["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    (out / "results.md").write_text(table)
    print()
    print(table)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    main()
