"""The main job on the embedded default: a fair DSL-vs-MDLM comparison on a CPU.

Stages (each resumable: a finished stage is not redone, an interrupted one resumes):

1. ``mdlm``          train a tiny MDLM from scratch for ``mdlm_steps``;
2. ``dsl``           fine-tune it into DSL (``dsl_from_mdlm``) for ``extra_steps``;
3. ``mdlm-control``  continue the same MDLM for the same ``extra_steps`` (so both
                     models have seen exactly the same number of updates);
4. ``ar``            train the tiny causal LM: the judge (gen PPL), the MAUVE
                     featurizer and the AR baseline line;
5. ``sweep``         sample both models at a sweep of step budgets with every sampler
                     that fits them and score MAUVE / gen PPL / entropy against
                     held-out text: ``sweep.json``, ``sweep.md``, ``sweep.png``.

Stage wall times go to ``<out>/demo.json``. The run configs are the repository's
``configs/tiny-{mdlm,dsl,ar}.yaml`` with the demo's step counts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dslm.config import choices
from dslm.errors import ConfigError
from dslm.io import atomic_write_json


@dataclass
class DemoConfig:
    out: str = "results/demo"
    configs: str = ""                   # folder with tiny-{mdlm,dsl,ar}.yaml; "" = the repo's
    mdlm_steps: int = 1000              # constant lr: the tiny MDLM leaves its unigram plateau late
    extra_steps: int = 300              # DSL fine-tuning = MDLM control continuation
    ar_steps: int = 400
    samplers: list[str] = field(default_factory=lambda: [
        "mdlm", "remdm-loop", "dsl-mdlm", "dsl-remdm-loop", "roar-ar", "dsl-continuous"])
    steps: list[int] = field(default_factory=lambda: [8, 16, 32])
    extra_points: list[str] = field(default_factory=lambda: ["hybrid:16"])
    num_samples: int = 64
    seed: int = 0
    device: str = choices("auto", "cpu", "cuda", default="auto")

    def validate(self) -> None:
        for key in ("mdlm_steps", "extra_steps", "ar_steps", "num_samples"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'demo.{key}' must be >= 1, got {getattr(self, key)}")
        if any(t < 1 for t in self.steps):
            raise ConfigError(f"config key 'demo.steps' must hold integers >= 1, got {self.steps}")


def _configs_dir(cfg: DemoConfig) -> Path:
    if cfg.configs:
        path = Path(cfg.configs)
    else:
        here = Path(__file__).resolve()
        candidates = [Path.cwd() / "configs", here.parents[2] / "configs"]
        path = next((p for p in candidates if (p / "tiny-mdlm.yaml").is_file()), candidates[0])
    if not (path / "tiny-mdlm.yaml").is_file():
        raise ConfigError(f"no tiny-mdlm.yaml in {path}; pass --configs DIR (the repository's configs/)")
    return path


#: lr schedule per stage; both continuation stages (DSL and the MDLM control) get the same one.
STAGE_LR = {"mdlm": ["train.lr_schedule=constant"],
            "extra": ["train.lr_schedule=cosine", "train.warmup_steps=20"],
            "ar": []}


def _run_config(cfg: DemoConfig, name: str, out_dir: Path, steps: int, stage: str):
    from dslm.train.config import load_run_config

    overrides = [f"train.steps={steps}", f"train.seed={cfg.seed}",
                 f"train.checkpoint_every={max(50, steps // 4)}", *STAGE_LR[stage]]
    if cfg.device != "auto":
        overrides.append(f"train.device={cfg.device}")
    return load_run_config(str(_configs_dir(cfg) / f"tiny-{name}.yaml"), overrides, out_dir=str(out_dir))


class _Timer:
    """Stage wall times, kept in ``demo.json`` across resumed runs."""

    def __init__(self, path: Path):
        self.path = path
        self.doc = json.loads(path.read_text()) if path.is_file() else {"stages": {}}

    def run(self, name: str, fn):
        print(f"\n== demo stage: {name} ==", flush=True)
        start = time.perf_counter()
        result = fn()
        spent = time.perf_counter() - start
        stages = self.doc["stages"]
        stages[name] = round(stages.get(name, 0.0) + spent, 1)
        atomic_write_json(self.path, self.doc)
        print(f"== {name}: {spent:.0f} s ==", flush=True)
        return result


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage under ``dslm.demoguard`` (checks before any training,
    the folder's lock, stage fingerprints); returns the sweep's results document."""
    from dslm.demoguard import guarded

    with guarded(cfg):
        return _run_demo(cfg, progress)


def _run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage; returns the sweep's results document."""
    from dslm.evaluate.sweep import SweepConfig, run_sweep
    from dslm.train import train
    from dslm.train.starts import continue_from, finetune_start
    from dslm.train.state import STATE_DIR

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer(out / "demo.json")
    runs = {name: out / name for name in ("mdlm", "dsl", "mdlm-control", "ar")}

    mdlm_cfg = _run_config(cfg, "mdlm", runs["mdlm"], cfg.mdlm_steps, "mdlm")
    timer.run("mdlm", lambda: train(mdlm_cfg, resume=True, progress=progress))

    def continuation(run_cfg, start):
        """Train ``run_cfg`` from ``start()`` (an MDLM-derived model), or resume its saved state."""
        fresh = not (Path(run_cfg.train.out_dir) / STATE_DIR).exists()
        return train(run_cfg, resume=True, init_model=start() if fresh else None, progress=progress)

    dsl_cfg = _run_config(cfg, "dsl", runs["dsl"], cfg.extra_steps, "extra")
    timer.run("dsl", lambda: continuation(
        dsl_cfg, lambda: finetune_start(runs["mdlm"], dataclasses.asdict(dsl_cfg.model))))
    ctl_cfg = _run_config(cfg, "mdlm", runs["mdlm-control"], cfg.extra_steps, "extra")
    timer.run("mdlm-control", lambda: continuation(
        ctl_cfg, lambda: continue_from(runs["mdlm"], "mdlm")))
    ar_cfg = _run_config(cfg, "ar", runs["ar"], cfg.ar_steps, "ar")
    timer.run("ar", lambda: train(ar_cfg, resume=True, progress=progress))

    total = cfg.mdlm_steps + cfg.extra_steps
    sweep_cfg = SweepConfig(
        models=[(f"MDLM ({total} steps)", str(runs["mdlm-control"])),
                (f"DSL ({cfg.mdlm_steps} MDLM + {cfg.extra_steps} DSL steps)", str(runs["dsl"]))],
        samplers=list(cfg.samplers), steps=list(cfg.steps), extra_points=list(cfg.extra_points),
        out=str(out / "sweep"), num_samples=cfg.num_samples, seed=cfg.seed,
        judge=str(runs["ar"]), ar_baseline=str(runs["ar"]),
        device="" if cfg.device == "auto" else cfg.device)
    doc = timer.run("sweep", lambda: run_sweep(sweep_cfg, progress=progress))
    timer.doc["total_seconds"] = round(sum(timer.doc["stages"].values()), 1)
    atomic_write_json(out / "demo.json", timer.doc)
    return doc
