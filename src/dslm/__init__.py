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


def open_checkpoint(source, **kwargs):
    """A ``Checkpoint`` (model, tokenizer, run config, metadata) of any source: see
    ``dslm.models.checkpoint.open_checkpoint``."""
    from dslm.models.checkpoint import open_checkpoint as _open

    return _open(source, **kwargs)


def from_pretrained(name_or_dir, **kwargs):
    """The model of a checkpoint folder, MDLM folder or ``.ckpt``, or hub repository id."""
    return open_checkpoint(name_or_dir, **kwargs).model
