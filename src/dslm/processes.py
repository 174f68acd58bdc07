"""Devices and processes: one device resolver and one process layout (one process, or a
``torchrun`` job) shared by training, sampling and sweeps.

``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`setup` reads them, joins the process group (NCCL on GPU,
gloo on CPU) and resolves the device (``cuda:LOCAL_RANK`` on GPU machines). Rank 0
alone writes files and logs. Sampling shards N samples over W ranks, each with its own
seed; rank 0 gathers the shares in rank order (a 1-rank run uses the seed as given).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from dslm.errors import ConfigError

#: Odd constant spreading rank seeds apart (rank 0 keeps the base seed).
_RANK_STRIDE = 1_000_003


def resolve_device(name: str = "auto", local_rank: int = 0, what: str = "device") -> torch.device:
    """The device ``name`` means: ``auto`` (or empty) is ``cuda:LOCAL_RANK`` when a GPU is
    visible, else ``cpu``; ``cuda`` is this process's GPU; ``cuda:N``, ``cpu`` or any other
    torch device name as given. A GPU asked for where there is none, or a name torch
    does not know, is a ConfigError naming ``what``."""
    name = name or "auto"
    if name in ("auto", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            if name == "auto":
                return torch.device("cpu")
            raise ConfigError(f"{what} is '{name}' but no CUDA GPU is available")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank)
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{what}: unknown device '{name}' (cpu, cuda, cuda:N or auto)") from None


@dataclass(frozen=True)
class Dist:
    """This process's place in the job and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False          # True when setup() created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", what: str = "device") -> Dist:
    """The process layout, joining the process group when launched by torchrun
    (``WORLD_SIZE`` > 1) and it is not joined yet."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    resolved = resolve_device(device, local_rank if world_size > 1 else 0, what)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        _import_dynamo_first()
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)   # collectives stage through this GPU
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size)
        owns = True
    return Dist(rank, world_size, local_rank, resolved, owns)


def _import_dynamo_first() -> None:
    """Import ``torch._dynamo`` before the process group exists.

    ``torch.distributed.nn.functional`` binds ``group.WORLD`` as default arguments when
    it is imported; ``torch._dynamo`` imports it, and DDP imports ``torch._dynamo``.
    First imported after ``init_process_group``, those defaults hold the default group
    for good: ``destroy_process_group`` cannot free it and its worker threads outlive
    :func:`teardown` (seen with gloo on torch 2.13). A worker thread that frees a
    finished collective's tensors while the interpreter shuts down then aborts the
    process: "terminate called without an active exception", SIGABRT after a
    successful run. Imported first, the defaults are None, the group is freed in
    teardown and its threads are joined while Python is alive (``tests/test_ddp.py``
    checks this).
    """
    import torch._dynamo  # noqa: F401


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


def gather(obj: Any, d: Dist) -> list:
    """Every rank's ``obj`` in rank order (a one-element list when not distributed)."""
    if not d.enabled:
        return [obj]
    out: list = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
