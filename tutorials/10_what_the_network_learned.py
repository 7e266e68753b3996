# %% [markdown]
# # 10. What the network learned
#
# A trained CNN is not a black box: its weights and activations are images we can look at.
#
# * **First-layer filters.** The kernels of the first convolution act directly on pixels, so
#   they can be shown as small images. Trained, they become the hand-designed kernels of
#   tutorial 3 rediscovered: edge, stroke and blob detectors.
# * **Activation maps.** The feature maps one image produces, layer by layer: which detectors
#   fire where.
# * **Activation maximization.** Gradient *ascent* on the input: start from noise and change
#   the image to increase one class score, $x \leftarrow x + \eta\, \partial s_c / \partial x$
#   (with a small $L_2$ penalty to keep it bounded). The result shows what the network
#   "wants to see" for that class.
# * **Saliency maps** (Simonyan et al., 2014): $|\partial s_c / \partial x|$ per pixel, how much
#   each pixel of a given image influences the class score.
#
# All of them use the same autograd as training, just with respect to the input instead of
# the weights.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, optim, training, viz

parser = argparse.ArgumentParser(description="Tutorial 10: what the network learned")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## A small CNN, trained on the digits
#
# Two convolution stages with 12 and 16 maps and a linear classifier, on the bundled digits
# upsampled to 16x16.

# %%
SIZE = 16
x_train, y_train, x_test, y_test = data.load_digits(image_size=SIZE)
if args.quick:
    x_train, y_train = x_train[:480], y_train[:480]
model = nn.Sequential(
    nn.Conv2d(1, 12, 5, padding=2),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(12, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(16 * 4 * 4, 10),
)
initial_filters = model[0].weight.numpy().copy()  # to compare with after training
trainer = training.Trainer(
    model, optim.Adam(model.parameters(), lr=3e-3), batch_size=32, seed=0, progress=False
)
history = trainer.fit((x_train, y_train), epochs=3 if args.quick else 8, validation_data=(x_test, y_test))
accuracy = history["val_accuracy"][-1]
print(f"test accuracy after {len(history)} epochs: {accuracy:.3f}")
assert accuracy > (0.6 if args.quick else 0.9), f"the network should learn the digits, got {accuracy:.3f}"
model.eval()

# %% [markdown]
# ## First-layer filters
#
# The 12 kernels of the first convolution, 5x5 each (blue negative, red positive). Many are
# oriented: a positive and a negative band side by side, the shape of the Sobel and Prewitt
# kernels (the picture puts each one above its best-fitting ramp). We measure it: correlate
# each learned kernel with the x- and y-derivative kernels
# of tutorial 3: the share of each kernel explained by a linear ramp (a derivative) in some
# direction. Random kernels score about $\sqrt{2/24} \approx 0.29$ (two directions out of the 24 a
# zero-mean 5x5 kernel has); the trained ones score far higher.

# %%
first = model[0].weight.numpy()  # (12, 1, 5, 5)
print("first-layer weights:", first.shape)
ramp = np.arange(5, dtype=np.float32) - 2
derivative_x = np.outer(np.ones(5), ramp)  # increases to the right, like Sobel x


def orientation_strength(kernel: np.ndarray) -> float:
    """How much of the kernel (minus its mean) is explained by a linear ramp in some direction."""
    k = kernel - kernel.mean()
    gx, gy = (k * derivative_x).sum(), (k * derivative_x.T).sum()
    return float(np.hypot(gx, gy) / (np.linalg.norm(k) * np.linalg.norm(derivative_x) + 1e-12))


strengths = np.array([orientation_strength(k[0]) for k in first])
before = np.array([orientation_strength(k[0]) for k in initial_filters])
print("orientation strength of each kernel (1 = a perfect ramp):", np.round(strengths, 2).tolist())
print(f"mean orientation strength: {before.mean():.2f} at initialisation, {strengths.mean():.2f} trained")
assert strengths.mean() > before.mean() + 0.1, "training makes the first-layer filters derivative-like"

# %% [markdown]
# ## Activation maps of one image
#
# The 12 maps of the first stage (after ReLU) and the 16 of the second, for one test digit.
# The first stage is still a picture of the digit, seen through each detector; the second is
# coarser and more abstract.

# %%
index = int(np.nonzero(y_test == 3)[0][0])  # the first 3 of the test set
image = Tensor(x_test[index : index + 1])
with tinygrad_cnn.no_grad():
    stage1 = model[1](model[0](image))  # conv + ReLU
    stage2 = model[4](model[3](model[2](stage1)))
    scores = model(image).numpy()[0]
print(f"test image {index}: label {y_test[index]}, predicted {scores.argmax()}")
print(f"activation maps: stage 1 {stage1.shape}, stage 2 {stage2.shape}")
assert stage1.shape == (1, 12, SIZE, SIZE) and stage2.shape == (1, 16, SIZE // 2, SIZE // 2)
assert stage1.numpy().min() >= 0, "after a ReLU every activation is >= 0"

# %% [markdown]
# ## Activation maximization
#
# `viz.activation_maximization(model, (1, 16, 16), unit=c)` runs 100 steps of normalised gradient
# ascent on the class-$c$ logit from faint noise. We check that it works: each image is
# classified as the class it was optimised for, with a far higher score than the noise it
# started from. In the pictures, bright pixels are ink the class wants, dark pixels ink that
# speaks *against* it (the hole of a 0, the gap of a 7): a CNN classifies as much by what
# is absent as by what is present. Unregularised, such images are noisy and unnatural; the
# $L_2$ penalty keeps them bounded.

# %%
steps = 40 if args.quick else 100
dreams = np.stack(
    [
        viz.activation_maximization(model, (1, SIZE, SIZE), unit=c, steps=steps, lr=0.05, l2=0.05)
        for c in range(10)
    ]
)
with tinygrad_cnn.no_grad():
    dream_scores = model(Tensor(dreams)).numpy()
    noise = np.random.default_rng(0).normal(0, 0.01, (1, 1, SIZE, SIZE)).astype(np.float32)
    noise_scores = model(Tensor(noise)).numpy()[0]
predicted = dream_scores.argmax(axis=1)
print("activation maximization: predicted class of each optimised image:", predicted.tolist())
print(
    "class score, optimised image vs starting noise:",
    [f"{dream_scores[c, c]:.1f} vs {noise_scores[c]:.1f}" for c in range(3)],
    "...",
)
assert np.all(predicted == np.arange(10)), "each image excites the class it was optimised for"
assert all(dream_scores[c, c] > noise_scores[c] + 5 for c in range(10))

# %% [markdown]
# ## Saliency maps
#
# `viz.saliency_map(model, image)` is $|\partial s_c / \partial x|$ for the predicted class $c$.
# A check that it points at the pixels that matter: blank out (set to 0) the 15% most salient
# pixels of a digit, or 15% pixels chosen at random, and compare how much the class score drops.

# %%
n_images = 8 if args.quick else 20
drops_salient, drops_random = [], []
saliencies = []
rng = np.random.default_rng(0)
for i in range(n_images):
    x = x_test[i]
    saliency = viz.saliency_map(model, x)
    saliencies.append(saliency)
    with tinygrad_cnn.no_grad():
        c = int(model(Tensor(x[None])).numpy()[0].argmax())
    # the same by hand: the gradient of the class score with respect to the input
    x_var = Tensor(x[None], requires_grad=True)
    model(x_var)[0, c].backward()
    np.testing.assert_allclose(saliency, np.abs(x_var.grad.numpy()[0, 0]), rtol=1e-5, atol=1e-7)
    k = int(0.15 * SIZE * SIZE)
    top = np.argsort(saliency.ravel())[-k:]
    random_pixels = rng.choice(SIZE * SIZE, size=k, replace=False)
    with tinygrad_cnn.no_grad():
        base = model(Tensor(x[None])).numpy()[0, c]
        for chosen, drops in ((top, drops_salient), (random_pixels, drops_random)):
            masked = x.copy().ravel()
            masked[chosen] = 0
            drops.append(base - model(Tensor(masked.reshape(1, 1, SIZE, SIZE))).numpy()[0, c])
print(
    f"mean drop of the class score: blanking the most salient pixels {np.mean(drops_salient):.2f}, "
    f"random pixels {np.mean(drops_random):.2f}"
)
assert np.mean(drops_salient) > np.mean(drops_random), "salient pixels matter more than random ones"

# %% [markdown]
# ## Pictures
#
# * `10_filters.png`: the 12 first-layer kernels at initialisation (top) and trained (middle),
#   on a blue-white-red scale where white is 0, and below each trained kernel its *ramp part*,
#   the linear ramp $g_x \cdot \text{ramp}_x + g_y \cdot \text{ramp}_y$ that fits it best: the
#   derivative it computes. The arrow points the way the ramp increases (from the negative to the
#   positive side: the direction of the edge it detects); the number is its orientation strength.
# * `10_activations_stage1.png`, `10_activations_stage2.png`: the feature maps of one digit
#   (map number above each; bright = strong activation).
# * `10_activation_maximization.png`: one optimised input per class, with the class the network
#   then predicts for it.
# * `10_saliency.png`: one test digit of each class, its saliency map (how much each pixel moves
#   the class score, the digit's outline drawn over it), and the 15% most salient pixels: the
#   pixels whose blanking lowered the score more than blanking random ones.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def ramp_part(kernel: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The best-fitting linear ramp of a kernel (its projection on the x and y ramps) and (gx, gy)."""
    k = kernel - kernel.mean()
    norm2 = (derivative_x * derivative_x).sum()
    gx, gy = (k * derivative_x).sum() / norm2, (k * derivative_x.T).sum() / norm2
    return gx * derivative_x + gy * derivative_x.T, gx, gy


n_filters = first.shape[0]
fig = plt.figure(figsize=(1.05 * n_filters + 1.6, 4.6))
grid = fig.add_gridspec(3, n_filters + 1, width_ratios=[1] * n_filters + [0.25], hspace=0.45, wspace=0.15)
row_kernels = [initial_filters[:, 0], first[:, 0], np.stack([ramp_part(k[0])[0] for k in first])]
row_names = [
    f"at initialisation\n(strength {before.mean():.2f})",
    f"trained\n(strength {strengths.mean():.2f})",
    "ramp part of the\ntrained kernel",
]
for row, (kernels, name) in enumerate(zip(row_kernels, row_names)):
    bound = np.abs(kernels).max()
    for i in range(n_filters):
        ax = fig.add_subplot(grid[row, i])
        image = ax.imshow(kernels[i], cmap="bwr", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_ylabel(name, fontsize=8)
        if row == 1:
            ax.set_title(f"{strengths[i]:.2f}", fontsize=8)
        if row == 2:
            _, gx, gy = ramp_part(first[i, 0])
            length = 1.6 / (np.hypot(gx, gy) + 1e-12)
            ax.annotate("", xy=(2 + gx * length, 2 + gy * length), xytext=(2 - gx * length, 2 - gy * length),
                        arrowprops=dict(arrowstyle="->", color="black", lw=1.2))
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[row, n_filters]))
    bar.ax.tick_params(labelsize=6)
    bar.set_label("weight", fontsize=7)
fig.suptitle(
    "first-layer 5x5 filters: blue < 0 < red (white = 0); number = orientation strength "
    "(1 = a perfect ramp, random about 0.29); arrow = direction in which the ramp increases",
    fontsize=9,
)
fig.savefig(OUT / "10_filters.png", dpi=100, bbox_inches="tight")
plt.close(fig)

viz.activation_maps(
    stage1,
    path=OUT / "10_activations_stage1.png",
    ncols=6,
    title=f"stage 1 (conv 5x5 + ReLU): the 12 feature maps of a test '{y_test[index]}' (bright = strong)",
)
viz.activation_maps(
    stage2,
    path=OUT / "10_activations_stage2.png",
    ncols=8,
    title=f"stage 2 (pooling, conv 3x3 + ReLU): the 16 feature maps of the same '{y_test[index]}'",
)
viz.image_grid(
    dreams,
    labels=[f"optimised for {c}\npredicted: {p}" for c, p in zip(range(10), predicted)],
    ncols=5,
    path=OUT / "10_activation_maximization.png",
    title="activation maximization: the input that maximises each class score\n"
    "(bright: ink that raises the score, dark: ink that lowers it)",
)

# one digit of each class (the first of each in the test set), not the first test images
chosen = [int(np.nonzero(y_test == c)[0][0]) for c in range(10)]
maps = [viz.saliency_map(model, x_test[i]) for i in chosen]
fig, axes = plt.subplots(3, 10, figsize=(13, 4.8), layout="constrained")
for column, (i, saliency) in enumerate(zip(chosen, maps)):
    digit = x_test[i, 0]
    top = saliency >= np.quantile(saliency, 0.85)  # the 15% most salient pixels
    axes[0, column].imshow(digit, cmap="gray", vmin=0, vmax=1)
    axes[0, column].set_title(f"digit {y_test[i]}", fontsize=8)
    heat = axes[1, column].imshow(saliency / saliency.max(), cmap="inferno", vmin=0, vmax=1)
    axes[1, column].contour(digit, levels=[0.5], colors="cyan", linewidths=0.8)
    marked = np.stack([digit] * 3, axis=-1)
    marked[top] = [1.0, 0.1, 0.1]
    axes[2, column].imshow(marked)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("test digit", fontsize=8)
axes[1, 0].set_ylabel("saliency\n|d score / d pixel|", fontsize=8)
axes[2, 0].set_ylabel("15% most\nsalient (red)", fontsize=8)
bar = fig.colorbar(heat, ax=axes.ravel().tolist(), shrink=0.35, pad=0.01)
bar.set_label("relative saliency\n(middle row)", fontsize=7)
fig.suptitle(
    f"saliency of the predicted class (cyan: the digit's outline); blanking the red pixels lowers the "
    f"score by {np.mean(drops_salient):.2f} on average, random pixels by {np.mean(drops_random):.2f}",
    fontsize=9,
)
fig.savefig(OUT / "10_saliency.png", dpi=100, bbox_inches="tight")
plt.close(fig)
print(
    "saved",
    *(
        OUT / f"10_{n}.png"
        for n in (
            "filters",
            "activations_stage1",
            "activations_stage2",
            "activation_maximization",
            "saliency",
        )
    ),
)
