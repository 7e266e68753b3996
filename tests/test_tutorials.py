"""The tutorials run end to end in --quick mode and write the pictures they promise.

Each tutorial asserts the numbers it teaches (the 1-D example's gradients, the parameter
counts, the Toeplitz product equal to conv2d, pooling invariance, ...) with plain ``assert``
statements, so a zero exit status means those checks passed. Here we run every script in a
subprocess, as a learner would, with its pictures going to a temporary folder, and check
that each PNG exists, opens, and has a sensible size.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
MNIST = ROOT.parent / "shared" / "data" / "mnist"

# script -> {png: (minimum width, minimum height) in pixels}
EXPECTED = {
    "01_convolution_1d.py": {"01_convolution_1d.png": (800, 400)},
    "02_kernel_flip.py": {"02_kernel_flip.png": (700, 500)},
    "03_hand_designed_kernels.py": {
        "03_kernels.png": (500, 80),
        "03_filtered.png": (800, 400),
        "03_kirsch.png": (800, 250),
    },
    "04_padding_stride_dilation.py": {"04_padding.png": (700, 250), "04_receptive_fields.png": (700, 500)},
    "05_channels_and_parameters.py": {"05_parameters.png": (700, 250), "05_one_by_one.png": (700, 200)},
    "06_convolution_as_matrix.py": {"06_toeplitz.png": (900, 400), "06_edge_detector.png": (700, 300)},
    "07_pooling.py": {"07_pooling.png": (900, 150), "07_invariance.png": (700, 250)},
    "08_lenet5_digits.py": {
        "08_training_curves.png": (500, 250),
        "08_confusion_matrix.png": (400, 400),
        "08_misclassified.png": (300, 120),
        "08_examples.png": (500, 200),
    },
    "09_batchnorm_and_residuals.py": {"09_training_curves.png": (500, 250), "09_gradients.png": (500, 250)},
    "10_what_the_network_learned.py": {
        "10_filters.png": (400, 150),
        "10_activations_stage1.png": (400, 150),
        "10_activations_stage2.png": (500, 150),
        "10_activation_maximization.png": (400, 200),
        "10_saliency.png": (500, 200),
    },
    "11_augmentation_and_overfitting.py": {"11_augmentation.png": (400, 400), "11_curves.png": (700, 250)},
    "12_segmentation_and_backends.py": {
        "12_segmentation.png": (700, 400),
        "12_training_curves.png": (500, 250),
        "12_backends.png": (400, 150),
    },
    "13_quantization_and_binarization.py": {
        "13_ranges.png": (600, 250),
        "13_weights.png": (600, 250),
        "13_accuracy_and_size.png": (800, 280),
    },
    "14_efficient_architectures.py": {"14_efficient_architectures.png": (900, 280)},
    "15_transfer_learning.py": {"15_transfer.png": (700, 250)},
    "16_fully_convolutional.py": {"16_heatmaps.png": (700, 350), "16_canvases.png": (300, 200)},
    "17_keras_front_end.py": {"17_training_curves.png": (700, 250), "17_activations.png": (600, 300)},
    "18_uncertainty.py": {
        "18_mc_passes.png": (700, 400),
        "18_uncertainty.png": (900, 250),
        "18_reliability.png": (600, 600),
    },
    "19_signals_1d.py": {
        "19_events.png": (800, 400),
        "19_receptive_field.png": (800, 250),
        "19_detection.png": (900, 450),
    },
    "20_kernels_without_labels.py": {
        "20_kmeans_filters.png": (600, 300),
        "20_kernels.png": (1000, 250),
        "20_whitening.png": (800, 400),
        "20_accuracy.png": (500, 300),
    },
    "21_pitfalls_and_diagnosis.py": {"21_diagnosis.png": (900, 500)},
}


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    # pytest-xdist already runs one worker per core: one thread per worker avoids BLAS, OpenMP
    # and Numba threads fighting over the cores (which makes small kernels many times slower).
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = "1"
    return env


def _run(script: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / script), "--quick", "--out", str(out), *extra],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{script} failed with exit status {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-3000:]}\n--- stderr (end) ---\n{result.stderr[-5000:]}"
    )
    return result


def _check_pngs(out: Path, expected: dict[str, tuple[int, int]]) -> None:
    from PIL import Image

    for name, (min_width, min_height) in expected.items():
        path = out / name
        assert path.is_file(), f"{name} was not written (found: {sorted(p.name for p in out.glob('*.png'))})"
        assert path.stat().st_size > 1000, f"{name} is (nearly) empty"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            assert image.format == "PNG"
            assert width >= min_width and height >= min_height, (
                f"{name} is {width}x{height}, expected at least {min_width}x{min_height}"
            )
            assert width <= 4000 and height <= 4000, f"{name} is {width}x{height}: unreasonably large"
            extrema = image.convert("L").getextrema()
            assert extrema[0] < extrema[1], f"{name} is a single flat colour"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_tutorial_runs_and_draws(script: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    result = _run(script, tmp_path)
    assert result.stdout.strip(), f"{script} printed nothing"
    _check_pngs(tmp_path, EXPECTED[script])


def test_lenet_tutorial_on_mnist(tmp_path: Path) -> None:
    """Tutorial 8 with --mnist: the real MNIST files (only the test set may be present)."""
    if (
        not (MNIST / "t10k-images-idx3-ubyte.gz").is_file()
        and not (MNIST / "t10k-images-idx3-ubyte").is_file()
    ):
        pytest.skip(f"no MNIST files in {MNIST}")
    pytest.importorskip("matplotlib")
    result = _run("08_lenet5_digits.py", tmp_path, "--mnist", str(MNIST))
    assert "MNIST" in result.stdout
    _check_pngs(tmp_path, EXPECTED["08_lenet5_digits.py"])


def test_every_tutorial_is_tested_and_listed() -> None:
    scripts = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert scripts == sorted(EXPECTED), "a tutorial without a test, or a test without its tutorial"
    numbers = [int(name[:2]) for name in scripts]
    assert numbers == list(range(1, len(scripts) + 1)), "tutorials are numbered 01, 02, ... without gaps"
    readme = (TUTORIALS / "README.md").read_text()
    for script, pngs in EXPECTED.items():
        assert script in readme, f"tutorials/README.md does not list {script}"
        for png in pngs:
            assert png in readme, f"tutorials/README.md does not mention {png}"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_tutorial_is_a_percent_format_notebook(script: str) -> None:
    """Jupytext's percent format: '# %%' code cells and '# %% [markdown]' cells, a title first."""
    text = (TUTORIALS / script).read_text()
    assert text.startswith("# %% [markdown]\n# # "), f"{script} should open with a markdown title cell"
    assert len(re.findall(r"^# %% \[markdown\]$", text, flags=re.M)) >= 3, "explain in markdown cells"
    assert len(re.findall(r"^# %%$", text, flags=re.M)) >= 3, "code in '# %%' cells"
    assert "--quick" in text and "--out" in text
    assert "parse_known_args" in text, "parse_known_args lets the script run inside Jupyter"
    assert 'if "ipykernel" in sys.modules else parser.parse_args()' in text, "a script rejects unknown flags"


def test_a_tutorial_rejects_an_unknown_flag(tmp_path: Path) -> None:
    """--output for --out: an error, not pictures silently written elsewhere (tests/test_notebooks.py
    runs tutorials inside a Jupyter kernel, whose own flags they must accept)."""
    script = str(TUTORIALS / "04_padding_stride_dilation.py")
    result = subprocess.run(
        [sys.executable, script, "--quick", "--output", str(tmp_path)], cwd=tmp_path, env=_environment(),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "unrecognized arguments: --output" in result.stderr, result.stderr
    assert not list(tmp_path.iterdir()) and not (tmp_path / "out").exists()
