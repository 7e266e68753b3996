# %% [markdown]
# # 19. 1-D convolutional networks on signals: causal, dilated, and a sliding-window detector
#
# Convolution is not only for images. A seismometer records the ground's motion, and the
# task is to say when an earthquake's waves arrive; an accelerometer on a machine catches
# the moment a bearing starts to ring; a wearable sensor must notice a fall. Each is a
# **1-D signal** (N, C, L): C sensor channels, L time samples. A `Conv1d` slides its kernel
# along time, with the same weights everywhere: an event is recognised wherever it occurs.
#
# Two ideas make 1-D networks fit signals:
#
# * **causal convolution**: the output at time t may only use inputs up to t (a detector
#   running on a live signal cannot look into the future). Pad d (k - 1) zeros on the left
#   and none on the right;
# * **dilation**: a kernel with holes (tutorial 4). Dilations 1, 2, 4, 8, 16 make the
#   receptive field grow exponentially with depth: 63 samples from five layers of size 3.
#
# We generate recordings with events of three shapes buried in noise, train a causal dilated
# CNN to say, at every time step, which event arrived a moment ago, run it as a sliding-window
# detector over new recordings, and count what it finds.

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, data, models, nn, optim, theory, training

parser = argparse.ArgumentParser(description="Tutorial 19: 1-D CNNs on signals")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
N_RECORDINGS, EPOCHS, LR = (48, 8, 1e-2) if args.quick else (96, 15, 3e-3)
LENGTH, EVENTS, NOISE, MIN_GAP = 1024, 10, 0.3, 80
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## The data: events in noise
#
# `data.make_signal_events` draws recordings of white Gaussian noise (standard deviation
# 0.3) and adds events of the three shapes of `data.SIGNAL_CLASSES`: a *spike* (a Ricker
# wavelet: an impulsive arrival), a *ringing* (a suddenly excited, damped oscillation) and a
# *chirp* (a burst whose pitch rises, emerging slowly from the noise). Each event gets a
# random sign, a peak amplitude between 1 and 2 and a duration stretched by 0.8 to 1.25;
# arrival times are at least 80 samples apart. It returns the signals (N, 1, L), and the class
# and arrival time of every event (N, E). The same seed gives the same recordings.

# %%
def recordings(n, seed):
    return data.make_signal_events(n, LENGTH, EVENTS, noise=NOISE, min_gap=MIN_GAP,
                                   arrival_range=(64, LENGTH - 64), seed=seed)


x_train, labels_train, arrivals_train = recordings(N_RECORDINGS, seed=1)
x_val, labels_val, arrivals_val = recordings(N_RECORDINGS // 4, seed=2)
x_test, labels_test, arrivals_test = recordings(12, seed=3)
print(f"training recordings {x_train.shape}, events per recording {arrivals_train.shape[1]}, "
      f"events per class {np.bincount(labels_train.ravel()).tolist()}")
again = recordings(N_RECORDINGS, seed=1)
assert np.array_equal(again[0], x_train) and np.array_equal(again[2], arrivals_train), "same seed, same data"
assert np.all(np.diff(arrivals_train, axis=1) >= MIN_GAP), "sorted, at least min_gap apart"
quiet = np.ones(LENGTH, bool)
for a in arrivals_train[0]:
    quiet[a:a + 40] = False
print(f"standard deviation between the events: {x_train[0, 0, quiet].std():.3f} (the noise level, {NOISE})")
assert abs(x_train[0, 0, quiet].std() - NOISE) < 0.03

# %% [markdown]
# ## Causal convolution
#
# `nn.CausalConv1d(C_in, C_out, k, dilation=d)` is a `Conv1d` with padding ((d (k - 1), 0),):
# the same as padding the signal on the left with `F.pad` and convolving without padding.
# Its output has the input's length, and changing the *future* of the input leaves the past
# of the output alone. A `'same'`-padded convolution of the same kernel looks both ways.

# %%
causal = nn.CausalConv1d(1, 4, kernel_size=3, dilation=2)
signal = Tensor(x_train[:1, :, :200])
by_hand = F.conv1d(F.pad(signal, (2 * (3 - 1), 0)), causal.weight, causal.bias, dilation=2)
assert np.allclose(causal(signal).numpy(), by_hand.numpy(), atol=1e-6) and causal(signal).shape == (1, 4, 200)

t = 120
changed = x_train[:1, :, :200].copy()
changed[..., t + 1:] = np.random.default_rng(0).normal(size=changed[..., t + 1:].shape)  # a new future
same = nn.Conv1d(1, 4, kernel_size=3, dilation=2, padding="same")
same.weight.data[...], same.bias.data[...] = causal.weight.data, causal.bias.data
with tinygrad_cnn.no_grad():
    causal_past = np.abs(causal(Tensor(changed)).numpy() - causal(signal).numpy())[..., : t + 1].max()
    same_past = np.abs(same(Tensor(changed)).numpy() - same(signal).numpy())[..., : t + 1].max()
print(f"outputs up to t = {t} after changing the input after t: causal changes by {causal_past:.2g}, "
      f"'same' padding by {same_past:.2g}")
assert causal_past == 0.0 and same_past > 0.01

# %% [markdown]
# ## Dilation: an exponentially growing receptive field
#
# `theory.receptive_field` reads the layers' kernel size, padding and dilation (tutorial 4).
# With k = 3 and dilations 1, 2, 4, 8, 16 the field grows as 3, 7, 15, 31, 63 samples; five
# undilated layers reach only 11, and 31 of them would be needed for 63. We check the field by
# autograd: the gradient of one output step with respect to the input is non-zero on exactly
# the R samples up to and including that step. For a causal stack `start`, the centre of
# the field of output 0, is -(R - 1) / 2: the field ends at the output's own step.

# %%
dilations = (1, 2, 4, 8, 16)
dilated = [nn.CausalConv1d(1, 1, 3, dilation=d, bias=False) for d in dilations]
undilated = [nn.CausalConv1d(1, 1, 3, bias=False) for _ in dilations]
fields = theory.receptive_field(dilated)
print("receptive field per layer, dilated:", [f.size for f in fields],
      " undilated:", [f.size for f in theory.receptive_field(undilated)])
assert [f.size for f in fields] == [3, 7, 15, 31, 63] and fields[-1].start == -31.0
assert theory.receptive_field(undilated)[-1].size == 11


def paths_to_output(layers, depth, step):
    """d output[step] / d input for the first `depth` layers with all weights 1: the number of
    paths from each input sample to that output step (non-zero exactly on its field)."""
    for layer in layers:
        layer.weight.data[...] = 1.0
    x = Tensor(np.zeros((1, 1, 160), np.float32), requires_grad=True)
    y = x
    for layer in layers[:depth]:
        y = layer(y)
    y[0, 0, step].backward()
    return x.grad.numpy()[0, 0]


STEP = 140
reach = {name: np.stack([paths_to_output(layers, depth, STEP) for depth in range(1, 6)])
         for name, layers in (("undilated", undilated), ("dilated", dilated))}
seen = np.flatnonzero(reach["dilated"][-1])
print(f"output step {STEP} is reached from input samples {seen.min()} to {seen.max()} ({len(seen)} samples)")
assert seen.min() == STEP - 62 and seen.max() == STEP and len(seen) == 63

model = models.CausalCNN(num_classes=1 + len(data.SIGNAL_CLASSES), channels=16, dilations=dilations)
print(f"CausalCNN: receptive field {model.receptive_field} samples, "
      f"{theory.count_parameters(model):,} parameters")
assert model.receptive_field == 63

# %% [markdown]
# ## Training: what arrived 20 to 44 samples ago?
#
# The network answers at every time step. Its target at step t (`data.event_targets`) is
# 1 + the class of the event that arrived between 20 and 44 samples before t, and 0 ("nothing")
# otherwise: a causal detector needs to see a part of the event before it can name it, so it
# answers with a latency of 20 samples, over 25 consecutive steps. Every time step is a
# training example, and one forward pass over a recording computes all of them: the model is
# *fully convolutional*, trained like a segmentation network along time (tutorial 12), with the
# library's `Trainer` and per-step accuracy.

# %%
DELAY = (20, 44)
y_train = data.event_targets(labels_train, arrivals_train, LENGTH, DELAY)
y_val = data.event_targets(labels_val, arrivals_val, LENGTH, DELAY)
print(f"targets {y_train.shape}; share of steps with an event: {(y_train > 0).mean():.3f}")
trainer = training.Trainer(model, optim.Adam(model.parameters(), lr=LR), batch_size=8, seed=0, progress=False)
start = time.perf_counter()
history = trainer.fit((x_train, y_train), epochs=EPOCHS, validation_data=(x_val, y_val))
step_accuracy = history["val_accuracy"][-1]
print(f"{EPOCHS} epochs in {time.perf_counter() - start:.1f} s; per-step validation accuracy "
      f"{step_accuracy:.3f} (always saying 'nothing': {(y_val == 0).mean():.3f})")
assert step_accuracy > (y_val == 0).mean(), "better than always saying 'nothing'"

# %% [markdown]
# ## A sliding window is a convolution
#
# The classic detector cuts the recording into overlapping windows (`data.sliding_windows`)
# and classifies each one. Here the window is the receptive field: the network's last output
# step of a 63-sample window sees exactly that window. Classifying all windows one by one
# gives the same numbers as running the network once over the whole recording, which shares
# the convolutions of overlapping windows instead of recomputing them.

# %%
model.eval()
recording = x_test[:1]
with tinygrad_cnn.no_grad():
    start = time.perf_counter()
    whole = model(Tensor(recording)).numpy()[0]  # (classes, L) in one pass
    one_pass = time.perf_counter() - start
    windows, starts = data.sliding_windows(recording[0], model.receptive_field, step=1)
    start = time.perf_counter()
    per_window = model(Tensor(np.ascontiguousarray(windows))).numpy()[:, :, -1]  # last step of each window
    window_by_window = time.perf_counter() - start
ends = starts + model.receptive_field - 1
print(f"{len(windows)} windows of {model.receptive_field} samples: {window_by_window * 1e3:.0f} ms, "
      f"the whole recording at once: {one_pass * 1e3:.0f} ms; "
      f"largest difference {np.abs(per_window - whole[:, ends].T).max():.1e}")
assert np.allclose(per_window, whole[:, ends].T, atol=1e-4)

# %% [markdown]
# ## Detection
#
# From the per-step probabilities, the score of "some event" is 1 - p(nothing). Where it stays
# above 0.5 (`data.threshold_runs`, joining runs interrupted for at most 5 steps, dropping runs
# shorter than 5) is one detection. Since the network answers 20 to 44 samples after an
# arrival, the arrival is estimated as the middle of the run minus 32, and the class is the
# one with the largest mean probability over the run. `data.match_events` pairs detections
# with true arrivals at most 8 samples apart: matched pairs are hits, the rest false alarms
# and misses. Precision = hits / detections, recall = hits / events.

# %%
with tinygrad_cnn.no_grad():
    logits = model(Tensor(x_test)).numpy()
probabilities = np.exp(logits - logits.max(1, keepdims=True))
probabilities /= probabilities.sum(1, keepdims=True)
found = []  # per recording: (estimated arrivals, classes, run starts, run ends)
hits = false_alarms = misses = right_class = 0
errors = []
for r in range(len(x_test)):
    run_starts, run_ends = data.threshold_runs(1 - probabilities[r, 0], 0.5, min_length=5, max_gap=5)
    estimated = (run_starts + run_ends - 1) / 2 - sum(DELAY) / 2
    classes = np.array([probabilities[r, 1:, s:e].mean(1).argmax() for s, e in zip(run_starts, run_ends)],
                       dtype=np.int64)
    found.append((estimated, classes, run_starts, run_ends))
    pairs, extra, missed = data.match_events(estimated, arrivals_test[r], tolerance=8)
    hits, false_alarms, misses = hits + len(pairs), false_alarms + len(extra), misses + len(missed)
    errors.extend(estimated[pairs[:, 0]] - arrivals_test[r, pairs[:, 1]])
    right_class += int((classes[pairs[:, 0]] == labels_test[r, pairs[:, 1]]).sum())
precision, recall = hits / max(hits + false_alarms, 1), hits / (hits + misses)
class_accuracy = right_class / max(hits, 1)
print(f"{arrivals_test.size} events in {len(x_test)} test recordings: {hits} found, "
      f"{false_alarms} false alarms, {misses} missed; precision {precision:.3f}, recall {recall:.3f}")
print(f"arrival time error {np.mean(np.abs(errors)):.2f} samples on average; class right for "
      f"{class_accuracy:.3f} of the hits")
assert recall > 0.85 and precision > 0.85, (precision, recall)
assert np.mean(np.abs(errors)) < 4.0
if not args.quick:
    assert class_accuracy > 0.9, class_accuracy

# %% [markdown]
# Longer training (the default run against `--quick`) mostly improves the *naming* of the
# events: finding them is the easier half. The classical trigger of seismology, STA/LTA (the
# ratio of the signal's energy in a short and in a long window), needs no training at all,
# but it measures energy only: it cannot say which kind of event it found.
#
# ## Pictures
#
# `19_events.png`: the three event shapes, clean and in a recording. `19_receptive_field.png`:
# which input samples reach one output step, layer by layer, undilated and dilated.
# `19_detection.png`: a test recording, its true events, the network's probabilities and the
# detections.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = ("tab:red", "tab:green", "tab:purple")
fig, axes = plt.subplots(2, 1, figsize=(11, 6))
for k, name in enumerate(data.SIGNAL_CLASSES):
    for stretch, style in ((0.8, ":"), (1.0, "-"), (1.25, "--")):
        axes[0].plot(np.arange(40) + 50 * k, data.event_waveform(name, 40, stretch), style, color=COLOURS[k],
                     label=f"{name}" if stretch == 1.0 else None)
axes[0].set_title("the three event shapes (dotted, solid, dashed: stretched by 0.8, 1, 1.25)")
axes[0].set_xticks([])
axes[0].legend(loc="upper right")
axes[1].plot(x_train[0, 0], color="0.3", lw=0.7)
for a, c in zip(arrivals_train[0], labels_train[0]):
    axes[1].axvline(a, color=COLOURS[c], lw=1.5)
axes[1].set_title("a training recording: coloured lines mark the arrivals (colour = class)")
axes[1].set_xlabel("time (samples)")
axes[1].set_xlim(0, LENGTH)
fig.tight_layout()
fig.savefig(OUT / "19_events.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(1, 2, figsize=(14, 3.8), sharey=True)
for ax, (name, counts) in zip(axes, reach.items()):
    image = ax.imshow(np.log1p(counts), aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(-0.5, counts.shape[1] - 0.5, 5.5, 0.5))
    ax.axvline(STEP, color="w", ls=":")
    size = int((counts[-1] > 0).sum())
    shown = ", ".join(map(str, dilations if name == "dilated" else (1,) * 5))
    ax.set_title(f"{name}, dilations {shown}: field {size} samples", fontsize=10)
    ax.set_xlabel(f"input sample (the output step is {STEP}, dotted)")
    ax.set_xlim(60, 150)
axes[0].set_ylabel("layers")
fig.suptitle(f"five causal layers with k = 3: which input samples reach output step {STEP}", y=1.02)
fig.colorbar(image, ax=axes, label="log(1 + number of paths to the output)")
fig.savefig(OUT / "19_receptive_field.png", dpi=90, bbox_inches="tight")
plt.close(fig)

r = 0
estimated, classes, run_starts, run_ends = found[r]
fig, axes = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
axes[0].plot(x_test[r, 0], color="0.3", lw=0.7)
for a, c in zip(arrivals_test[r], labels_test[r]):
    axes[0].axvline(a, color=COLOURS[c], lw=2, alpha=0.6)
for e, c in zip(estimated, classes):
    axes[0].plot([e], [axes[0].get_ylim()[1] * 0.9], "v", color=COLOURS[c], ms=9, mec="k")
axes[0].set_title("test recording: true arrivals (lines) and detections (triangles), colour = class")
for k, name in enumerate(data.SIGNAL_CLASSES):
    axes[1].plot(probabilities[r, k + 1], color=COLOURS[k], label=f"p({name})")
axes[1].plot(1 - probabilities[r, 0], color="k", lw=0.8, ls="--", label="1 - p(nothing)")
axes[1].axhline(0.5, color="0.5", ls=":")
for s, e in zip(run_starts, run_ends):
    axes[1].axvspan(s, e, color="0.85", zorder=0)
axes[1].set_ylim(0, 1.02)
axes[1].set_xlabel("time (samples)")
axes[1].set_ylabel("probability")
axes[1].set_title("per-step probabilities of the causal CNN; grey: runs above 0.5 (the detections)")
axes[1].legend(loc="upper right", fontsize=8, ncol=4)
axes[1].set_xlim(0, LENGTH)
fig.tight_layout()
fig.savefig(OUT / "19_detection.png", dpi=90)
plt.close(fig)
print("saved", *(OUT / f"19_{name}.png" for name in ("events", "receptive_field", "detection")))
