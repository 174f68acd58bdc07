"""Generative perplexity: how likely a judge causal LM finds the samples.

One corpus-level, token-weighted figure (the field protocol):
    gen PPL = exp( sum_{texts, scored tokens i} -log p_judge(w_i | w_<i) / #scored tokens ),
where the scored tokens exclude every EOS but the first of a window (see ``lm``).
Texts are re-tokenised with the judge's tokenizer, unless the samples' token ids come
from the very tokenizer the judge was trained with (then the ids are scored as they are,
so no decode/encode round trip can change them).
"""

from __future__ import annotations

import math
from typing import Sequence

from dslm.errors import DSLMError
from dslm.evaluate.lm import CausalLM


def judge_token_ids(lm: CausalLM, texts: Sequence[str] | None,
                    token_ids: Sequence[Sequence[int]] | None = None,
                    tokenizer_spec: dict | None = None) -> list[list[int]]:
    """The ids ``lm`` should read: ``token_ids`` when its tokenizer matches, else ``encode(texts)``."""
    if token_ids is not None and lm.accepts_token_ids(tokenizer_spec):
        return [list(map(int, ids)) for ids in token_ids]
    if texts is None:
        raise DSLMError(f"the judge '{lm.name}' uses another tokenizer and no texts were given")
    return lm.encode(list(texts))


def generative_perplexity(lm: CausalLM, texts: Sequence[str] | None,
                          token_ids: Sequence[Sequence[int]] | None = None,
                          tokenizer_spec: dict | None = None, batch_size: int = 8,
                          progress: bool = False) -> dict:
    """``{"gen_ppl", "judge_nll" (nats/token), "judge_tokens", "per_sample"}`` of a sample
    set under ``lm``; ``per_sample = {"nll": [...], "tokens": [...]}`` holds each text's
    summed judge NLL and scored-token count in input order, so that
    gen PPL = exp(sum(nll) / sum(tokens)) and a paired bootstrap can resample texts."""
    ids = judge_token_ids(lm, texts, token_ids, tokenizer_spec)
    nll, tokens = lm.nll_per_text(ids, batch_size=batch_size, progress=progress)
    return from_per_sample(nll, tokens)


def from_per_sample(nll: Sequence[float], tokens: Sequence[int]) -> dict:
    """The corpus-level figures of per-text (summed NLL, token count) pairs."""
    total, count = float(sum(nll)), int(sum(tokens))
    if count == 0:
        raise DSLMError("generative perplexity: no token could be scored (texts too short)")
    mean = total / count
    return {"gen_ppl": math.exp(mean), "judge_nll": mean, "judge_tokens": count,
            "per_sample": {"nll": [float(v) for v in nll], "tokens": [int(v) for v in tokens]}}
