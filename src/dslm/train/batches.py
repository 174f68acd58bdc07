"""Which blocks every micro-batch reads, and which seed drives its noise.

The training stream is a sequence of global positions p = 0, 1, 2, ...; position p
reads block ``perm_e[p mod N]`` of the N training blocks, where ``e = p // N`` and
``perm_e`` is a permutation seeded by (seed, e). Optimizer step t consumes positions
[t G, (t + 1) G) with G = batch_size x world_size x grad_accum, split into
``world_size x grad_accum`` micro-batches of ``batch_size``; micro-batch j (rank r runs
j = r * grad_accum + m for m = 0..grad_accum-1) reads positions t G + j B + [0, B).

The random numbers of micro-batch (t, j) (SNR draws, channel noise, masking, dropout)
come from a generator seeded by (seed, t, j). So the data position and every random
draw are functions of the step alone: a resumed run repeats an uninterrupted one
exactly, and N processes reproduce one process with the same global batch.
Validation noise is seeded by the validation batch alone (``val_seed``), so runs with
different seeds are scored on the same draws.
"""

from __future__ import annotations

import numpy as np
import torch

#: Stream tags keeping the seeds of training noise, validation noise and data order apart.
_TRAIN, _VAL, _ORDER = 0, 1, 2


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def train_seed(seed: int, step: int, micro: int) -> int:
    return derive_seed(seed, _TRAIN, step, micro)


def val_seed(batch: int) -> int:
    """The noise seed of validation batch ``batch``: the same in every run (any train.seed)."""
    return derive_seed(0, _VAL, batch)


class BlockStream:
    """Deterministic per-step batches of token blocks ``[B, L]`` from ``blocks`` [N, L]."""

    def __init__(self, blocks: np.ndarray, batch_size: int, micro_per_step: int, seed: int):
        self.blocks = blocks
        self.batch_size = batch_size
        self.micro_per_step = micro_per_step
        self.seed = seed
        self._epoch = -1
        self._perm: np.ndarray | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.micro_per_step

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng(derive_seed(self.seed, _ORDER, epoch))
            self._perm = rng.permutation(len(self.blocks))
            self._epoch = epoch
        return self._perm

    def indices(self, step: int, micro: int) -> np.ndarray:
        """Block indices of micro-batch ``micro`` of optimizer step ``step``."""
        n = len(self.blocks)
        start = step * self.global_batch + micro * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(positions // n):
            sel = positions // n == epoch
            out[sel] = self._permutation(int(epoch))[positions[sel] % n]
        return out

    def batch(self, step: int, micro: int, device: torch.device) -> torch.Tensor:
        """Token ids [B, L] (int64) on ``device``; pinned and copied asynchronously on GPU."""
        ids = torch.from_numpy(np.asarray(self.blocks[self.indices(step, micro)], dtype=np.int64))
        if device.type == "cuda":
            return ids.pin_memory().to(device, non_blocking=True)
        return ids


def val_batches(blocks: np.ndarray, batch_size: int, count: int) -> list[np.ndarray]:
    """The fixed validation set: the first ``count`` batches of ``batch_size`` blocks."""
    n = min(count, -(-len(blocks) // batch_size))
    return [np.arange(i * batch_size, min((i + 1) * batch_size, len(blocks))) for i in range(n)]
