"""The Keras-style summary table: LeNet-5's rows as in the course, totals, FLOPs, receptive fields."""

import io

import numpy as np
import pytest

from tinygrad_cnn import models, nn, summary


def test_lenet5_table_matches_the_course():
    out = io.StringIO()
    s = summary(models.lenet5(), (1, 28, 28), file=out)
    text = out.getvalue()
    rows = {r.name: r for r in s.rows}
    assert rows["features.0"].output_shape[1:] == (6, 28, 28) and rows["features.0"].params == 156
    assert rows["features.2"].output_shape[1:] == (6, 14, 14) and rows["features.2"].params == 0
    assert rows["features.3"].output_shape[1:] == (16, 10, 10) and rows["features.3"].params == 2416
    assert rows["features.5"].output_shape[1:] == (16, 5, 5)
    assert rows["features.6"].output_shape[1:] == (120, 1, 1) and rows["features.6"].params == 48120
    assert rows["classifier.1"].params == 10164 and rows["classifier.3"].params == 850
    assert s.total_params == s.trainable_params == 61706 and s.non_trainable_params == 0
    assert "Total params: 61,706" in text and "(None, 6, 28, 28)" in text and "Receptive field" in text
    # receptive fields: 5; pooling 2/2 -> 6 (jump 2); 5x5 -> 6 + 4*2 = 14; pool -> 16 (jump 4); 16 + 4*4 = 32
    assert [rows[k].receptive_field[0] for k in ("features.0", "features.2", "features.3", "features.5",
                                                  "features.6")] == [5, 6, 14, 16, 32]
    # FLOPs: every conv output sums C_in k k products: 2 C_in k k operations with the bias
    assert rows["features.0"].flops == 6 * 28 * 28 * 2 * 25
    assert rows["features.3"].flops == 16 * 10 * 10 * 2 * 6 * 25
    assert rows["classifier.1"].flops == 84 * 2 * 120
    assert s.total_flops == sum(r.flops for r in s.rows)


def test_non_trainable_params_buffers_and_branches():
    model = models.resnet20()
    for p in model.conv1.parameters():
        p.requires_grad = False
    s = summary(model, (3, 32, 32), print_summary=False)
    assert s.total_params == 269_722 and s.non_trainable_params == 3 * 16 * 9
    assert s.buffer_elements == sum(b.numel() for _, b in model.named_buffers() if b.ndim)
    rf = {r.name: r.receptive_field[0] for r in s.rows}
    assert rf["conv1"] == 3 and rf["layer1.0.conv1"] == 5 and rf["layer1.0.conv2"] == 7
    # the block after layer1.0 sees the residual sum: its field grows from there
    assert rf["layer1.1.conv1"] == 9
    assert model.training  # mode restored
    assert "forward" not in model.conv1.__dict__  # hooks removed


def test_summary_memory_and_bad_input():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    s = summary(model, (3, 4), batch_size=2, print_summary=False)
    assert s.rows[-1].output_shape == (2, 5) and s.total_params == 65
    assert s.params_mb == pytest.approx(65 * 4 / 2**20)
    assert s.activations_mb == pytest.approx((2 * 12 + 2 * 5) * 4 / 2**20)
    with pytest.raises(ValueError, match="cannot run on input shape"):
        summary(model, (3, 5), print_summary=False)
    with pytest.raises(ValueError, match="input_shape"):
        summary(model, (0, 4), print_summary=False)
    with pytest.raises(TypeError, match="nn.Module"):
        summary(np.zeros(3), (3,))


def test_the_returned_summary_is_the_table():
    s = summary(models.lenet5(), (1, 28, 28), print_summary=False)
    text = str(s)
    assert repr(s) == text and text.startswith('Model: "LeNet5"') and "Total params: 61,706" in text
    html = s._repr_html_()
    assert html.startswith("<pre>") and "features.0 (Conv2d)" in html and "(None, 6, 28, 28)" in html
    assert html.count("<") == 2  # the table's own text escaped inside <pre> ... </pre>


def test_summary_without_a_shape_uses_the_one_the_model_knows():
    lenet = models.lenet5().summary(print_summary=False)
    assert lenet.input_shape == (1, 28, 28) and lenet.total_params == 61706
    assert models.lenet5(in_channels=3).summary(print_summary=False).input_shape == (3, 28, 28)
    assert models.resnet20().summary(print_summary=False).input_shape == (3, 32, 32)
    custom = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    with pytest.raises(ValueError, match=r"does not know its input size; pass it, e.g. summary\(model"):
        custom.summary()
    custom.input_shape = (3, 4)  # a model that is told its input size knows it
    assert custom.summary(print_summary=False).rows[-1].output_shape == (1, 5)


def test_input_shape_with_or_without_the_batch_dimension():
    model = models.lenet5()
    without = summary(model, (1, 28, 28), print_summary=False)
    with_batch = summary(model, (16, 1, 28, 28), print_summary=False)
    assert [(r.name, r.output_shape[1:], r.params, r.flops) for r in without.rows] == \
        [(r.name, r.output_shape[1:], r.params, r.flops) for r in with_batch.rows]
    assert with_batch.input_shape == (1, 28, 28) and with_batch.rows[0].output_shape[0] == 16
    assert with_batch.input_mb == pytest.approx(16 * without.input_mb)
    dense = nn.Sequential(nn.Linear(64, 10))
    assert summary(dense, (64,), print_summary=False).rows[0].output_shape == (1, 10)
    assert summary(dense, (32, 64), print_summary=False).rows[0].output_shape == (32, 10)
    with pytest.raises(ValueError, match="batch dimension 16, but batch_size=4"):
        summary(model, (16, 1, 28, 28), batch_size=4, print_summary=False)


def test_printed_once_in_a_script_and_in_the_interactive_interpreter():
    import os
    import subprocess
    import sys

    env = {**os.environ, "TINYGRAD_CNN_BACKEND": "reference"}
    lines = "from tinygrad_cnn import models\nmodels.lenet5().summary()\ns = models.lenet5().summary()\n"
    run = dict(capture_output=True, text=True, env=env)
    script = subprocess.run([sys.executable, "-c", lines], check=True, **run)
    assert script.stdout.count("Total params: 61,706") == 2  # a script prints both, as Keras
    # the interpreter shows the returned table of the expression, and prints nothing for the assignment
    repl = subprocess.run([sys.executable, "-i"], input=lines + "s\n", **run)
    assert repl.stdout.count("Total params: 61,706") == 2, repl.stdout + repl.stderr
