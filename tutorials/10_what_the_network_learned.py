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
# kernels. We measure it: correlate each learned kernel with the x- and y-derivative kernels
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
# `10_filters.png` (first-layer kernels), `10_activations_stage1.png` and
# `10_activations_stage2.png` (feature maps of one digit), `10_activation_maximization.png`
# (one optimised image per class), `10_saliency.png` (digits and their saliency maps).

# %%
viz.filter_grid(first, path=OUT / "10_filters.png", ncols=6, title="first-layer filters (5x5, trained)")
viz.activation_maps(
    stage1,
    path=OUT / "10_activations_stage1.png",
    ncols=6,
    title=f"stage 1 activation maps of a test '{y_test[index]}'",
)
viz.activation_maps(
    stage2,
    path=OUT / "10_activations_stage2.png",
    ncols=8,
    title=f"stage 2 activation maps of a test '{y_test[index]}'",
)
viz.image_grid(
    dreams,
    labels=np.arange(10),
    predictions=predicted,
    ncols=5,
    path=OUT / "10_activation_maximization.png",
    title="activation maximization: the input that maximises each class score",
)
shown = 8
pairs = np.concatenate([x_test[:shown], np.stack(saliencies[:shown])[:, None]])
captions = [str(label) for label in y_test[:shown]] + ["saliency"] * shown
viz.image_grid(
    pairs,
    labels=captions,
    ncols=shown,
    path=OUT / "10_saliency.png",
    title="test digits (top) and |d score / d pixel| (bottom)",
)
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
