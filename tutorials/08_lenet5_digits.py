# %% [markdown]
# # 8. LeNet-5 on handwritten digits
#
# LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) is the first convolutional network that
# worked in practice, reading the digits on cheques. Its pattern is still the pattern of a CNN:
#
# ```
# input 28x28 -> conv 5x5, 6 maps -> pool -> conv 5x5, 16 maps -> pool -> conv 5x5, 120 -> dense 84 -> 10
# ```
#
# convolutions that detect local features, pooling that shrinks the maps and buys some
# translation invariance, and dense layers that combine everything into ten class scores.
#
# This tutorial prints the summary table (parameters, FLOPs and receptive field per layer),
# trains the network with the library's `Trainer`, and looks at what it gets wrong: training
# curves, the confusion matrix and the misclassified digits.
#
# **Data.** By default: scikit-learn's bundled 8x8 digits (1,797 images, offline), upsampled to
# LeNet's 28x28. With `--mnist DIR` (a folder with the MNIST IDX files) it trains on real MNIST;
# if that folder holds only the 10,000 test images (`t10k-*`), they are split into a training
# and a test part.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, models, optim, training, viz
from tinygrad_cnn.summary import summary

parser = argparse.ArgumentParser(description="Tutorial 8: LeNet-5 on digits")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--mnist", default=None, help="folder with the MNIST IDX files (default: bundled digits)")
parser.add_argument(
    "--epochs", type=int, default=None, help="training epochs (default: 6 on digits, 4 on MNIST; quick: 1)"
)
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## The data

# %%
if args.mnist is None:
    x_train, y_train, x_test, y_test = data.load_digits(image_size=28)
    source = "scikit-learn digits (8x8, upsampled to 28x28)"
else:
    root = Path(args.mnist)
    try:
        x_train, y_train = data.load_mnist(root, "train")
        x_test, y_test = data.load_mnist(root, "test")
        source = "MNIST"
    except FileNotFoundError:  # only the t10k files: split them
        images, labels = data.load_mnist(root, "test")
        order = np.random.default_rng(0).permutation(len(labels))
        cut = int(0.8 * len(labels))
        x_train, y_train = images[order[:cut]], labels[order[:cut]]
        x_test, y_test = images[order[cut:]], labels[order[cut:]]
        source = "MNIST test set (t10k), split 80/20 into training and test"
    n_train = 1000 if args.quick else 4000  # a subset, to train in well under a minute
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    x_test, y_test = x_test[: 500 if args.quick else 2000], y_test[: 500 if args.quick else 2000]
if args.quick and args.mnist is None:
    x_train, y_train, x_test, y_test = x_train[:400], y_train[:400], x_test[:200], y_test[:200]
print(f"data: {source}; train {x_train.shape}, test {x_test.shape}, classes {np.bincount(y_train).tolist()}")
assert x_train.shape[1:] == (1, 28, 28) and x_train.min() >= 0 and x_train.max() <= 1

# %% [markdown]
# ## The model and its summary
#
# `summary(model, (1, 28, 28))` runs the model once and prints a Keras-style table. The
# parameter counts follow the formula of tutorial 5, $C_{in} F^2 K + K$:
# C1 $1 \cdot 25 \cdot 6 + 6 = 156$, C3 $6 \cdot 25 \cdot 16 + 16 = 2416$,
# C5 $16 \cdot 25 \cdot 120 + 120 = 48{,}120$, F6 $120 \cdot 84 + 84 = 10{,}164$,
# output $84 \cdot 10 + 10 = 850$: 61,706 in all. The last column is the receptive field:
# after C5, each unit sees a 32x32 window, more than the whole (padded) digit.

# %%
model = models.lenet5()
table = summary(model, (1, 28, 28))
conv_params = [row.params for row in table.rows if row.type == "Conv2d"]
print("parameters of the three convolutions:", conv_params)
assert conv_params == [156, 2416, 48120], "LeNet-5's convolutions"
assert table.total_params == 61_706, f"LeNet-5 has 61,706 parameters, got {table.total_params}"
assert table.rows[-1].output_shape[1:] == (10,)

# %% [markdown]
# ## Training
#
# Mini-batch gradient descent with Adam on the cross-entropy loss. `Trainer.fit` returns a
# Keras-style history: the loss and accuracy on the training and validation data, per epoch.

# %%
epochs = args.epochs or (1 if args.quick else 4 if args.mnist else 6)
trainer = training.Trainer(
    model, optim.Adam(model.parameters(), lr=2e-3), batch_size=32, seed=0, progress=False
)
history = trainer.fit((x_train, y_train), epochs=epochs, validation_data=(x_test, y_test))
for epoch in range(len(history)):
    print(
        f"epoch {epoch + 1}: loss {history['loss'][epoch]:.3f}  accuracy {history['accuracy'][epoch]:.3f}  "
        f"val_loss {history['val_loss'][epoch]:.3f}  val_accuracy {history['val_accuracy'][epoch]:.3f}"
    )
logits = trainer.predict(x_test)
predicted = logits.argmax(axis=1)
accuracy = float((predicted == y_test).mean())
print(f"test accuracy: {accuracy:.3f} ({int((predicted != y_test).sum())} of {len(y_test)} wrong)")
assert abs(accuracy - history["val_accuracy"][-1]) < 1e-9, "predict and evaluate agree"
minimum = 0.2 if args.quick else 0.9
assert accuracy > minimum, f"LeNet-5 should reach {minimum:.0%} test accuracy, got {accuracy:.3f}"

# %% [markdown]
# ## Where it goes wrong
#
# Row $i$, column $j$ of the confusion matrix counts the test digits of class $i$ predicted as
# $j$: the diagonal is right, everything else a mistake. The misclassified images (true label
# -> prediction, in red) are often ambiguous even to a person.

# %%
counts = viz.confusion_matrix(y_test, predicted, n_classes=10)
assert counts.sum() == len(y_test) and np.trace(counts) == int((predicted == y_test).sum())
per_class = np.diag(counts) / np.maximum(counts.sum(axis=1), 1)
print("per-class accuracy:", np.round(per_class, 2).tolist())
off_diagonal = counts - np.diag(np.diag(counts))
if off_diagonal.any():
    i, j = np.unravel_index(off_diagonal.argmax(), counts.shape)
    print(f"most frequent confusion: {i} predicted as {j} ({off_diagonal[i, j]} times)")
wrong = np.nonzero(predicted != y_test)[0][:16]

# %% [markdown]
# ## Pictures
#
# `08_training_curves.png`, `08_confusion_matrix.png`, `08_misclassified.png`, and
# `08_examples.png` (the first test digits with their predictions).

# %%
curves = {k: v for k, v in history.history.items() if k != "lr"}
viz.training_curves(curves, path=OUT / "08_training_curves.png", title=f"LeNet-5 on {source}")
viz.plot_confusion_matrix(
    counts, path=OUT / "08_confusion_matrix.png", title=f"LeNet-5, test accuracy {accuracy:.1%}"
)
shown = wrong if len(wrong) else np.arange(8)  # a perfect model: show some right ones
viz.image_grid(
    x_test[shown],
    labels=y_test[shown],
    predictions=predicted[shown],
    ncols=8,
    path=OUT / "08_misclassified.png",
    title="misclassified test digits: true -> predicted",
)
viz.image_grid(
    x_test[:16],
    labels=y_test[:16],
    predictions=predicted[:16],
    ncols=8,
    path=OUT / "08_examples.png",
    title="test digits: true -> predicted",
)
tinygrad_cnn.save(model.state_dict(), OUT / "08_lenet5.npz")  # the trained weights, without pickle
print(
    "saved",
    *(OUT / f"08_{n}.png" for n in ("training_curves", "confusion_matrix", "misclassified", "examples")),
)

# The saved weights load back into a fresh LeNet-5 and give the same predictions.
restored = models.lenet5()
restored.load_state_dict(tinygrad_cnn.load(OUT / "08_lenet5.npz"))
restored.eval()
with tinygrad_cnn.no_grad():
    again = restored(Tensor(x_test[:32])).numpy().argmax(axis=1)
assert np.array_equal(again, predicted[:32])
