"""Quality vs compute: sample every (model, sampler, step budget) point and score it.

For each point the sweep records NFE, MAUVE against held-out text, generative
perplexity under a judge, unigram entropy (nats), repetition and the sampling time,
and writes ``sweep.json`` and ``sweep.md`` (atomically, after every point) and
``sweep.png`` (at the end) into the output folder, with each point's samples under ``samples/``.

Resumable: a point is keyed by (model, sampler, steps, num_samples, seq_len, seed)
and a key already in ``sweep.json`` is never recomputed. Samplers that do not fit a
model's kind are skipped with a note. Under torchrun every rank samples its share
and rank 0 scores and writes (``dslm.processes``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dslm.errors import ConfigError, DSLMError
from dslm import processes as dd
from dslm.evaluate import judges, sweepcheck
from dslm.io import atomic_write_json
from dslm.provenance import environment
from dslm.perf import sync

RESULTS = "sweep.json"


@dataclass
class SweepConfig:
    models: list[tuple[str, str]]            # (label, checkpoint path) pairs
    samplers: list[str]
    steps: list[int]
    out: str
    num_samples: int = 64
    seq_len: int = 0                         # 0: each model's own length
    seed: int = 0
    batch_size: int = 0                      # sampling batch; 0: the sampler's default
    judge: str = ""                          # dslm AR checkpoint or HF causal LM; "": ar_baseline
    featurizer: str = ""                     # MAUVE features; "": the judge
    reference: str = "validation"            # 'validation' or a .txt/.jsonl file
    ar_baseline: str = ""                    # AR checkpoint sampled as the baseline line
    extra_points: list[str] = field(default_factory=list)   # "sampler:steps" (e.g. hybrid:48)
    sampler_options: dict[str, dict] = field(default_factory=dict)
    device: str = ""                         # "": cuda if available, else cpu
    eval_batch_size: int = 8
    data_config: Any = None                  # reference corpus for 'validation' (else a model's)
    clean_up_spaces: bool = False            # metric texts: HF clean-up of spaces (ReMDM)
    truncate_tokens: int = 0                 # judge/featurizer read the first N tokens; 0: all
    trust_checkpoint: bool = False           # fully unpickle Lightning .ckpt models
    mauve: bool = True                       # False: no MAUVE per point (gen PPL, entropy only)
    judge_dtype: str = "float32"             # the judge's compute dtype: float32, bfloat16, auto

    def validate(self) -> None:
        if not self.models:
            raise ConfigError("a sweep needs at least one model checkpoint")
        labels = [m[0] for m in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"model labels must be unique, got {labels}")
        if not self.samplers and not self.extra_points:
            raise ConfigError("a sweep needs at least one sampler")
        if any(t < 1 for t in self.steps) or (self.samplers and not self.steps):
            raise ConfigError(f"steps must be a non-empty list of integers >= 1, got {self.steps}")
        if self.judge_dtype not in ("float32", "bfloat16", "auto"):
            raise ConfigError(f"judge_dtype must be float32, bfloat16 or auto, got '{self.judge_dtype}'")
        if self.truncate_tokens < 0:
            raise ConfigError(f"truncate_tokens must be >= 0, got {self.truncate_tokens}")
        if self.num_samples < 2:
            raise ConfigError(f"num_samples must be >= 2 (MAUVE), got {self.num_samples}")
        if not (self.judge or self.ar_baseline or judges.available(judges.SMOLLM2)):
            raise ConfigError("a sweep needs a judge: pass --judge (an AR checkpoint or a "
                              "Hugging Face causal LM) or --ar-baseline")
        self.grid()

    def grid(self) -> list[tuple[str, int]]:
        """(sampler, steps) pairs: the full grid, then the extra points."""
        pairs = [(s, t) for s in self.samplers for t in self.steps]
        for spec in self.extra_points:
            name, _, steps = spec.partition(":")
            if not name or not steps.isdigit() or int(steps) < 1:
                raise ConfigError(f"extra point '{spec}' must look like sampler:steps (e.g. hybrid:48)")
            pairs.append((name, int(steps)))
        return pairs

    @property
    def judge_spec(self) -> str:
        """``judge``; empty: the pretrained judge if installed, else ``ar_baseline``."""
        return judges.judge_choice(self.judge, self.ar_baseline)[0]

    @property
    def featurizer_spec(self) -> str:
        """``featurizer``; empty: the pretrained encoder if installed, else the judge."""
        return judges.featurizer_choice(self.featurizer, self.judge_spec)


def point_key(model: str, sampler: str, steps: int, num_samples: int, seq_len: int,
              seed: int) -> str:
    return f"{model}|{sampler}|T={steps}|n={num_samples}|L={seq_len}|seed={seed}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def check_sampler_names(names: list[str], registry) -> None:
    """Refuse a sampler name the registry does not know, naming the known ones."""
    for name in names:
        if name not in registry:
            raise ConfigError(f"unknown sampler '{name}'; allowed: {', '.join(sorted(registry))}")


def _model_seq_len(cfg: SweepConfig, ckpt: str) -> int:
    """The sample length: ``cfg.seq_len``, else the dslm checkpoint's own length."""
    return cfg.seq_len or _own_seq_len(ckpt, cfg.trust_checkpoint)


@functools.lru_cache(maxsize=16)
def _own_seq_len(ckpt: str, trust: bool) -> int:
    from dslm.models.checkpoint import open_checkpoint

    return int(open_checkpoint(ckpt, weights=False, trust_pickle=trust).config.seq_len)


def generate(sample_fn, model, sampler: str, num_samples: int, seq_len: int, steps: int, seed: int,
             batch_size: int, options: dict, ctx: dd.Dist, progress: bool = False
             ) -> tuple[list[list[int]], int, float]:
    """(token lists of all ranks in rank order, NFE, wall seconds) of one sampling run.

    ``sample_fn`` follows ``dslm.sampling.sample``.
    """
    local_n = dd.shard_sizes(num_samples, ctx.world_size)[ctx.rank]
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(dd.rank_seed(seed, ctx.rank))   # samplers move it
    start = time.perf_counter()
    tokens, nfe = [], 0
    if local_n:
        res = sample_fn(model, sampler, local_n, seq_len, steps, gen, batch_size=batch_size or None,
                     progress=progress, **options)
        tokens, nfe = res.tokens.tolist(), int(res.nfe)
    sync(device)
    seconds = time.perf_counter() - start
    shards = dd.gather((tokens, nfe, seconds), ctx)
    return (dd.merge_shards([s[0] for s in shards]), max(s[1] for s in shards),
            max(s[2] for s in shards))


def resolved_judge_dtype(cfg: SweepConfig, device="cpu") -> str:
    """``cfg.judge_dtype`` with ``auto`` resolved for ``device`` (dslm.evaluate.lm.judge_dtype)."""
    from dslm.evaluate.lm import judge_dtype

    return judge_dtype(cfg.judge_dtype, device)


class _Sweep:
    """One run of a sweep: the results document, its evaluator and its writers."""

    def __init__(self, cfg: SweepConfig, progress: bool, sampling):
        self.cfg = cfg
        self.sampling = sampling
        self.progress = progress
        self.ctx = dd.setup(cfg.device, "--device")
        self.device = self.ctx.device
        self.out = Path(cfg.out)
        self._as_found: str | None = None        # sweep.json's content as opened (_load_doc)
        self.doc = self._load_doc() if self.ctx.is_main else {}
        self._evaluator = None
        self._references: tuple[list[str], list[str]] | None = None

    # -- the results document -------------------------------------------------------
    def settings(self) -> dict:
        c = self.cfg
        return {"judge": c.judge_spec, "featurizer": c.featurizer_spec, "mauve": c.mauve,
                "judge_dtype": resolved_judge_dtype(c, self.device),
                "reference": c.reference,
                "num_samples": c.num_samples, "seed": c.seed,
                "identity": sweepcheck.settings_identity(c),
                "text_decoding": {"clean_up_spaces": c.clean_up_spaces,
                                  "truncate_tokens": c.truncate_tokens},
                "judge_fallback": judges.judge_choice(c.judge, c.ar_baseline)[1]}

    def _load_doc(self) -> dict:
        path = self.out / RESULTS
        fresh = {"settings": self.settings(), "points": {}, "skipped": [], "plan": [],
                 "reference": None, "ar_baseline": None}
        if not path.is_file():
            return fresh
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise DSLMError(f"{path} is not valid JSON; move it away to start the sweep afresh") from None
        self._as_found = self._digest(doc)
        old = doc.get("settings", {})
        sweepcheck.check_folder(path, old, self.cfg)       # by content: a moved folder resumes
        doc["settings"] = fresh["settings"]
        doc["skipped"] = []   # re-derived from this sweep's samplers
        return {**fresh, **doc}

    @staticmethod
    def _digest(doc: dict) -> str:
        """The document's content apart from the environment of the run that wrote it."""
        return json.dumps({k: v for k, v in doc.items() if k != "environment"}, sort_keys=True,
                          default=str)

    def unchanged(self) -> bool:
        """Nothing computed or changed since the folder was opened, and its table and plot
        exist: a resumed, finished sweep leaves its files (and their times) as they are."""
        return (self._as_found is not None and self._digest(self.doc) == self._as_found
                and (self.out / "sweep.md").is_file() and (self.out / "sweep.png").is_file())

    def save(self, plot: bool = False) -> None:
        """``sweep.json`` and ``sweep.md`` (after every point); ``sweep.png`` when ``plot``."""
        from dslm.evaluate.report import write_report

        atomic_write_json(self.out / RESULTS, self.doc)
        write_report(self.doc, self.out, plot=plot)

    # -- scoring --------------------------------------------------------------------
    def references(self) -> tuple[list[str], list[str]]:
        """(reference texts the samples are scored against, a second set for its own MAUVE)."""
        if self._references is None:
            from dslm.evaluate.reference import reference_pair

            c = self.cfg
            self._references = reference_pair(c.reference, c.num_samples, c.seed, c.models[0][1],
                                              c.data_config)
            if c.clean_up_spaces:
                from dslm.evaluate.textproc import clean_up_spaces

                self._references = tuple([clean_up_spaces(t) for t in ts] for ts in self._references)
        return self._references

    def evaluator(self):
        if self._evaluator is None:
            from dslm.evaluate.metrics import Evaluator

            c = self.cfg
            from dslm.evaluate.judge_cache import JudgeCache

            judge = judges.load_named(c.judge_spec, self.device)
            if resolved_judge_dtype(c, self.device) == "bfloat16":
                judge.compute_dtype = torch.bfloat16
            feat = None
            if c.mauve:
                feat = (judge if c.featurizer_spec == c.judge_spec
                        else judges.load_named(c.featurizer_spec, self.device))
            if c.truncate_tokens > 0:
                from dslm.evaluate.textproc import TruncatedLM

                judge = TruncatedLM(judge, c.truncate_tokens)
                feat = TruncatedLM(feat, c.truncate_tokens) if feat is not None else None
            self._evaluator = Evaluator(judge, feat, self.references()[0], c.eval_batch_size,
                                        progress=self.progress, cache=JudgeCache())
            if self.ctx.is_main:
                self.doc["judge_identity"] = judges.identity(judge)
                self.doc["featurizer_identity"] = judges.identity(feat) if feat is not None else None
        return self._evaluator

    def score(self, texts, tokens, tokenizer) -> dict:
        """Every metric of one sample set (the sampled ids are read as they are when the
        judge shares the tokenizer; with ``clean_up_spaces`` the judge re-reads the texts)."""
        spec = None if self.cfg.clean_up_spaces else tokenizer.spec()
        return self.evaluator().evaluate(texts, tokens, spec)

    def ensure_reference(self, tokenizer) -> None:
        """Score the reference data itself once: gen PPL, entropy, MAUVE vs a second draw."""
        c = self.cfg
        ref = self.doc.get("reference")
        if ref and ref.get("for_num_samples") == c.num_samples:
            return
        second = self.references()[1]
        self.doc["reference"] = {**self.evaluator().reference_metrics(second, tokenizer),
                                 "for_num_samples": c.num_samples}
        self.save()

    # -- sampling -------------------------------------------------------------------
    def run_point(self, model, tokenizer, label: str, sampler: str, steps: int, seq_len: int,
                  key: str) -> None:
        c = self.cfg
        tokens, nfe, seconds = generate(self.sampling.sample, model, sampler, c.num_samples,
                                        seq_len, steps, c.seed, c.batch_size,
                                        c.sampler_options.get(sampler, {}), self.ctx)
        if not self.ctx.is_main:
            return
        from dslm.evaluate.samples import sample_records, write_samples
        from dslm.evaluate.textproc import metric_texts

        texts = metric_texts(tokenizer, tokens, c.clean_up_spaces)
        name = f"{_safe(label)}__{sampler}__T{steps}__n{c.num_samples}__L{seq_len}__seed{c.seed}"
        write_samples(self.out / "samples" / f"{name}.jsonl",
                      sample_records(texts, tokens, nfe, sampler, steps, c.seed))
        rec = {"key": key, "model": label, "sampler": sampler, "steps": steps, "nfe": nfe,
               "seq_len": seq_len, "seed": c.seed, "seconds": seconds,
               "tokens_per_second": c.num_samples * seq_len / max(seconds, 1e-9)}
        rec.update(self.score(texts, tokens, tokenizer))
        rec.update(sweepcheck.point_provenance(c, label, sampler, steps, seq_len, self.sampling))
        self.doc["points"][key] = rec
        self.save()


def run_sweep(cfg: SweepConfig, progress: bool = True, sampling=None) -> dict:
    """Run (or resume) a sweep: checks before any work (``sweepcheck.preflight``), the
    folder's lock and the reproducibility switches around :func:`_run_sweep`."""
    from dslm.locks import folder_lock
    from dslm.repro import reproducible

    if sampling is None:
        import dslm.sampling as sampling
    cfg.validate()
    ctx = dd.setup(cfg.device, "--device")       # joins a torchrun job's process group
    try:
        if ctx.is_main:
            sweepcheck.preflight(cfg, sampling)
        with folder_lock(cfg.out, enabled=ctx.is_main), reproducible(True):
            return _run_sweep(cfg, progress, sampling)
    finally:
        dd.teardown(ctx)                          # and leaves it before Python exits


def _run_sweep(cfg: SweepConfig, progress: bool = True, sampling=None) -> dict:
    """Run (or resume) a sweep; returns the results document (``{}`` on ranks other than 0).

    ``sampling`` provides ``SAMPLERS``, ``available_samplers(model)`` and ``sample(...)``;
    it defaults to :mod:`dslm.sampling`.
    """
    if sampling is None:
        import dslm.sampling as sampling
    cfg.validate()
    grid = cfg.grid()
    check_sampler_names(sorted({s for s, _ in grid}), sampling.SAMPLERS)
    for name, options in cfg.sampler_options.items():     # refuse bad options before any work
        check_sampler_names([name], sampling.SAMPLERS)
        if hasattr(sampling, "sampler_options"):
            sampling.sampler_options(name, options)
    run = _Sweep(cfg, progress, sampling)
    main = run.ctx.is_main
    plan = [(label, ckpt, s, t, point_key(label, s, t, cfg.num_samples, _model_seq_len(cfg, ckpt),
                                          cfg.seed))
            for label, ckpt in cfg.models for s, t in grid]
    done = dd.broadcast(sweepcheck.reusable_keys(run.doc, plan, cfg, sampling) if main else None,
                        run.ctx)
    if main:
        run.doc["environment"] = environment()
        run.doc["plan"] = [p[4] for p in plan]
        run.doc["config"] = config_dict(cfg)
    bar = tqdm(total=len(plan), desc="sweep", disable=not (progress and main))
    for label, ckpt in cfg.models:
        todo = [p for p in plan if p[0] == label]
        bar.update(sum(p[4] in done for p in todo))
        todo = [p for p in todo if p[4] not in done]
        if not todo:
            continue
        model, tokenizer = _open(ckpt, run)
        fits = set(sampling.available_samplers(model))
        for _, _, sampler, steps, key in todo:
            if sampler not in fits:
                note = {"model": label, "sampler": sampler,
                        "reason": f"does not fit a '{model.kind}' model"}
                if main and note not in run.doc["skipped"]:
                    run.doc["skipped"].append(note)
            else:
                bar.set_postfix_str(f"{label} {sampler} T={steps}")
                if main:
                    run.ensure_reference(tokenizer)
                run.run_point(model, tokenizer, label, sampler, steps,
                              _model_seq_len(cfg, ckpt), key)
            bar.update(1)
        del model
    if cfg.ar_baseline:
        _ar_baseline(run)
    bar.close()
    if main and not run.unchanged():
        run.save(plot=True)
    return run.doc if main else {}


def _open(ckpt: str, run: _Sweep):
    """(model, tokenizer) of any checkpoint source."""
    from dslm.models.checkpoint import open_checkpoint

    opened = open_checkpoint(ckpt, run.device, trust_pickle=run.cfg.trust_checkpoint)
    return opened.model, opened.tokenizer()


def _ar_baseline(run: _Sweep) -> None:
    """Sample the AR checkpoint (its first fitting sampler, one call per token) and score it."""
    cfg, main = run.cfg, run.ctx.is_main
    seq_len = _model_seq_len(cfg, cfg.ar_baseline)
    model, tokenizer = _open(cfg.ar_baseline, run)
    names = list(run.sampling.available_samplers(model))
    if not names:
        raise DSLMError(f"no sampler fits the AR baseline {cfg.ar_baseline}")
    key = point_key("ar-baseline", names[0], seq_len, cfg.num_samples, seq_len, cfg.seed)
    old = run.doc.get("ar_baseline") if main else None
    have = dd.broadcast((old or {}).get("key") if main and sweepcheck.reusable(
        old, cfg, cfg.ar_baseline, names[0], seq_len, seq_len, run.sampling, key) else None, run.ctx)
    if have == key:
        return
    if main:
        run.ensure_reference(tokenizer)
    tokens, nfe, seconds = generate(run.sampling.sample, model, names[0], cfg.num_samples,
                                    seq_len, seq_len, cfg.seed, cfg.batch_size,
                                    cfg.sampler_options.get(names[0], {}), run.ctx)
    if main:
        from dslm.evaluate.textproc import metric_texts

        texts = metric_texts(tokenizer, tokens, cfg.clean_up_spaces)
        rec = {"key": key, "sampler": names[0], "steps": seq_len, "nfe": nfe, "seconds": seconds}
        rec.update(run.score(texts, tokens, tokenizer))
        rec.update(sweepcheck.provenance(cfg, cfg.ar_baseline, names[0], seq_len, seq_len,
                                         run.sampling))
        run.doc["ar_baseline"] = rec
        run.save()


def config_dict(cfg: SweepConfig) -> dict:
    """A JSON-ready view of the config (the data config as a dict)."""
    d = dataclasses.asdict(cfg)
    d["models"] = [list(m) for m in cfg.models]
    return d
