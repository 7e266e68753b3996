# %% [markdown]
# # 13. Quantized and binarized networks
#
# A trained network stores its weights as 32-bit floats and computes with floating-point
# multiply-adds. Neither is needed at inference: the weights of a trained layer span a small
# range, and a grid of 256 levels (8 bits) across it is fine enough that the predictions barely
# change. Integers take a quarter of the memory, and integer multiply-adds are cheaper in
# silicon and energy. Pushed to the limit, **binarized** networks keep one bit per weight and
# per activation, +1 or -1.
#
# **Quantization.** A b-bit integer $q$ stands for the real number $r = s\,(q - z)$, with a
# **scale** $s$ and an integer **zero point** $z$. Real numbers are quantized by
# $q = \mathrm{clamp}(\mathrm{round}(r / s) + z,\ q_{min},\ q_{max})$. The scheme used here
# (TFLite's int8 scheme):
#
# * weights: **symmetric per output channel**, $z = 0$ and $s_k = \max |w_k| / 127$;
# * activations: **affine per tensor**, a range $[lo, hi]$ found on a few *calibration*
#   batches spread over all 256 integers, $s = (hi - lo) / 255$; 0 is exactly an integer ($z$);
# * a convolution sums int8 products in **int32**: $\sum (x_q - z_x)\, w_q + b_q$, and the sum
#   is **requantized** to the next layer's int8 scale by $M = s_x s_w / s_y$, applied as an
#   integer multiply and a shift; batch norm is folded into the convolution before, ReLU is a
#   clamp at $z_y$.
#
# We quantize LeNet-5 after training (**post-training quantization**), go down to 4 bits where
# rounding starts to hurt, recover the accuracy with **quantization-aware training** (rounding
# in the forward pass, the straight-through estimator in the backward pass), and end with a
# **binarized** LeNet-style network.
#
# **Data.** The bundled 8x8 digits upsampled to 28x28 by default; `--mnist DIR` uses real MNIST
# (with only the t10k files there, 8,000 of them for training and the other 2,000 for testing).

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, models, nn, optim, quantization, training

parser = argparse.ArgumentParser(description="Tutorial 13: quantized and binarized networks")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--mnist", default=None, help="folder with the MNIST IDX files (default: bundled digits)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## Quantization by hand
#
# Eight real numbers, their 4-bit integers and back. The error is at most half a step, the
# real 0 comes back exactly, and a value outside the calibrated range is clipped.

# %%
q4 = quantization.affine_qparams(-1.0, 2.0, bits=4)
values = np.array([-1.2, -1.0, -0.31, 0.0, 0.42, 1.0, 1.9, 2.5])
integers = q4.quantize(values)
back = q4.dequantize(integers)
print(f"4 bits: scale {q4.scale:.3f}, zero point {q4.zero_point}, integers {q4.qmin}..{q4.qmax}")
for r, q, b in zip(values, integers, back):
    print(f"  {r:6.2f} -> {q:3d} -> {b:6.3f}")
assert q4.scale == 3.0 / 15 and back[3] == 0.0, "the zero point represents 0 exactly"
inside = (values >= -1.0) & (values <= 2.0)
assert np.abs(back - values)[inside].max() <= q4.scale / 2 + 1e-6, "within half a step inside the range"
assert back[-1] == q4.dequantize(np.array([q4.qmax]))[0], "2.5 is clipped to the top of the range"

# %% [markdown]
# **Why one scale per output channel.** The channels of a trained layer differ in size. With
# one scale for the whole weight tensor, the small channels get only a few of the 255 levels.

# %%
rng = np.random.default_rng(0)
weight = rng.normal(size=(4, 50)) * np.array([[1.0], [0.3], [0.05], [0.01]])  # four channels
per_channel, scales = quantization.quantize_weight(weight, bits=8)
per_channel_error = np.abs(per_channel * scales[:, None] - weight).max(axis=1)
tensor_scale = np.abs(weight).max() / 127
per_tensor = np.clip(np.rint(weight / tensor_scale), -127, 127)
per_tensor_error = np.abs(per_tensor * tensor_scale - weight).max(axis=1)
print("largest error per channel, per-tensor scale: ", np.round(per_tensor_error, 5))
print("largest error per channel, per-channel scales:", np.round(per_channel_error, 5))
assert per_channel_error[3] < 0.02 * per_tensor_error[3], "the small channel keeps its detail"

# %% [markdown]
# **Requantization with integers only.** $M$ is written as $m \cdot 2^{-shift}$ with an int32
# $m$ in $[2^{30}, 2^{31})$; then $\mathrm{round}(acc \cdot M)$ is
# $(acc \cdot m + 2^{shift - 1}) \gg shift$.

# %%
M = 0.003_141_59
multiplier, shift = quantization.quantize_multiplier(M)
m, s = int(multiplier[0]), int(shift[0])
print(f"M = {M} = {m} * 2^-{s} (relative error {abs(m / 2**s - M) / M:.1e})")
for acc in (12_345, -98_765, 400_000):
    print(f"  round({acc} * M) = {round(acc * M)}, integers only: {(acc * m + 2 ** (s - 1)) >> s}")
    assert (acc * m + 2 ** (s - 1)) >> s == round(acc * M)

# %% [markdown]
# ## LeNet-5 in float32
#
# The network of tutorial 8, trained with Adam.

# %%
if args.mnist is None:
    x_train, y_train, x_test, y_test = data.load_digits(image_size=28)
    source = "digits (8x8, upsampled to 28x28)"
else:
    root = Path(args.mnist)
    try:
        x_train, y_train = data.load_mnist(root, "train")
        x_test, y_test = data.load_mnist(root, "test")
        x_train, y_train = x_train[:8000], y_train[:8000]
        source = "MNIST (8,000 training images)"
    except FileNotFoundError:  # only the t10k files: 8,000 for training, 2,000 for testing
        images, labels = data.load_mnist(root, "test")
        order = np.random.default_rng(0).permutation(len(labels))
        x_train, y_train = images[order[:8000]], labels[order[:8000]]
        x_test, y_test = images[order[8000:]], labels[order[8000:]]
        source = "MNIST t10k, 8,000 train / 2,000 test"
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:200], y_test[:200]
print(f"data: {source}; train {x_train.shape}, test {x_test.shape}")
epochs = 1 if args.quick else (3 if args.mnist else 6)


def train(model, epochs: int, lr: float) -> None:
    optimizer = optim.Adam(model.parameters(), lr=lr)
    trainer = training.Trainer(model, optimizer, batch_size=32, seed=0, progress=False)
    trainer.fit((x_train, y_train), epochs=epochs)


def accuracy(model) -> float:
    return float((training.predict(model, x_test, batch_size=256).argmax(axis=1) == y_test).mean())


lenet = models.lenet5()
train(lenet, epochs, 2e-3)
results = {"float32": accuracy(lenet)}
sizes = {"float32": quantization.model_size_bytes(lenet)}
print(f"LeNet-5 float32: test accuracy {results['float32']:.3f}, {sizes['float32']:,} bytes")
assert sizes["float32"] == 61_706 * 4
assert results["float32"] > (0.2 if args.quick else 0.95)

# %% [markdown]
# ## Post-training quantization to int8
#
# `quantization.quantize(model, calibration_images)` traces the network into a chain of
# layers, folds batch norm and fuses ReLU, runs the calibration images through it to find each
# activation's range, and builds the integer model. Two ways to choose the range:
# `"minmax"` takes the smallest and largest value seen; `"percentile"` the 0.01st and 99.99th
# percentiles, so a few outliers no longer stretch the range (finer steps for the common
# values, clipping for the rare ones).

# %%
calibration = x_train[: 64 if args.quick else 512]
int8_models = {method: quantization.quantize(lenet, calibration, method=method)
               for method in ("minmax", "percentile")}
print(int8_models["minmax"])
for method, model in int8_models.items():
    key = f"int8 {method}"
    results[key], sizes[key] = accuracy(model), quantization.model_size_bytes(model)
    print(f"int8 ({method}): test accuracy {results[key]:.3f}, {sizes[key]:,} bytes")
ratio = sizes["float32"] / sizes["int8 minmax"]
print(f"{ratio:.2f} times smaller: int8 weights, with an int32 bias and an int32 multiplier + int8 shift "
      "per output channel")
assert 3.8 < ratio < 4.0
tolerance = 0.05 if args.quick else 0.01
for method in ("minmax", "percentile"):
    assert results[f"int8 {method}"] >= results["float32"] - tolerance, f"int8 ({method}) keeps the accuracy"

# %% [markdown]
# Inside, the integer model computes on int8 tensors: the first layer's output is a tensor of
# integers, and the reference kernels (numpy, the definition) and the compiled Numba kernels
# produce exactly the same integers.

# %%
integer_model = int8_models["minmax"]
first = integer_model[1](integer_model[0](Tensor(x_test[:4])))
print(f"after the first convolution: {first.dtype}, values {first.numpy().min()}..{first.numpy().max()}")
assert first.dtype == np.int8
with tinygrad_cnn.use_backend("reference"):
    reference_logits = training.predict(integer_model, x_test[:64])
np.testing.assert_array_equal(reference_logits, training.predict(integer_model, x_test[:64]))

# %% [markdown]
# **Speed.** Smaller is not automatically faster. The int8 kernels here are readable loops
# (Numba compiles their int32 multiply-adds to vector instructions), while the float32 model
# runs tuned convolution strategies and BLAS matrix products; production int8 engines win with
# hand-tuned kernels on instructions made for int8 dot products (such as AVX-512 VNNI). What
# int8 always gives is the 4x smaller model and integer-only arithmetic, which is what small
# chips without a floating-point unit need. The time depends on the machine (and on what else
# runs on it): read the ratio, not the milliseconds.


# %%
def inference_ms(model, repeats: int) -> float:
    batch = Tensor(x_test[:256])
    model.eval()
    with tinygrad_cnn.no_grad():
        model(batch)  # warm-up (compilation, caches)
        start = time.perf_counter()
        for _ in range(repeats):
            model(batch)
    return (time.perf_counter() - start) / repeats * 1e3


repeats = 1 if args.quick else 10
float_ms, int8_ms = inference_ms(lenet, repeats), inference_ms(integer_model, repeats)
n_images = min(256, len(x_test))
print(f"inference on {n_images} images: float32 {float_ms:.1f} ms, int8 {int8_ms:.1f} ms "
      f"(int8 / float32 = {int8_ms / float_ms:.2f})")

# %% [markdown]
# ## 4 bits: post-training quantization against quantization-aware training
#
# With 16 levels the rounding error is 16 times larger, and post-training quantization starts
# to cost accuracy. **Quantization-aware training** fine-tunes the network with the rounding in
# its forward pass: each weight and activation goes through a *fake quantization*
# $s\,(\mathrm{clamp}(\mathrm{round}(x/s) + z) - z)$, still in float. Rounding has no useful
# derivative, so the backward pass uses the **straight-through estimator**: the gradient passes
# unchanged where the value was not clipped. The latent weights stay real-valued and the
# network learns weights that survive the rounding. `prepare_qat` builds the fake-quantized
# network from the trained one, and `convert` turns it into integers.

# %%
ptq4 = quantization.quantize(lenet, calibration, weight_bits=4, activation_bits=4)
results["4-bit PTQ"] = accuracy(ptq4)
qat = quantization.prepare_qat(lenet, calibration, bits=4)
train(qat, 1 if args.quick else 2, 5e-4)
qat.eval()
qat4 = quantization.convert(qat)
results["4-bit QAT"] = accuracy(qat4)
sizes["4-bit PTQ"] = quantization.model_size_bytes(ptq4)
sizes["4-bit QAT"] = quantization.model_size_bytes(qat4)
recovered = results["4-bit QAT"] - results["4-bit PTQ"]
print(f"4 bits: post-training {results['4-bit PTQ']:.3f}, quantization-aware training "
      f"{results['4-bit QAT']:.3f} (recovered {100 * recovered:+.1f} points; float32 "
      f"{results['float32']:.3f})")
assert np.abs(qat4[1].weight.numpy()).max() <= 7, "4-bit weights: integers in [-7, 7]"
if not args.quick:
    assert results["4-bit QAT"] > results["4-bit PTQ"], "quantization-aware training recovers accuracy"
    assert results["4-bit QAT"] >= results["float32"] - 0.02

# %% [markdown]
# ## A binarized network
#
# `nn.BinarizedConv2d` and `nn.BinarizedLinear` (BinaryConnect and Binarized Neural Networks,
# Courbariaux, Hubara et al.) compute with $\mathrm{sign}(W)$ and $\mathrm{sign}(x)$: every
# weight and activation is +1 or -1. Training keeps real-valued latent weights, clipped to
# [-1, 1]; the backward pass treats sign as the identity where $|u| \le 1$ (the straight-through
# estimator with clipping) and as a constant elsewhere. `models.binarized_lenet()` keeps the
# pixels of the first layer real and puts batch norm before every sign. Its 116,880 binary
# weights take 14,610 bytes, a 32nd of their float32 size.

# %%
binary_net = models.binarized_lenet()
train(binary_net, 1 if args.quick else (3 if args.mnist else 6), 1e-2)
results["binarized"] = accuracy(binary_net)
sizes["binarized"] = nn.binarized_size_bytes(binary_net)
layers = [m for m in binary_net.modules() if isinstance(m, (nn.BinarizedConv2d, nn.BinarizedLinear))]
bits = sum(m.weight.numel() for m in layers)
packed = sum(nn.packed_weight(m).nbytes for m in layers)
print(f"binarized LeNet: test accuracy {results['binarized']:.3f}; {bits:,} binary weights in {packed:,} "
      f"bytes instead of {4 * bits:,} ({4 * bits / packed:.0f}x); with batch norm "
      f"{sizes['binarized']:,} bytes")
assert bits == 116_880 and 4 * bits / packed == 32
assert results["binarized"] > (0.15 if args.quick else 0.9)

# %% [markdown]
# **XNOR and popcount.** With +-1 stored as bits (1 for +1), a product of two signs is
# XNOR, and a dot product of n of them is $n - 2\,\mathrm{popcount}(a \oplus b)$: the last
# binarized layer, computed from packed bits, gives exactly its float output.

# %%
binary_net.eval()
with tinygrad_cnn.no_grad():
    features = binary_net.classifier[:3](binary_net.features(Tensor(x_test[:8])))  # input of the last layer
    expected = binary_net.classifier[3](features).numpy()
last = binary_net.classifier[3]
input_bits = np.packbits(features.numpy() >= 0, axis=1)   # (8, 16 bytes) for 128 inputs
weight_bits = np.packbits(last.weight.numpy() >= 0, axis=1)  # (10, 16 bytes)
differing = np.unpackbits(input_bits[:, None, :] ^ weight_bits[None, :, :], axis=2).sum(axis=2, dtype=int)
xnor_popcount = last.in_features - 2 * differing
np.testing.assert_array_equal(xnor_popcount, expected)
print("XNOR-popcount of the first image's scores:", xnor_popcount[0].tolist())

# %% [markdown]
# ## Pictures
#
# `13_ranges.png`: the activations entering LeNet-5's output layer and the two calibrated
# ranges. `13_weights.png`: one convolution kernel's weights at 32, 8, 4 and 1 bits.
# `13_accuracy_and_size.png`: test accuracy and bytes of every variant.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

lenet.eval()
with tinygrad_cnn.no_grad():
    hidden = lenet.classifier[:3](lenet.features(Tensor(calibration))).numpy().ravel()
ranges = {}
for method in ("minmax", "percentile"):
    prepared = quantization.calibrate(quantization.prepare(lenet, calibration, observer=method), calibration)
    # the FakeQuantize after the first dense layer (+ ReLU): the input of the output layer
    observer = [m for m in prepared if isinstance(m, quantization.FakeQuantize)][-2]
    ranges[method] = (float(observer.min_val.data), float(observer.max_val.data))
assert ranges["percentile"][1] <= ranges["minmax"][1]
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.hist(hidden, bins=80, color="0.6", log=True)
for (method, (lo, hi)), colour in zip(ranges.items(), ("C3", "C0")):
    label = f"{method}: [{lo + 0.0:.2f}, {hi:.2f}], step {(hi - lo) / 255:.4f}"
    ax.axvline(hi, color=colour, lw=2, label=label)
ax.set_xlabel("activation value (after the 84-unit dense layer and ReLU)")
ax.set_ylabel("count (log scale)")
ax.set_title("calibration: the range that 256 int8 levels must cover")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "13_ranges.png", dpi=90)
plt.close(fig)

kernel = lenet.features[3].weight.numpy()[0].ravel()  # one 6x5x5 kernel of the second convolution
order = np.argsort(kernel)
fig, ax = plt.subplots(figsize=(8, 3.6))
ax.plot(kernel[order], color="k", lw=2.5, label="float32")
for bits_, colour in ((8, "C0"), (4, "C1")):
    levels, scale = quantization.quantize_weight(kernel[None], bits_)
    ax.step(range(kernel.size), (levels[0] * scale[0])[order], where="mid", color=colour,
            label=f"{bits_} bits: {len(np.unique(levels))} levels used")
ax.plot(np.sign(kernel[order] + 0.0) * np.abs(kernel).mean(), color="C3", lw=1.5,
        label="1 bit: sign (times the mean |w|, for the picture)")
ax.set_xlabel("the 150 weights of one kernel, sorted")
ax.set_ylabel("weight")
ax.set_title("LeNet-5's second convolution, one kernel at 32, 8, 4 and 1 bits")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "13_weights.png", dpi=90)
plt.close(fig)

labels = {"4-bit PTQ": "4-bit PTQ (int8 storage)", "4-bit QAT": "4-bit QAT (int8 storage)",
          "binarized": "binarized LeNet (its own net)"}
names = list(results)
fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.8))
colours = [f"C{i}" for i in range(len(names))]
bars = left.barh([labels.get(n, n) for n in names], [results[n] for n in names], color=colours)
left.bar_label(bars, [f"{results[n]:.3f}" for n in names])
left.set_xlim(0, 1.15)
left.set_xlabel("test accuracy")
left.invert_yaxis()
bars = right.barh([labels.get(n, n) for n in names], [sizes[n] for n in names], color=colours)
right.bar_label(bars, [f"{sizes[n]:,} B" for n in names])
right.set_xscale("log")
right.set_xlim(5e3, 3e6)
right.set_xlabel("bytes to store the model (log scale)")
right.invert_yaxis()
right.set_yticks([])
fig.suptitle(f"LeNet-5 on {source}: float32, int8, 4 bits and a binarized LeNet")
fig.tight_layout()
fig.savefig(OUT / "13_accuracy_and_size.png", dpi=90)
plt.close(fig)
print("saved", *(OUT / f"13_{n}.png" for n in ("ranges", "weights", "accuracy_and_size")))
