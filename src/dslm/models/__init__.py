"""Denoisers on one DiT backbone, and the checkpoint format they share."""

from __future__ import annotations

from dslm.errors import ConfigError
from dslm.models.ar import ARModel
from dslm.models.config import ModelConfig, preset
from dslm.models.dsl import DSLDenoiser
from dslm.models.mdlm import MDLMDenoiser

MODEL_KINDS = {"dsl": DSLDenoiser, "mdlm": MDLMDenoiser, "ar": ARModel}


def build_model(cfg: ModelConfig):
    """A freshly initialised model of ``cfg.kind``."""
    cfg.validate()
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind '{cfg.kind}'; allowed: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[cfg.kind](cfg)


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ARModel", "DSLDenoiser", "MDLMDenoiser", "ModelConfig", "MODEL_KINDS",
           "build_model", "count_parameters", "preset"]
