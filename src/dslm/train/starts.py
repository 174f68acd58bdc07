"""Starting points other than random weights.

* :func:`continue_from`: a dslm checkpoint of the run's kind, trained for more steps
  with a fresh optimizer (``dslm train --init CKPT``; e.g. the demo's MDLM control run,
  given the same extra steps as the DSL fine-tune).
* :func:`finetune_start`: a DSL denoiser initialised from an MDLM checkpoint with
  ``dslm.models.convert.dsl_from_mdlm`` (backbone copied, only what DSL adds is new):
  the paper's fine-tuning start (``dslm finetune --from CKPT``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dslm.errors import CheckpointError
from dslm.models import checkpoint

#: ModelConfig fields that only a DSL model has; the fine-tune config sets them.
DSL_FIELDS = ("embed_dim", "embed_seed", "freeze_embed", "snr_max", "mask_weight", "beta_init",
              "norm_conditioning", "activation_checkpointing")


def continue_from(path: str | Path, kind: str) -> torch.nn.Module:
    """The model of dslm checkpoint (or run folder) ``path``, which must be of ``kind``."""
    return checkpoint.load(path, expect_kind=kind)


def run_config_of(path: str | Path):
    """The ``RunConfig`` a dslm checkpoint was trained with (metadata ``run_config``), or None."""
    from dslm.config import from_dict
    from dslm.errors import ConfigError
    from dslm.train.config import RunConfig

    saved = checkpoint.read_config(path).get("metadata", {}).get("run_config")
    if not isinstance(saved, dict):
        return None
    try:
        return from_dict(RunConfig, saved)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path} holds an invalid run config: {e}") from None


def _is_dslm_checkpoint(source: str | Path) -> bool:
    try:
        checkpoint.read_config(source)
    except CheckpointError:
        return False
    return True


def load_mdlm_source(source: str | Path, trust_pickle: bool = False) -> torch.nn.Module:
    """An MDLM denoiser from a dslm MDLM checkpoint, or any source ``dslm.models.hub`` reads."""
    if _is_dslm_checkpoint(source):
        return checkpoint.load(source, expect_kind="mdlm")
    try:
        from dslm.models.hub import load_mdlm
    except ImportError:
        raise CheckpointError(f"{source} is not a dslm checkpoint, and reading public MDLM "
                              "checkpoints needs dslm.models.hub, which this install lacks") from None
    return load_mdlm(source, trust_pickle=trust_pickle)


def finetune_start(source: str | Path, dsl_settings: dict, trust_pickle: bool = False):
    """A DSL denoiser converted from the MDLM at ``source`` (backbone copied).

    ``dsl_settings`` holds DSL-only ModelConfig fields (:data:`DSL_FIELDS`, e.g. the
    table dimension ``embed_dim``); everything else comes from the MDLM. The MDLM's
    checkpoint folder and metadata are carried over, so training reuses its tokenizer.
    """
    from dslm.models.convert import dsl_from_mdlm

    mdlm = load_mdlm_source(source, trust_pickle)
    overrides = {k: v for k, v in dsl_settings.items() if k in DSL_FIELDS}
    dsl = dsl_from_mdlm(mdlm.to("cpu"), **overrides)
    dsl.checkpoint_path = getattr(mdlm, "checkpoint_path", None)
    dsl.checkpoint_metadata = dict(getattr(mdlm, "checkpoint_metadata", None) or {})
    return dsl
