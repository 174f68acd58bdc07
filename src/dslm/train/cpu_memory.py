"""CPU training: keep freed memory in the process instead of handing it back every step.

A training step allocates and frees the same large temporaries every step (activations,
[rows, V] chunks, gradients). glibc's malloc serves a block above its mmap threshold
(128 KiB at start, raised on the fly to at most 32 MiB) with fresh pages from ``mmap``
and unmaps it on free, and it trims the top of the heap once more than twice that
threshold is free; either way the next step's first write to each page is a page fault
that the kernel serves with a zeroed page. At the ``tiny`` size (batch 16, one thread)
that was about 73,000 faults and 0.12 s of system time per DSL step, a fifth of the step
(benchmarks/README.md); cache-sized row chunks (``dslm.models.train_rows``) leave about
7,800.

``keep_freed_memory()`` fixes glibc's ``M_MMAP_THRESHOLD`` at 32 MiB (the ceiling glibc
itself raises it to) and ``M_TRIM_THRESHOLD`` at 256 MiB (``mallopt``): every block up to
32 MiB comes from the heap from the first step on, and up to 256 MiB of freed heap stays
in the process for the next step. At the tiny size this took the page faults of a DSL
step from about 7,800 to 1 with the same peak memory (about 480 MB resident). (A 1 GiB
mmap threshold is no better, and glibc's aligned allocations, which PyTorch uses, can
leave holes that a repeated large block does not reuse.) The setting is process-wide and
stays for the life of the process. ``dslm train`` applies it when training on the CPU;
``DSLM_CPU_MALLOC=0`` leaves malloc alone. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

ENV = "DSLM_CPU_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the thresholds once per process; True where they are in effect."""
    global _applied
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    if _applied is None:
        _applied = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
            except OSError:
                return False
            _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
