"""Run under ``mpirun -n 2``: data-parallel training equals one process on the whole batch.

Each check runs the 2-process version and, on the same ranks, the single-process oracle
(plain BatchNorm, no DistributedDataParallel, no communication) on the concatenated
batches, in float64. Rank 0 prints one line ``RESULT {json}`` with the largest differences;
tests/test_distributed.py asserts on them. Usage: equivalence.py OUTPUT_FOLDER
"""

import json
import sys
from pathlib import Path

import numpy as np
from equivalence_model import CLASSES, network  # beside this script

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import distributed as dist
from tinygrad_cnn import nn, optim
from tinygrad_cnn.training import CSVLogger, ModelCheckpoint, Trainer
from tinygrad_cnn.training import checkpoint as ckpt

OUT = Path(sys.argv[1])
world = dist.init()
assert world.size == 2, f"run me with mpirun -n 2, got a world of {world.size}"
B, STEPS = 6, 3


class WithUnusedLayer(nn.Module):
    """``net`` plus a layer that forward never uses: its gradient must stay None."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.unused = net, nn.Linear(2, 2).double()

    def forward(self, x):
        return self.net(x)


def sgd(model):
    return optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)


def state(model) -> dict:
    return {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def across_ranks(values: dict) -> float:
    """How far the replicas of the 2-process run are apart."""
    gathered = world.all_gather_object(values)
    return largest_difference(gathered[0], gathered[1])


rng = np.random.default_rng(1)
images = rng.standard_normal((STEPS, 2 * B, 1, 8, 8))
labels = rng.integers(0, CLASSES, (STEPS, 2 * B))
result = {}

# 1. The manual loop: DDP + SyncBatchNorm, SGD with momentum and weight decay.
#    Rank 1 starts from other random weights: the DDP broadcast must replace them.
model = WithUnusedLayer(nn.SyncBatchNorm.convert_sync_batchnorm(network(seed=10 + world.rank)))
assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 3
unused = model.unused
optimizer = sgd(model)
ddp = dist.DistributedDataParallel(model)
oracle = WithUnusedLayer(network(seed=10))  # rank 0's initial weights
oracle.load_state_dict(model.state_dict())
oracle_optimizer = sgd(oracle)
mine = slice(world.rank * B, (world.rank + 1) * B)


def train(model, optimizer, batch: slice, average=None) -> None:
    """STEPS steps of SGD on the rows ``batch`` of each step's images (average: the DDP call)."""
    for step in range(STEPS):
        loss = F.cross_entropy(model(tc.Tensor(images[step, batch])), labels[step, batch])
        optimizer.zero_grad()
        loss.backward()
        if average is not None:
            average()
        optimizer.step()


train(ddp, optimizer, mine, ddp.allreduce_gradients)
train(oracle, oracle_optimizer, slice(None))  # one process, the concatenated batches
assert unused.weight.grad is None and unused.bias.grad is None
result["manual_vs_oracle"] = largest_difference(state(model), state(oracle))
result["manual_across_ranks"] = across_ranks(state(model))
result["weights_moved"] = max(float(np.abs(a.numpy() - b.numpy()).max())
                              for a, b in zip(model.net.parameters(), network(seed=10).parameters()))

# The control: with plain BatchNorm (each process normalises by its own 6 examples) the
# same run is NOT the one-process run, so the check above can tell SyncBatchNorm works.
control = network(seed=10)
control_ddp = dist.DistributedDataParallel(control)
train(control_ddp, sgd(control), mine, control_ddp.allreduce_gradients)
result["plain_batchnorm_vs_oracle"] = largest_difference(state(control), state(oracle.net))

# 2. A forgotten allreduce_gradients is caught at the next forward (on every rank alike).
loss = F.cross_entropy(ddp(tc.Tensor(images[0, mine])), labels[0, mine])
optimizer.zero_grad()
loss.backward()
try:
    ddp(tc.Tensor(images[0, mine]))
    result["forgotten_allreduce"] = "not caught"
except RuntimeError as error:
    result["forgotten_allreduce"] = str(error)
with ddp.no_sync():  # accumulation: one local backward, then one averaged
    F.cross_entropy(ddp(tc.Tensor(images[1, mine])), labels[1, mine]).backward()
F.cross_entropy(ddp(tc.Tensor(images[2, mine])), labels[2, mine]).backward()
ddp.allreduce_gradients()

# 3. Processes that build different models get a clear error, not a hang.
try:
    dist.DistributedDataParallel(network(seed=0, width=4 + world.rank))
    result["model_mismatch"] = "not caught"
except ValueError as error:
    result["model_mismatch"] = str(error)

# 4. The Trainer: 2 processes with batch B equal 1 process with batch 2B, epoch by epoch,
#    with SyncBatchNorm, momentum, weight decay, a schedule, validation and checkpoints.
n = 2 * B * STEPS
x = rng.standard_normal((n, 1, 8, 8))
y = rng.integers(0, CLASSES, n)
x_val, y_val = rng.standard_normal((11, 1, 8, 8)), rng.integers(0, CLASSES, 11)  # 11: unequal shares
saves = []
original_save = ckpt.save_checkpoint
ckpt.save_checkpoint = lambda *a, **k: (saves.append(a[0]), original_save(*a, **k))


def trainer(model, **options):
    opt = sgd(model)
    return Trainer(model, opt, scheduler=optim.StepLR(opt, 1, 0.5), progress=False, seed=7, **options)


parallel_model = nn.SyncBatchNorm.convert_sync_batchnorm(network(seed=20 + world.rank))
callbacks = [ModelCheckpoint(OUT / "ckpt-{epoch}.npz", monitor="val_loss"), CSVLogger(OUT / "history.csv")]
parallel = trainer(parallel_model, batch_size=B, distributed=True, callbacks=callbacks)
parallel_history = parallel.fit((x, y), epochs=2, validation_data=(x_val, y_val))
single = trainer(network(seed=20), batch_size=2 * B)
single_history = single.fit((x, y), epochs=2, validation_data=(x_val, y_val))
result["trainer_vs_single"] = largest_difference(state(parallel_model), state(single.model))
result["trainer_across_ranks"] = across_ranks(state(parallel_model))
result["history_difference"] = max(abs(a - b) for key in single_history.history
                                   for a, b in zip(parallel_history[key], single_history[key]))
result["history_keys"] = sorted(parallel_history.history)
result["saves_per_rank"] = [len(s) for s in world.all_gather_object(saves)]
result["csv_loggers_per_rank"] = world.all_gather_object(
    sum(isinstance(c, CSVLogger) for c in parallel.callbacks))
if world.rank == 0:
    tc.save(single.model.state_dict(), OUT / "single.npz")

# 5. The sampler: every index once per epoch across the ranks (unequal shares with pad=False),
#    and equal padded shares.
covered = {}
for size, pad in ((36, True), (37, False), (37, True)):
    sampler = dist.DistributedSampler(range(size), shuffle=True, seed=3, pad=pad)
    counts = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        shares = world.all_gather_object(list(sampler))
        counts.append([len(s) for s in shares])
        assert sorted(set(shares[0]) | set(shares[1])) == list(range(size))
        if not pad or size % 2 == 0:
            assert sorted(shares[0] + shares[1]) == list(range(size)), (size, pad)
    covered[f"{size}-{'pad' if pad else 'nopad'}"] = counts
result["sampler_share_sizes"] = covered

# 6. Threads: the processes of this machine share its cores.
import numba  # noqa: E402 - loaded late on purpose: init() set NUMBA_NUM_THREADS before

result["numba_threads"] = numba.get_num_threads()
result["local_size"] = world.local_size
result["cores"] = len(__import__("os").sched_getaffinity(0))
if world.rank == 0:
    print("RESULT " + json.dumps(result), flush=True)
