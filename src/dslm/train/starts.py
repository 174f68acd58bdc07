"""Starting points other than random weights.

More steps of a dslm checkpoint of the run's kind (``dslm train --init CKPT``) start
from ``open_checkpoint(path, expect_kind=kind)``; :func:`finetune_start` is the
paper's fine-tuning start (``dslm finetune --from CKPT``): a DSL denoiser initialised
from an MDLM checkpoint with ``dslm.models.convert.dsl_from_mdlm`` (backbone copied,
only what DSL adds is new).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dslm.models.checkpoint import Checkpoint, open_checkpoint
from dslm.models.dsl import DSLDenoiser


def finetune_start(source: str | Path, dsl_settings: dict, trust_pickle: bool = False) -> Checkpoint:
    """The MDLM checkpoint at ``source`` (any source ``open_checkpoint`` reads) with its
    model converted to a DSL denoiser (backbone copied).

    ``dsl_settings`` holds DSL-only ModelConfig fields (``DSLDenoiser.OWN_FIELDS``, e.g. the
    table dimension ``embed_dim``); everything else comes from the MDLM. The path and
    metadata stay the MDLM's, so training reuses its tokenizer.
    """
    from dslm.models.convert import dsl_from_mdlm

    mdlm = open_checkpoint(source, expect_kind="mdlm", trust_pickle=trust_pickle)
    overrides = {k: v for k, v in dsl_settings.items() if k in DSLDenoiser.OWN_FIELDS}
    dsl = dsl_from_mdlm(mdlm.model.to("cpu"), **overrides)
    return dataclasses.replace(mdlm, model=dsl, config=dsl.config)
