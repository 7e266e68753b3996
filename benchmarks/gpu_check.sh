#!/usr/bin/env bash
# The GPU check of the CuPy backend: one script for a session that is lent a GPU machine.
#
#   bash benchmarks/gpu_check.sh          # results under $OUT (default benchmarks/out/gpu)
#
# With the device tool, from the repository root (one call: at most ~9 minutes, the machine's
# start not counted; the steps' timeouts add up to 8 minutes plus the install):
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=600)
#
# That machine (KINDS.md: the 'cuda' image) cannot reach a package registry, and needs none:
# its python3 already holds CuPy (cupy-cuda13x), a CUDA build of PyTorch (torch 2.x+cu130;
# the project's torch==2.13.0 pin is a CPU build, so PyTorch on the GPU is that machine's
# own), NumPy, Numba, SciPy, scikit-learn, Hypothesis and pytest-xdist. The script installs the
# project itself (no dependencies: pip builds the Cython extensions with what is there); a
# package that is missing there can travel as wheels in ./.whl (the device README says how),
# which the script installs first. It stops early, saying what is missing, without CuPy or a GPU.
#
# Steps (each bounded by a timeout, so the whole run ends inside one 10-minute call):
#   1. the machine: nvidia-smi, the versions of CuPy, CUDA, PyTorch, NumPy, Numba;
#   2. the GPU test suite: every test whose name says cuda or cupy (the device-parametrized
#      suites' cuda cases, the kernel contract suites' cupy backend, the CuPy tests), ci profile;
#   3. the GPU benchmark: ResNet-20's layers, pooling, batch norm, add+ReLU and the training
#      steps, Numba and Cython and PyTorch on the CPU beside cupy and PyTorch-CUDA;
#   4. summary.md: device, versions, pass/fail/skip counts, the issue's speed goals, the tables.
# Files under $OUT (at most 8, as the device tool returns them): log.txt, versions.txt,
# tests.xml, tests_tail.txt, results.json, results.md, summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out/gpu}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 CUPY_CACHE_DIR=/tmp/tinygrad_cnn_cupy_cache
PYTHON="${PYTHON:-python3}"
started=$(date +%s)
elapsed() { echo "[$(($(date +%s) - started)) s] $*"; }

elapsed "1. the machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/versions.txt"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/versions.txt"
import importlib, sys
print("python", sys.version.split()[0])
missing = []
for name in ("cupy", "torch", "numpy", "numba", "scipy", "sklearn", "hypothesis", "xdist", "tqdm",
             "matplotlib", "PIL", "threadpoolctl", "Cython"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError as error:
        missing.append(f"{name} ({error})")
if missing:
    print("MISSING:", ", ".join(missing))
import cupy
print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver", cupy.cuda.runtime.driverGetVersion(),
      "devices", cupy.cuda.runtime.getDeviceCount())
try:
    import torch
    print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available())
except ImportError:
    print("no PyTorch: the benchmark's torch and torch-cuda columns stay empty")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { elapsed "stopped: CuPy or a GPU is missing (see versions.txt)"; exit 1; }
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . || { elapsed "stopped: the project did not install"; exit 1; }
"$PYTHON" -c "import tinygrad_cnn as t; assert t.cuda.is_available(), t.cuda.unavailable_reason(); print('tinygrad_cnn sees', t.cuda.device_name())" \
    || { elapsed "stopped: tinygrad_cnn sees no GPU"; exit 1; }

elapsed "2. the GPU test suite"
TINYGRAD_CNN_HYPOTHESIS_PROFILE=ci timeout 240 "$PYTHON" -m pytest -p no:cacheprovider -q -n 8 -k "cuda or cupy" \
    --junitxml="$OUT/tests.xml" -rfE 2>&1 | tail -n 60 > "$OUT/tests_tail.txt"
tests_status=${PIPESTATUS[0]}
cat "$OUT/tests_tail.txt"
elapsed "tests exit status $tests_status (124: the 240 s timeout)"

elapsed "3. the GPU benchmark"
timeout 240 "$PYTHON" -m benchmarks.run --quick --gpu --skip reference loops first_call memory --out "$OUT"
bench_status=$?
elapsed "benchmark exit status $bench_status (124: the 240 s timeout)"

elapsed "4. summary"
if [ -f "$OUT/results.json" ]; then
    "$PYTHON" -m benchmarks.gpu "$OUT/results.json" "$OUT/tests.xml" > "$OUT/summary.md"
    cat "$OUT/summary.md"
fi
elapsed "done"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
