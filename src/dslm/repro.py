"""Reproducibility switches: deterministic kernels and a fixed CPU thread count.

On one machine, with the same seed, thread count and library versions, dslm's
training and sampling are bit-identical when ``torch.use_deterministic_algorithms``
is on: every random draw comes from generators seeded by (seed, step, micro-batch),
and the deterministic kernels fix the order of floating-point accumulations that
some backward passes (embedding and index accumulation) otherwise leave to thread
scheduling. Across machines (another CPU, thread count, BLAS or torch version) the
floating-point order changes and results agree only to rounding (~1e-7 relative at
first, growing over training).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


@contextlib.contextmanager
def reproducible(deterministic: bool = True, num_threads: int = 0,
                 device_type: str = "cpu") -> Iterator[None]:
    """Within the block: deterministic algorithms (if asked) and ``num_threads`` CPU
    threads (0 keeps torch's count); both restored on exit."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic GEMMs (read when CUDA starts)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        if num_threads and device_type == "cpu":
            torch.set_num_threads(num_threads)
        # warn_only: an op without a deterministic kernel warns instead of failing
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        if torch.get_num_threads() != prev_threads:
            torch.set_num_threads(prev_threads)
