"""The tutorials open as notebooks: converted with jupytext, executed cell by cell in a Jupyter
kernel (nbclient + ipykernel), in --quick mode. Their asserts run inside the kernel, so a
notebook that executes has checked what it teaches, as the script does.

Needs the ``notebooks`` extra (``pip install -e ".[notebooks]"``; CI installs it); skipped
with the reason where it is missing. Jupyter starts the kernel with flags of its own
(``-f kernel-<id>.json``): the tutorials must ignore those inside a kernel, while a script
run rejects unknown flags (``test_tutorials.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_tutorials import EXPECTED, TUTORIALS, _check_pngs

NOTEBOOKS = ["01_convolution_1d.py", "08_lenet5_digits.py"]
MISSING = "needs the notebooks extra: pip install -e '.[notebooks]'"


def _execute(script: str, out: Path):
    jupytext = pytest.importorskip("jupytext", reason=MISSING)
    nbclient = pytest.importorskip("nbclient", reason=MISSING)
    pytest.importorskip("ipykernel", reason=MISSING)
    import nbformat

    notebook = jupytext.read(TUTORIALS / script)
    markdown = [c for c in notebook.cells if c.cell_type == "markdown"]
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(markdown) >= 3 and len(code) >= 3, "jupytext found the percent-format cells"
    assert markdown[0].source.startswith("# "), "the notebook opens with its title"
    # the options a learner would type after the script's name, added to the kernel's own flags
    options = nbformat.v4.new_code_cell(f"import sys\nsys.argv += ['--quick', '--out', {str(out)!r}]")
    notebook.cells.insert(0, options)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()
    return notebook


@pytest.mark.parametrize("script", NOTEBOOKS)
def test_tutorial_executes_as_a_notebook(script, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    notebook = _execute(script, tmp_path)
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert printed.strip(), f"{script} printed nothing as a notebook"
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors, errors
    _check_pngs(tmp_path, EXPECTED[script])


def test_summary_shows_once_in_a_notebook(tmp_path):
    """model.summary() as a cell's last line: the table once (printed; the echo skipped); a
    summary kept in a variable and shown in a later cell: once, as text and HTML."""
    pytest.importorskip("nbclient", reason=MISSING)
    pytest.importorskip("ipykernel", reason=MISSING)
    import nbclient
    import nbformat

    cells = ["from tinygrad_cnn import models\nmodels.lenet5().summary()",
             "s = models.resnet20().summary()", "s"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    def shown(cell):
        texts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
        texts += [o.data.get("text/plain", "") for o in cell.outputs if "data" in o]
        return "".join(texts).count("Total params:")

    assert [shown(cell) for cell in notebook.cells] == [1, 1, 1]
    rich = [o.data for o in notebook.cells[2].outputs if "data" in o]
    assert rich and "text/html" in rich[0] and "layer3.2.conv2 (Conv2d)" in rich[0]["text/html"]
