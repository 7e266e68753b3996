"""Every ```python block of README.md runs as written: each one pasted alone into a fresh
interpreter (a subprocess started in an empty folder), as a newcomer would paste it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.M | re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2, "README.md lost its Python examples"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_readme_block_runs_as_written(block: str, tmp_path: Path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker, as the other tests
        env.update({name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")})
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"README block failed:\n{block}\n--- stderr ---\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), "a README example should show its result"
