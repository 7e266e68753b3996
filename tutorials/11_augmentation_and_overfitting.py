# %% [markdown]
# # 11. Data augmentation, dropout and early stopping
#
# A network with many more parameters than training examples can simply memorise them:
# training loss goes to zero while the validation loss stops improving or rises. That gap is
# **over-fitting**. Classic remedies, all in this tutorial:
#
# * **a smaller network** (less capacity; but too small *under*-fits: both losses stay high);
# * **data augmentation**: train on randomly rotated and shifted copies of the images
#   (`data.transforms.RandomAffine`), so that memorising the exact pixels no longer helps and
#   the network has to learn what stays the same: the digit;
# * **dropout**: during training, zero every unit with probability $p$ (and scale the others by
#   $1/(1-p)$), so that no unit can rely on a particular other one; at test time nothing is
#   dropped (`model.eval()`);
# * **early stopping**: watch the validation loss and stop when it has not improved for a few
#   epochs, keeping the best weights (`training.EarlyStopping`).
#
# To make over-fitting visible on the easy digits we train on only 80 of them.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, optim, training, viz
from tinygrad_cnn.data import transforms

parser = argparse.ArgumentParser(description="Tutorial 11: augmentation and over-fitting")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)

x_train, y_train, x_test, y_test = data.load_digits()
N_TRAIN = 80
x_train, y_train, x_test, y_test = x_train[:N_TRAIN], y_train[:N_TRAIN], x_test[:200], y_test[:200]
EPOCHS = 20 if args.quick else 50
print(f"training on {len(x_train)} digits, validating on {len(x_test)}, {EPOCHS} epochs")

# %% [markdown]
# ## Augmentation
#
# Each time a training image is drawn it is rotated by up to 15 degrees and shifted by up to
# 12% of its size (bilinear interpolation, zero fill). The label stays the same. No flips:
# a mirrored 3 is not a 3.

# %%
augment = transforms.RandomAffine(degrees=15, translate=0.12)
rng = np.random.default_rng(0)
examples = np.repeat(x_train[:4], 6, axis=0)
augmented = augment(examples, rng)
print(
    "augmented batch:",
    augmented.shape,
    "pixel range",
    (round(float(augmented.min()), 2), round(float(augmented.max()), 2)),
)
assert augmented.shape == examples.shape
assert not np.allclose(augmented, examples), "augmentation changes the pixels"
assert np.allclose(
    augment(examples[:1], np.random.default_rng(1)), augment(examples[:1], np.random.default_rng(1))
), "the same random stream gives the same augmentation"

# %% [markdown]
# ## Dropout in training and evaluation mode

# %%
dropout = nn.Dropout(0.5)
ones = Tensor.ones(1, 10_000)
kept = dropout(ones).numpy()
print(
    f"dropout(p=0.5), training mode: {np.mean(kept == 0):.1%} zeros, survivors scaled to {kept.max():.1f}, "
    f"mean {kept.mean():.3f}"
)
assert abs(np.mean(kept == 0) - 0.5) < 0.03 and np.allclose(kept[kept > 0], 2.0)
dropout.eval()
assert np.array_equal(dropout(ones).numpy(), ones.numpy()), "in evaluation mode dropout does nothing"

# %% [markdown]
# ## Four runs
#
# * **small**: 4 feature maps and a linear classifier, 690 parameters;
# * **wide**: 16 feature maps and a hidden layer of 256 units, 68,522 parameters for
#   80 images;
# * **wide + augmentation + dropout** ($p = 0.25$ before both dense layers);
# * **wide + early stopping** (patience 5 epochs on the validation loss, best weights restored).


# %%
def small_network() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 16, 10)
    )


def wide_network(p: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(p),
        nn.Linear(16 * 16, 256),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(256, 10),
    )


runs = {
    "small": (small_network, None, []),
    "wide": (wide_network, None, []),
    "wide + augmentation + dropout": (lambda: wide_network(0.25), augment, []),
    "wide + early stopping": (
        wide_network,
        None,
        [training.EarlyStopping("val_loss", patience=5, restore_best_weights=True)],
    ),
}
histories, models_, parameters = {}, {}, {}
for name, (build, transform, callbacks) in runs.items():
    tinygrad_cnn.manual_seed(0)
    model = build()
    loader = data.DataLoader(
        data.TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0, transform=transform
    )
    trainer = training.Trainer(
        model, optim.Adam(model.parameters(), lr=5e-3), callbacks=callbacks, progress=False
    )
    histories[name] = trainer.fit(loader, epochs=EPOCHS, validation_data=(x_test, y_test)).history
    models_[name], parameters[name] = (model, trainer), sum(p.numel() for p in model.parameters())
    h = histories[name]
    print(
        f"{name:30s} {parameters[name]:>7,} params, {len(h['loss']):2d} epochs: "
        f"train loss {h['loss'][-1]:.3f} "
        f"acc {h['accuracy'][-1]:.3f} | val loss {h['val_loss'][-1]:.3f} acc {h['val_accuracy'][-1]:.3f}"
    )
assert parameters["small"] == 690 and parameters["wide"] == 68_522

# %% [markdown]
# ## Reading the numbers
#
# The **generalisation gap** is validation loss minus training loss. The wide network drives its
# training loss towards zero and opens a large gap, and after a dozen epochs its validation loss
# rises again while the training loss keeps falling; augmentation and dropout make training
# harder (higher training loss, the training accuracy is measured on augmented images with
# dropout on) and close the gap. The small network has almost no gap, but its losses are
# both high: it under-fits.


# %%
def gap(name: str) -> float:
    return histories[name]["val_loss"][-1] - histories[name]["loss"][-1]


for name in runs:
    print(f"generalisation gap, {name:30s}: {gap(name):+.3f}")
wide, regularised = histories["wide"], histories["wide + augmentation + dropout"]
print(
    f"wide: best val loss {min(wide['val_loss']):.3f} at epoch {int(np.argmin(wide['val_loss'])) + 1}, "
    f"final {wide['val_loss'][-1]:.3f}: it got worse while the training loss kept falling"
)
assert wide["loss"][-1] < 0.05, "the wide network memorises its 80 training images"
assert gap("wide") > gap("wide + augmentation + dropout") + 0.2, "augmentation and dropout close the gap"
assert histories["small"]["loss"][-1] > 0.1, (
    "the small network cannot even fit the training data: it under-fits"
)
if not args.quick:
    assert wide["val_loss"][-1] > min(wide["val_loss"]) + 0.15, (
        "over-fitting: the validation loss rises again"
    )
    assert regularised["val_loss"][-1] < wide["val_loss"][-1], "the regularised network generalises better"

# Early stopping: the run stops once val_loss has not improved for 5 epochs, and the restored
# weights are those of the best epoch.
stopper = runs["wide + early stopping"][2][0]
early = histories["wide + early stopping"]
model, trainer = models_["wide + early stopping"]
restored = trainer.evaluate((x_test, y_test))
best_epoch = int(np.argmin(early["val_loss"]))
print(
    f"early stopping: stopped after {len(early['val_loss'])} of {EPOCHS} epochs, "
    f"best epoch {best_epoch + 1}, "
    f"val loss of the restored model {restored['loss']:.4f} (best logged {min(early['val_loss']):.4f})"
)
if stopper.stopped_epoch is not None:
    assert len(early["val_loss"]) == best_epoch + 1 + 6, "stops patience + 1 epochs after the best"
    assert abs(restored["loss"] - min(early["val_loss"])) < 1e-5, "the best weights are restored"
if not args.quick:
    assert stopper.stopped_epoch is not None and len(early["val_loss"]) < EPOCHS, "early stopping stopped"

# %% [markdown]
# ## Pictures
#
# `11_augmentation.png`: four digits and five random augmentations of each.
# `11_curves.png`: training (solid) and validation (dashed) loss of the four runs (the early
# stopping run is the wide run, stopped; the dotted line marks its best epoch).

# %%
rows = [np.concatenate([x_train[i : i + 1], augmented[6 * i + 1 : 6 * i + 6]]) for i in range(4)]
viz.image_grid(
    np.concatenate(rows),
    labels=np.repeat(y_train[:4], 6),
    ncols=6,
    path=OUT / "11_augmentation.png",
    title="original (left) and random rotations / shifts (label unchanged)",
)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for i, (name, h) in enumerate(histories.items()):
    epochs = np.arange(1, len(h["loss"]) + 1)
    axes[0].plot(epochs, h["loss"], color=f"C{i}", label=f"{name} (train)")
    axes[0].plot(epochs, h["val_loss"], color=f"C{i}", ls="--", label=f"{name} (validation)")
    axes[1].plot(epochs, h["val_accuracy"], color=f"C{i}", label=name)
axes[0].axvline(best_epoch + 1, color="C3", lw=0.8, ls=":", label="early stopping: the best epoch, restored")
axes[0].set_yscale("log")
axes[0].set_xlabel("epoch")
axes[0].set_title("loss: training (solid) and validation (dashed)")
axes[0].legend(fontsize=7)
axes[1].set_xlabel("epoch")
axes[1].set_title("validation accuracy")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
fig.tight_layout()
fig.savefig(OUT / "11_curves.png", dpi=90)
plt.close(fig)
print("saved", OUT / "11_augmentation.png", OUT / "11_curves.png")
