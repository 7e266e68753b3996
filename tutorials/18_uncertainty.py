# %% [markdown]
# # 18. How sure is the network? Monte Carlo dropout and calibration
#
# A classifier's softmax output looks like a probability distribution over the classes, and
# it is tempting to read its largest entry as "how sure the network is". Two things go wrong:
#
# * the network gives an answer for *every* input, also for a picture of noise or a digit
#   turned on its side, which it has never seen anything like: it cannot say "I don't know";
# * its confidences need not match how often it is right: networks trained on cross-entropy
#   are often **over-confident** (they say 0.9 and are right 70% of the time).
#
# Two tools of the course, both in `tinygrad_cnn.uncertainty`:
#
# * **Monte Carlo dropout** (Gal and Ghahramani, 2016). Dropout switched off at test time
#   gives one deterministic prediction. Left *on*, each forward pass samples another thinned
#   network; T passes give T softmax vectors $p_1, \dots, p_T$. Where the network knows the
#   answer they agree; where it does not, they scatter. With the predictive mean
#   $\bar p = \frac1T \sum_t p_t$:
#
#   | measure | formula | what it says |
#   | --- | --- | --- |
#   | predictive entropy | $H[\bar p] = -\sum_c \bar p_c \log \bar p_c$ | total uncertainty, 0 to $\log C$ |
#   | expected entropy | $\frac1T \sum_t H[p_t]$ | how unsure each pass is alone (aleatoric) |
#   | mutual information | $H[\bar p] - \frac1T \sum_t H[p_t] \ge 0$ | the passes *disagree* (epistemic) |
#
#   Only dropout stays in training mode: batch norm keeps using its running statistics (in
#   training mode an image's prediction would depend on the rest of its batch, and every pass
#   would overwrite the running averages).
# * **Calibration.** Put the N predictions into M equal bins by confidence,
#   $B_m = (\frac{m-1}{M}, \frac{m}{M}]$. The **reliability diagram** draws each bin's
#   accuracy against its mean confidence (calibrated: on the diagonal); the **expected
#   calibration error** is the gap averaged over the predictions,
#   $\mathrm{ECE} = \sum_m \frac{|B_m|}{N}\,|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)|$.
#
# We train a small CNN with batch norm and dropout on the bundled 8x8 digits and ask it about
# test digits, about noise images and about rotated digits.

# %%
import argparse
import math
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, optim, training
from tinygrad_cnn import uncertainty as U
from tinygrad_cnn.data import transforms

parser = argparse.ArgumentParser(description="Tutorial 18: Monte Carlo dropout and calibration")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS, PASSES = (5, 20) if args.quick else (15, 50)
ANGLES = [0, 30, 45, 90] if args.quick else [0, 15, 30, 45, 60, 90, 180]
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## The measures, by hand
#
# Entropy in nats: 0 for a one-hot vector, $\log 2 = 0.693$ for a fair coin, $\log 10 = 2.303$
# for ten equally likely digits. Two passes that each are sure but disagree
# ($p_1 = (1, 0)$, $p_2 = (0, 1)$) have predictive entropy $\log 2$, expected entropy 0, so
# all of it is mutual information: the model does not know. Two passes that agree on
# $(0.5, 0.5)$ have the same predictive entropy but no mutual information: the *input* is
# ambiguous, and more data of the same kind would not help.
#
# The ECE of five predictions, by hand: confidences 0.9 (right), 0.9 (wrong) fall in the bin
# (0.8, 0.9] with accuracy 0.5, gap 0.4; 0.65 and 0.62 (both right) in (0.6, 0.7] with mean
# confidence 0.635 and accuracy 1, gap 0.365; 0.4 (wrong) in (0.3, 0.4], gap 0.4. Weighted by
# the share of predictions in each bin: $\frac25 0.4 + \frac25 0.365 + \frac15 0.4 = 0.386$.

# %%
assert U.entropy([1.0, 0.0]) == 0.0 and math.isclose(U.entropy([0.5, 0.5]), math.log(2))
disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # (T=2 passes, N=1 input, C=2 classes)
agree = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
for name, passes in (("disagree", disagree), ("agree", agree)):
    h, mi = U.predictive_entropy(passes)[0], U.mutual_information(passes)[0]
    print(f"passes that {name}: predictive entropy {h:.3f}, mutual information {mi:.3f}")
assert math.isclose(U.mutual_information(disagree)[0], math.log(2)) and U.mutual_information(agree)[0] < 1e-12

five = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.65, 0.35, 0.0], [0.38, 0.62, 0.0], [0.4, 0.3, 0.3]])
five_labels = np.array([0, 1, 0, 1, 2])
ece_five = U.expected_calibration_error(five, five_labels, n_bins=10)
print(f"ECE of the five predictions: {ece_five:.3f}")
assert math.isclose(ece_five, 0.386), ece_five

# %% [markdown]
# ## A network with batch norm and dropout
#
# Two convolution blocks (3x3 convolution, batch norm, ReLU, 2x2 max pooling), then a dense
# layer, with dropout ($p = 0.25$) before each of the two dense layers. Adam, on the 1,437
# training digits.

# %%
x_train, y_train, x_test, y_test = data.load_digits()
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10),
)
optimizer = optim.Adam(model.parameters(), lr=3e-3)
trainer = training.Trainer(model, optimizer, batch_size=32, seed=0, progress=False)
history = trainer.fit((x_train, y_train), epochs=EPOCHS)
plain = U.predict_probabilities(model, x_test)  # dropout off: the usual prediction
accuracy = float((plain.argmax(1) == y_test).mean())
print(f"{EPOCHS} epochs: training loss {history['loss'][-1]:.3f}, test accuracy {accuracy:.3f}")
assert accuracy > 0.95, f"the network should read the test digits, got accuracy {accuracy:.3f}"

# %% [markdown]
# ## Dropout on, batch norm off: `mc_dropout`
#
# Inside `with U.mc_dropout(model):` the model is in evaluation mode except for its dropout
# layers. Two passes of the same digits differ; the batch-norm running statistics do not
# move. `U.mc_dropout_predict(model, x, passes=T)` does the T passes and returns all their
# softmax vectors, shape (T, N, C).

# %%
bn = model[1]
running_mean, batches_seen = bn.running_mean.numpy().copy(), bn.num_batches_tracked.item()
mode_before = model.training  # Trainer.fit leaves the model in training mode
with U.mc_dropout(model):
    print("training flags inside mc_dropout:",
          [f"{type(m).__name__} {m.training}" for m in model if isinstance(m, (nn.BatchNorm2d, nn.Dropout))])
    with tinygrad_cnn.no_grad():
        first, second = model(Tensor(x_test[:5])).numpy(), model(Tensor(x_test[:5])).numpy()
print("logit of the true class, two passes:", np.round(first[np.arange(5), y_test[:5]], 2),
      np.round(second[np.arange(5), y_test[:5]], 2))
assert not np.allclose(first, second), "dropout stays on: every pass samples another network"
assert np.array_equal(bn.running_mean.numpy(), running_mean) and bn.num_batches_tracked.item() == batches_seen
assert model.training == mode_before, "and the model is back in the mode it was in"

tinygrad_cnn.manual_seed(1)
mc_test = U.mc_dropout_predict(model, x_test, passes=PASSES)
mc_accuracy = float((U.predictive_mean(mc_test).argmax(1) == y_test).mean())
print(f"{PASSES} passes: accuracy of the predictive mean {mc_accuracy:.3f} (dropout off: {accuracy:.3f})")
assert mc_test.shape == (PASSES, len(x_test), 10) and abs(mc_accuracy - accuracy) < 0.03

# %% [markdown]
# ## Inputs it has never seen: noise and rotated digits
#
# 300 images of uniform noise, and the test digits rotated by increasing angles (bilinear,
# zero fill). For each set: accuracy, mean confidence (the largest probability) of the plain
# network and of the MC mean, mean predictive entropy and mutual information.
#
# Do the measures separate noise from digits? The **AUROC** is the probability that a random
# noise image gets a higher score than a random test digit (1: perfect separation, 0.5: none).

# %%
def mc_passes(images):
    tinygrad_cnn.manual_seed(1)  # the same dropout masks for every set
    return U.mc_dropout_predict(model, images, passes=PASSES)


def auroc(unknown, known):
    """P(score of an unknown input > score of a known one), ties counting one half."""
    greater = (unknown[:, None] > known[None, :]).mean()
    return float(greater + 0.5 * (unknown[:, None] == known[None, :]).mean())


noise = np.random.default_rng(2).uniform(0.0, 1.0, size=(300, 1, 8, 8)).astype(np.float32)
mc_noise = mc_passes(noise)
plain_noise = U.predict_probabilities(model, noise)
entropy_test, entropy_noise = U.predictive_entropy(mc_test), U.predictive_entropy(mc_noise)
mi_test, mi_noise = U.mutual_information(mc_test), U.mutual_information(mc_noise)
separation = {
    "plain softmax entropy": auroc(U.entropy(plain_noise), U.entropy(plain)),
    "MC predictive entropy": auroc(entropy_noise, entropy_test),
    "MC mutual information": auroc(mi_noise, mi_test),
}
print(f"predictive entropy: test digits {entropy_test.mean():.3f}, noise {entropy_noise.mean():.3f} "
      f"(at most log 10 = {math.log(10):.3f}); mutual information {mi_test.mean():.3f} "
      f"vs {mi_noise.mean():.3f}")
print("AUROC noise against test digits:", {k: round(v, 3) for k, v in separation.items()})
assert entropy_noise.mean() > entropy_test.mean() + 0.4, "noise is more uncertain than digits"
assert mi_noise.mean() > mi_test.mean(), "and the passes disagree more on it"
assert separation["MC predictive entropy"] > 0.9

rotated = {}
print("angle  accuracy  confidence plain / MC  entropy    MI")
for angle in ANGLES:
    images = transforms.affine(x_test, np.deg2rad(angle), 0.0, 0.0)
    passes, single = mc_passes(images), U.predict_probabilities(model, images)
    mean = U.predictive_mean(passes)
    rotated[angle] = dict(
        images=images, plain=single, mc=mean, accuracy=float((mean.argmax(1) == y_test).mean()),
        plain_accuracy=float((single.argmax(1) == y_test).mean()),
        plain_confidence=float(single.max(1).mean()),
        mc_confidence=float(mean.max(1).mean()), entropy=float(U.predictive_entropy(passes).mean()),
        mi=float(U.mutual_information(passes).mean()), passes=passes,
    )
    r = rotated[angle]
    print(f"{angle:4d}°  {r['accuracy']:8.3f}  {r['plain_confidence']:10.3f} / {r['mc_confidence']:.3f}"
          f"  {r['entropy']:7.3f}  {r['mi']:6.3f}")
assert rotated[45]["accuracy"] < rotated[0]["accuracy"] - 0.5, "the network cannot read rotated digits"
assert rotated[30]["entropy"] > rotated[0]["entropy"] + 0.3, "and it becomes less sure"
assert rotated[90]["plain_confidence"] > 0.6 and rotated[90]["plain_accuracy"] < 0.25, (
    "turned on their side, digits look like other digits: confidently wrong")
assert rotated[90]["mi"] > rotated[0]["mi"], "but the passes disagree more than on upright digits"

# %% [markdown]
# The entropy climbs with the angle at first, but at 90° the network is *confidently wrong*:
# to its features, a digit on its side looks like some other digit. Uncertainty estimates only
# see what the features can see; they are a warning light, not a guarantee. The mutual
# information (the disagreement of the passes) stays above that of upright digits.
#
# ## Calibration
#
# Reliability diagrams of the plain network and of the MC mean, on the upright test digits
# and on digits rotated by 30° (a *dataset shift*: the kind of change the world makes after
# deployment).

# %%
diagrams = {
    ("plain", 0): U.reliability_diagram(plain, y_test),
    ("MC dropout", 0): U.reliability_diagram(U.predictive_mean(mc_test), y_test),
    ("plain", 30): U.reliability_diagram(rotated[30]["plain"], y_test),
    ("MC dropout", 30): U.reliability_diagram(rotated[30]["mc"], y_test),
}
for (name, angle), d in diagrams.items():
    filled = d.counts > 0
    by_hand = float((d.counts[filled] / d.counts.sum() * np.abs(d.gaps[filled])).sum())
    assert math.isclose(d.ece, by_hand) and 0.0 <= d.ece <= 1.0
    print(f"{name:10s} {angle:2d}°: ECE {d.ece:.3f}, MCE {d.mce:.3f}, "
          f"predictions per bin {d.counts.tolist()}")
over = rotated[30]["plain_confidence"] - rotated[30]["plain_accuracy"]
print(f"rotated 30°: the plain network's mean confidence {rotated[30]['plain_confidence']:.3f} "
      f"for an accuracy of {rotated[30]['plain_accuracy']:.3f} (over-confident by {over:.3f})")
assert diagrams["plain", 0].ece < 0.06, "on the data it was trained for, the plain network is well calibrated"
assert over > 0.1, "under the shift it is over-confident"
assert diagrams["MC dropout", 30].ece < diagrams["plain", 30].ece, "MC dropout is better calibrated there"

# %% [markdown]
# On its own test digits the plain network is well calibrated; the MC mean is less confident
# (dropout's noise spreads some probability over other classes), which here costs little or
# nothing. Under the shift the plain network's confidence stays far above its accuracy (the
# red marks above the bars); averaging the passes lowers the confidences where the passes
# disagree and brings them closer to the accuracy.
#
# ## Pictures
#
# `18_mc_passes.png`: one test digit, the same digit rotated by 45° and a noise image, with the
# probability each of the passes gives every class. `18_uncertainty.png`: histograms of the
# predictive entropy, and accuracy, confidence, entropy and mutual information against the
# rotation angle. `18_reliability.png`: the four reliability diagrams.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

index = int(np.argmax(U.predictive_mean(mc_test).max(1) * (y_test == 4)))  # a confidently read 4
cases = [
    ("test digit", x_test[index], mc_test[:, index]),
    ("rotated 45°", rotated[45]["images"][index], rotated[45]["passes"][:, index]),
    ("uniform noise", noise[0], mc_noise[:, 0]),
]
rng = np.random.default_rng(0)
fig, axes = plt.subplots(2, 3, figsize=(11, 6), gridspec_kw=dict(height_ratios=[1, 1.3]))
for column, (title, image, probs) in enumerate(cases):
    axes[0, column].imshow(image[0], cmap="gray", vmin=0, vmax=1)
    axes[0, column].set_title(title)
    axes[0, column].axis("off")
    ax = axes[1, column]
    ax.bar(range(10), probs.mean(0), color="tab:blue", alpha=0.35, label="predictive mean")
    jitter = rng.uniform(-0.25, 0.25, size=probs.shape)
    ax.scatter(np.arange(10)[None, :] + jitter, probs, s=6, color="tab:blue", label="one pass")
    h, mi = U.predictive_entropy(probs[:, None])[0], U.mutual_information(probs[:, None])[0]
    ax.set_title(f"entropy {h:.2f}, mutual information {mi:.2f}", fontsize=10)
    ax.set_xticks(range(10))
    ax.set_xlabel("class")
    ax.set_ylim(0, 1.02)
    if column == 0:
        ax.set_ylabel(f"probability ({PASSES} dropout passes)")
        ax.legend(loc="upper left", fontsize=8)
fig.suptitle("Monte Carlo dropout: the passes agree on a digit and scatter on what the network has not seen")
fig.tight_layout()
fig.savefig(OUT / "18_mc_passes.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
bins = np.linspace(0, math.log(10), 30)
entropy_45 = U.predictive_entropy(rotated[45]["passes"])
sets = (("test digits", entropy_test), ("rotated 45°", entropy_45), ("uniform noise", entropy_noise))
for label, values in sets:
    axes[0].hist(values, bins=bins, alpha=0.5, density=True, label=label)
axes[0].axvline(math.log(10), color="k", ls=":", label="log 10 (uniform)")
axes[0].set_xlabel("predictive entropy (nats)")
axes[0].set_ylabel("density")
axes[0].set_title("how uncertain, per input")
axes[0].legend(fontsize=8)
angles = list(rotated)
curves = (("accuracy", "accuracy (MC mean)", "o-"), ("plain_confidence", "confidence, plain", "s--"),
          ("mc_confidence", "confidence, MC mean", "^--"))
for key, label, style in curves:
    axes[1].plot(angles, [rotated[a][key] for a in angles], style, label=label)
axes[1].set_xlabel("rotation (degrees)")
axes[1].set_ylim(0, 1.02)
axes[1].set_title("confidence stays high while accuracy drops")
axes[1].legend(fontsize=8)
for key, label in (("entropy", "predictive entropy"), ("mi", "mutual information")):
    axes[2].plot(angles, [rotated[a][key] for a in angles], "o-", label=label)
axes[2].axhline(entropy_noise.mean(), color="grey", ls=":", label="predictive entropy of noise")
axes[2].set_xlabel("rotation (degrees)")
axes[2].set_ylabel("nats (mean over the test digits)")
axes[2].set_title("uncertainty against rotation")
axes[2].legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "18_uncertainty.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(2, 2, figsize=(9, 8.5))
for ax, ((name, angle), d) in zip(axes.ravel(), diagrams.items()):
    centres = (d.bin_edges[:-1] + d.bin_edges[1:]) / 2
    width = d.bin_edges[1] - d.bin_edges[0]
    filled = d.counts > 0
    ax.bar(centres[filled], d.accuracy[filled], width=width, color="tab:blue", alpha=0.7, edgecolor="k",
           label="accuracy of the bin")
    ax.hlines(d.confidence[filled], centres[filled] - width / 2, centres[filled] + width / 2, color="tab:red",
              lw=2.5, label="mean confidence of the bin")
    for x, n in zip(centres[filled], d.counts[filled]):
        ax.text(x, 0.02, str(n), ha="center", fontsize=7)
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    shown = "test digits" if angle == 0 else f"rotated {angle}°"
    ax.set_title(f"{name}, {shown}: ECE {d.ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
fig.suptitle("reliability diagrams: 10 confidence bins, the number of predictions in each at the bottom")
fig.tight_layout()
fig.savefig(OUT / "18_reliability.png", dpi=90)
plt.close(fig)
print("saved", *(OUT / f"18_{name}.png" for name in ("mc_passes", "uncertainty", "reliability")))
