"""The command line: the main job, evaluate, summary, and one clear line for bad input."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.cli import main

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "2", "--limit", "400", "--no-progress", "--output", str(out)])
    return code, out


def test_train_writes_checkpoint_history_and_curves(trained, capsys):
    code, out = trained
    assert code == 0
    for name in ("checkpoint.npz", "history.csv", "training_curves.png"):
        assert (out / name).is_file(), name
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs


def test_validation_is_held_out_of_the_training_images_and_the_test_set_scored_once(trained):
    """The val_* numbers come from the last 10% of the (limited) training images, the test
    score from the test split: recomputed here from the checkpoint, independently of the CLI."""
    import csv

    import tinygrad_cnn as tc
    from tinygrad_cnn import models, training
    from tinygrad_cnn.data import load_digits

    _, out = trained
    history = list(csv.DictReader(open(out / "history.csv")))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    scores = {row["split"]: row for row in csv.DictReader(open(out / "scores.csv"))}
    assert set(scores) == {"validation", "test"}
    assert scores["validation"]["images"] == "40" and scores["test"]["images"] == "359"
    # no early stopping: the final model is the last epoch's, so its validation score is the last val_*
    assert float(scores["validation"]["accuracy"]) == pytest.approx(float(history[-1]["val_accuracy"]))
    x_train, y_train, x_test, y_test = load_digits(seed=0, image_size=28)
    model = models.lenet5()
    training.load_checkpoint(out / "checkpoint.npz", model, restore_rng=False)
    trainer = training.Trainer(model, None, progress=False)
    with tc.no_grad():
        val = trainer.evaluate((x_train[360:400], y_train[360:400]))
        test = trainer.evaluate((x_test, y_test))
    assert float(scores["validation"]["accuracy"]) == pytest.approx(val["accuracy"])
    assert float(scores["test"]["accuracy"]) == pytest.approx(test["accuracy"], abs=1e-6)


def test_help_shows_defaults_in_plain_text(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "``" not in top and "--val-split" in top and "first run compiles the Numba kernels" in top
    assert "Longer than 500 lines" not in top  # a note for the file's readers, not for the command's
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out.split("options:", 1)[1]
    entries = {" ".join(entry.split()[:2]): " ".join(entry.split()) for entry in text.split("\n  -")}
    for option, default in (("-model MODEL", "lenet5"), ("-epochs EPOCHS", "10"), ("-seed SEED", "0"),
                            ("-batch-size BATCH_SIZE", "32"), ("-val-split VAL_SPLIT", "0.1"),
                            ("-optimizer {adam,adamw,sgd}", "adam")):
        assert f"(default: {default}" in entries[option], entries[option]
    assert "use at most this many training images" in entries["-limit LIMIT"]
    assert main(["evaluate", "--help"]) == 0
    assert "use at most this many test images" in " ".join(capsys.readouterr().out.split())


def test_evaluate_scores_the_checkpoint(trained, capsys):
    _, out = trained
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz")]) == 0
    text = capsys.readouterr().out
    assert "lenet5 on digits (359 images): loss" in text
    accuracy = float(text.split("accuracy ")[1].split()[0])
    assert accuracy > 0.5
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--limit", "100"]) == 0
    assert "lenet5 on digits (100 images): loss" in capsys.readouterr().out


def test_summary_command(capsys):
    assert main(["summary", "--model", "resnet20"]) == 0
    text = capsys.readouterr().out
    assert "Total params: 269,722" in text and "layer3.2.conv2 (Conv2d)" in text
    assert main(["summary", "--list"]) == 0
    assert "unet_small" in capsys.readouterr().out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinygrad-cnn: error:"), err
    return err[0]


def test_bad_input_one_line_nonzero_and_nothing_overwritten(trained, tmp_path, capsys):
    _, out = trained
    checkpoint = out / "checkpoint.npz"
    before = checkpoint.read_bytes()
    capsys.readouterr()

    assert main(["train", "--model", "lenet7", "--output", str(out)]) == 2
    assert "unknown model 'lenet7'" in one_error_line(capsys)
    assert main(["summary", "--model", "lenet7"]) == 2
    assert "available:" in one_error_line(capsys)

    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nothing"),
                 "--output", str(out)]) == 2
    assert "t10k-images-idx3-ubyte.gz" in one_error_line(capsys)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(corrupt / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + b"\x00" * 7)
    assert main(["train", "--dataset", "mnist", "--data-dir", str(corrupt), "--output", str(out)]) == 2
    assert "truncated" in one_error_line(capsys)

    assert main(["evaluate", "--checkpoint", str(checkpoint), "--model", "resnet20"]) == 2
    assert "holds a lenet5 model, not resnet20" in one_error_line(capsys)
    assert main(["train", "--model", "resnet20", "--dataset", "shapes", "--resume", str(checkpoint),
                 "--output", str(out)]) == 2
    assert "holds a lenet5 run, not --model resnet20" in one_error_line(capsys)
    assert main(["train", "--dataset", "shapes", "--resume", str(checkpoint), "--output", str(out)]) == 2
    assert "holds a digits run, not --dataset shapes" in one_error_line(capsys)
    # the checkpoint's seed drew its splits: another one would score (or train on) the other splits
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--seed", "1"]) == 2
    assert "trained with --seed 0" in one_error_line(capsys)
    assert main(["train", "--resume", str(checkpoint), "--seed", "1", "--epochs", "3", "--output",
                 str(out)]) == 2
    assert "trained with --seed 0" in one_error_line(capsys)
    assert main(["train", "--resume", str(checkpoint), "--val-split", "0.2", "--epochs", "3", "--output",
                 str(out)]) == 2
    assert "trained with --val-split 0.1" in one_error_line(capsys)
    assert main(["train", "--resume", str(checkpoint), "--limit", "300", "--epochs", "3", "--output",
                 str(out)]) == 2
    assert "trained with --limit 400, whose splits keep its test images apart; --limit 300" in one_error_line(
        capsys)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.npz")]) == 2
    assert "no checkpoint" in one_error_line(capsys)
    assert main(["train", "--epochs", "0"]) == 2
    assert "--epochs must be positive" in one_error_line(capsys)
    assert main(["train", "--optimizer", "rmsprop"]) == 2  # argparse: its own usage message
    capsys.readouterr()
    assert main(["train", "--val-split", "1.5"]) == 2
    assert "--val-split must be a fraction in [0, 1)" in one_error_line(capsys)
    assert main(["train", "--val-split", "0", "--patience", "2"]) == 2
    assert "needs --val-split > 0" in one_error_line(capsys)
    assert main(["train", "--hostfile", "hosts"]) == 2
    assert "--hostfile hosts lists machines for --processes N, which is not given" in one_error_line(capsys)
    (tmp_path / "a-file").write_text("")
    assert main(["train", "--output", str(tmp_path / "a-file")]) == 2
    assert "a-file is a file; it must be a folder" in one_error_line(capsys)

    assert checkpoint.read_bytes() == before
    assert not (Path("runs") / "lenet7-digits").exists()


def test_resume_continues_the_run(trained, tmp_path, capsys):
    _, out = trained
    target = tmp_path / "resumed"
    code = main(["train", "--epochs", "3", "--limit", "400", "--no-progress", "--resume",
                 str(out / "checkpoint.npz"), "--output", str(target)])
    assert code == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text
    assert len((target / "history.csv").read_text().splitlines()) == 2  # only the new epoch 3
    # the 2-epoch run's cosine schedule had reached lr 0; resumed to 3 epochs it ends at epoch 3
    rate = float(text.split("resuming after epoch 2 of 3: the cosine learning-rate schedule ends at epoch 3, "
                            "lr now ")[1].split()[0])
    assert rate == pytest.approx(3e-3 * (1 + np.cos(np.pi * 2 / 3)) / 2, rel=1e-3)


def test_early_stopping_keeps_the_scored_weights_in_the_checkpoint(tmp_path, capsys):
    """--patience 1 stops after one epoch without improvement (at lr 1e-9 nothing improves
    after the first), keeps the best epoch's weights, says so, and the checkpoint holds them:
    evaluate gives the test score the run printed."""
    import csv

    out = tmp_path / "stopped"
    assert main(["train", "--epochs", "6", "--limit", "300", "--val-split", "0.2", "--patience", "1",
                 "--lr", "1e-9", "--no-progress", "--seed", "3", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stopped early after epoch 2: val_accuracy did not improve for 1 epoch; kept the weights " \
           "of epoch 1" in text
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + epochs 1 and 2
    scores = {row["split"]: row for row in csv.DictReader(open(out / "scores.csv"))}
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz")]) == 0  # takes --seed 3 itself
    shown = capsys.readouterr().out
    assert float(shown.split("accuracy ")[1].split()[0]) == pytest.approx(
        float(scores["test"]["accuracy"]), abs=1e-4)
    # resumed without --seed, --val-split and --limit: the checkpoint's (3, 0.2, 300), the same splits
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "3", "--lr", "1e-9",
                 "--no-progress", "--output", str(tmp_path / "resumed")]) == 0
    assert "60 validation images (--val-split 0.2 of the training images" in capsys.readouterr().out


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason=f"real MNIST test set not found at {MNIST_DIR}")
def test_train_on_real_mnist_files(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--data-dir", str(MNIST_DIR), "--epochs", "1", "--limit",
                 "600", "--no-progress", "--output", str(tmp_path)])
    assert code == 0
    text = capsys.readouterr().out
    assert "training on 8000 of the test-set images" in text and "on 2000 images" in text
    assert np.isfinite(float(text.split("test accuracy ")[1].split()[0]))


def test_train_device_cuda_without_a_gpu_says_what_is_missing(tmp_path, capsys):
    import tinygrad_cnn

    if tinygrad_cnn.cuda.is_available():
        pytest.skip("checks the error on a machine without a GPU")
    code = main(["train", "--device", "cuda", "--epochs", "1", "--no-progress", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "device 'cuda' requested, but" in err and ("CuPy" in err or "GPU" in err)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_train_resume_and_evaluate_on_the_device(device, tmp_path, capsys):
    """The main job on each device: train, resume (the optimizer's state goes back onto the
    device), evaluate. On the reference CPU kernels (no Numba compilation here; the GPU runs
    CuPy's whatever the backend), and the process's backend is restored afterwards."""
    import tinygrad_cnn

    run = ["--device", device, "--backend", "reference", "--epochs", "1", "--limit", "128", "--no-progress",
           "--output", str(tmp_path)]
    before = tinygrad_cnn.get_backend()
    try:
        assert main(["train", *run]) == 0
        assert main(["train", *run, "--epochs", "2", "--resume", str(tmp_path / "checkpoint.npz")]) == 0
        assert len((tmp_path / "history.csv").read_text().splitlines()) == 3
        assert main(["evaluate", "--device", device, "--backend", "reference",
                     "--checkpoint", str(tmp_path / "checkpoint.npz")]) == 0
    finally:
        tinygrad_cnn.set_backend(before)
    assert "accuracy" in capsys.readouterr().out
