"""Evaluation: MAUVE, generative perplexity, unigram entropy, repetition, and sweeps.

  mauve.py        MAUVE of two feature sets (``mauve-text``; features always ours)
  lm.py           causal LMs as judge/featurizer: HF (gpt2-large) or a dslm AR checkpoint
  genppl.py       corpus-level generative perplexity under a judge
  entropy.py      per-sample unigram entropy (nats) and distinct-n repetition
  metrics.py      ``Evaluator``: every metric of a sample set vs a reference set
  samples.py      samples JSONL and reference text files
  reference.py    reference texts from a file or a checkpoint's validation data
  sweep.py        ``run_sweep(SweepConfig)``: (model, sampler, T) grid, resumable
  report.py       ``sweep.md`` table and ``sweep.png`` plot
  protocol.py     the paper's OpenWebText protocol preset
"""

from dslm.evaluate.entropy import mean_unigram_entropy, repetition_stats, unigram_entropy
from dslm.evaluate.genppl import generative_perplexity
from dslm.evaluate.mauve import MauveResult, compute_mauve
from dslm.evaluate.sweep import SweepConfig, run_sweep

__all__ = ["MauveResult", "SweepConfig", "compute_mauve", "generative_perplexity",
           "mean_unigram_entropy", "repetition_stats", "run_sweep", "unigram_entropy"]
