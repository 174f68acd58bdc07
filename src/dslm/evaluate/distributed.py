"""Sharding sample generation across torchrun processes.

Each of W ranks draws its share of the N samples with its own seed; rank 0 gathers
the shares (``all_gather_object``) in rank order and scores them. Single-process runs
are rank 0 of a world of 1 and use the seed as given, so they match a 1-rank run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from dslm.errors import ConfigError

#: Odd 32-bit constant spreading rank seeds apart (rank 0 keeps the base seed).
_RANK_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard_sizes(num_samples: int, world_size: int) -> list[int]:
    """Sizes of the W shares of N samples: as even as possible, earlier ranks get the extra."""
    if num_samples < 0 or world_size < 1:
        raise ConfigError(f"cannot split {num_samples} samples over {world_size} processes")
    base, extra = divmod(num_samples, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank r's generator: ``seed`` for rank 0, distinct for every other rank."""
    return (seed + rank * _RANK_STRIDE) % (2 ** 63)


def merge_shards(shards: Sequence[list]) -> list:
    """Concatenate per-rank lists in rank order (the inverse of sharding)."""
    return [item for shard in shards for item in shard]


def context() -> DistContext:
    """The current process's place in a torchrun job (initialising the group if needed)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)   # all_gather_object stages through this GPU
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def gather(obj: Any, ctx: DistContext) -> list:
    """Every rank's ``obj`` in rank order (a one-element list when not distributed)."""
    if ctx.world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if ctx.world_size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
