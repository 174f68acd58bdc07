"""The demo's guards: every argument checked before the first stage trains, one writer
per demo folder, and stages that know what made them.

:func:`preflight` checks the samplers, step budgets, extra points and sample count
(as the sweep at the end will), loads every stage's run config, imports every
package the stages need, and checks that the output folder is writable. A stage's
*fingerprint* (its config file's content, step counts, seed, device, and those of
the stages it starts from) is kept in ``demo.json``; a stage folder made with
another fingerprint is refused (naming the stage and what changed) rather than
silently resumed or reused.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from dslm.errors import ConfigError, DSLMError
from dslm.provenance import changed_parts, content_hash, environment, fingerprint

FINGERPRINTS = "stage_fingerprints"


def preflight(cfg) -> None:
    """Everything the demo will need, checked in seconds before any training."""
    from dslm.commands._checks import MAX_COUNT, bounded, seed
    from dslm.demo import _configs_dir, _run_config
    from dslm.evaluate.sweep import check_sampler_names
    from dslm.extras import require_all
    from dslm.io import check_output_folder
    from dslm.sampling import SAMPLERS

    cfg.validate()
    bounded("demo.num_samples", cfg.num_samples, 2, MAX_COUNT)
    seed("demo.seed", cfg.seed)
    for key in ("mdlm_steps", "extra_steps", "ar_steps"):
        bounded(f"demo.{key}", getattr(cfg, key), 1, MAX_COUNT)
    if not cfg.samplers and not cfg.extra_points:
        raise ConfigError("config key 'demo.samplers' is empty and there are no extra points")
    names = list(cfg.samplers)
    for spec in cfg.extra_points:
        name, _, steps = str(spec).partition(":")
        if not name or not steps.isdigit() or int(steps) < 1:
            raise ConfigError(f"config key 'demo.extra_points': '{spec}' must look like "
                              "sampler:steps (e.g. hybrid:16)")
        names.append(name)
    check_sampler_names(names, SAMPLERS)
    if cfg.samplers and not cfg.steps:
        raise ConfigError("config key 'demo.steps' is empty")
    require_all(["datasets", "tokenizers", "mauve", "faiss", "matplotlib"], "dslm demo")
    configs = _configs_dir(cfg)
    for role, run in cfg.runs.items():
        if not (configs / run["file"]).is_file():
            raise ConfigError(f"no {run['file']} (demo.runs.{role}) in {configs}; pass --configs DIR")
    out = Path(cfg.out)
    for role, steps in (("mdlm", cfg.mdlm_steps), ("dsl", cfg.extra_steps),
                        ("control", cfg.extra_steps), ("ar", cfg.ar_steps)):
        _run_config(cfg, role, out / role, steps, cfg.seed)   # a bad config fails here
    check_output_folder(out)


def stage_parts(cfg) -> dict[str, dict]:
    """What made each training stage (its role's run file contents and the ``runs.<role>``
    values laid over it, steps, seed, device, corpus)."""
    import hashlib

    from dslm.demo import _configs_dir

    configs = _configs_dir(cfg)

    def role(name: str) -> str:
        values = {k: v for k, v in cfg.runs[name].items() if k != "file"}
        digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
        return content_hash(configs / cfg.runs[name]["file"])[:16] + ":" + digest[:8]

    conf = {n: role(n) for n in ("mdlm", "dsl", "control", "ar")}
    corpus = getattr(cfg, "corpus", "")
    if corpus and Path(corpus).is_file():
        corpus = "sha256:" + content_hash(Path(corpus))[:16]
    base = {"seed": cfg.seed, "device": cfg.device, "corpus": corpus or "embedded"}
    mdlm = {**base, "mdlm_config": conf["mdlm"], "mdlm_steps": cfg.mdlm_steps}
    return {"mdlm": mdlm,
            "dsl": {**mdlm, "dsl_config": conf["dsl"], "extra_steps": cfg.extra_steps},
            "mdlm-control": {**mdlm, "control_config": conf["control"], "extra_steps": cfg.extra_steps},
            "ar": {**base, "ar_config": conf["ar"], "ar_steps": cfg.ar_steps}}


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DSLMError(f"{path} is not valid JSON; move it away (the stage folders are kept)"
                        ) from None
    return doc if isinstance(doc, dict) else {}


def check_stages(cfg) -> None:
    """Refuse a stage folder made by other settings; record the fingerprints of the others."""
    from dslm.io import atomic_write_json

    out = Path(cfg.out)
    path = out / "demo.json"
    doc = _read(path)
    saved = doc.get(FINGERPRINTS) if isinstance(doc.get(FINGERPRINTS), dict) else {}
    now = stage_parts(cfg)
    for stage, parts in now.items():
        old = saved.get(stage)
        if (out / stage).exists() and isinstance(old, dict) and \
                old.get("fingerprint") != fingerprint(parts):
            what = ", ".join(changed_parts(old.get("parts"), parts))
            raise ConfigError(f"demo stage '{stage}' in {out / stage} was made with a different "
                              f"{what}; refusing to reuse it: remove that folder (and the stages "
                              "after it) to recompute, or choose another --out")
    doc.setdefault("stages", {})
    doc[FINGERPRINTS] = {s: {"fingerprint": fingerprint(p), "parts": p} for s, p in now.items()}
    atomic_write_json(path, doc)


@contextlib.contextmanager
def guarded(cfg) -> Iterator[None]:
    """preflight, the demo folder's lock, stage fingerprints; the environment is added
    to ``demo.json`` at the end."""
    from dslm.io import atomic_write_json
    from dslm.locks import folder_lock

    preflight(cfg)
    with folder_lock(cfg.out):
        check_stages(cfg)
        yield
        path = Path(cfg.out) / "demo.json"
        doc = _read(path)
        doc["environment"] = environment()
        atomic_write_json(path, doc)
