"""The paper's OpenWebText evaluation protocol as a sweep preset (``--protocol owt``).

5000 samples of 1024 tokens per point against 5000 OpenWebText validation blocks,
GPT-2 Large as MAUVE featurizer (last-token features, n/10 clusters, scaling 5) and as
the generative-perplexity judge; T = 128, 256, 512, 1024 for MDLM, ReMDM-loop and the
DSL samplers, plus the hybrid sampler at T = 48.
"""

from __future__ import annotations

import dataclasses

from dslm.errors import ConfigError
from dslm.evaluate.lm import GPT2_LARGE

OWT = dict(num_samples=5000, seq_len=1024, judge=GPT2_LARGE, featurizer=GPT2_LARGE,
           reference="validation", steps=[128, 256, 512, 1024],
           samplers=["mdlm", "remdm-loop", "dsl-remdm-loop", "dsl-continuous"],
           extra_points=["hybrid:48"])


def owt_data_config():
    """OpenWebText with the GPT-2 tokenizer in 1024-token blocks (the reference corpus)."""
    from dslm.data.config import DataConfig

    return DataConfig(source="hf:openwebtext", tokenizer="gpt2", seq_len=1024)


PROTOCOLS = {"owt": OWT}


def apply_protocol(cfg, name: str, keep: tuple[str, ...] = ()):
    """``cfg`` with the preset ``name`` applied, except the fields named in ``keep``."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}'; allowed: {', '.join(PROTOCOLS)}")
    values = {k: v for k, v in PROTOCOLS[name].items() if k not in keep}
    if "data_config" not in keep:
        values["data_config"] = owt_data_config()
    return dataclasses.replace(cfg, **values)
