"""Process layout: one process, or DDP under ``torchrun`` (NCCL on GPU, gloo on CPU).

``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`setup` reads them, joins the process group and picks the
device (``cuda:LOCAL_RANK`` on GPU machines). Rank 0 alone writes files and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dslm.errors import ConfigError


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool          # True when setup() created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _device(preference: str, local_rank: int, world_size: int) -> torch.device:
    if preference == "cpu":
        return torch.device("cpu")
    if preference.startswith("cuda") or preference == "auto":
        if not torch.cuda.is_available():
            if preference == "auto":
                return torch.device("cpu")
            raise ConfigError(f"config key 'train.device' is '{preference}' but no CUDA GPU is available")
        if preference.startswith("cuda:"):
            return torch.device(preference)
        return torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    raise ConfigError(f"config key 'train.device': unknown value '{preference}'")


def setup(device_preference: str = "auto") -> Dist:
    """Join the DDP group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = _device(device_preference, local_rank, world_size)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size)
        owns = True
    return Dist(rank, world_size, local_rank, device, owns)


def teardown(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce(tensor: torch.Tensor, d: Dist, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """In-place all-reduce across ranks (a no-op in one process)."""
    if d.enabled:
        dist.all_reduce(tensor, op=op)
    return tensor


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
