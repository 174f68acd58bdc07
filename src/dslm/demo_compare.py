"""The demo's comparison may read seed 0's pairs from the table sweep.

The table sweep already samples the seed-0 DSL model and MDLM control with every
sampler at every T. When the compared samplers and T are among them and the table
has at least ``compare_samples`` samples per point, sampling that pair again would
only repeat the work. The verdict's pooled bootstrap is stratified by seed, so seed 0
may then contribute ``num_samples`` pairs and the other seeds ``compare_samples`` each.
"""

from __future__ import annotations

import json
from pathlib import Path


def table_covers(cfg) -> bool:
    """The table sweep samples every compared sampler at every compared T, with at
    least ``compare_samples`` per point."""
    samplers = {s for pair in cfg.pairs() for s in pair}
    return (samplers <= set(cfg.samplers) and set(cfg.compare_steps) <= set(cfg.steps)
            and cfg.num_samples >= cfg.compare_samples)


def table_reuse(cfg, out: Path):
    """(DSL label, control label, table sweep document, its folder) of the finished
    table sweep, or None when it has not been written."""
    from dslm.demo import _labels

    folder = out / "sweep"
    path = folder / "sweep.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    dsl_label, ctl_label = _labels(cfg)
    return dsl_label, ctl_label, doc, folder
