"""``ar``: left-to-right ancestral sampling from the causal model, x_i ~ p(x_i | x_<i).

One network call per position that is not given (the model has no KV cache, so each
call reads the whole prefix; a position given for every sequence of the batch needs
no call). Given tokens (prompt, infill) are placed as they come; earlier positions
cannot see a later given token, which is the AR model's limitation. ``steps`` does
not apply: NFE = number of free positions.
"""

from __future__ import annotations

import torch

from dslm.sampling.common import Run, TokenOptions, draw_tokens


def sample_ar(model, opts: TokenOptions, run: Run):
    c = run.constraints
    x = c.apply(torch.zeros_like(c.ids))
    for i in range(x.shape[1]):
        free = ~c.fixed[:, i]
        if not bool(free.any()):
            continue
        logits = run.net(x[:, : i + 1])[:, i]
        ids, _ = draw_tokens(logits[free], opts, run.generator)
        x[free, i] = ids
        run.tick()
    return x, run.stats()
