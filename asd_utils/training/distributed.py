"""Several processes (GPUs) with PyTorch's own distributed engine: ``torchrun`` + DDP.

Start any script, or the notebook runner, under ``torchrun --nproc_per_node N``; torchrun sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
:func:`init_distributed` (called by ``context.start`` and by the trainer) joins the process
group: NCCL when CUDA is available, gloo otherwise. Without those variables every function here
is a no-op that describes a world of one process, so the same code runs unchanged on one device.

- :func:`distributed_loader` re-wraps a training ``DataLoader`` with a ``DistributedSampler``
  (per-epoch seed through ``set_epoch``) and a per-process batch of ``global_batch / world_size``,
  so the global batch, and with it the learning-rate schedule, stays as configured.
- :func:`shard_slice` / :func:`gather_rows` split clips into contiguous, balanced shards and put
  the results back together in clip order.
- :func:`is_main_process` guards files: checkpoints, caches, results and figures are written by
  rank 0 only, followed by :func:`barrier`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

__all__ = [
    "barrier",
    "distributed_loader",
    "gather_rows",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "local_rank",
    "main_process_first",
    "rank",
    "shard_slice",
    "world_size",
]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK`` set by torchrun; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0 (and always without a process group): the process that writes files."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; return True if distributed.

    Does nothing (returns False) when ``WORLD_SIZE`` is unset or 1. Idempotent. ``backend``
    defaults to ``"nccl"`` with CUDA and ``"gloo"`` on CPU; with CUDA the process binds to GPU
    ``LOCAL_RANK``.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: "
                           "start the script with torchrun --nproc_per_node N")
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    return dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if is_distributed():
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. to write a cache), the others after it has finished."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


def shard_slice(n_items: int, *, rank_: int | None = None, world_size_: int | None = None) -> slice:
    """Contiguous, balanced slice of ``range(n_items)`` for one rank (sizes differ by at most 1)."""
    r = rank() if rank_ is None else int(rank_)
    w = world_size() if world_size_ is None else int(world_size_)
    if not 0 <= r < w:
        raise ValueError(f"rank {r} outside a world of {w} processes")
    base, extra = divmod(int(n_items), w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def gather_rows(local: np.ndarray, n_items: int) -> np.ndarray:
    """Concatenate every rank's ``(n_local, ...)`` shard (from :func:`shard_slice`) in rank order.

    Returns the full ``(n_items, ...)`` array on every rank; without a process group, ``local``.
    """
    if not is_distributed():
        return local
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, np.ascontiguousarray(local))
    parts = [p for p in parts if p is not None and len(p)]
    full = np.concatenate(parts, axis=0) if parts else local[:0]
    if len(full) != n_items:
        raise RuntimeError(f"gathered {len(full)} rows from {world_size()} ranks, expected {n_items}")
    return full


def distributed_loader(loader: DataLoader, *, seed: int = 0) -> DataLoader:
    """The same data as ``loader``, split over the processes with a ``DistributedSampler``.

    The per-process batch is ``loader.batch_size / world_size`` (it must divide), so an optimizer
    step still sees the configured global batch. Shuffling follows the original loader
    (``RandomSampler`` -> shuffled with ``seed + epoch``: call ``sampler.set_epoch(epoch)``).
    A loader that already has a ``DistributedSampler`` is returned as it is.
    """
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if loader.batch_size is None:
        raise ValueError("distributed_loader needs a DataLoader built with batch_size (no custom batch_sampler)")
    world = world_size()
    if loader.batch_size % world:
        raise ValueError(f"global batch {loader.batch_size} is not divisible by {world} processes: "
                         "choose a batch size that is a multiple of --nproc_per_node")
    sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank(),
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=int(seed),
                                 drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // world, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last)
