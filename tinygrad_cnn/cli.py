"""The command line: ``tinygrad-cnn train`` (also ``python -m tinygrad_cnn train``)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinygrad-cnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a network on the bundled digits")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--seed", type=int, default=0)
    return parser


def train(args: argparse.Namespace) -> float:
    """Train a small MLP on scikit-learn's 8x8 digits; print and return test accuracy."""
    import tinygrad_cnn as tc
    import tinygrad_cnn.nn.functional as F
    from tinygrad_cnn import Tensor, nn, optim
    from tinygrad_cnn.data import load_digits

    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    tc.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_digits(seed=args.seed)
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(Tensor(x_train[batch])), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {total / len(order):.4f}")
    with tc.no_grad():
        predictions = model(Tensor(x_test)).argmax(1).numpy()
    accuracy = float((predictions == y_test).mean())
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} images "
          f"({time.perf_counter() - start:.1f} s)")
    return accuracy


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            train(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f"tinygrad-cnn: error: {error}", file=sys.stderr)
        return 2
    return 0
