"""dslm: Discrete Stochastic Localization language models.

Layout (one home per idea):
  dslm.diffusion   the localization channel, SNR schedules, losses (the math)
  dslm.models      DiT backbone, DSL / MDLM / AR heads, checkpoints, hub interop
  dslm.sampling    one module per sampler family, a registry of names
  dslm.data        tokenizers, corpora, packing into blocks
  dslm.train       the one training loop (single process or DDP)
  dslm.evaluate    MAUVE, generative perplexity, entropy, step-budget sweeps
  dslm.cli         the `dslm` command line
"""

__version__ = "0.1.0"


def from_pretrained(name_or_dir, **kwargs):
    """Load a dslm model from a local checkpoint directory or a hub repository id."""
    from dslm.models.hub import from_pretrained as _fp

    return _fp(name_or_dir, **kwargs)
