# %% [markdown]
# # 16. Fully convolutional networks: a classifier becomes a detector
#
# A classifier trained on 28x28 digits answers one question per image: which digit is
# this? Slide it over a larger image, one 28x28 window at a time, and it answers the
# question everywhere: a map of class scores, where the digits are and what they are. Doing
# that window by window repeats most of the work, since neighbouring windows overlap.
#
# The trick of fully convolutional networks (Long, Shelhamer and Darrell, 2015; OverFeat,
# 2014) is that the sliding is already built into the convolutions. Only the dense layers
# insist on a fixed input size, and a dense layer after `Flatten` is itself a convolution:
# its weight matrix W of shape (K, C·H·W) reshaped to (K, C, H, W) is a convolution whose
# kernel covers the whole H x W feature map; the dense layers after it are 1x1
# convolutions. `nn.convolutionalize(model)` does that rewriting. On the training size the
# new network gives the same numbers (as a 1x1 map); on a larger canvas it gives the whole
# score map in one pass, each pixel the classifier's answer for one window.
#
# We train a small classifier on MNIST digits plus an eleventh class, "no digit centred
# here", convolutionalize it, and run it over canvases of several digits.
#
# **Data**: the shared MNIST test set (`--mnist`, default `../shared/data/mnist`), split
# into images to train on and images to build the canvases from; without it, the bundled
# 8x8 digits upsampled to 28x28 (with a printed note).

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, no_grad, optim, training

parser = argparse.ArgumentParser(description="Tutorial 16: fully convolutional networks")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--mnist", default=None,
                    help="folder with the MNIST IDX files (default: ../shared/data/mnist)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

mnist = Path(args.mnist) if args.mnist else HERE.parent.parent / "shared" / "data" / "mnist"
try:
    images, labels = data.load_mnist(mnist, "test")
    source = "MNIST test set"
except FileNotFoundError:
    print(f"note: no MNIST files in {mnist}; using scikit-learn's bundled 8x8 digits, upsampled to 28x28")
    x_a, y_a, x_b, y_b = data.load_digits(image_size=28)
    images, labels = np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b])
    source = "bundled digits"
order = np.random.default_rng(0).permutation(len(labels))
images, labels = images[order], labels[order]
n_train = 1200 if args.quick else 3000
x_digits, y_digits = images[:n_train], labels[:n_train]
canvas_pool_x, canvas_pool_y = images[-600:], labels[-600:]  # never trained on
print(f"data: {source}; {n_train} training digits, {len(canvas_pool_y)} held out for the canvases")

# %% [markdown]
# ## An eleventh class: "no digit centred here"
#
# A digit classifier has to answer a digit, even for a window that shows the gap between
# two digits, or half of one. To get a useful map it must learn what *not* a digit looks
# like. We cut such windows from pairs of digits side by side (and one above the other),
# 36 pixels apart as on the canvases below: any window more than 10 pixels away from both
# digit positions is labelled class 10, "background".

# %%
SPACING, SIZE, BACKGROUND = 36, 28, 10


def pair_strip(a, b, vertical):
    """Two digits on one strip, the second SPACING pixels after the first."""
    shape = (SPACING + SIZE, SIZE) if vertical else (SIZE, SPACING + SIZE)
    strip = np.zeros(shape, np.float32)
    strip[:SIZE, :SIZE] = a
    if vertical:
        strip[SPACING:, :] = np.maximum(strip[SPACING:, :], b)
    else:
        strip[:, SPACING:] = np.maximum(strip[:, SPACING:], b)
    return strip


def background_windows(n, rng):
    windows = np.zeros((n, 1, SIZE, SIZE), np.float32)
    for i in range(n):
        a, b = x_digits[rng.integers(len(x_digits), size=2), 0]
        vertical = bool(rng.integers(2))
        offset = int(rng.integers(11, SPACING - 10))  # > 10 pixels from both digit positions
        strip = pair_strip(a, b, vertical)
        windows[i, 0] = strip[offset:offset + SIZE] if vertical else strip[:, offset:offset + SIZE]
    return windows


rng = np.random.default_rng(1)
n_background = n_train // 4
x_train = np.concatenate([x_digits, background_windows(n_background, rng)])
y_train = np.concatenate([y_digits, np.full(n_background, BACKGROUND)])
print(f"training set: {len(y_digits)} digits + {n_background} background windows")

# %% [markdown]
# ## The classifier
#
# No padding anywhere, so that every window of the canvas is seen exactly as a training
# image was (zero padding would show the canvas's real neighbours instead of zeros):
# 28 -> conv 5x5 -> 24 -> pool -> 12 -> conv 5x5 -> 8 -> pool -> 4, then dense layers on the
# 16 x 4 x 4 features. The two poolings give a total stride of 4: neighbouring score pixels
# are windows 4 pixels apart.

# %%
model = nn.Sequential(
    nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 11),
)
trainer = training.Trainer(model, optim.Adam(model.parameters(), lr=2e-3), batch_size=32, seed=0,
                           progress=False)
history = trainer.fit((x_train, y_train), epochs=1 if args.quick else 3)
check_x = np.concatenate([canvas_pool_x[:300], background_windows(100, np.random.default_rng(2))])
check_y = np.concatenate([canvas_pool_y[:300], np.full(100, BACKGROUND)])
accuracy = trainer.evaluate((check_x, check_y))["accuracy"]
print(f"classifier: training loss {history['loss'][-1]:.3f}, "
      f"held-out accuracy (digits and background) {accuracy:.3f}")
assert accuracy > (0.6 if args.quick else 0.9)

# %% [markdown]
# ## Convolutionalize
#
# `Linear(256, 64)` after `Flatten` becomes `Conv2d(16, 64, kernel_size=4)`, `Linear(64, 11)`
# becomes `Conv2d(64, 11, kernel_size=1)`. On a 28x28 digit the new network outputs an
# 11 x 1 x 1 map holding exactly the classifier's 11 scores.

# %%
fcn = nn.convolutionalize(model, input_shape=(1, SIZE, SIZE))
print(fcn)
model.eval()
fcn.eval()
with no_grad():
    original = model(Tensor(check_x[:64])).numpy()
    converted = fcn(Tensor(check_x[:64])).numpy()
print(f"on 28x28 inputs: output shape {converted.shape}, largest difference from the classifier "
      f"{np.abs(converted[:, :, 0, 0] - original).max():.2e}")
assert converted.shape == (64, 11, 1, 1)
np.testing.assert_allclose(converted[:, :, 0, 0], original, rtol=1e-4, atol=1e-4)
convs = [m for m in fcn.modules() if isinstance(m, nn.Conv2d)]
assert [c.kernel_size for c in convs[-2:]] == [(4, 4), (1, 1)]
assert not any(isinstance(m, nn.Linear) for m in fcn.modules())

# %% [markdown]
# ## A canvas of digits, a map of scores
#
# Two rows of four held-out digits, 36 pixels apart: a 64 x 136 canvas. The FCN turns it into
# an 11 x 10 x 28 map: score pixel (i, j) is the window whose corner is at (4i, 4j). The
# digits sit at corners that are multiples of 36 = 9 x 4, so digit (r, c) is scored at
# pixel (9r, 9c).

# %%
def canvas_of(digit_images):
    rows, cols = digit_images.shape[:2]
    canvas = np.zeros((SPACING * (rows - 1) + SIZE, SPACING * (cols - 1) + SIZE), np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = SPACING * r, SPACING * c
            canvas[y:y + SIZE, x:x + SIZE] = np.maximum(canvas[y:y + SIZE, x:x + SIZE], digit_images[r, c])
    return canvas


n_canvases = 3 if args.quick else 8
picks = np.random.default_rng(3).choice(len(canvas_pool_y), size=(n_canvases, 2, 4), replace=False)
canvases = np.stack([canvas_of(canvas_pool_x[p][:, :, 0]) for p in picks])[:, None]
truth = canvas_pool_y[picks]
start = time.perf_counter()
with no_grad():
    scores = fcn(Tensor(canvases)).numpy()
fcn_seconds = time.perf_counter() - start
probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
probabilities /= probabilities.sum(axis=1, keepdims=True)
predicted = scores.argmax(axis=1)  # (canvases, 10, 28)
stride = 4
at_digits = predicted[:, ::SPACING // stride, ::SPACING // stride]
digit_accuracy = float((at_digits == truth).mean())
between = predicted[:, :, 4::SPACING // stride][:, :, :3]  # windows 16 pixels right of a digit position
background_rate = float((between == BACKGROUND).mean())
print(f"canvas {canvases.shape[2:]} -> score map {scores.shape[1:]}; at the {truth.size} digit positions "
      f"the map names the digit correctly {digit_accuracy:.1%} of the time; between digits it says "
      f"'background' {background_rate:.1%} of the time")
map_height, map_width = ((n - SIZE) // stride + 1 for n in canvases.shape[2:])
assert scores.shape[1:] == (11, map_height, map_width)
assert digit_accuracy > (0.5 if args.quick else 0.85)  # chance: 1 in 11
assert background_rate > (0.5 if args.quick else 0.8)

# %% [markdown]
# ## The same numbers as sliding the classifier window by window
#
# The map is not an approximation: each pixel is the classifier on one crop of the canvas.
# We check a few pixels against the classifier run on the crops, and count the work: the
# window-by-window loop runs the classifier on every one of the 280 windows, repeating the
# convolutions of overlapping regions; the FCN computes each convolution once per canvas.

# %%
with no_grad():
    for i, j in ((0, 0), (9, 9), (5, 13), (9, 27)):
        crop = canvases[:, :, stride * i:stride * i + SIZE, stride * j:stride * j + SIZE]
        np.testing.assert_allclose(scores[:, :, i, j], model(Tensor(crop)).numpy(), rtol=1e-4, atol=1e-4)
    windows = np.stack([canvases[0, :, stride * i:stride * i + SIZE, stride * j:stride * j + SIZE]
                        for i in range(scores.shape[2]) for j in range(scores.shape[3])])
    start = time.perf_counter()
    looped = model(Tensor(windows)).numpy().reshape(scores.shape[2], scores.shape[3], 11)
    loop_seconds = time.perf_counter() - start
np.testing.assert_allclose(looped.transpose(2, 0, 1), scores[0], rtol=1e-4, atol=1e-4)
first_conv = 8 * 1 * 25  # multiply-adds per output pixel of the first convolution
fcn_work = first_conv * (canvases.shape[2] - 4) * (canvases.shape[3] - 4)
loop_work = first_conv * 24 * 24 * len(windows)
print(f"first convolution, multiply-adds for one canvas: window by window {loop_work:,}, FCN {fcn_work:,} "
      f"({loop_work / fcn_work:.1f}x less); measured: {len(windows)} windows {loop_seconds * 1e3:.0f} ms, "
      f"FCN on {n_canvases} canvases {fcn_seconds * 1e3:.0f} ms")
assert loop_work > 10 * fcn_work

# %% [markdown]
# ## Pictures
#
# `16_heatmaps.png`: one canvas, the predicted class at every window (drawn at the window's
# centre), and the probability map of each digit class present, over the canvas (bright
# where the network sees that digit centred).
# `16_canvases.png`: several canvases with the class the map names at each digit position.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

k = 0
height, width = canvases.shape[2:]
# score pixel (i, j) is the window with corner (4i, 4j): draw it at the window's centre
centred = (SIZE / 2 - stride / 2, SIZE / 2 + stride * (map_width - 0.5),
           SIZE / 2 + stride * (map_height - 0.5), SIZE / 2 - stride / 2)
present = sorted(set(truth[k].ravel().tolist()))
columns = 1 + (len(present) + 1) // 2
fig, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 5.5))
axes = axes.ravel()
axes[0].imshow(canvases[k, 0], cmap="gray")
axes[0].set_title(f"canvas {height}x{width}, digits {truth[k].ravel().tolist()}")
colours = matplotlib.colors.ListedColormap(plt.get_cmap("tab10").colors + ((0.15, 0.15, 0.15),))
shown = axes[1].imshow(predicted[k], cmap=colours, vmin=-0.5, vmax=10.5, extent=centred)
axes[1].set(title="predicted class at each window centre")
bar = fig.colorbar(shown, ax=axes[1], fraction=0.03, ticks=range(11))
bar.ax.set_yticklabels([str(c) for c in range(10)] + ["none"])
for ax, digit in zip(axes[2:], present):
    ax.imshow(canvases[k, 0], cmap="gray")
    image = ax.imshow(probabilities[k, digit], cmap="magma", vmin=0, vmax=1, alpha=0.75, extent=centred)
    ax.set(xlim=(0, width), ylim=(height, 0), title=f"P(digit {digit}) at each window centre")
    fig.colorbar(image, ax=ax, fraction=0.03)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
for ax in axes[2 + len(present):]:
    ax.axis("off")
fig.suptitle("The convolutionalized classifier slid over a canvas: one score map per class")
fig.tight_layout()
fig.savefig(OUT / "16_heatmaps.png", dpi=80)
plt.close(fig)

rows = min(n_canvases, 4)
fig, axes = plt.subplots(rows, 1, figsize=(6, 3 * rows), squeeze=False)
for k, ax in enumerate(axes[:, 0]):
    ax.imshow(canvases[k, 0], cmap="gray")
    named = predicted[k][::SPACING // stride, ::SPACING // stride]
    for (i, j), value in np.ndenumerate(named):
        right = value == truth[k][i, j]
        ax.text(SPACING * j, SPACING * i + 4, str(value), color="lime" if right else "red", fontsize=13,
                weight="bold")
    ax.set_title(f"canvas {k}: the map's class at each digit (green right, red wrong)")
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "16_canvases.png", dpi=80)
plt.close(fig)
print("saved", OUT / "16_heatmaps.png", OUT / "16_canvases.png")
