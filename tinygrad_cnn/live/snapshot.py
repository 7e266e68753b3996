"""The pictures of the live view, computed away from training on a private copy of the model.

The training thread only copies the weights (``copy_weights``: a few arrays, well under a
millisecond for LeNet-5); :class:`ModelMirror` loads them into its own CPU copy of the model
and runs the shown test images through it, in evaluation mode, without a graph, on the
readable reference kernels (per thread: the training thread keeps its own backend). Every
leaf layer of the copy remembers its output for one image, so one forward pass gives both
the predictions of the grid and the activation maps of the selected input. Nothing here
draws from the library's random generator.
"""

from __future__ import annotations

import copy

import numpy as np

from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.device import move_array
from tinygrad_cnn.kernels import use_backend
from tinygrad_cnn.live.protocol import array_record, finite
from tinygrad_cnn.nn.module import Module
from tinygrad_cnn.tensor import Tensor
from tinygrad_cnn.training.callbacks import filter_grid

MAX_UNITS = 1024  # units of a dense layer sent at most


def copy_weights(model: Module) -> dict[str, np.ndarray]:
    """Every parameter and buffer as a CPU array that later optimizer steps cannot change."""
    weights = {}
    for name, tensor in model.state_dict().items():
        array = move_array(tensor.data, "cpu")
        weights[name] = array.copy() if array is tensor.data else array  # a GPU array is copied already
    return weights


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


class ModelMirror:
    """A CPU copy of ``model`` whose leaf layers record their outputs for one image of a batch."""

    def __init__(self, model: Module, max_maps: int = 64) -> None:
        self.model = copy.deepcopy(model).to("cpu").eval()
        for p in self.model.parameters():
            p.grad = None
        self.max_maps = max_maps
        self.keep = 0  # which image of the batch the layers remember
        self.records: list[tuple[str, Module, np.ndarray]] = []
        self.first_conv: tuple[str, Module] | None = None
        for name, module in self.model.named_modules():
            if not module._modules and module is not self.model:  # a leaf: a layer, not a container
                object.__setattr__(module, "forward", self._recording(name, module))

    def _recording(self, name: str, module: Module):
        forward = module.forward

        def recorded(*args, **kwargs):
            out = forward(*args, **kwargs)
            if isinstance(out, Tensor) and out.ndim in (2, 3, 4) and out.shape[0] > self.keep:
                self.records.append((name, module, out.numpy()[self.keep].copy()))
            return out

        return recorded

    def load(self, weights: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(weights)

    def run(self, images: np.ndarray, keep: int) -> np.ndarray:
        """The model's outputs for ``images`` (N, C, H, W); the layers record image ``keep``."""
        self.keep, self.records = keep, []
        with no_grad(), use_backend("reference"):
            return self.model(Tensor(images)).numpy()

    # ------------------------------------------------------------ messages
    def activations_message(self, image: np.ndarray, logits: np.ndarray, classes) -> list[dict]:
        """The ``layers`` of an ``activations`` message: input, every recorded layer, softmax."""
        layers = [self._layer("input", "Input", f"{'x'.join(map(str, image.shape))} image", 0, image)]
        seen: dict[str, int] = {}
        for name, module, output in self.records:
            seen[name] = seen.get(name, 0) + 1  # a layer called twice (shared weights) shows twice
            shown = name if seen[name] == 1 else f"{name} (call {seen[name]})"
            own = sum(p.numel() for p in module._parameters.values() if p is not None)
            layers.append(self._layer(shown, type(module).__name__, module.extra_repr(), own, output))
        if logits.ndim == 1:
            names = ", ".join(classes) if classes else f"{logits.size} classes"
            layers.append(self._layer("softmax", "Softmax", f"class probabilities ({names})", 0,
                                      softmax(logits[None])[0]))
        return layers

    def _layer(self, name: str, kind: str, description: str, parameters: int, output: np.ndarray) -> dict:
        # a map is a picture: at most max_maps of them; the units of a dense layer are one box each
        spatial = output.ndim >= 2 and np.prod(output.shape[1:]) > 1
        shown = output[: self.max_maps] if spatial else output.reshape(-1)[:MAX_UNITS]
        return {"name": name, "type": kind, "description": description, "parameters": int(parameters),
                "shape": list(output.shape), "maps": array_record(shown)}

    def filters_message(self) -> dict | None:
        """The first convolution's kernels (the first recorded layer with a 4-d weight)."""
        for name, module, _ in self.records:
            weight = module._parameters.get("weight")
            if weight is not None and weight.ndim == 4:
                return {"layer": name, "shape": list(weight.shape),
                        "grid": array_record(filter_grid(weight.numpy()))}
        return None


def predictions_message(logits: np.ndarray, labels: np.ndarray | None) -> dict:
    """Predicted class, its probability and right/wrong per image (pixel accuracy for
    segmentation), and the loss and accuracy over the shown images."""
    if logits.ndim == 2:  # classification: (N, K)
        probs = softmax(logits)
        predicted = probs.argmax(axis=1)
        probability = probs[np.arange(len(probs)), predicted]
        if labels is None or labels.ndim != 1:
            return {"predicted": predicted.tolist(), "probability": [finite(p) for p in probability],
                    "correct": [None] * len(predicted), "loss": None, "accuracy": None}
        right = predicted == labels
        loss = -np.log(np.maximum(probs[np.arange(len(probs)), labels], 1e-12)).mean()
        return {"predicted": predicted.tolist(), "probability": [finite(p) for p in probability],
                "correct": right.tolist(), "loss": finite(loss), "accuracy": finite(right.mean())}
    # segmentation: (N, K, H, W) scores against (N, H, W) masks
    predicted = logits.argmax(axis=1)
    if labels is None or labels.shape != predicted.shape:
        return {"predicted": None, "probability": [None] * len(predicted), "correct": [None] * len(predicted),
                "loss": None, "accuracy": None}
    pixel_accuracy = (predicted == labels).mean(axis=(1, 2))
    probs = softmax(logits)
    picked = np.take_along_axis(probs, labels[:, None].astype(np.int64), axis=1)
    loss = -np.log(np.maximum(picked, 1e-12)).mean()
    return {"predicted": None, "probability": [finite(a) for a in pixel_accuracy],
            "correct": [None] * len(predicted), "loss": finite(loss),
            "accuracy": finite(pixel_accuracy.mean())}
