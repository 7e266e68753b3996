"""What a machine without a GPU can check of the CuPy backend (the contract suites run its
kernels too: on a GPU as ``"cupy"``, in the CPU emulation as ``"cupy-emulated"``).

* Every CUDA C source compiles: each program's standalone source (the text NVRTC compiles,
  with every template instantiated for float and double) goes through ``nvcc --ptx
  -arch=sm_90`` (Hopper), all programs in one nvcc call, and every kernel must appear in
  the PTX.
* Every array-module function the library calls on device arrays exists in CuPy: an AST
  scan of the modules that run on device arrays collects each ``xp.NAME`` (``xp``,
  ``xp_of(a)``, ``array_module(d)``, ``cupy``) and each ``np.NAME``; the first must exist
  in CuPy, the second too (numpy hands cupy arrays to CuPy's function of that name) unless
  it is on HOST_ONLY, the numpy calls that only ever see host data.
* Importing the backend never imports CuPy.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tinygrad_cnn.kernels.cupy import _runtime, batchnorm, conv, pool, residual

from tests.kernel_backends import REQUIRE_COMPILED

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = (conv.PROGRAM, pool.PROGRAM, batchnorm.PROGRAM, residual.PROGRAM)
NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA compiler) is not on the PATH")
def test_every_cuda_source_compiles_with_nvcc(tmp_path):
    sources = []
    for program in PROGRAMS:
        sources.append(tmp_path / f"{program.name}.cu")
        sources[-1].write_text(program.standalone_source())
    done = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "-std=c++17", "-odir", str(tmp_path),
                           *map(str, sources)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    for program in PROGRAMS:
        ptx = (tmp_path / f"{program.name}.ptx").read_text()
        entries = re.findall(r"\.entry\s+(\w+)", ptx)
        for kernel in program.kernels:
            for code in ("f", "d"):  # Itanium mangling: kernel<float> is _Z<len><name>IfE...
                mangled = f"_Z{len(kernel)}{kernel}I{code}E"
                assert any(e.startswith(mangled) for e in entries), (program.name, kernel, code, entries)
        assert len(entries) == 2 * len(program.kernels)


def test_each_program_names_only_kernels_its_source_defines():
    for program in PROGRAMS:
        defined = re.findall(r"__global__\s+void\s+(\w+)\s*\(", program.code)
        assert sorted(defined) == sorted(program.kernels), program.name
        first = program.kernels[0]
        assert program.name_expressions[:2] == [f"{first}<float>", f"{first}<double>"]


# ------------------------------------------------------------------ the namespace
# The modules whose code runs on a Tensor's arrays, whatever their device.
DEVICE_CODE = ("tinygrad_cnn/tensor.py", "tinygrad_cnn/ops.py", "tinygrad_cnn/autograd.py",
               "tinygrad_cnn/testing.py", "tinygrad_cnn/device.py", "tinygrad_cnn/cuda.py",
               "tinygrad_cnn/nn", "tinygrad_cnn/optim", "kernels/cupy")
ARRAY_MODULE_CALLS = {"xp_of", "array_module", "xp", "cupy", "_cupy"}

# numpy names those modules use on host data only (shapes, dtypes, index vectors, lists),
# never on a device array, with where they are used.
HOST_ONLY = {
    "arange": "index vectors: ops.Pad's sources, Tensor.arange before the move, pooling windows",
    "argsort": "ops.Permute.backward: the inverse of a permutation of axes",
    "array": "host values: nn.normalization's buffers, Tensor data before the move",
    "array2string": "Tensor.__repr__ prints .numpy()",
    "asarray": "host data (lists, numpy arrays) before a Tensor moves it to its device",
    "bool_": "a type", "dtype": "a type", "float32": "a type", "float64": "a type", "floating": "a type",
    "generic": "a type", "int64": "a type", "integer": "a type", "ndarray": "a type", "number": "a type",
    "broadcast_shapes": "shapes",
    "cumsum": "ops.Concatenate: the split points, host ints",
    "empty": "Tensor.reshape: a shape probe of bools",
    "errstate": "a context manager for numpy warnings, no arrays",
    "eye": "Tensor.eye builds on the host, then moves",
    "full": "Tensor.full and nn.init build on the host, then move",
    "pad": "ops.Pad pads the host index vector np.arange(n)",
    "result_type": "dtypes of a Python scalar operand",
    "zeros": "pooling's adaptive-average matrix, built on the host and moved",
    "exp": "pooling.gaussian_window: host weights",
    "expand_dims": "loss targets: numpy hands a cupy target to cupy.expand_dims",
}


def _device_files() -> list[Path]:
    files = []
    for entry in DEVICE_CODE:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _chains(tree: ast.AST):
    """(base node, dotted attribute chain) of every outermost attribute access."""
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts = []
            while isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            yield node, ".".join(reversed(parts))


def _is_array_module(node) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("xp", "cupy")
    if isinstance(node, ast.Call):
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
        return name in ARRAY_MODULE_CALLS
    return False


def used_names() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({xp name: files}, {np name: files}) in the device code."""
    array_module, numpy_names = {}, {}
    for path in _device_files():
        for base, chain in _chains(ast.parse(path.read_text())):
            where = str(path.relative_to(ROOT))
            if _is_array_module(base):
                array_module.setdefault(chain, set()).add(where)
            elif isinstance(base, ast.Name) and base.id == "np":
                numpy_names.setdefault(chain, set()).add(where)
    return array_module, numpy_names


def _in_cupy(cupy, dotted: str) -> bool:
    value = cupy
    for part in dotted.split("."):
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True


def test_the_scan_finds_the_calls_it_is_meant_to():
    """The AST scan itself: names known to be called on device arrays are found."""
    array_module, numpy_names = used_names()
    for name in ("matmul", "empty", "take_along_axis", "add.at", "RawModule", "cuda.runtime.getDeviceCount",
                 "asnumpy", "pad"):
        assert name in array_module, name
    assert "cumsum" in numpy_names and "float32" in numpy_names


def test_every_array_module_name_the_library_calls_exists_in_cupy():
    if REQUIRE_COMPILED:  # CI installs CuPy for this test (.ci/run)
        import cupy
    else:
        cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install cupy-cuda13x)")
    array_module, numpy_names = used_names()
    missing = {name: sorted(files) for name, files in array_module.items() if not _in_cupy(cupy, name)}
    assert not missing, f"called on device arrays but not in CuPy {cupy.__version__}: {missing}"
    unchecked = {name: sorted(files) for name, files in numpy_names.items()
                 if name not in HOST_ONLY and not _in_cupy(cupy, name)}
    assert not unchecked, ("numpy functions in device code that CuPy lacks (make them xp_of(...) calls, or "
                           f"add them to HOST_ONLY if they only see host data): {unchecked}")
    stale = set(HOST_ONLY) - set(numpy_names)
    assert not stale, f"HOST_ONLY names no longer used: {sorted(stale)}"


def test_importing_the_backend_does_not_import_cupy():
    code = ("import sys\nimport tinygrad_cnn.kernels.cupy.conv, tinygrad_cnn.kernels.cupy.pool\n"
            "import tinygrad_cnn.kernels.cupy.batchnorm, tinygrad_cnn.kernels.cupy.residual\n"
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ launches and the emulator
def test_kernel_arguments_follow_one_rule():
    assert _runtime._argument(3).dtype == np.int64 and _runtime._argument(1e-5).dtype == np.float64
    with pytest.raises(TypeError, match="bool"):
        _runtime._argument(True)


def test_the_emulator_refuses_what_a_gpu_kernel_would_misread():
    """A strided view or a float64 array handed to a float kernel reads the wrong memory on a
    GPU; the emulation makes that an error."""
    from tests.cuda_emulator import COMPILER, emulated

    if COMPILER is None:
        pytest.skip("no C++ compiler for the emulation")
    a = np.ones((4, 6), dtype=np.float32)
    with emulated():
        with pytest.raises(AssertionError, match="not C-contiguous"):
            residual.add_relu_forward(a[:, ::2], a[:, ::2])
        with pytest.raises(AssertionError, match="float64"):
            _runtime.launch(residual.PROGRAM, "add_relu", np.float32, 4, a, a.astype(np.float64), a, 4)
        np.testing.assert_array_equal(residual.add_relu_forward(a, -2 * a), np.zeros_like(a))


def test_choose_picks_direct_for_depthwise_layers_only():
    from tinygrad_cnn.nn.functional.geometry import ConvGeometry

    depthwise = ConvGeometry((2, 8, 5, 5), (3, 3), padding=(1, 1, 1, 1), out_channels=8, groups=8)
    dense = ConvGeometry((2, 8, 5, 5), (3, 3), padding=(1, 1, 1, 1), out_channels=16)
    assert conv.choose(depthwise) == "direct" and conv.choose(dense) == "im2col"
    with pytest.raises(ValueError, match="unknown cupy conv strategy 'winograd'"):
        conv.conv2d_forward(None, None, dense, "winograd")
