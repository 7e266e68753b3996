"""nn.convolutionalize: the rewritten network equals the classifier at the training size, and
on a larger canvas each score pixel equals the classifier on the window it stands for (the
sliding-window definition, computed crop by crop)."""

import numpy as np
import pytest

from tinygrad_cnn import Tensor, models, nn, no_grad


def classifier(padding=0, nested=False):
    features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 6, 3, padding=padding), nn.BatchNorm2d(6), nn.ReLU(),
                             nn.MaxPool2d(2))
    size = 4 if padding else 2  # 16 -> 16 -> 8 -> 8 -> 4 with padding; 16 -> 14 -> 7 -> 5 -> 2 without
    head = [nn.Flatten(), nn.Linear(6 * size * size, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3),
            nn.LogSoftmax(dim=-1)]
    if nested:
        return nn.Sequential(features, nn.Sequential(*head))
    return nn.Sequential(*features, *head)


def run(model, x):
    model.eval()
    with no_grad():
        return model(Tensor(x)).numpy()


@pytest.mark.parametrize("padding,nested", [(0, False), (1, True)])
def test_equal_outputs_at_the_training_size(padding, nested):
    model = classifier(padding, nested)
    model.train()
    model(Tensor(np.random.default_rng(0).normal(size=(8, 1, 16, 16)).astype(np.float32)))  # BN statistics
    fcn = nn.convolutionalize(model, input_shape=(1, 16, 16))
    x = np.random.default_rng(1).normal(size=(5, 1, 16, 16)).astype(np.float32)
    expected = run(model, x)
    got = run(fcn, x)
    assert got.shape == (5, 3, 1, 1)
    np.testing.assert_allclose(got[:, :, 0, 0], expected, rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, (nn.Linear, nn.Flatten)) for m in fcn.modules())
    # the copy shares nothing: changing it leaves the classifier alone
    fcn[0].weight.data[...] = 0
    np.testing.assert_array_equal(run(model, x), expected)


def test_score_map_pixels_are_the_classifier_on_windows():
    model = classifier(padding=0)
    fcn = nn.convolutionalize(model)  # the 6 x 2 x 2 map is inferred (square, 6 channels)
    canvas = np.random.default_rng(2).normal(size=(2, 1, 28, 40)).astype(np.float32)
    scores = run(fcn, canvas)
    stride = 4  # two 2x2 poolings
    assert scores.shape == (2, 3, (28 - 16) // stride + 1, (40 - 16) // stride + 1)
    for i in range(scores.shape[2]):
        for j in range(scores.shape[3]):
            window = canvas[:, :, i * stride:i * stride + 16, j * stride:j * stride + 16]
            np.testing.assert_allclose(scores[:, :, i, j], run(model, window), rtol=1e-4, atol=1e-5)


def test_lenet_style_classifier_with_sequential_parts():
    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.Tanh(),
                          nn.Linear(120, 10))
    fcn = nn.convolutionalize(model, (1, 28, 28))
    x = np.random.default_rng(3).normal(size=(3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(run(fcn, x)[:, :, 0, 0], run(model, x), rtol=1e-5, atol=1e-5)
    assert run(fcn, np.zeros((1, 1, 28, 56), np.float32)).shape == (1, 10, 1, 8)


def test_errors_say_what_cannot_be_converted():
    with pytest.raises(TypeError, match="nn.Sequential"):
        nn.convolutionalize(models.lenet5())
    with pytest.raises(ValueError, match="no nn.Flatten"):
        nn.convolutionalize(nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        nn.convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3),
                                          nn.BatchNorm1d(3)), (1, 6, 6))
    with pytest.raises(ValueError, match="expects 50 features"):
        nn.convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(50, 3)), (1, 6, 6))
    with pytest.raises(ValueError, match="pass input_shape"):
        nn.convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 4, 3)))
