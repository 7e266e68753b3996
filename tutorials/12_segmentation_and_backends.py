# %% [markdown]
# # 12. Segmentation with a small U-Net, and the compute backends
#
# **Semantic segmentation** classifies every pixel: the output is not one score vector per
# image but one per pixel, (N, classes, H, W), trained with the per-pixel cross-entropy.
# **U-Net** (Ronneberger, Fischer and Brox, 2015) does it with
#
# * an **encoder** (contracting path): pairs of 3x3 convolutions and 2x2 max-pooling; the maps
#   shrink and the channels grow, so the deep units see a wide context;
# * a **decoder** (expanding path): 2x2 **transposed convolutions** with stride 2 (tutorial 6)
#   double the size again;
# * **skip connections**: the decoder concatenates the encoder maps of the same size, which
#   carry back the fine detail lost by pooling, so the boundaries come out sharp.
#
# The data are synthetic: one circle, square or triangle per image on a noisy background, with
# a mask that gives every pixel its class (0 background, 1 circle, 2 square, 3 triangle). The
# score is the **intersection over union** per class, $IoU_c = TP_c / (TP_c + FP_c + FN_c)$,
# averaged over the classes (mean IoU).
#
# The second part runs the same training step on every compute backend of the library:
# `reference` (readable numpy loops, the oracle), `numba` and `cython` (compiled CPU kernels),
# and the GPU when one is present, checks that they compute the same numbers, and times them.

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, data, models, optim, training, viz
from tinygrad_cnn.summary import summary

parser = argparse.ArgumentParser(description="Tutorial 12: segmentation and backends")
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
# ## The synthetic shapes

# %%
SIZE = 16 if args.quick else 32
N_TRAIN = 128 if args.quick else 256
x_train, mask_train = data.make_shapes(N_TRAIN, image_size=SIZE, task="segmentation", seed=0)
x_val, mask_val = data.make_shapes(64, image_size=SIZE, task="segmentation", seed=1)
print(
    f"images {x_train.shape}, masks {mask_train.shape} {mask_train.dtype}; classes: 0 background, "
    + ", ".join(f"{i + 1} {name}" for i, name in enumerate(data.SHAPE_CLASSES))
)
print("pixels per class:", np.bincount(mask_train.ravel(), minlength=4).tolist())
assert mask_train.shape == (N_TRAIN, SIZE, SIZE) and set(np.unique(mask_train)) <= {0, 1, 2, 3}
assert all(len(np.unique(m)) == 2 for m in mask_train[:20]), "one shape (and background) per image"

# %% [markdown]
# ## The U-Net
#
# `models.unet_small()`: 8 maps at full resolution, 16 after one pooling, 32 at the bottom
# (after two), then back up. The output has the input's height and width and 4 channels:
# one score per class per pixel.

# %%
model = models.unet_small(in_channels=1, num_classes=4)
table = summary(model, (1, SIZE, SIZE), print_summary=not args.quick)
print(f"U-Net: {table.total_params:,} parameters, output per image {tuple(table.rows[-1].output_shape[1:])}")
assert tuple(table.rows[-1].output_shape[1:]) == (4, SIZE, SIZE), "one score per class and pixel"
initial_state = {k: v.numpy().copy() for k, v in model.state_dict().items()}  # for the backend timings

# %% [markdown]
# ## Training
#
# Adam on the per-pixel cross-entropy, with a cosine learning-rate schedule (large steps first,
# small ones at the end, which steadies the final weights and batch-norm statistics); the
# `Trainer` reports pixel accuracy and mean IoU.
# Pixel accuracy alone is misleading here: predicting "background" everywhere already scores
# about 80%, while its mean IoU is only about 0.2.

# %%
background_only = np.zeros_like(mask_val)
print(f"predicting background everywhere: pixel accuracy {np.mean(background_only == mask_val):.2f}")
epochs = 3 if args.quick else 8
optimizer = optim.Adam(model.parameters(), lr=1e-2)
trainer = training.Trainer(
    model,
    optimizer,
    metrics=("accuracy", "iou"),
    batch_size=16,
    seed=0,
    progress=False,
    scheduler=optim.CosineAnnealingLR(optimizer, T_max=epochs),
)
start = time.perf_counter()
history = trainer.fit((x_train, mask_train), epochs=epochs, validation_data=(x_val, mask_val))
seconds = time.perf_counter() - start
print(f"trained {epochs} epochs in {seconds:.1f} s on the {tinygrad_cnn.get_backend()!r} backend")
for e in range(epochs):
    print(
        f"epoch {e + 1}: loss {history['loss'][e]:.3f} pixel acc {history['accuracy'][e]:.3f} "
        f"mean IoU {history['iou'][e]:.3f} | val loss {history['val_loss'][e]:.3f} "
        f"val mean IoU {history['val_iou'][e]:.3f}"
    )
assert history["loss"][-1] < 0.75 * history["loss"][0], "the U-Net learns"
if not args.quick:
    assert history["val_iou"][-1] > 0.6, f"mean IoU should exceed 0.6, got {history['val_iou'][-1]:.3f}"

logits = trainer.predict(x_val)
predicted = logits.argmax(axis=1)
confusion = viz.confusion_matrix(mask_val.ravel(), predicted.ravel(), n_classes=4)
iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
print("IoU per class (background, " + ", ".join(data.SHAPE_CLASSES) + "):", np.round(iou, 3).tolist())
assert abs(training.mean_iou(confusion) - history["val_iou"][-1]) < 1e-9, "the Trainer's mean IoU, by hand"

# %% [markdown]
# ## The same step on every backend
#
# The kernels behind `conv2d`, pooling, batch norm and the residual/concatenation ops come from
# the current backend, chosen with `tinygrad_cnn.set_backend(name)` or, for a block of code,
# `with tinygrad_cnn.use_backend(name):`. Everything above the kernels (autograd, layers,
# optimizers) is shared. We start from the same initial weights, run one forward and backward
# pass on the same batch with each backend, check that losses and gradients agree, and time
# the step (after a warm-up step: Numba compiles its kernels on first use and caches them on
# disk). A GPU, when CuPy sees one, runs the same step with the arrays on the device: there the
# kernels are the CuPy backend's (`kernels/cupy`: CUDA kernels and cuBLAS), whatever the CPU
# backend. A GPU runs its kernels asynchronously, so each timed step reads its loss
# (`loss.item()` copies it to the host, after every kernel queued before it has finished):
# without that the clock would stop while the GPU is still working.
#
# Read the times with care: the compiled kernels split the batch over threads (Numba's
# `prange`, Cython's OpenMP). On an idle machine that is where their speed comes from; on a
# busy one (other programs, or tests running in parallel) threads wait for cores and a
# compiled step can even be slower than the numpy reference. The numbers must agree
# everywhere; the times depend on the machine.


# %%
def step_time(backend: str, device: str = "cpu", repeats: int = 3) -> tuple[float, float, np.ndarray]:
    """Seconds per training step (forward + backward), the loss and the first conv's gradient."""
    with tinygrad_cnn.use_backend(backend):
        net = models.unet_small(in_channels=1, num_classes=4)
        net.load_state_dict(initial_state)
        net.to(device)
        x, target = Tensor(x_train[:16]).to(device), Tensor(mask_train[:16]).to(device)

        def step() -> float:
            net.zero_grad()
            loss = F.cross_entropy(net(x), target)
            loss.backward()
            return loss.item()  # on a GPU: waits for the queued kernels

        step()  # warm-up (compilation, caches)
        start = time.perf_counter()
        for _ in range(repeats):
            loss = step()
        seconds = (time.perf_counter() - start) / repeats
        gradient = net.encoders[0].block[0].weight.grad.to("cpu").numpy()
        return seconds, loss, gradient


timings = {}
for backend in ("reference", "numba", "cython"):
    try:
        timings[backend] = step_time(backend, repeats=2 if args.quick else 5)
    except RuntimeError as error:  # e.g. the Cython extensions were not compiled
        print(f"{backend}: not available ({error})")
if tinygrad_cnn.cuda.is_available():  # checked like the CPU backends below: same loss, same gradient
    timings[f"cuda ({tinygrad_cnn.cuda.device_name()})"] = step_time("reference", "cuda", repeats=5)
else:
    print(f"no GPU, timing the CPU backends only: {tinygrad_cnn.cuda.unavailable_reason()}")

reference_seconds, reference_loss, reference_gradient = timings["reference"]
import numba  # a dependency of the library; only asked here how many threads it may use

print(f"one training step (batch 16, {SIZE}x{SIZE}), {numba.get_num_threads()} Numba threads:")
for name, (seconds, loss, gradient) in timings.items():
    print(f"  {name:32s} {seconds * 1e3:8.1f} ms  x{reference_seconds / seconds:5.1f}  loss {loss:.6f}")
    assert abs(loss - reference_loss) < 1e-4 * max(1.0, abs(reference_loss)), f"{name}: same loss"
    np.testing.assert_allclose(
        gradient,
        reference_gradient,
        rtol=1e-3,
        atol=1e-5,
        err_msg=f"{name}: same gradient as the reference kernels",
    )
assert "numba" in timings, "Numba is a dependency of the library: its backend must load"

# %% [markdown]
# ## Pictures
#
# `12_segmentation.png`: validation images, true masks and predicted masks.
# `12_training_curves.png`: loss, pixel accuracy and mean IoU per epoch.
# `12_backends.png`: time per training step on each backend.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap

classes = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"])
shown = 6
fig, axes = plt.subplots(3, shown, figsize=(2 * shown, 6.6))
for j in range(shown):
    axes[0, j].imshow(x_val[j, 0], cmap="gray")
    axes[1, j].imshow(mask_val[j], cmap=classes, vmin=0, vmax=3, interpolation="nearest")
    axes[2, j].imshow(predicted[j], cmap=classes, vmin=0, vmax=3, interpolation="nearest")
    for ax in axes[:, j]:
        ax.set_xticks([])
        ax.set_yticks([])
for ax, name in zip(axes[:, 0], ("image", "true mask", "U-Net")):
    ax.set_ylabel(name)
fig.suptitle(
    f"segmentation: red circle, green square, blue triangle; validation mean IoU {history['val_iou'][-1]:.2f}"
)
fig.tight_layout()
fig.savefig(OUT / "12_segmentation.png", dpi=90)
plt.close(fig)

viz.training_curves(
    {k: v for k, v in history.history.items() if k != "lr"},
    path=OUT / "12_training_curves.png",
    title="U-Net on the synthetic shapes",
)

fig, ax = plt.subplots(figsize=(7, 3.2))
names = list(timings)
bars = ax.barh(names, [timings[n][0] * 1e3 for n in names], color=[f"C{i}" for i in range(len(names))])
ax.bar_label(
    bars, [f"{timings[n][0] * 1e3:.1f} ms ({reference_seconds / timings[n][0]:.1f}x the reference speed)"
           for n in names]
)
ax.invert_yaxis()
ax.set_xlabel("ms per training step (forward + backward)")
ax.set_title(f"U-Net, batch of 16 images {SIZE}x{SIZE}")
ax.set_xlim(0, 1.75 * max(timings[n][0] * 1e3 for n in names))
fig.tight_layout()
fig.savefig(OUT / "12_backends.png", dpi=90)
plt.close(fig)
print("saved", OUT / "12_segmentation.png", OUT / "12_training_curves.png", OUT / "12_backends.png")
