"""torch.distributed set-up from environment variables (torchrun, SLURM/submitit alike)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return default


def env_local_rank() -> int:
    """This process's index on its node: ``LOCAL_RANK`` (torchrun, submitit's export), else ``SLURM_LOCALID``, else 0."""
    return _env_int("LOCAL_RANK", "SLURM_LOCALID", default=0)


def rank() -> int:
    """This process's rank in the joined process group; 0 when no group is joined (one process)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes of this run: the joined process group's size, else ``WORLD_SIZE`` / ``SLURM_NTASKS``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when ``WORLD_SIZE`` (torchrun) or ``SLURM_NTASKS`` (> 1) say so.

    Uses ``env://`` (MASTER_ADDR/MASTER_PORT must be set; submitit's ``helpers.TorchDistributedEnvironment``
    and torchrun set them), NCCL on CUDA and gloo on CPU. A single process returns rank 0 of 1.
    """
    world = _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)
    rank = _env_int("RANK", "SLURM_PROCID", default=0)
    local = env_local_rank()
    if world <= 1:
        return DistInfo(0, 1, 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL init, so each rank talks through its own GPU
    if not dist.is_initialized():
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(world))
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        log.info("joined process group: rank %d of %d (%s)", rank, world, backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local)


def resolve_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """``None``/"auto" → CUDA when available, else CPU; CUDA without an index → this process's local GPU.

    The local GPU is ``cuda:<local_rank>``, by default :func:`env_local_rank` (``LOCAL_RANK``, then
    ``SLURM_LOCALID``, then 0), so rank k of a node runs on its GPU k. An explicit index (``cuda:1``) is kept.
    """
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        local = env_local_rank() if local_rank is None else local_rank
        count = max(torch.cuda.device_count(), 1)
        if local >= count:
            log.warning("local rank %d but %d visible CUDA device(s): sharing cuda:%d", local, count, local % count)
        device = torch.device("cuda", local % count)
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank of the joined process group (a picklable object); ``value`` itself
    without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
