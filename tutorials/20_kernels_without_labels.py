# %% [markdown]
# # 20. Kernels without supervised training: random features and k-means on whitened patches
#
# The first layer of a trained CNN is a bank of small edge, blob and stroke detectors
# (tutorial 10). Do those kernels need labels, and back-propagation, to be found? Two
# experiments of the course:
#
# * **random convolution features**: keep a first layer at its random initialisation, never
#   train it, and train only the last, linear layer. A random kernel still responds to
#   *something* local, and a linear classifier on many such responses can do surprisingly well;
# * **k-means on whitened patches** (Coates, Lee and Ng, 2011): cut thousands of small
#   patches out of the images (no labels needed), whiten them (ZCA), cluster them with k-means,
#   and use the cluster centres as the kernels of a fixed first layer.
#
# Labels are often the expensive part: here the classifiers see only a few hundred labelled
# digits, while k-means may use every training image without its label.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_image

import tinygrad_cnn
from tinygrad_cnn import data, nn, optim, training, viz
from tinygrad_cnn import unsupervised as U

parser = argparse.ArgumentParser(description="Tutorial 20: kernels without supervised training")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
LABEL_COUNTS = [200] if args.quick else [50, 200, 500]
STEPS = 70 if args.quick else 150  # gradient steps of 32 examples per classifier
KERNELS, SIZE = 32, 5
x_train, y_train, x_test, y_test = data.load_digits(image_size=16)
print(f"digits at 16x16: {len(x_train)} training images (their labels mostly unused), {len(x_test)} test")

# %% [markdown]
# ## Patches and ZCA whitening
#
# 10,000 random 5x5 patches of the training digits (vectors of 25 pixels). Each patch loses
# its mean brightness and is divided by its contrast (`U.normalize_patches`). Neighbouring
# pixels are strongly correlated: the covariance matrix is far from diagonal, and k-means on
# such data finds blurry averages. ZCA whitening multiplies by
# $W = U \operatorname{diag}(1/\sqrt{\lambda_i + \varepsilon})\, U^\top = (\Sigma + \varepsilon I)^{-1/2}$:
# afterwards the variance along each eigenvector is $\lambda/(\lambda + \varepsilon)$: about 1
# for the strong directions ($\lambda \gg \varepsilon$), while the weak ones, mostly noise (here
# also the blur of upsampling 8x8 digits to 16x16), are damped instead of blown up. Since $W$ is
# symmetric, the patches still look like patches, with their edges sharpened.

# %%
patches = U.extract_patches(x_train, SIZE, n_patches=10_000, seed=0)
normalized = U.normalize_patches(patches)
zca = U.ZCAWhitening(eps=0.1).fit(normalized)
whitened = zca.transform(normalized)


def neighbour_correlation(p):
    """Mean correlation of horizontally adjacent pixels inside the patches."""
    grid = p.reshape(-1, SIZE, SIZE)
    left, right = grid[:, :, :-1].ravel(), grid[:, :, 1:].ravel()
    return float(np.corrcoef(left, right)[0, 1])


before, after = neighbour_correlation(normalized), neighbour_correlation(whitened)
covariance = np.cov(whitened, rowvar=False, bias=True)
shrink = zca.eigenvalues_ / (zca.eigenvalues_ + zca.eps)
print(f"correlation of neighbouring pixels: {before:.2f} before whitening, {after:.2f} after")
print(f"eigenvalues of the patch covariance: {np.round(zca.eigenvalues_[:5], 2).tolist()} ... "
      f"{zca.eigenvalues_[-1]:.1e}; whitened variances λ/(λ+ε) from {shrink[0]:.3f} to {shrink[-1]:.1e}")
strong = zca.eigenvalues_ > 10 * zca.eps
print(f"{strong.sum()} of {len(strong)} directions have λ > 10 ε; along them the whitened variance is "
      f"{shrink[strong].min():.3f} to {shrink[strong].max():.3f}")
assert before > 0.5 and after < before - 0.2, "whitening decorrelates neighbouring pixels"
assert strong.sum() >= 3 and shrink[strong].min() > 0.9
expected = zca.components_ @ np.diag(shrink) @ zca.components_.T
assert np.allclose(covariance, expected, atol=1e-8), "covariance after ZCA: U diag(λ/(λ+ε)) Uᵀ"
assert np.allclose(zca.matrix_, zca.matrix_.T), "the ZCA matrix is symmetric"

# %% [markdown]
# ## k-means
#
# `U.kmeans` runs Lloyd's algorithm from k-means++ starts: assign every whitened patch to its
# nearest centre, move every centre to the mean of its patches, repeat. Neither step can
# increase the inertia (the sum of squared distances to the centres), so it decreases until
# the assignments stop changing. `U.learn_kernels` does all of the above and also translates
# the centres back to pixel space: a convolution with `learned.weight` and `learned.bias`
# computes, at every position, a centre's dot product with the centred, whitened patch there.

# %%
learned = U.learn_kernels(x_train, KERNELS, SIZE, n_patches=10_000, eps=0.1, n_iter=30, seed=0)
history = learned.clustering.history
sizes = np.bincount(learned.clustering.labels, minlength=KERNELS)
print(f"k-means: {learned.clustering.n_iter} iterations, inertia {history[0]:.0f} -> {history[-1]:.0f}; "
      f"patches per cluster from {sizes.min()} to {sizes.max()}")
decreasing = all(b <= a * (1 + 1e-12) for a, b in zip(history, history[1:]))
assert decreasing, "Lloyd's steps never increase the inertia"
assert sizes.min() > 0 and learned.weight.shape == (KERNELS, 1, SIZE, SIZE)

# The same on a photograph: 64 kernels of 8x8 from the grey China picture bundled with
# scikit-learn. Natural images give oriented edges and gratings, like the first layers of
# networks trained on photographs. (ε = 1 here: ε sets how much fine detail survives the
# whitening, and with ε = 0.1 the photograph's kernels fill up with fine, noisy gratings.)
photo = load_sample_image("china.jpg").astype(np.float64) @ [0.299, 0.587, 0.114] / 255.0
photo_kernels = U.learn_kernels(photo[None, None], 64, 8, n_patches=5_000 if args.quick else 20_000,
                                eps=1.0, n_iter=20 if args.quick else 40, seed=0)
print(f"photograph {photo.shape}: 64 kernels of 8x8 after {photo_kernels.clustering.n_iter} iterations")

# %% [markdown]
# ## Four classifiers on a few labelled digits
#
# The same architecture (5x5 convolution with 32 kernels, ReLU, 2x2 max pooling, one linear
# layer to the 10 classes) with three different first layers, and a linear classifier on the
# raw pixels for reference:
#
# * **random, frozen**: the convolution keeps its random initial kernels (`requires_grad_(False)`);
#   Adam trains only the linear layer;
# * **k-means, frozen**: the kernels and biases of `learn_kernels`, also frozen;
# * **trained**: everything trained by back-propagation, the usual way.
#
# Each is trained for the same number of steps on the first n labelled digits of a shuffled
# training set, and tested on the 359 test digits.

# %%
def network(first_layer):
    tinygrad_cnn.manual_seed(0)
    conv = nn.Conv2d(1, KERNELS, SIZE)
    if first_layer is not None:
        conv.weight.data[...] = first_layer.weight
        conv.bias.data[...] = first_layer.bias
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(KERNELS * 6 * 6, 10))


def build(name):
    if name == "pixels":
        tinygrad_cnn.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 10))
    model = network(learned if name == "k-means, frozen" else None)
    if name.endswith("frozen"):
        model[0].requires_grad_(False)
    return model


NAMES = ("pixels", "random, frozen", "k-means, frozen", "trained")
order = np.random.default_rng(0).permutation(len(y_train))
accuracy = {name: [] for name in NAMES}
trained_models = {}
for n_labels in LABEL_COUNTS:
    x_few, y_few = x_train[order[:n_labels]], y_train[order[:n_labels]]
    epochs = max(1, round(STEPS * 32 / n_labels))
    for name in NAMES:
        model = build(name)
        learnable = [p for p in model.parameters() if p.requires_grad]
        optimizer = optim.Adam(learnable, lr=3e-3)
        trainer = training.Trainer(model, optimizer, batch_size=32, seed=0, progress=False)
        trainer.fit((x_few, y_few), epochs=epochs)
        accuracy[name].append(trainer.evaluate((x_test, y_test))["accuracy"])
        trained_models[name] = model
        print(f"{n_labels:4d} labels, {name:16s}: {sum(p.numel() for p in learnable):6,} trained weights, "
              f"test accuracy {accuracy[name][-1]:.3f}")

# %% [markdown]
# What the numbers say (asserted below for 200 labels):
#
# * random kernels, never trained, already give a classifier far above chance (10%), about
#   as good as (or better than) a linear classifier on the pixels;
# * kernels found by k-means on whitened patches, without labels, beat random kernels clearly,
#   and with this few labels they even beat training the whole network: the labelled digits
#   only have to teach the last layer, and the first layer's kernels came from all the images;
# * in the picture below, the kernels of the fully trained network have hardly moved from their
#   random start: with a few hundred labels, back-propagation mostly tunes the last layer;
# * with only 50 labels (five per class; the default run) every accuracy rests on a handful of
#   examples and the order of the four changes from one draw of the labels to the next.

# %%
at = LABEL_COUNTS.index(200)
result = {name: accuracy[name][at] for name in NAMES}
assert result["random, frozen"] > 0.8, "random features are far above chance"
assert result["random, frozen"] > result["pixels"] - 0.02, "and no worse than the raw pixels"
assert result["k-means, frozen"] > result["random, frozen"] + 0.02, "k-means kernels beat random ones"
assert result["k-means, frozen"] > result["trained"] - 0.01, "and match full training on 200 labels"
assert abs(learned.weight.mean(axis=(1, 2, 3))).max() < 1e-6, "the pixel-space kernels have zero mean"

# %% [markdown]
# ## Pictures
#
# `20_kmeans_filters.png`: the 32 k-means kernels of the digits (centres in whitened space), as a
# filter grid. `20_kernels.png`: random kernels, k-means kernels of the digits, the kernels of
# the fully trained network, and k-means kernels of the photograph. `20_whitening.png`: patches
# before and after normalisation and whitening, and the covariance matrices.
# `20_accuracy.png`: test accuracy of the four classifiers against the number of labels.

# %%
viz.filter_grid(learned.kernels, path=OUT / "20_kmeans_filters.png", ncols=8,
                title="k-means on whitened 5x5 patches of the digits: 32 kernels, no labels used")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def tiles(kernels, ncols):
    """Kernels (K, k, k) side by side in one image, each scaled to [-1, 1], a gap between."""
    k = kernels.shape[-1]
    rows = -(-len(kernels) // ncols)
    canvas = np.full((rows * (k + 1) - 1, ncols * (k + 1) - 1), np.nan)
    for i, kernel in enumerate(kernels):
        r, c = divmod(i, ncols)
        top, left = r * (k + 1), c * (k + 1)
        canvas[top:top + k, left:left + k] = kernel / (np.abs(kernel).max() + 1e-12)
    return canvas


panels = [
    ("random (initialisation)", trained_models["random, frozen"][0].weight.numpy()[:, 0], 8),
    ("k-means, digits", learned.kernels[:, 0], 8),
    ("trained by back-propagation", trained_models["trained"][0].weight.numpy()[:, 0], 8),
    ("k-means, photograph (8x8)", photo_kernels.kernels[:, 0], 8),
]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.6))
for ax, (title, kernels, ncols) in zip(axes, panels):
    ax.imshow(tiles(kernels, ncols), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
fig.suptitle("first-layer kernels (each scaled on its own: black negative, white positive)")
fig.tight_layout()
fig.savefig(OUT / "20_kernels.png", dpi=90)
plt.close(fig)

fig = plt.figure(figsize=(13, 6.5))
shown = [(patches, "16 of the 5x5 patches"), (normalized, "brightness and contrast normalised"),
         (whitened, "ZCA-whitened")]
for row, (p, title) in enumerate(shown):
    ax = fig.add_subplot(3, 2, 2 * row + 1)
    ax.imshow(tiles(p[:16].reshape(-1, SIZE, SIZE), 8), cmap="gray", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
for column, (p, title) in enumerate(((normalized, f"before whitening (neighbours {before:.2f})"),
                                     (whitened, f"after (neighbours {after:.2f})"))):
    ax = fig.add_subplot(2, 4, 3 + column)
    image = ax.imshow(np.corrcoef(p, rowvar=False), cmap="bwr", vmin=-1, vmax=1)
    ax.set_title(f"pixel correlations\n{title}", fontsize=9)
    ax.set_xlabel("pixel of the 5x5 patch")
fig.colorbar(image, ax=fig.axes[-2:], shrink=0.6)
ax = fig.add_subplot(2, 2, 4)
ax.semilogy(zca.eigenvalues_, "o-", label="eigenvalues λ of the covariance")
ax.axhline(zca.eps, color="tab:red", ls=":", label=f"ε = {zca.eps}")
ax.set_xlabel("eigenvector (by decreasing variance)")
ax.set_title("directions below ε are damped, not amplified", fontsize=10)
ax.legend(fontsize=8)
fig.savefig(OUT / "20_whitening.png", dpi=90, bbox_inches="tight")
plt.close(fig)

fig, ax = plt.subplots(figsize=(7.5, 4.5))
for name, marker in zip(NAMES, "sov^"):
    ax.plot(LABEL_COUNTS, accuracy[name], marker=marker, label=name)
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(LABEL_COUNTS, [str(n) for n in LABEL_COUNTS])
ax.set_xlabel("labelled training digits")
ax.set_ylabel("test accuracy")
ax.set_title("the same network with three first layers, and the raw pixels")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "20_accuracy.png", dpi=90)
plt.close(fig)
print("saved", *(OUT / f"20_{name}.png" for name in ("kmeans_filters", "kernels", "whitening", "accuracy")))
