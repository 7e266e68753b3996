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
