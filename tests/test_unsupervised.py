"""Patches, ZCA whitening and k-means (tinygrad_cnn.unsupervised) against loops, SciPy's
matrix power and scikit-learn's KMeans; learned kernels against conv2d."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn import unsupervised as U


# ---------------------------------------------------------------------------- patches
def test_every_patch_matches_a_loop():
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 5))
    patches = U.extract_patches(x, (3, 2), stride=2)
    expected = [x[n, :, i:i + 3, j:j + 2].ravel()
                for n in range(2) for i in range(0, 4, 2) for j in range(0, 4, 2)]
    np.testing.assert_array_equal(patches, np.array(expected))
    assert U.extract_patches(x, 3).shape == (2 * 4 * 3, 27)


def test_random_patches_are_patches_and_seeded():
    x = np.random.default_rng(1).normal(size=(4, 2, 7, 7))
    patches = U.extract_patches(x, 3, n_patches=50, seed=3)
    assert patches.shape == (50, 18)
    every = {tuple(p) for p in U.extract_patches(x, 3)}
    assert all(tuple(p) in every for p in patches)
    np.testing.assert_array_equal(U.extract_patches(x, 3, n_patches=50, seed=3), patches)
    assert not np.array_equal(U.extract_patches(x, 3, n_patches=50, seed=4), patches)


@pytest.mark.parametrize("images, size, message", [
    (np.zeros((2, 5, 5)), 3, r"\(N, C, H, W\)"),
    (np.zeros((1, 1, 4, 4)), 5, "larger than the images"),
    (np.zeros((1, 1, 4, 4)), 0, "size must be positive"),
    (np.full((1, 1, 4, 4), np.nan), 2, "finite"),
])
def test_extract_patches_errors(images, size, message):
    with pytest.raises(ValueError, match=message):
        U.extract_patches(images, size)


def test_normalize_patches():
    p = np.array([[1.0, 2.0, 3.0, 6.0], [4.0, 4.0, 4.0, 4.0]])
    centred = U.normalize_patches(p, contrast=False)
    np.testing.assert_allclose(centred, [[-2, -1, 0, 3], [0, 0, 0, 0]])
    normalised = U.normalize_patches(p, eps=0.5)
    np.testing.assert_allclose(normalised[0], [-2, -1, 0, 3] / np.sqrt(3.5 + 0.5))  # variance 3.5
    np.testing.assert_array_equal(normalised[1], 0.0)  # a flat patch stays flat, not noise
    with pytest.raises(ValueError, match="constant patch"):
        U.normalize_patches(p, eps=0)


# --------------------------------------------------------------------------- whitening
def _correlated(n=400, d=5, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


@pytest.mark.parametrize("eps", [0.0, 0.1, 2.0])
def test_zca_is_the_inverse_square_root_of_the_covariance(eps):
    from scipy.linalg import fractional_matrix_power

    x = _correlated()
    zca = U.ZCAWhitening(eps).fit(x)
    covariance = np.cov(x, rowvar=False, bias=True)
    expected = np.real(fractional_matrix_power(covariance + eps * np.eye(5), -0.5))
    np.testing.assert_allclose(zca.matrix_, expected, atol=1e-10)
    np.testing.assert_allclose(zca.matrix_, zca.matrix_.T, atol=1e-12)
    z = zca.transform(x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-10)
    # whitened covariance: U diag(λ / (λ + eps)) Uᵀ, the identity for eps = 0
    shrink = zca.components_ @ np.diag(zca.eigenvalues_ / (zca.eigenvalues_ + eps)) @ zca.components_.T
    np.testing.assert_allclose(np.cov(z, rowvar=False, bias=True), shrink, atol=1e-10)
    np.testing.assert_allclose(zca.inverse_transform(z), x, atol=1e-9)
    assert np.all(np.diff(zca.eigenvalues_) <= 0)


def test_zca_changes_the_data_least_of_all_whitenings():
    """PCA whitening z = (x - mean) U Λ^(-1/2) also whitens, but rotates; ZCA = PCA whitening
    rotated back, the whitening closest to the centred data."""
    x = _correlated(seed=1)
    zca = U.ZCAWhitening(0.0).fit(x)
    centred = x - x.mean(0)
    pca = centred @ zca.components_ / np.sqrt(zca.eigenvalues_)
    np.testing.assert_allclose(pca @ zca.components_.T, zca.transform(x), atol=1e-9)
    rng = np.random.default_rng(2)
    for _ in range(5):  # any other rotation of the whitened data is farther from the data
        q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
        other = zca.transform(x) @ q
        assert np.linalg.norm(other - centred) > np.linalg.norm(zca.transform(x) - centred)


def test_zca_errors():
    with pytest.raises(ValueError, match="singular"):
        U.ZCAWhitening(0.0).fit(U.normalize_patches(_correlated(), contrast=False))
    with pytest.raises(ValueError, match="call fit first"):
        U.ZCAWhitening().transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(M, 5\)"):
        U.ZCAWhitening().fit(_correlated()).transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="eps must be"):
        U.ZCAWhitening(-1.0)


# ------------------------------------------------------------------------------ k-means
def _blobs(seed=0, per=60):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0], [7.0, -1.0]])
    return np.concatenate([c + rng.normal(scale=0.7, size=(per, 2)) for c in centres])


def test_kmeans_matches_scikit_learn_from_the_same_start():
    from sklearn.cluster import KMeans

    x = _blobs()
    start = x[[0, 1, 2, 3]]  # a poor start: four points of the same blob
    ours = U.kmeans(x, 4, n_iter=100, init=start)
    theirs = KMeans(4, init=start, n_init=1, algorithm="lloyd", tol=0.0, max_iter=100).fit(x)
    np.testing.assert_allclose(ours.centroids, theirs.cluster_centers_, atol=1e-10)
    np.testing.assert_array_equal(ours.labels, theirs.labels_)
    assert ours.inertia == pytest.approx(theirs.inertia_)


def test_kmeans_plus_plus_finds_the_blobs_and_is_seeded():
    x = _blobs(1)
    result = U.kmeans(x, 4, seed=0)
    found = sorted(map(tuple, np.round(result.centroids)))
    assert found == [(0.0, 0.0), (0.0, 6.0), (5.0, 5.0), (7.0, -1.0)]
    assert np.bincount(result.labels).tolist() == [60] * 4
    again = U.kmeans(x, 4, seed=0)
    np.testing.assert_array_equal(again.centroids, result.centroids)
    assert result.n_iter == len(result.history) and result.inertia == result.history[-1]


@given(st.integers(1, 6), st.integers(0, 2**32 - 1), st.sampled_from(["k-means++", "random"]))
def test_kmeans_never_increases_the_inertia(k, seed, init):
    x = np.random.default_rng(seed).normal(size=(30, 3))
    result = U.kmeans(x, k, n_iter=20, init=init, seed=seed)
    assert np.all(np.diff(result.history) <= 1e-9 * max(result.history[0], 1.0))
    distances = ((x[:, None] - result.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(result.labels, distances.argmin(1))  # every point at its nearest
    assert result.inertia == pytest.approx(distances.min(1).sum())


def test_an_empty_cluster_gets_the_farthest_point():
    x = np.array([[0.0], [0.1], [10.0], [10.2], [30.0]])
    result = U.kmeans(x, 3, init=np.array([[0.0], [10.0], [1000.0]]), n_iter=10)
    assert sorted(np.bincount(result.labels, minlength=3).tolist()) == [1, 2, 2]
    assert 30.0 in result.centroids


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), "k must be a positive int"),
    (dict(k=50), "need at least 50 points"),
    (dict(k=2, init="best"), "init must be"),
    (dict(k=2, init=np.zeros((3, 2))), "3 centroids, expected k = 2"),
    (dict(k=2, init=np.zeros((2, 3))), r"\(M, 2\)"),
    (dict(k=2, tol=-1), "tol must be"),
])
def test_kmeans_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        U.kmeans(_blobs()[:20], **kwargs)


# ------------------------------------------------------------------ kernels from patches
def test_learned_kernels_compute_the_whitened_response_by_convolution():
    with tc.use_backend("reference"):  # float64: the reference kernels (no Numba compilation for one check)
        _check_learned_kernels()


def _check_learned_kernels():
    rng = np.random.default_rng(0)
    images = rng.random((6, 2, 9, 9))
    learned = U.learn_kernels(images, 5, 3, n_patches=300, eps=0.1, n_iter=10, seed=1)
    assert learned.weight.shape == (5, 2, 3, 3) and learned.bias.shape == (5,)
    assert learned.kernels.shape == (5, 2, 3, 3)
    conv = F.conv2d(Tensor(images), Tensor(learned.weight), Tensor(learned.bias)).numpy()  # (6, 5, 7, 7)
    patches = U.extract_patches(images, 3)  # every position, image by image, row by row
    whitened = learned.whitening.transform(U.normalize_patches(patches, contrast=False))
    responses = whitened @ learned.centroids.T
    np.testing.assert_allclose(conv.transpose(0, 2, 3, 1).reshape(-1, 5), responses, atol=1e-9)
    again = U.learn_kernels(images, 5, 3, n_patches=300, eps=0.1, n_iter=10, seed=1)
    np.testing.assert_array_equal(again.weight, learned.weight)
