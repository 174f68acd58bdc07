"""The paper's OpenWebText evaluation protocol as a sweep preset (``--protocol owt``).

What it fixes (docs/PROTOCOL.md explains each choice):

* data: OpenWebText with GPT-2's tokenizer in MDLM's framed blocks, BOS + 1022 tokens +
  EOS per 1024 (``mdlm_framing``); the MAUVE references are such framed validation
  blocks decoded with ``<|endoftext|>`` kept;
* 5000 samples of 1024 tokens per point, GPT-2 Large as MAUVE featurizer (last-token
  features, n/10 clusters, scaling 5) and as the generative-perplexity judge;
* metric texts decoded as ReMDM does: tokenizer clean-up of spaces, the judge and the
  featurizer read at most 1024 tokens;
* T = 128, 256, 512, 1024 for the rows below, plus the hybrid sampler at T = 48; every
  table and plot shows T and the measured NFE.

The rows (sampler options in :data:`OWT_SAMPLER_OPTIONS`, written out even where they
equal a sampler's defaults, so the protocol does not drift with them):

* ``mdlm``: MDLM with nucleus top-p 0.9 and the final argmax "noise removal" call;
* ``remdm-published``: "ReMDM (as published)": ``remdm-cap`` eta 0.04 below T = L,
  ``remdm-loop`` (eta 0.02, t_on 0.55, t_off 0.05, alpha_on 0.9) at T >= L;
* ``remdm-loop``: the loop at every T (another row);
* ``dsl-mdlm``: MDLM steps on the DSL model with the same top-p 0.9 and final rule as
  ``mdlm``; ``dsl-remdm-loop``: the loop settings above on the DSL model;
* ``dsl-continuous`` and ``hybrid``: dslm's own defaults.
"""

from __future__ import annotations

import dataclasses

from dslm.errors import ConfigError
from dslm.evaluate.lm import GPT2_LARGE

#: ReMDM's OpenWebText settings (nucleus 0.9, final argmax call).
NUCLEUS = 0.9
LOOP = dict(eta=0.02, t_on=0.55, t_off=0.05, alpha_on=0.9)
CAP_ETA = 0.04

OWT_SAMPLER_OPTIONS = {
    "mdlm": {"top_p": NUCLEUS, "final_step": "argmax"},
    "remdm-published": {"top_p": NUCLEUS, "final_step": "argmax", "cap_eta": CAP_ETA, **LOOP},
    "remdm-loop": {"top_p": NUCLEUS, "final_step": "argmax", **LOOP},
    "dsl-mdlm": {"top_p": NUCLEUS, "final_step": "argmax"},
    "dsl-remdm-loop": {"top_p": NUCLEUS, "final_step": "argmax", **LOOP},
}

OWT = dict(num_samples=5000, seq_len=1024, judge=GPT2_LARGE, featurizer=GPT2_LARGE,
           reference="validation", steps=[128, 256, 512, 1024],
           samplers=["mdlm", "remdm-published", "remdm-loop", "dsl-mdlm", "dsl-remdm-loop",
                     "dsl-continuous"],
           extra_points=["hybrid:48"], clean_up_spaces=True, truncate_tokens=1024)


def owt_data_config():
    """OpenWebText, GPT-2 tokenizer, MDLM-framed 1024-token blocks (the reference corpus)."""
    from dslm.data.config import DataConfig

    return DataConfig(source="hf:openwebtext", tokenizer="gpt2", seq_len=1024, mdlm_framing=True)


PROTOCOLS = {"owt": OWT}
SAMPLER_OPTIONS = {"owt": OWT_SAMPLER_OPTIONS}


def apply_protocol(cfg, name: str, keep: tuple[str, ...] = ()):
    """``cfg`` with the preset ``name`` applied, except the fields named in ``keep``.

    Sampler options merge: the protocol's per sampler, then ``cfg.sampler_options``
    (what the user passed) on top, key by key.
    """
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}'; allowed: {', '.join(PROTOCOLS)}")
    values = {k: v for k, v in PROTOCOLS[name].items() if k not in keep}
    if "data_config" not in keep:
        values["data_config"] = owt_data_config()
    if "sampler_options" not in keep:
        merged = {s: dict(o) for s, o in SAMPLER_OPTIONS[name].items()}
        for sampler, options in (cfg.sampler_options or {}).items():
            merged[sampler] = {**merged.get(sampler, {}), **options}
        values["sampler_options"] = merged
    return dataclasses.replace(cfg, **values)
