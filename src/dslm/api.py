"""The Python API for notebooks: text in, text out, the tokenizer handled.

    m = dslm.from_pretrained("runs/dsl")                 # any checkpoint source the CLI reads
    m.generate("It is a truth", sampler="dsl-remdm-loop", steps=32, num_samples=4, seed=0)
    m.generate(infill="The [MASK] sat on the [MASK]*2.", sampler="dsl-mdlm", steps=8)
    m.score(["It is a truth universally acknowledged"])   # log-likelihood (bound), nats
    dslm.samplers()                                      # the registry, with options

Generation goes through :func:`generate_batch`, the one function ``dslm sample`` also
calls: prompt -> prefix ids (or an infill template -> fixed positions), then
``dslm.sampling.sample``, then decoding. Loading goes through ``open_checkpoint`` only,
so the loader behind it can change in one place.

Infill templates: ``[MASK]`` stands for exactly one token of the model's tokenizer and
``[MASK]*k`` for k tokens; the text between masks is encoded segment by segment and
clamped (never changed by the sampler). Only samplers that see the whole sequence can
infill (the registry's ``infill`` flag; ``ar`` cannot: it would ignore later text).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from dslm.errors import SamplingError

#: One ``[MASK]`` per token; ``[MASK]*k`` for k tokens.
MASK_PATTERN = re.compile(r"\[MASK\](?:\*(\d+))?")

#: The sampler ``generate`` uses when none is named, per model kind.
DEFAULT_SAMPLER = {"dsl": "dsl-remdm-loop", "mdlm": "remdm-loop", "ar": "ar"}


# ---------------------------------------------------------------- the registry, listed


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def sampler_info(name: str) -> dict[str, Any]:
    """One registry entry as plain data: summary, model kinds, infill, options with
    default, type and allowed values."""
    from dslm.sampling.registry import get_sampler

    spec = get_sampler(name)
    hints = typing.get_type_hints(spec.options)
    options = {}
    for f in dataclasses.fields(spec.options):
        entry = {"default": f.default, "type": _type_name(hints.get(f.name, f.type))}
        if "choices" in f.metadata:
            entry["choices"] = list(f.metadata["choices"])
        options[f.name] = entry
    return {"name": name, "summary": spec.summary, "kinds": list(spec.kinds),
            "infill": bool(getattr(spec, "infill", True)), "options": options}


def samplers(kind: str | None = None) -> list[dict[str, Any]]:
    """Every registered sampler (or those that fit model ``kind``) as :func:`sampler_info`."""
    from dslm.sampling.registry import SAMPLERS

    if kind is not None and kind not in {k for s in SAMPLERS.values() for k in s.kinds}:
        raise SamplingError(f"unknown model kind '{kind}'; kinds: dsl, mdlm, ar")
    return [sampler_info(n) for n, s in SAMPLERS.items() if kind is None or kind in s.kinds]


# ---------------------------------------------------------------- conditioning from text


def parse_infill(template: str, tokenizer, seq_len: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fixed [n] bool, ids [n]) of an infill template; n = its token count, or ``seq_len``
    (positions past the template are free). ``[MASK]`` = one free token, ``[MASK]*k`` = k."""
    if not isinstance(template, str) or not MASK_PATTERN.search(template):
        raise SamplingError("infill must be a text with at least one [MASK] (or [MASK]*k)")
    fixed, ids, pos = [], [], 0
    for m in MASK_PATTERN.finditer(template):
        text = template[pos:m.start()]
        given = tokenizer.encode(text) if text else []
        fixed += [True] * len(given)
        ids += given
        k = int(m.group(1)) if m.group(1) is not None else 1
        if k < 1:
            raise SamplingError(f"infill: [MASK]*{m.group(1)} must stand for at least one token")
        fixed += [False] * k
        ids += [0] * k
        pos = m.end()
    tail = tokenizer.encode(template[pos:]) if template[pos:] else []
    fixed += [True] * len(tail)
    ids += tail
    n = len(ids)
    if seq_len is not None:
        if seq_len < n:
            raise SamplingError(f"the infill template has {n} tokens, more than seq_len {seq_len}")
        fixed += [False] * (seq_len - n)
        ids += [0] * (seq_len - n)
    return torch.tensor(fixed, dtype=torch.bool), torch.tensor(ids, dtype=torch.long)


@dataclass
class Generation:
    """``ids`` per sample, their decoded ``texts`` ("" without a tokenizer), ``nfe``, ``stats``."""

    ids: list[list[int]]
    texts: list[str]
    nfe: int
    stats: list[dict[str, Any]]


def generate_batch(model, tokenizer, sampler: str, num_samples: int, seq_len: int | None,
                   steps: int, generator: torch.Generator, *, prompt: str | None = None,
                   infill: str | None = None, batch_size: int | None = None,
                   progress: bool = False, observer=None, trace=None,
                   where: str = "checkpoint", **options) -> Generation:
    """Encode ``prompt`` (a prefix) or ``infill`` (a template), sample, decode: the one
    text-level generation step (``Model.generate`` and ``dslm sample`` both call it)."""
    from dslm.sampling import sample
    from dslm.sampling.registry import get_sampler

    prefix = fill = None
    if (prompt is not None or infill is not None) and tokenizer is None:
        flag = "--prompt" if prompt is not None else "infill"
        raise SamplingError(f"{flag} needs a tokenizer, and {where} records none; "
                            "pass token ids through the Python API instead")
    if prompt is not None and infill is not None:
        raise SamplingError("give a prompt or an infill template, not both "
                            "(write the prompt at the start of the template)")
    if prompt is not None:
        prefix = tokenizer.encode(prompt)
        if not prefix:
            prefix = None
    if infill is not None:
        if not getattr(get_sampler(sampler), "infill", True):
            raise SamplingError(f"sampler '{sampler}' cannot infill (it decodes left to right and "
                                "would ignore later text); use a masked or DSL sampler")
        fill = parse_infill(infill, tokenizer, seq_len)
        seq_len = int(fill[0].shape[0])
    seq_len = seq_len or model.config.seq_len
    result = sample(model, sampler, num_samples, seq_len, steps, generator,
                    batch_size=batch_size or num_samples, prefix=prefix, infill=fill,
                    progress=progress, observer=observer, trace=trace, **options)
    ids = result.tokens.tolist()
    texts = [tokenizer.decode(t) if tokenizer is not None else "" for t in ids]
    return Generation(ids, texts, int(result.nfe), result.stats)


# ---------------------------------------------------------------- the model handle


class Model:
    """An opened checkpoint (``.checkpoint``: metadata, run config, path) with its model
    (``.model``) and tokenizer (``.tokenizer``, loaded on first use). Calls and unknown
    attributes go to the underlying ``torch.nn.Module``, so ``m(x)``, ``m.config`` and
    ``m.eval()`` work as on the module."""

    _UNSET = object()

    def __init__(self, checkpoint, source=None):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self._tokenizer = Model._UNSET
        self.source = source if source is not None else checkpoint.source

    def __getattr__(self, name):
        if name in ("checkpoint", "model", "_tokenizer", "source"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    @property
    def tokenizer(self):
        if self._tokenizer is Model._UNSET:
            ck = self.checkpoint
            self._tokenizer = ck.tokenizer() if ck.tokenizer_spec is not None else None
        return self._tokenizer

    def __repr__(self) -> str:
        return (f"dslm.Model(kind={self.kind!r}, vocab_size={self.model.vocab_size}, "
                f"seq_len={self.seq_len}, source={str(self.source)!r})")

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def seq_len(self) -> int:
        return int(self.model.config.seq_len)

    @property
    def device(self) -> torch.device:
        from dslm.sampling.common import model_device

        return model_device(self.model)

    def samplers(self) -> list[str]:
        """Names of the samplers that fit this model."""
        from dslm.sampling import available_samplers

        return available_samplers(self.model)

    def generate(self, prompts: str | Sequence[str] | None = None, *, sampler: str | None = None,
                 steps: int = 32, num_samples: int = 1, seed: int = 0, seq_len: int | None = None,
                 infill: str | None = None, batch_size: int | None = None,
                 progress: bool = False, **options) -> list[str] | list[list[str]]:
        """Sample texts. ``prompts``: None (unconditional) or one string -> a list of
        ``num_samples`` texts; a list of strings -> one such list per prompt. Each text
        includes its prompt. ``infill``: a template (see the module doc) -> a list of texts.
        ``options``: the sampler's options (``dslm.samplers()``); one generator seeded with
        ``seed`` serves every prompt in order, so ``dslm sample --seed`` gives the same texts.
        """
        from dslm.sampling.common import device_generator

        sampler = sampler or DEFAULT_SAMPLER[self.kind]
        if infill is not None and prompts is not None:
            raise SamplingError("give prompts or an infill template, not both")
        single = prompts is None or isinstance(prompts, str)
        batch = [prompts] if single else list(prompts)
        if not all(p is None or isinstance(p, str) for p in batch):
            raise SamplingError("prompts must be a string or a list of strings")
        gen = device_generator(torch.Generator().manual_seed(int(seed)), self.device)
        out = [generate_batch(self.model, self.tokenizer, sampler, num_samples, seq_len, steps,
                              gen, prompt=p, infill=infill, batch_size=batch_size,
                              progress=progress, where=f"checkpoint {self.source}",
                              **options).texts
               for p in batch]
        return out[0] if single else out

    def score(self, texts: str | Sequence[str], *, num_draws: int = 16, seed: int = 0,
              per_token: bool = False) -> list[float]:
        """The model's own log-likelihood of each text, in nats (``per_token``: divided by
        the text's token count n).

        * AR: exact, ``log p(x) = sum_i log p(x_i | x_<i)``.
        * MDLM, DSL: ``-NELBO <= log p(x)``, with ``NELBO = n E_k E_R [ 1/(n - k)
          sum_{i not in R} -log p(x_i | x_R) ]`` (k ~ U{0..n-1}, R a uniform k-subset
          revealed, the rest [MASK] / y = 0): the any-order form of MDLM's NELBO, a bound
          on the distribution their masked samplers draw as T -> infinity; estimated with
          ``num_draws`` seeded draws, k stratified (``dslm.scoring`` has the derivation).
        """
        from dslm.scoring import log_likelihood

        if self.tokenizer is None:
            raise SamplingError(f"score needs a tokenizer, and checkpoint {self.source} records none")
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        ids = [self.tokenizer.encode(t) for t in batch]
        values = log_likelihood(self.model, ids, num_draws=num_draws, seed=seed)
        if per_token:
            values = [v / max(len(i), 1) for v, i in zip(values, ids)]
        return values


def from_pretrained(source, device: str | torch.device = "cpu", *,
                    map_location: str | torch.device | None = None, **loader_options) -> Model:
    """A :class:`Model` from any checkpoint source: a dslm checkpoint or run folder, an
    exported folder, an MDLM hub-format folder / ``.ckpt`` or a hub repo id, opened by
    ``open_checkpoint`` (``loader_options``: ``expect_kind``, ``trust_pickle``,
    ``cache_dir``); ``map_location`` is an alias of ``device``."""
    from dslm.models.checkpoint import open_checkpoint

    return Model(open_checkpoint(source, map_location or device, **loader_options), source=source)


__all__ = ["DEFAULT_SAMPLER", "Generation", "MASK_PATTERN", "Model", "from_pretrained",
           "generate_batch", "parse_infill", "sampler_info", "samplers"]
