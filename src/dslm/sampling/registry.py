"""The sampler registry and ``sample``, the one entry point that batches and checks.

``SAMPLERS[name] = SamplerSpec(run, options, kinds, summary)``: ``run(model, options,
Run) -> (tokens, stats)`` is a pure function of the model, its options dataclass, the
conditioning, the step budget T and the generator. ``sample`` checks the arguments
(unknown sampler, a sampler that does not fit the model kind, non-positive sizes, an
unknown option -> one-line errors), splits the N sequences into batches, runs the
model in eval mode under ``torch.inference_mode`` on its own device, and gathers a
:class:`SampleResult` (NFE = the most real network calls any batch needed).
"""

from __future__ import annotations

import contextlib
import numbers
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from dslm.config import update
from dslm.errors import SamplingError
from dslm.sampling.ar import sample_ar
from dslm.sampling.common import (Network, Run, SampleResult, TokenOptions, build_constraints,
                                  device_generator, model_device)
from dslm.sampling.continuous import ContinuousOptions, sample_continuous
from dslm.sampling.hybrid import HybridOptions, sample_hybrid
from dslm.sampling.masked import DSLMDLMOptions, MDLMOptions, sample_mdlm
from dslm.sampling.published import PublishedOptions, sample_published
from dslm.sampling.remdm import (CapOptions, ConfOptions, DSLLoopOptions, LoopOptions,
                                 RescaleOptions, sample_cap, sample_conf, sample_loop,
                                 sample_rescale)
from dslm.sampling.roar import RoarOptions, sample_roar


@dataclass(frozen=True)
class SamplerSpec:
    run: Callable
    options: type
    kinds: tuple[str, ...]
    summary: str
    infill: bool = True       # conditions on given tokens anywhere (False: left to right only)


SAMPLERS: dict[str, SamplerSpec] = {
    "mdlm": SamplerSpec(sample_mdlm, MDLMOptions, ("mdlm",),
                        "MDLM ancestral masked diffusion with the no-change-no-call cache"),
    "remdm-cap": SamplerSpec(sample_cap, CapOptions, ("mdlm",),
                             "ReMDM, remasking rate capped at eta"),
    "remdm-rescale": SamplerSpec(sample_rescale, RescaleOptions, ("mdlm",),
                                 "ReMDM, remasking rate eta * sigma_max"),
    "remdm-conf": SamplerSpec(sample_conf, ConfOptions, ("mdlm",),
                              "ReMDM, low-confidence tokens remasked first"),
    "remdm-loop": SamplerSpec(sample_loop, LoopOptions, ("mdlm",),
                              "ReMDM loop: draft, remask/re-predict at constant alpha, finish"),
    "remdm-published": SamplerSpec(sample_published, PublishedOptions, ("mdlm",),
                                   "ReMDM as published: cap (eta .04) below T = L, loop at T >= L"),
    "dsl-mdlm": SamplerSpec(sample_mdlm, DSLMDLMOptions, ("dsl",),
                            "MDLM ancestral steps driven by the DSL denoiser (y = 0 / snr_max e_x)"),
    "dsl-remdm-loop": SamplerSpec(sample_loop, DSLLoopOptions, ("dsl",),
                                  "ReMDM loop on the DSL denoiser (optional re-noising, carry-over flag)"),
    "roar-ar": SamplerSpec(sample_roar, RoarOptions, ("dsl", "mdlm"),
                           "random-order autoregressive: k = ceil(L / T) tokens committed per call"),
    "dsl-continuous": SamplerSpec(sample_continuous, ContinuousOptions, ("dsl",),
                                  "stochastic-localization SDE up an SNR grid, then decode"),
    "hybrid": SamplerSpec(sample_hybrid, HybridOptions, ("dsl",),
                          "continuous phase, commit confident tokens, discrete steps to finish"),
    "ar": SamplerSpec(sample_ar, TokenOptions, ("ar",),
                      "left-to-right ancestral sampling from the causal model", infill=False),
}


def get_sampler(name: str) -> SamplerSpec:
    if name not in SAMPLERS:
        raise SamplingError(f"unknown sampler '{name}'; available: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def model_kind(model) -> str:
    kind = getattr(model, "kind", None)
    if kind is None:
        raise SamplingError(f"{type(model).__name__} is not a dslm model (it has no .kind)")
    return kind


def available_samplers(model) -> list[str]:
    """The sampler names that fit ``model``'s kind."""
    kind = model_kind(model)
    return [name for name, spec in SAMPLERS.items() if kind in spec.kinds]


def sampler_options(name: str, options: dict[str, Any] | None = None):
    """The options dataclass of sampler ``name`` with ``options`` applied and checked."""
    return update(get_sampler(name).options(), options or {}, prefix=name)


def _check_kind(name: str, spec: SamplerSpec, model) -> None:
    kind = model_kind(model)
    if kind not in spec.kinds:
        fits = " or ".join(f"'{k}'" for k in spec.kinds)
        raise SamplingError(f"sampler '{name}' needs a {fits} model, this is a '{kind}' model; "
                            f"samplers for it: {', '.join(available_samplers(model))}")


def _check_sizes(model, num_samples: int, seq_len: int, steps: int, batch_size) -> None:
    for key, value in (("num_samples", num_samples), ("seq_len", seq_len), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise SamplingError(f"{key} must be a positive integer, got {value!r}")
    if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or batch_size < 1):
        raise SamplingError(f"batch_size must be a positive integer, got {batch_size!r}")
    longest = getattr(getattr(model, "config", None), "seq_len", None)
    if longest is not None and seq_len > longest:
        raise SamplingError(f"seq_len {seq_len} is longer than the model's {longest} positions")


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def sample(model, name: str, num_samples: int, seq_len: int, steps: int,
           generator: torch.Generator | None = None, batch_size: int | None = None,
           prefix=None, infill=None, progress: bool = False, trace=None, observer=None,
           **options) -> SampleResult:
    """Draw ``num_samples`` sequences of ``seq_len`` tokens with sampler ``name`` in T = ``steps``.

    ``prefix``: prompt ids [P] or [N, P]; ``infill``: (mask [L] or [N, L], ids of the same
    shape). Given tokens are revealed from the start and never change. ``trace``: a
    ``dslm.trace.TraceObserver`` (e.g. ``TraceRecorder``) that sees every network call
    (it reads only: the tokens drawn are the same with and without it).
    """
    spec = get_sampler(name)
    _check_kind(name, spec, model)
    _check_sizes(model, num_samples, seq_len, steps, batch_size)
    opts = sampler_options(name, options)
    constraints = build_constraints(num_samples, seq_len, model.vocab_size, prefix, infill)
    device = model_device(model)
    gen = device_generator(generator or torch.Generator().manual_seed(0), device)
    size = batch_size or num_samples
    bar = _progress_bar(progress, name, steps * -(-num_samples // size))
    if trace is not None:
        trace.start({"sampler": name, "model_kind": model.kind, "vocab_size": model.vocab_size,
                     "seq_len": seq_len, "steps": steps, "num_samples": num_samples})
    chunks, stats = [], []
    with _eval_mode(model):
        for start in range(0, num_samples, size):
            stop = min(start + size, num_samples)
            obs = trace.batch(stop - start) if trace is not None else None
            run = Run(constraints.rows(start, stop, device), steps, gen, device,
                      tick=_ticker(bar, trace),
                      net=Network(model, device, observer=obs), observer=observer)
            began = time.perf_counter()
            tokens, batch_stats = spec.run(model, opts, run)
            if trace is not None:
                trace.batch_done(tokens)
            batch_stats.update(batch=len(stats), size=stop - start, steps=steps,
                               wall_seconds=time.perf_counter() - began)
            chunks.append(tokens.to("cpu", torch.long))
            stats.append(batch_stats)
    if bar is not None:
        bar.close()
    return SampleResult(torch.cat(chunks), max(s["nfe"] for s in stats), stats)


def _ticker(bar, trace):
    """The per-step callback: the progress bar and the trace observer, if any."""
    if trace is None:
        return bar.update if bar is not None else (lambda *a: None)

    def tick(*a):
        if bar is not None:
            bar.update(*a)
        trace.tick()
    return tick


def _progress_bar(enabled: bool, name: str, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sampling ({name})", unit="step", leave=False)


__all__ = ["SAMPLERS", "SamplerSpec", "TokenOptions", "available_samplers", "get_sampler",
           "sample", "sampler_options"]
