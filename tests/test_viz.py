"""Visualisation helpers write real PNGs; the gradient-based ones do what they say."""

import numpy as np
import pytest

from tinygrad_cnn import Tensor, manual_seed, nn, viz


def png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_plots_write_non_empty_pngs(tmp_path):
    rng = np.random.default_rng(0)
    viz.filter_grid(rng.standard_normal((6, 1, 5, 5)), tmp_path / "filters.png", ncols=3)
    viz.filter_grid(rng.standard_normal((4, 3, 3, 3)), tmp_path / "rgb.png")
    viz.activation_maps(rng.random((1, 5, 8, 8)), tmp_path / "maps.png")
    viz.training_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]},
                        tmp_path / "curves.png")
    viz.training_curves({"plain": {"loss": [2.0, 1.9]}, "resnet": {"loss": [2.0, 0.9]}},
                        tmp_path / "compare.png")
    counts = viz.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    viz.plot_confusion_matrix(counts, path=tmp_path / "cm.png")
    viz.image_grid(rng.random((5, 1, 8, 8)), labels=[0, 1, 2, 3, 4], predictions=[0, 1, 0, 3, 4],
                   path=tmp_path / "grid.png")
    for name in ("filters", "rgb", "maps", "curves", "compare", "cm", "grid"):
        width, height = png_size(tmp_path / f"{name}.png")
        assert width > 100 and height > 50


def test_training_curves_draw_one_panel_per_metric_and_one_line_per_run():
    fig = viz.training_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8],
                               "lr": [0.1, 0.1]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]
    runs = {"plain": {"loss": [2.0], "val_accuracy": [0.1]}, "resnet": {"loss": [1.0], "val_accuracy": [0.9]}}
    fig = viz.training_curves(runs)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError, match="empty"):
        viz.training_curves({})


def test_confusion_matrix_counts():
    counts = viz.confusion_matrix(np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 2, 1]))
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 2]])
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        viz.confusion_matrix([0, 1, 2], [0, 1])


def test_saliency_of_a_linear_model_is_its_weights():
    manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    image = np.random.default_rng(1).random((1, 4, 4)).astype(np.float32)
    saliency = viz.saliency_map(model, image, target=2)
    np.testing.assert_allclose(saliency, np.abs(model[1].weight.numpy()[2]).reshape(4, 4), rtol=1e-6)


def test_activation_maximization_raises_the_unit():
    manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    image = viz.activation_maximization(model, (1, 4, 4), unit=1, steps=30, lr=0.05)
    assert image.shape == (1, 4, 4)
    start = np.random.default_rng(0).normal(0, 0.01, (1, 1, 4, 4)).astype(np.float32)
    before = model(Tensor(start)).numpy()[0, 1]
    after = model(Tensor(image[None])).numpy()[0, 1]
    assert after > before + 0.1
