"""DDP plumbing for CLIP training: read torchrun's environment, init the process group, wrap the model.

Under ``torchrun --nproc_per_node=N`` the variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` are set; backend NCCL on GPUs, gloo on CPU. Without them everything
is a single process (rank 0 of 1).

Example:
    >>> ctx = distributed_context()
    >>> ctx.world_size, ctx.is_main
    (1, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DistContext", "distributed_context", "init_distributed", "reduce_mean", "shutdown_distributed"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def distributed_context() -> DistContext:
    """Rank facts from an initialised process group, else from torchrun's environment, else single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return DistContext(
            torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), torch.distributed.get_world_size()
        )
    return DistContext(
        int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    )


def init_distributed(backend: str | None = None) -> DistContext:
    """Initialise the default process group when ``WORLD_SIZE > 1`` (idempotent); returns the context."""
    ctx = distributed_context()
    if ctx.enabled and not torch.distributed.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(ctx.local_rank)
        torch.distributed.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    return distributed_context()


def shutdown_distributed() -> None:
    """Destroy the process group if one is initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (a detached copy); the value itself when single-process."""
    out = value.detach().clone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(out)
        out /= torch.distributed.get_world_size()
    return out
