"""A sweep's guards: checks before any work, and the fingerprint of every point.

* :func:`preflight`: packages (MAUVE, faiss, matplotlib, the tokenizers), every
  checkpoint, the judge, the featurizer and the reference reachable, numbers bounded,
  the output folder writable and none of the inputs. Runs before the first model loads.
* :func:`point_parts`: what made a point (checkpoint content hash, sampler and its
  resolved options, T, n, L, seed, sampling batch, judge / featurizer / reference
  identity, dslm version). A point in ``sweep.json`` is reused only when its
  fingerprint matches; otherwise it is recomputed, with a one-line note naming what
  changed. A change of judge, featurizer, reference or seed refuses the folder
  instead (every point and the reference row would change).
* Identities are content hashes, so a copied or moved checkpoint or results folder
  resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dslm.errors import ConfigError, DSLMError
from dslm.provenance import changed_parts, fingerprint, identity

#: Settings whose change invalidates the whole folder (refused, not recomputed).
FOLDER_SETTINGS = ("judge", "featurizer", "reference", "seed", "judge_dtype")
#: what a folder written before a setting was recorded used
_BEFORE = {"judge_dtype": "float32"}


def preflight(cfg, sampling) -> None:
    """Everything the sweep will need, checked before the first model is loaded."""
    from dslm.commands._checks import (MAX_COUNT, bounded, check_model_spec, check_reference,
                                       require_tokenizer_packages, seed)
    from dslm.extras import require
    from dslm.io import check_disjoint, check_output_folder

    bounded("num_samples", cfg.num_samples, 2, MAX_COUNT)
    bounded("seq_len", cfg.seq_len, 0)
    bounded("batch_size", cfg.batch_size, 0)
    bounded("eval_batch_size", cfg.eval_batch_size, 1)
    seed("seed", cfg.seed)
    for t in cfg.steps:
        bounded("steps", t)
    for name in ("mauve", "faiss", "matplotlib"):
        require(name, f"dslm sweep ({'sweep.png' if name == 'matplotlib' else 'MAUVE'})")
    if cfg.reference == "validation" and cfg.data_config is None:
        require("datasets", "reference=validation (corpus preparation)")
    check_reference(cfg.reference, "reference")
    from dslm.evaluate.sweep import _model_seq_len

    for label, ckpt in cfg.models:
        check_model_spec(ckpt, f"checkpoint '{label}'", package="huggingface_hub")
        _model_seq_len(cfg, ckpt)                 # a length for every model, before the judge
        require_tokenizer_packages(ckpt, "dslm sweep")
    check_model_spec(cfg.ar_baseline, "the AR baseline", package="huggingface_hub")
    for spec, what in ((cfg.judge_spec, "the judge"), (cfg.featurizer_spec, "the featurizer")):
        check_model_spec(spec, what)
    inputs = {f"checkpoint '{label}'": ckpt for label, ckpt in cfg.models}
    inputs.update({"the judge": cfg.judge_spec, "the featurizer": cfg.featurizer_spec,
                   "the AR baseline": cfg.ar_baseline,
                   "the reference": None if cfg.reference == "validation" else cfg.reference})
    check_disjoint(cfg.out, inputs, what="the sweep folder (--out)")
    check_output_folder(cfg.out)


def settings_identity(cfg) -> dict:
    """Content identities of what every point shares."""
    return {"judge": identity(cfg.judge_spec), "featurizer": identity(cfg.featurizer_spec),
            "reference": identity(cfg.reference) if cfg.reference != "validation"
            else "validation:" + _corpus_identity(cfg),
            "seed": cfg.seed, "judge_dtype": _judge_dtype(cfg),
            "text_decoding": [getattr(cfg, "clean_up_spaces", None),
                              getattr(cfg, "truncate_tokens", None)]}


def _judge_dtype(cfg) -> str:
    """The judge's compute dtype this sweep resolves to (``auto`` by device)."""
    from dslm.evaluate.sweep import resolved_judge_dtype
    from dslm.processes import resolve_device

    return resolved_judge_dtype(cfg, resolve_device(getattr(cfg, "device", ""), what="--device"))


def _corpus_identity(cfg) -> str:
    """The held-out data 'validation' means: the data config (not the weights) of the
    sweep's data_config, else of the first model's training run."""
    import dataclasses

    data = cfg.data_config
    if data is not None:
        data = dataclasses.asdict(data) if dataclasses.is_dataclass(data) else data
    else:
        from dslm.models.checkpoint import is_dslm_checkpoint, open_checkpoint

        ckpt = cfg.models[0][1]
        meta = open_checkpoint(ckpt, weights=False).metadata if is_dslm_checkpoint(ckpt) else {}
        data = (meta.get("run_config") or {}).get("data")
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("cache_dir", "num_proc")}
    return fingerprint({"data": data, "model": cfg.models[0][1] if data is None else None})


def check_folder(path: Path, old: dict, cfg) -> None:
    """Refuse a results folder made with another judge, featurizer, reference or seed
    (compared by content, so a moved folder or checkpoint still resumes)."""
    new = settings_identity(cfg)
    saved = old.get("identity") if isinstance(old, dict) else None
    if isinstance(saved, dict):
        changed = [k for k in FOLDER_SETTINGS if saved.get(k, _BEFORE.get(k)) != new.get(k)]
        if changed:
            raise ConfigError(f"{path} was made with another {', '.join(changed)} (compared by "
                              "content); refusing to mix results: pick another --out")
        return
    for k in FOLDER_SETTINGS:        # a folder written before identities were recorded
        now = {"judge": cfg.judge_spec, "featurizer": cfg.featurizer_spec,
               "reference": cfg.reference, "seed": cfg.seed, "judge_dtype": _judge_dtype(cfg)}[k]
        if old.get(k, _BEFORE.get(k)) != now:
            raise ConfigError(f"{path} was made with {k}={old.get(k)!r}, this sweep uses "
                              f"{now!r}; pick another --out to compare")


def _options(sampling, sampler: str, options: dict) -> dict:
    import dataclasses
    import json

    resolve = getattr(sampling, "sampler_options", None)
    if resolve is None:
        return dict(options)
    value = resolve(sampler, options)
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def point_parts(cfg, ckpt: str, sampler: str, steps: int, seq_len: int, sampling) -> dict:
    """What made one point (see the module docstring)."""
    from dslm import __version__

    return {"checkpoint": identity(ckpt), "sampler": sampler,
            "options": _options(sampling, sampler, cfg.sampler_options.get(sampler, {})),
            "steps": steps, "num_samples": cfg.num_samples, "seq_len": seq_len,
            "seed": cfg.seed, "batch_size": cfg.batch_size, **settings_identity(cfg),
            "dslm": __version__}


def provenance(cfg, ckpt: str, sampler: str, steps: int, seq_len: int, sampling) -> dict:
    """``{"fingerprint", "made_by"}`` fields stored in a point's record."""
    parts = point_parts(cfg, ckpt, sampler, steps, seq_len, sampling)
    return {"fingerprint": fingerprint(parts), "made_by": parts}


def reusable(record: dict | None, cfg, ckpt: str, sampler: str, steps: int, seq_len: int,
             sampling, key: str) -> bool:
    """Whether a stored point was made by exactly this (checkpoint, options, ...); a
    mismatch is reported as one line and the point is recomputed."""
    if not isinstance(record, dict):
        return False
    parts = point_parts(cfg, ckpt, sampler, steps, seq_len, sampling)
    if record.get("fingerprint") == fingerprint(parts):
        return True
    what = changed_parts(record.get("made_by"), parts)
    print(f"dslm: note: sweep point '{key}' was made with a different "
          f"{', '.join(what) or 'fingerprint'}; recomputing it", file=sys.stderr)
    return False


def reusable_keys(doc: dict, plan, cfg, sampling) -> set:
    """Keys of the plan whose stored points may be reused."""
    from dslm.evaluate.sweep import _model_seq_len

    points = doc.get("points", {}) if isinstance(doc, dict) else {}
    if not isinstance(points, dict):
        raise DSLMError("sweep.json: 'points' must be an object; move the file away")
    keep = set()
    for label, ckpt, sampler, steps, key in plan:
        if key in points and reusable(points[key], cfg, ckpt, sampler, steps,
                                      _model_seq_len(cfg, ckpt), sampling, key):
            keep.add(key)
    return keep


def _ckpt_of(cfg, label: str) -> str:
    return dict(cfg.models)[label]


def point_provenance(cfg, label: str, sampler: str, steps: int, seq_len: int, sampling) -> dict:
    return provenance(cfg, _ckpt_of(cfg, label), sampler, steps, seq_len, sampling)
