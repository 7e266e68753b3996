"""Kernels without labels: image patches, ZCA whitening and k-means (course: *unsupervised
feature learning*; Coates, Lee and Ng, 2011; Coates and Ng, 2012).

A convolution's first-layer kernels end up looking like small edge, blob and stroke
detectors. They can be found without any labels:

1. cut many small patches (k x k, C channels: vectors of D = C k k numbers) out of the images
   (:func:`extract_patches`), and remove each patch's mean brightness and divide by its
   contrast (:func:`normalize_patches`);
2. **whiten** them (:class:`ZCAWhitening`): neighbouring pixels are strongly correlated, so
   plain k-means would only find blurry averages. With the patches' covariance
   Σ = U Λ Uᵀ, ZCA whitening multiplies by

       W = U diag(1 / sqrt(λ_i + ε)) Uᵀ = (Σ + ε I)^(-1/2),

   which makes the covariance (nearly) the identity, every direction equally loud, while
   keeping the patches looking like patches (W is symmetric: of all whitening matrices it
   changes the data the least; PCA whitening would rotate them into eigen-coordinates).
   ε keeps the tiny-variance directions, mostly noise, from being blown up;
3. cluster the whitened patches with **k-means** (:func:`kmeans`): each centroid is a
   typical whitened patch, i.e. a kernel;
4. use the centroids as a fixed first convolution layer (:func:`learn_kernels` does 1-3
   and gives the kernels in pixel space, ready for ``nn.Conv2d``).

numpy only; arrays are float64. Patch vectors are flattened in the order of a convolution
weight (C, kh, kw), so a centroid reshaped to (C, k, k) is a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_cnn.nn.functional.checks import int_tuple, positive_int

__all__ = [
    "extract_patches", "normalize_patches", "ZCAWhitening", "KMeansResult", "kmeans", "PatchKernels",
    "learn_kernels",
]


def _images(fn: str, images) -> np.ndarray:
    x = np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float64)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{fn}: images must be a non-empty (N, C, H, W) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{fn}: images must be finite")
    return x


def _matrix(fn: str, name: str, x, columns: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or (columns is not None and x.shape[1] != columns):
        expected = f"(M, {columns})" if columns is not None else "(M, D) with M >= 1"
        raise ValueError(f"{fn}: {name} must be {expected}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{fn}: {name} must be finite")
    return x


# --------------------------------------------------------------------------- patches
def extract_patches(images, size, n_patches: int | None = None, stride: int = 1, seed: int = 0) -> np.ndarray:
    """Patches of ``size`` (an int or (kh, kw)) from images (N, C, H, W), as rows (M, C kh kw).

    ``n_patches=None``: every patch, top-left corners ``stride`` apart, image by image, row by
    row (M = N OH OW with OH = (H - kh) // stride + 1, the positions of a 'valid' convolution).
    An int: that many patches at uniformly random images and positions (seeded by ``seed``).
    """
    fn = "extract_patches"
    x = _images(fn, images)
    kh, kw = int_tuple(fn, "size", size, 2)
    stride = positive_int(fn, "stride", stride)
    n, c, h, w = x.shape
    if kh > h or kw > w:
        raise ValueError(f"{fn}: patch size {(kh, kw)} is larger than the images {(h, w)}")
    views = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # (N, C, OH, OW, kh, kw)
    if n_patches is None:
        views = views[:, :, ::stride, ::stride]
        return np.ascontiguousarray(views.transpose(0, 2, 3, 1, 4, 5)).reshape(-1, c * kh * kw)
    n_patches = positive_int(fn, "n_patches", n_patches)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, n, n_patches)
    top = rng.integers(0, h - kh + 1, n_patches)
    left = rng.integers(0, w - kw + 1, n_patches)
    return views[which, :, top, left].reshape(n_patches, c * kh * kw).copy()


def normalize_patches(patches, contrast: bool = True, eps: float = 0.01) -> np.ndarray:
    """Remove each patch's mean (its brightness) and, with ``contrast``, divide by
    sqrt(variance + eps) (its contrast), so that k-means clusters shapes, not brightness.
    ``eps`` (in squared pixel units: 0.01 for pixels in [0, 1]) keeps flat patches from being
    amplified into noise."""
    p = _matrix("normalize_patches", "patches", patches)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise ValueError(f"normalize_patches: eps must be a non-negative number, got {eps!r}")
    centred = p - p.mean(axis=1, keepdims=True)
    if not contrast:
        return centred
    scale = np.sqrt(centred.var(axis=1, keepdims=True) + eps)
    if (scale == 0).any():
        raise ValueError("normalize_patches: a constant patch with eps = 0 has no contrast to divide by")
    return centred / scale


# ------------------------------------------------------------------------ whitening
class ZCAWhitening:
    """``ZCAWhitening(eps=0.1).fit(X)``; ``transform(X) = (X - mean) W`` with the symmetric
    W = U diag(1 / sqrt(λ + eps)) Uᵀ of the covariance Σ = (1/M) (X - mean)ᵀ (X - mean) = U Λ Uᵀ.

    After ``fit``: ``mean_`` (D,), ``eigenvalues_`` (D,) in decreasing order with their
    eigenvectors as the columns of ``components_`` (D, D), and ``matrix_`` W (D, D). The
    whitened data have covariance U diag(λ / (λ + eps)) Uᵀ: the identity where λ >> eps.
    ``inverse_transform`` undoes ``transform``. (eps = 0.1 suits patches normalised by
    :func:`normalize_patches`, whose pixels have variance about 1.)
    """

    def __init__(self, eps: float = 0.1) -> None:
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
            raise ValueError(f"ZCAWhitening: eps must be a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.mean_: np.ndarray | None = None

    def fit(self, x) -> ZCAWhitening:
        x = _matrix("ZCAWhitening.fit", "x", x)
        self.mean_ = x.mean(axis=0)
        centred = x - self.mean_
        covariance = centred.T @ centred / len(x)
        eigenvalues, vectors = np.linalg.eigh(covariance)  # ascending
        eigenvalues = np.clip(eigenvalues[::-1], 0.0, None)  # rounding can make zeros slightly negative
        vectors = vectors[:, ::-1]
        if self.eps == 0 and eigenvalues.min() <= 1e-12 * max(eigenvalues.max(), 1e-300):
            raise ValueError("ZCAWhitening.fit: the covariance is singular (e.g. patches with their mean "
                             "removed); use eps > 0")
        self.eigenvalues_, self.components_ = eigenvalues, vectors
        self.matrix_ = (vectors / np.sqrt(eigenvalues + self.eps)) @ vectors.T
        self._inverse = (vectors * np.sqrt(eigenvalues + self.eps)) @ vectors.T
        return self

    def _check(self, fn: str, x) -> np.ndarray:
        if self.mean_ is None:
            raise ValueError(f"ZCAWhitening.{fn}: call fit first")
        return _matrix(f"ZCAWhitening.{fn}", "x", x, len(self.mean_))

    def transform(self, x) -> np.ndarray:
        return (self._check("transform", x) - self.mean_) @ self.matrix_

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)

    def inverse_transform(self, z) -> np.ndarray:
        return self._check("inverse_transform", z) @ self._inverse + self.mean_


# --------------------------------------------------------------------------- k-means
@dataclass(frozen=True)
class KMeansResult:
    """``centroids`` (k, D); ``labels`` (M,), the nearest centroid of each point; ``inertia``,
    the sum of squared distances to it; ``history``, the inertia after each iteration
    (non-increasing); ``n_iter``, the iterations run."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    history: list[float]
    n_iter: int


def _squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """||x_i - c_j||² = ||x_i||² - 2 x_i·c_j + ||c_j||², (M, k), clipped at 0 against rounding."""
    d = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ (Arthur and Vassilvitskii, 2007): the first centroid a random point, each next
    one a point drawn with probability proportional to its squared distance to the nearest
    centroid so far (spread-out starts, fewer bad local minima)."""
    centroids = [x[rng.integers(len(x))]]
    nearest = _squared_distances(x, centroids[0][None])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        index = rng.choice(len(x), p=nearest / total) if total > 0 else rng.integers(len(x))
        centroids.append(x[index])
        nearest = np.minimum(nearest, _squared_distances(x, x[index][None])[:, 0])
    return np.array(centroids)


def kmeans(x, k: int, n_iter: int = 50, init="k-means++", seed: int = 0, tol: float = 0.0) -> KMeansResult:
    """Lloyd's k-means on the rows of x (M, D): repeat (1) assign every point to its nearest
    centroid, (2) move every centroid to the mean of its points, until no assignment changes,
    the inertia improves by at most ``tol`` (relative), or ``n_iter`` iterations.

    ``init``: ``"k-means++"`` (seeded by ``seed``), ``"random"`` (k distinct random points) or
    an array (k, D) of starting centroids. A centroid that loses all its points is moved to
    the point farthest from its own centroid, so every cluster stays in use. Each iteration
    cannot increase the inertia Σ_i ||x_i - c_label(i)||²: the assignment step picks the
    nearest centroid, the update step the point that minimises the squared distances.
    """
    fn = "kmeans"
    x = _matrix(fn, "x", x)
    k, n_iter = positive_int(fn, "k", k), positive_int(fn, "n_iter", n_iter)
    if k > len(x):
        raise ValueError(f"{fn}: k = {k} clusters need at least {k} points, got {len(x)}")
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or tol < 0:
        raise ValueError(f"{fn}: tol must be a non-negative number, got {tol!r}")
    rng = np.random.default_rng(seed)
    if isinstance(init, str) and init == "k-means++":
        centroids = _kmeans_plus_plus(x, k, rng)
    elif isinstance(init, str) and init == "random":
        centroids = x[rng.choice(len(x), size=k, replace=False)].copy()
    elif isinstance(init, str):
        raise ValueError(f"{fn}: init must be 'k-means++', 'random' or an array (k, D), got {init!r}")
    else:
        centroids = _matrix(fn, "init", init, x.shape[1]).copy()
        if len(centroids) != k:
            raise ValueError(f"{fn}: init has {len(centroids)} centroids, expected k = {k}")

    labels = _squared_distances(x, centroids).argmin(1)
    history: list[float] = []
    for _ in range(n_iter):
        counts = np.bincount(labels, minlength=k)
        members = np.zeros((k, len(x)))
        members[labels, np.arange(len(x))] = 1.0
        sums = members @ x  # the sum of each cluster's points, as one matrix product
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        if not filled.all():  # an empty cluster: give it the worst-served point
            distance = ((x - centroids[labels]) ** 2).sum(1)
            for j in np.flatnonzero(~filled):
                far = int(distance.argmax())
                centroids[j] = x[far]
                distance[far] = -1.0
        distances = _squared_distances(x, centroids)
        new_labels = distances.argmin(1)
        history.append(float(distances[np.arange(len(x)), new_labels].sum()))
        converged = np.array_equal(new_labels, labels) or (
            len(history) > 1 and history[-2] - history[-1] <= tol * history[-2])
        labels = new_labels
        if converged:
            break
    return KMeansResult(centroids, labels, history[-1], history, len(history))


# -------------------------------------------------------------- kernels from patches
@dataclass(frozen=True)
class PatchKernels:
    """The result of :func:`learn_kernels`.

    ``weight`` (K, C, kh, kw) and ``bias`` (K,) in pixel space: for every patch p (as a row),
    conv2d(x, weight, bias) at that patch's position = centroid · ZCA(p - mean(p)), the
    centroid's response to the patch centred and whitened as in training (the contrast
    normalisation, a division per patch, is left out: it is not a convolution).
    ``centroids`` (K, D) are the kernels in whitened space (what to look at in a filter grid),
    ``whitening`` the fitted :class:`ZCAWhitening`, ``clustering`` the :class:`KMeansResult`.
    """

    weight: np.ndarray
    bias: np.ndarray
    centroids: np.ndarray
    whitening: ZCAWhitening
    clustering: KMeansResult

    @property
    def kernels(self) -> np.ndarray:
        """The centroids as kernels (K, C, kh, kw), for ``viz.filter_grid``."""
        return self.centroids.reshape(self.weight.shape)


def learn_kernels(images, n_kernels: int, size, n_patches: int = 10000, eps: float = 0.1,
                  n_iter: int = 30, seed: int = 0) -> PatchKernels:
    """``n_kernels`` convolution kernels of ``size`` learned without labels from images
    (N, C, H, W): ``n_patches`` random patches, normalised (:func:`normalize_patches`),
    ZCA-whitened with ``eps``, clustered by k-means (``n_iter`` iterations, k-means++ seeded by
    ``seed``). Returns :class:`PatchKernels`, whose ``weight`` and ``bias`` make an
    ``nn.Conv2d(C, n_kernels, size)`` compute every centroid's response at every position.

    The pixel-space kernel: a patch p gives centroid c the response
    c · W (P p - mu) = (P W c) · p - c · W mu, with P the (symmetric) removal of the patch
    mean and W the (symmetric) ZCA matrix, so weight = P W c and bias = -c · W mu.
    """
    x = _images("learn_kernels", images)
    kh, kw = int_tuple("learn_kernels", "size", size, 2)
    patches = normalize_patches(extract_patches(x, (kh, kw), n_patches, seed=seed))
    whitening = ZCAWhitening(eps).fit(patches)
    clustering = kmeans(whitening.transform(patches), n_kernels, n_iter=n_iter, seed=seed)
    centroids = clustering.centroids
    back = centroids @ whitening.matrix_  # rows W c (W is symmetric)
    weight = back - back.mean(axis=1, keepdims=True)  # P W c: P removes a vector's mean
    bias = -back @ whitening.mean_
    shape = (n_kernels, x.shape[1], kh, kw)
    return PatchKernels(weight.reshape(shape), bias, centroids, whitening, clustering)
