"""dslm: Discrete Stochastic Localization language models.

Layout (one home per idea):
  dslm.diffusion   the localization channel, SNR schedules, losses (the math)
  dslm.models      DiT backbone, DSL / MDLM / AR heads, checkpoints, hub interop
  dslm.sampling    one module per sampler family, a registry of names
  dslm.data        tokenizers, corpora, packing into blocks
  dslm.train       the one training loop (single process or DDP)
  dslm.evaluate    MAUVE, generative perplexity, entropy, step-budget sweeps
  dslm.analyze     calibration and self-correction analyses
  dslm.api         the notebook API: from_pretrained -> Model.generate / .score, samplers()
  dslm.cli         the `dslm` command line
"""

__version__ = "0.1.0"


def open_checkpoint(source, **kwargs):
    """A ``Checkpoint`` (model, tokenizer, run config, metadata) of any source: see
    ``dslm.models.checkpoint.open_checkpoint``."""
    from dslm.models.checkpoint import open_checkpoint as _open

    return _open(source, **kwargs)


def from_pretrained(name_or_dir, **kwargs):
    """A :class:`dslm.api.Model` (``.generate``, ``.score``; calls and attributes reach the
    ``torch.nn.Module``) of any source ``open_checkpoint`` reads."""
    from dslm.api import from_pretrained as _fp

    return _fp(name_or_dir, **kwargs)


def samplers(kind=None):
    """Every registered sampler (or those fitting model ``kind``): summary, model kinds,
    whether it can infill, and its options with default and type (``dslm.api.samplers``)."""
    from dslm.api import samplers as _samplers

    return _samplers(kind)
