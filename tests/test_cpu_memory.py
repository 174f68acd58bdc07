"""dslm.train.cpu_memory: freed memory is reused by the next allocation (no fresh pages)."""

import platform
import resource

import pytest
import torch

from dslm.train import cpu_memory


def test_switch_off(monkeypatch):
    monkeypatch.setenv(cpu_memory.ENV, "0")
    assert cpu_memory.keep_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults(monkeypatch):
    """A step's temporaries (here 24 blocks of 4 MB), freed and allocated again step after
    step, come back without fresh pages from the third round on (glibc's default trims the
    freed heap top and faults them in again: about 23,000 faults in each of rounds 1-3)."""
    monkeypatch.delenv(cpu_memory.ENV, raising=False)
    assert cpu_memory.keep_freed_memory() is True
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [torch.ones(1_000_000) for _ in range(24)]
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del blocks
    assert max(faults[2:]) < 2000, faults
