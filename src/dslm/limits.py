"""Refuse model sizes that cannot fit in memory, before allocating anything.

The size fields of a config are each bounded (``dslm.models.config.LIMITS``), but
their product can still ask for terabytes (|V| = 2^24 x hidden 2^16). The parameter
count is taken from the model built on the meta device (no memory), times 4 bytes
and the number of copies the caller keeps (training: weights, gradients, two AdamW
moments and the EMA = 5), and compared with the machine's physical memory.
"""

from __future__ import annotations

import os

import torch

from dslm.errors import ConfigError


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parameter_count(cfg) -> int:
    """Parameters of the model of ``cfg`` (a ModelConfig), counted on the meta device.

    A DSL model is counted as the MDLM of the same backbone plus its table E [V, d]
    (building it would draw E, which the meta device cannot)."""
    import dataclasses

    from dslm.models import MODEL_KINDS

    extra = 0
    if cfg.kind == "dsl":
        extra = cfg.vocab_size * cfg.embed_dim
        cfg = dataclasses.replace(cfg, kind="mdlm")
    with torch.device("meta"):
        model = MODEL_KINDS[cfg.kind](cfg)
    return (sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
            + extra)


def check_model_memory(cfg, where: str, copies: int = 1, error=ConfigError) -> int:
    """Raise ``error`` when ``copies`` fp32 copies of the model would not fit in memory."""
    n = parameter_count(cfg)
    need = 4 * n * copies
    have = physical_memory()
    if have is not None and need > 0.9 * have:
        raise error(f"{where} declares a model of {n / 1e9:.2f}B parameters, which needs "
                    f"{need / 2 ** 30:.1f} GiB ({copies} fp32 copies) but this machine has "
                    f"{have / 2 ** 30:.1f} GiB; refusing before allocating")
    return n
