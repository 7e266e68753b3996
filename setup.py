"""Build script.

The compute kernels live in the top-level ``kernels/`` folder, beside the
library rather than inside it (see docs/ARCHITECTURE.md); ``package_dir`` maps
that folder into the installed package as ``tinygrad_cnn.kernels``.

The Cython backend (``kernels/cython/_*.pyx``) is compiled here, during
``pip install .`` and ``pip install -e .`` (pyproject.toml lists Cython and
numpy as build requirements). OpenMP (``prange``) is used when the compiler
supports it: the flag is tried on a tiny test program first and dropped if it
fails, so compilers without OpenMP (Apple clang) still build serial kernels.
A machine without a C compiler still installs (the extensions are optional);
``set_backend("cython")`` then explains how to build them.
"""

import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
CYTHON_MODULES = ("_conv", "_pool", "_batchnorm", "_residual", "_winograd")
# The direct SIMD convolution (kernels/simd), shared by the numba and cython backends.
SIMD_MODULES = ("_direct",)
NATIVE_TEST = "int main(void) { return 0; }\n"
OPENMP_TEST = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def packages_under(folder: str, package: str) -> list[str]:
    """Every folder with an ``__init__.py`` below ``folder``, as dotted package names."""
    root = HERE / folder
    return [
        ".".join([package, *init.parent.relative_to(root).parts])
        for init in sorted(root.rglob("__init__.py"))
        if "__pycache__" not in init.parts
    ]


def openmp_flags(compiler) -> tuple[list[str], list[str]]:
    """(compile flags, link flags) for OpenMP if ``compiler`` can build and link with them, else ([], [])."""
    if os.environ.get("TINYGRAD_CNN_NO_OPENMP"):
        return [], []
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "openmp_test.c"
        source.write_text(OPENMP_TEST)
        try:
            objects = compiler.compile([str(source)], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "openmp_test", output_dir=tmp, extra_postargs=flags)
        except Exception:  # CompileError, LinkError, a missing omp.h: build without OpenMP
            print("tinygrad_cnn: the C compiler has no OpenMP; building serial Cython kernels",
                  file=sys.stderr)
            return [], []
    return flags, flags


def native_flags(compiler) -> list[str]:
    """``-march=native`` (the vector instructions of this machine: AVX-512 or AVX2 for the SIMD
    kernels) if the compiler accepts it, else nothing (the kernels then use portable C).
    The extensions are built on the machine that runs them (``pip install`` from source), so
    targeting its CPU is right; set TINYGRAD_CNN_NO_NATIVE=1 to build portable code."""
    if os.environ.get("TINYGRAD_CNN_NO_NATIVE") or compiler.compiler_type == "msvc":
        return []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "native_test.c"
        source.write_text(NATIVE_TEST)
        try:
            compiler.compile([str(source)], output_dir=tmp, extra_postargs=["-march=native"])
        except Exception:  # CompileError: e.g. Apple clang on arm64 wants -mcpu
            return []
    return ["-march=native"]


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags to the Cython extensions when the compiler supports them,
    and -march=native to every extension (the SIMD kernels' intrinsics need it; the Cython
    loops vectorise with this machine's vector width instead of SSE2's 128 bits)."""

    def build_extensions(self) -> None:
        compile_flags, link_flags = openmp_flags(self.compiler)
        native = native_flags(self.compiler)
        for extension in self.extensions:
            extension.extra_compile_args = [*extension.extra_compile_args, *compile_flags, *native]
            extension.extra_link_args = [*extension.extra_link_args, *link_flags]
        super().build_extensions()


def cython_extensions() -> list[Extension]:
    """The Cython kernels as extensions ``tinygrad_cnn.kernels.cython._*`` and
    ``tinygrad_cnn.kernels.simd._*``."""
    import numpy
    from Cython.Build import cythonize

    optimize = [] if sys.platform == "win32" else ["-O3"]
    extensions = [
        Extension(
            f"tinygrad_cnn.kernels.cython.{name}",
            [f"kernels/cython/{name}.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=optimize,
            # a machine without a working C compiler still installs (reference and Numba
            # backends); set_backend("cython") then says the extension was not built
            optional=True,
        )
        for name in CYTHON_MODULES
    ] + [
        Extension(
            f"tinygrad_cnn.kernels.simd.{name}",
            [f"kernels/simd/{name}.pyx"],
            include_dirs=["kernels/simd"],
            extra_compile_args=optimize,
            optional=True,
        )
        for name in SIMD_MODULES
    ]
    return cythonize(extensions, language_level=3, quiet=True)


setup(
    packages=(packages_under("tinygrad_cnn", "tinygrad_cnn")
              + packages_under("kernels", "tinygrad_cnn.kernels")),
    package_dir={"tinygrad_cnn": "tinygrad_cnn", "tinygrad_cnn.kernels": "kernels"},
    ext_modules=cython_extensions(),
    cmdclass={"build_ext": BuildExt},
)
