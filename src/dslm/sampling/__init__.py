"""Samplers: one module per family, a registry of names, and ``sample`` (see ``registry``).

* ``masked``     MDLM ancestral masked diffusion (``mdlm``, ``dsl-mdlm``)
* ``remdm``      ReMDM remasking (``remdm-cap``, ``-rescale``, ``-conf``, ``-loop``,
                 ``dsl-remdm-loop``)
* ``roar``       random-order autoregressive decoding (``roar-ar``)
* ``continuous`` the localization SDE (``dsl-continuous``)
* ``hybrid``     continuous phase then discrete steps (``hybrid``)
* ``ar``         left-to-right sampling from the causal model (``ar``)
* ``states``     the MDLM / DSL denoisers seen as functions of a token state
* ``common``     token draws (float64, temperature, nucleus), conditioning, NFE counting
"""

from dslm.sampling.common import Constraints, SampleResult, TokenOptions
from dslm.sampling.registry import (SAMPLERS, SamplerSpec, available_samplers, get_sampler,
                                    sample, sampler_options)

__all__ = ["SAMPLERS", "Constraints", "SampleResult", "SamplerSpec", "TokenOptions",
           "available_samplers", "get_sampler", "sample", "sampler_options"]
