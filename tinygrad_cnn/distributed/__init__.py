"""``tinygrad_cnn.distributed``: synchronous data-parallel training over MPI (mpi4py).

W processes (started by ``mpirun -n W ...`` or ``tinygrad-cnn train --processes W``) each
hold a replica of the model and read 1/W of every global batch; after each backward pass
their gradients are averaged, so every replica takes the same step, the step one process
would take on the whole global batch.

    from tinygrad_cnn import distributed as dist, nn
    dist.init()                                   # a world of 1 without mpirun: no MPI needed
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # optional: global batch statistics
    ddp = dist.DistributedDataParallel(model)     # rank 0's weights copied to every process
    loader = dist.shard_loader(DataLoader(data, batch_size=64, shuffle=True, seed=0))
    for x, y in loader:                           # this rank's share (DistributedSampler)
        loss = F.cross_entropy(ddp(x), y)
        optimizer.zero_grad(); loss.backward()
        ddp.allreduce_gradients()                 # the one extra line: average the gradients
        optimizer.step()
    if dist.get_rank() == 0: tinygrad_cnn.save(model.state_dict(), "model.npz")

or simply ``Trainer(model, optimizer, distributed=True)``, which does all of this and prints,
logs and writes checkpoints on rank 0 only.

* :mod:`.world`: ``init``, ``get_rank``, ``get_world_size``, ``barrier``, ``abort``, and the
  collectives (with a timeout, and an uncaught exception in one process ends them all).
* :mod:`.ddp`: ``DistributedDataParallel`` (bucketed gradient all_reduce).
* :mod:`.sampler`: ``DistributedSampler`` and ``shard_loader``.
* :mod:`.launch`: how ``--processes`` finds and starts mpirun.
* ``nn.SyncBatchNorm`` (``tinygrad_cnn/nn/sync_batchnorm.py``): batch norm over the global batch.
"""

from tinygrad_cnn.distributed.ddp import DistributedDataParallel
from tinygrad_cnn.distributed.sampler import DistributedLoader, DistributedSampler, shard_loader
from tinygrad_cnn.distributed.world import (
    World,
    abort,
    barrier,
    get_rank,
    get_world,
    get_world_size,
    init,
    is_initialized,
    is_main_process,
    launched_by_mpi,
)

__all__ = [
    "init", "is_initialized", "get_rank", "get_world_size", "is_main_process", "barrier", "abort",
    "get_world", "World", "launched_by_mpi", "DistributedDataParallel", "DistributedSampler",
    "DistributedLoader", "shard_loader",
]
