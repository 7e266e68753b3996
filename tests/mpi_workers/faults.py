"""Run under ``mpirun -n 2``: rank 1 fails in the middle of distributed training.

Usage: faults.py MODE, MODE one of
  raise  rank 1 raises an exception (the excepthook of ``init`` aborts every process)
  kill   rank 1 is killed by SIGKILL (mpirun sees it die and ends rank 0)
  leave  rank 1 leaves the training loop and exits normally (rank 0 waits in its next
         collective until the timeout, TINYGRAD_CNN_DISTRIBUTED_TIMEOUT, then aborts)
The run must end with a non-zero exit code and a clear message, never hang.
"""

import os
import signal
import sys

import numpy as np

import tinygrad_cnn as tc
from tinygrad_cnn import distributed as dist
from tinygrad_cnn import nn, optim
from tinygrad_cnn.training import LambdaCallback, Trainer

MODE = sys.argv[1]
world = dist.init()


def fail(batch, logs):
    if world.rank != 1 or batch != 2:
        return
    if MODE == "raise":
        raise RuntimeError("rank 1 fails on purpose")
    if MODE == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if MODE == "leave":
        print("rank 1 leaves the training loop", file=sys.stderr, flush=True)
        sys.exit(0)


tc.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
rng = np.random.default_rng(0)
x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 2, 64)
trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), progress=False, batch_size=4, seed=0,
                  distributed=True, callbacks=[LambdaCallback(on_batch_end=fail)])
trainer.fit((x, y), epochs=50)
print("finished: the failure was not noticed", flush=True)
