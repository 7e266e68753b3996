"""Write torchvision_state_dicts.json: the state_dict names and shapes of torchvision's own models.

The oracle for tests/test_pretrained.py: these lists come from torchvision's definitions
(torchvision 0.28.0, run once with this script), not from our code, so a test that compares
our models' state dicts with them checks that torchvision's weight files load into ours.
Run (needs torch and torchvision): python tests/data/make_torchvision_state_dicts.py

The torchvision wheel on PyPI registers CUDA operators (nms, ...) that a CPU build of torch
lacks; only the model definitions are needed here, so that registration module is skipped.
"""

import json
import sys
import types
from pathlib import Path

MODELS = ["resnet18", "resnet50", "vgg11", "vgg16", "vgg11_bn", "alexnet", "densenet121"]


def import_torchvision():
    name = "torchvision._meta_registrations"
    sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision

    return torchvision


def main() -> None:
    torchvision = import_torchvision()
    table = {"torchvision": torchvision.__version__, "models": {}}
    for name in MODELS:
        state = getattr(torchvision.models, name)().state_dict()
        table["models"][name] = [[key, list(value.shape)] for key, value in state.items()]
    out = Path(__file__).with_name("torchvision_state_dicts.json")
    out.write_text(json.dumps(table, separators=(",", ":")) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in table["models"].items()))


if __name__ == "__main__":
    main()
