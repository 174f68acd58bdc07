"""All metrics of one sample set against one reference set, sharing cached reference work.

:class:`Evaluator` holds the judge (generative perplexity), the featurizer (MAUVE
features) and the reference texts; reference features are computed once and reused
for every sample set (every sweep point).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dslm.errors import DSLMError
from dslm.evaluate.entropy import mean_unigram_entropy, repetition_stats
from dslm.evaluate.genppl import generative_perplexity, judge_token_ids
from dslm.evaluate.judges import identity
from dslm.evaluate.lm import CausalLM
from dslm.evaluate.mauve import SCALING_FACTOR, compute_mauve


class Evaluator:
    """MAUVE, gen PPL, unigram entropy and repetition of sample sets vs ``reference_texts``."""

    def __init__(self, judge: CausalLM | None, featurizer: CausalLM | None,
                 reference_texts: Sequence[str] | None, batch_size: int = 8,
                 num_buckets: int | str = "auto", scaling_factor: float = SCALING_FACTOR,
                 mauve_seed: int = 25, progress: bool = False, cache=None):
        if featurizer is not None and not reference_texts:
            raise DSLMError("MAUVE needs reference texts (none were given)")
        self.judge = judge
        self.featurizer = featurizer
        self.reference_texts = list(reference_texts or [])
        self.batch_size = batch_size
        self.num_buckets = num_buckets
        self.scaling_factor = scaling_factor
        self.mauve_seed = mauve_seed
        self.progress = progress
        self._reference_features: np.ndarray | None = None
        self.cache = cache              # a judge_cache.JudgeCache for the reference texts' work

    def settings(self) -> dict:
        """What the figures depend on besides the samples (stored next to results)."""
        return {"judge": self.judge.name if self.judge else None,
                "featurizer": self.featurizer.name if self.featurizer else None,
                "num_reference": len(self.reference_texts), "mauve_num_buckets": self.num_buckets,
                "mauve_scaling_factor": self.scaling_factor, "entropy_unit": "nats"}

    def reference_features(self) -> np.ndarray:
        if self._reference_features is None:
            ids = self.featurizer.encode(self.reference_texts)

            def compute():
                return self.featurizer.features(ids, self.batch_size, self.progress)

            self._reference_features = (compute() if self.cache is None else self.cache.features(
                identity(self.featurizer), ids, compute))
        return self._reference_features

    def mauve(self, texts: Sequence[str], token_ids=None, tokenizer_spec=None) -> dict:
        ids = judge_token_ids(self.featurizer, texts, token_ids, tokenizer_spec)
        feats = self.featurizer.features(ids, self.batch_size, self.progress)
        res = compute_mauve(feats, self.reference_features(), self.num_buckets,
                            self.scaling_factor, self.mauve_seed)
        from dslm.evaluate.intervals import mauve_interval   # 95% CI, fixed quantisation

        ci = mauve_interval(feats, self.reference_features(), res.mauve, res.num_buckets,
                            self.scaling_factor, self.mauve_seed)
        return {"mauve": res.mauve, "mauve_num_buckets": res.num_buckets, "mauve_ci": ci.as_dict()}

    def evaluate(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None,
                 tokenizer_spec: dict | None = None, with_mauve: bool = True,
                 cached: bool = False) -> dict:
        """Every metric that the configured judge/featurizer allow, as a flat dict.

        Entropy and repetition read ``token_ids`` (the sampled ids); without them, the
        judge's tokenisation of ``texts``.
        """
        texts = list(texts)
        if not texts:
            raise DSLMError("no samples to evaluate")
        out: dict = {"num_samples": len(texts)}
        if self.featurizer is not None and with_mauve:
            out.update(self.mauve(texts, token_ids, tokenizer_spec))
        if self.judge is not None:
            def compute():
                return generative_perplexity(self.judge, texts, token_ids, tokenizer_spec,
                                             self.batch_size, self.progress)

            if cached and self.cache is not None:
                ids = judge_token_ids(self.judge, texts, token_ids, tokenizer_spec)
                out.update(self.cache.scores(identity(self.judge), ids, compute))
            else:
                out.update(compute())
            from dslm.evaluate.intervals import point_genppl_interval

            ci = point_genppl_interval(out)
            if ci is not None:
                out["gen_ppl_ci"] = ci
        if token_ids is None:
            if self.judge is None:
                raise DSLMError("entropy needs the samples' token ids or a judge to tokenise texts")
            token_ids, out["entropy_tokenizer"] = self.judge.encode(texts), self.judge.name
        else:
            out["entropy_tokenizer"] = "samples"
        out["entropy"] = mean_unigram_entropy(token_ids)
        out.update(repetition_stats(token_ids))
        return out

    def reference_metrics(self, second_draw: Sequence[str] | None = None,
                          tokenizer=None) -> dict:
        """The reference data's own figures: gen PPL, entropy and (given an independent
        ``second_draw`` of reference texts) MAUVE of held-out text vs held-out text."""
        spec = tokenizer.spec() if tokenizer is not None else None
        ids = [tokenizer.encode(t) for t in self.reference_texts] if tokenizer is not None else None
        out = self.evaluate(self.reference_texts, ids, spec, with_mauve=False, cached=True)
        if self.featurizer is not None and second_draw:
            out.update(self.mauve(list(second_draw)))
        return out
