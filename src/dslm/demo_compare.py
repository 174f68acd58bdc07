"""The demo's comparison stage reads seed 0's pairs from the table sweep.

The table sweep already samples the seed-0 DSL model and MDLM control with every
sampler at every T; when the compared samplers and T are among them, sampling that
pair again in the comparison stage would only repeat the work. The verdict's pooled
bootstrap is stratified by seed, so seed 0 may contribute ``num_samples`` pairs and
the other continuation seeds ``compare_samples`` each.
"""

from __future__ import annotations

import json
from pathlib import Path


def table_reuse(cfg, out: Path, samplers: list[str]):
    """(DSL label, control label, table sweep document, its folder) when the table sweep
    holds every compared sampler at every compared T; else None (compare samples seed 0)."""
    from dslm.demo import _labels

    if not set(samplers) <= set(cfg.samplers) or not set(cfg.compare_steps) <= set(cfg.steps):
        return None
    folder = out / "sweep"
    path = folder / "sweep.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    dsl_label, ctl_label = _labels(cfg)
    return dsl_label, ctl_label, doc, folder
