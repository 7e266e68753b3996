"""Build script.

The compute kernels live in the top-level ``kernels/`` folder, beside the
library rather than inside it (see docs/ARCHITECTURE.md); ``package_dir`` maps
that folder into the installed package as ``tinygrad_cnn.kernels``.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def packages_under(folder: str, package: str) -> list[str]:
    """Every folder with an ``__init__.py`` below ``folder``, as dotted package names."""
    root = HERE / folder
    return [
        ".".join([package, *init.parent.relative_to(root).parts])
        for init in sorted(root.rglob("__init__.py"))
        if "__pycache__" not in init.parts
    ]


setup(
    packages=(packages_under("tinygrad_cnn", "tinygrad_cnn")
              + packages_under("kernels", "tinygrad_cnn.kernels")),
    package_dir={"tinygrad_cnn": "tinygrad_cnn", "tinygrad_cnn.kernels": "kernels"},
)
