"""Initialise a DSL denoiser from an MDLM denoiser (the paper's fine-tuning start).

* every backbone weight whose name and shape match is copied (blocks, sigma_map,
  final norm and adaLN);
* ``W_in`` (``vocab_embed.embedding``, [V + 1, hidden]) <- MDLM's input table, [MASK]
  row included, so the converter's [MASK] slot reads MDLM's [MASK] embedding;
* the output layer is MDLM's minus the [MASK] row (DSL predicts over V only);
* only what DSL adds is new: the unit-sphere table E, beta and the slot bias b
  (b = 0 except b_mask = log(mask_weight / (1 - mask_weight) * V)).

Before any fine-tuning the DSL model then behaves as MDLM on endpoint states
(masked -> y = 0, revealed -> y = snr_max e_x) up to the converter's leftover weight
``1 - mask_weight`` (tests check the match and that it tightens as mask_weight -> 1).
The DSL model is fed no time input, matching an MDLM trained without one.
"""

from __future__ import annotations

import dataclasses

import torch

from dslm.errors import CheckpointError
from dslm.models.dsl import DSLDenoiser
from dslm.models.mdlm import MDLMDenoiser


def dsl_from_mdlm(mdlm: MDLMDenoiser, **overrides) -> DSLDenoiser:
    """A DSL denoiser with MDLM's backbone; ``overrides`` set DSL-only config fields."""
    if getattr(mdlm, "kind", None) != "mdlm":
        raise CheckpointError(f"fine-tuning needs an MDLM model, got a '{getattr(mdlm, 'kind', '?')}' model")
    cfg = dataclasses.replace(mdlm.config, kind="dsl", time_conditioning=False, input_beta=0.0,
                              **overrides)
    dsl = DSLDenoiser(cfg)
    src = mdlm.backbone.state_dict()
    dst = dsl.backbone.state_dict()
    v = cfg.vocab_size
    with torch.no_grad():
        for name, tensor in dst.items():
            if name in ("output_layer.linear.weight", "output_layer.linear.bias"):
                tensor.copy_(src[name][:v])          # drop the [MASK] row
            elif name in src and src[name].shape == tensor.shape:
                tensor.copy_(src[name])
            else:
                raise CheckpointError(f"MDLM backbone tensor '{name}' is missing or has another shape")
    dsl.backbone.load_state_dict(dst)
    return dsl
