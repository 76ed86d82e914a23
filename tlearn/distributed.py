"""Several processes under torchrun: what ``train.fit`` adds when ``WORLD_SIZE`` > 1.

Started by ``torchrun --nproc_per_node=N script.py``, the same script runs as N processes:
``fit`` sees torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joins the
process group (:func:`distributed`), wraps model and objective in PyTorch's
``DistributedDataParallel`` (:func:`ddp_step`: gradients averaged across processes at every
step), gives each process its own shard of every epoch's shuffled order
(``data.base.shard``), and sums the epoch's metrics over all processes
(:func:`all_reduce_sums`). ``batch_size`` is per process: the global batch is
N × ``batch_size``. Only rank 0 shows progress and writes checkpoints. Outside torchrun every
function here is a no-op: ``(rank, world) = (0, 1)``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from tlearn import checks
from tlearn.runtime import get_device

__all__ = [
    "DIST_TIMEOUT", "distributed", "process_device", "same_on_every_rank", "ddp_step",
    "all_reduce_sums", "average_buffers", "check_shards",
]  # fmt: skip

#: Seconds a process waits for the others (to join, or in a collective) before it gives up
#: with an error: a rank that failed brings the rest down instead of leaving them waiting
#: forever. The environment variable ``TLEARN_DIST_TIMEOUT`` overrides it (read when used).
DIST_TIMEOUT = 600.0

#: What torchrun sets for every process besides ``WORLD_SIZE``.
_TORCHRUN_VARIABLES = ("RANK", "MASTER_ADDR", "MASTER_PORT")


def distributed(device: torch.device | str | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless started by torchrun.

    Under torchrun (``WORLD_SIZE`` > 1) the first call joins the process group — NCCL when
    ``device`` is a GPU (each process on GPU ``LOCAL_RANK``), Gloo on the CPU — with a
    timeout of :data:`DIST_TIMEOUT` seconds (``TLEARN_DIST_TIMEOUT`` overrides it): a peer
    that never joins, or stops answering, ends the wait with an error after that long.
    Later calls only read it.

    >>> distributed("cpu")   # a plain Python process
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = checks.env_int("WORLD_SIZE", 1, minimum=1)
    if world <= 1:
        return 0, 1
    missing = [v for v in _TORCHRUN_VARIABLES if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: this process was not "
            f"started by torchrun. Start it with torchrun --nproc_per_node={world} script.py, "
            "or unset WORLD_SIZE to train in one process."
        )
    timeout = checks.env_float("TLEARN_DIST_TIMEOUT", DIST_TIMEOUT)
    cuda = get_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(checks.env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout))
    except RuntimeError as e:  # torch's DistStoreError: a peer never joined
        if "timeout" not in str(e).lower() and "timed out" not in str(e).lower():
            raise
        raise RuntimeError(
            f"not all {world} processes joined within {timeout:g} s (TLEARN_DIST_TIMEOUT "
            "bounds the wait): a peer failed to start or crashed; check every process's "
            "output, or raise TLEARN_DIST_TIMEOUT for slow starts."
        ) from e
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size()


def process_device(device: torch.device | str | None) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``: :func:`distributed`, and under torchrun on GPUs this
    process's own GPU (``LOCAL_RANK``) instead of the first."""
    device = get_device(device)
    rank, world = distributed(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    return rank, world, device


def same_on_every_rank(value: int) -> int:
    """Rank 0's ``value`` on every process (a shuffling seed: all ranks must cut one order)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _Step(nn.Module):
    """``objective(model, x, y, progress)`` as one module, so that DistributedDataParallel
    averages the gradients of the model *and* of a trainable objective (a discriminator)."""

    def __init__(self, model: nn.Module, objective: Callable):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, y, progress):
        return self.objective(self.model, x, y, progress)


def ddp_step(model: nn.Module, objective: Callable, device: torch.device, world: int):
    """``(x, y, progress) → objective(model, x, y, progress)``; under torchrun wrapped in
    DistributedDataParallel, so that the backward pass averages the gradients."""
    if world == 1:
        return lambda x, y, p: objective(model, x, y, p)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_Step(model, objective), device_ids=ids)


def all_reduce_sums(sums: dict, seen: int, device: torch.device) -> tuple[dict, int]:
    """Add every process's epoch sums (and image counts): the metrics of the global epoch."""
    keys = sorted(sums)
    packed = torch.tensor([sums[k] for k in keys] + [seen], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return dict(zip(keys, packed[:-1].tolist(), strict=True)), int(packed[-1].item())


def average_buffers(model: nn.Module) -> None:
    """Average floating buffers (BatchNorm running statistics) over the processes: each one
    updated its own from its own batches after DDP's last broadcast of rank 0's."""
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= dist.get_world_size()


def check_shards(world: int, batches: int, n: int, batch_size: int) -> None:
    """Refuse more processes than one pass over the ``n`` images has ``batches``: every
    process needs at least one batch of its own."""
    if world > batches:
        raise ValueError(
            f"{world} processes but {n} images make only {batches} batch(es) of {batch_size}: "
            "every process needs at least one batch. Start fewer processes (torchrun "
            "--nproc_per_node), or use a smaller batch_size or more data."
        )
