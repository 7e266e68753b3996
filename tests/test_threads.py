"""Two threads may train two models at once (a live view, a data loader or a second model
beside the training): grad mode and the backend choice are per thread, the kernels are
re-entrant, and the results equal those of each model trained alone, bit for bit."""

from __future__ import annotations

import threading

import numpy as np

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, nn, optim
from tinygrad_cnn.nn import functional as F


def make_model(seed: int) -> nn.Module:
    tc.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 3),
    )


def batches(seed: int, steps: int):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((8, 1, 16, 16)).astype(np.float32), rng.integers(0, 3, 8))
            for _ in range(steps)]


def train(model: nn.Module, data, log: list | None = None) -> list[np.ndarray]:
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in data:
        loss = F.cross_entropy(model(Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with tc.no_grad():  # an evaluation in the middle must not disturb the other thread
            model.eval()
            model(Tensor(x[:2]))
            model.train()
        if log is not None:
            log.append(float(loss.item()))
    return [p.numpy().copy() for p in model.parameters()]


def test_two_threads_train_two_models_bit_identically_to_each_alone():
    data = [batches(10, 12), batches(11, 12)]
    alone = [train(make_model(seed), data[i]) for i, seed in enumerate((1, 2))]
    models = [make_model(1), make_model(2)]  # initialised before the threads: one global generator
    results: list = [None, None]
    errors: list = []

    def worker(i: int) -> None:
        try:
            results[i] = train(models[i], data[i])
        except Exception as error:  # noqa: BLE001 - reported below, with the thread's index
            errors.append((i, error))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for together, single in zip(results, alone):
        for a, b in zip(together, single):
            np.testing.assert_array_equal(a, b)
    assert tc.is_grad_enabled()


def test_kernels_run_in_a_forked_child_after_the_parent_started_its_pool():
    """The share pool's threads do not survive a fork; a child must start its own, not wait
    forever on queues nobody reads."""
    import multiprocessing

    from tinygrad_cnn.kernels.numba import shares

    x = Tensor(np.random.default_rng(0).standard_normal((8, 16, 32, 32)).astype(np.float32))
    with tc.use_backend("numba"):
        F.max_pool2d(x, 2)
    shares.run(lambda t, n: None, 2)  # make sure the parent's pool has a worker
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_pool_in_child)
        assert result.get(timeout=60) == (8, 16, 16, 16)


def _pool_in_child():
    from tinygrad_cnn.kernels.numba import shares

    shares.run(lambda t, n: None, 2)
    x = Tensor(np.random.default_rng(1).standard_normal((8, 16, 32, 32)).astype(np.float32))
    with tc.use_backend("numba"):
        return F.max_pool2d(x, 2).shape
