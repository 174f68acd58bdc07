"""The main job: a fair DSL-vs-MDLM comparison on a CPU, with seeds and intervals.

Stages (each resumable: a finished stage is not redone, an interrupted one resumes):

1. ``mdlm``          train a tiny MDLM from scratch for ``mdlm_steps`` (base seed ``seed``);
2. ``dsl``           fine-tune it into DSL (``dsl_from_mdlm``) for ``extra_steps``;
3. ``mdlm-control``  continue the same MDLM for the same ``extra_steps`` (so both
                     models have seen exactly the same number of updates);
   ``dsl-s<k>``, ``mdlm-control-s<k>``: the same two continuations with seeds
   ``seed + k``, k = 1 .. ``seeds - 1`` (same base MDLM);
   ``mdlm-b<j>``, ``dsl-b<j>``, ``mdlm-control-b<j>``: base seeds ``seed + j``,
   j = 1 .. ``base_seeds - 1``, each with one continuation seed;
4. ``ar``            train the tiny causal LM: the AR baseline line (and the fallback judge);
5. ``sweep``         sample the seed-``seed`` models at every step budget with every
                     sampler that fits them and score MAUVE / gen PPL / entropy against
                     held-out text: ``sweep/{sweep.json,sweep.md,sweep.png}``;
6. ``compare``       sample every continuation pair with the matched samplers of
                     ``compare`` at ``compare_steps`` (``compare_samples`` per seed), then a
                     paired bootstrap (:mod:`dslm.evaluate.compare`): ``verdicts.{json,md}``
                     and ``reading.md``, the plain-language reading generated from them;
7. ``traces``        one short trace per sampler family (``traces/``), then ``report.html``:
                     every result above on one self-contained page (:mod:`dslm.report.html`).

``corpus`` (``dslm demo --corpus FILE``) trains everything on a .txt / .jsonl file
instead of the configs' corpus; its tokenizer is trained once and cached under
``data.cache_dir``, keyed by the file's content hash. Stage wall and CPU times go to
``<out>/demo.json``. The settings are ``configs/demo.yaml`` (``dslm demo --config FILE``):
each stage's run is a run file (``configs/tiny-{mdlm,dsl,ar}.yaml``) with the values of
``runs.<role>`` and the demo's step counts; docs/RECIPE.md explains the MDLM recipe.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from dslm.config import choices
from dslm.errors import ConfigError
from dslm.io import atomic_write_json
from dslm.provenance import cpu_seconds


#: the stage roles of ``DemoConfig.runs``: the base MDLM, the two continuations, the AR model
RUN_ROLES = ("mdlm", "dsl", "control", "ar")


@dataclass
class DemoConfig:
    """The demo's settings; their values live in ``configs/demo.yaml`` (:func:`load_demo_config`),
    the neutral defaults here only type the keys."""

    out: str = "results/demo"
    configs: str = ""                   # folder with the run files of ``runs``; "" = the repo's
    corpus: str = ""                    # .txt / .jsonl corpus for every stage; "" = the configs'
    mdlm_steps: int = 0
    extra_steps: int = 0
    ar_steps: int = 0
    samplers: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    extra_points: list[str] = field(default_factory=list)
    num_samples: int = 0
    seeds: int = 0
    base_seeds: int = 0
    compare: list[str] = field(default_factory=list)
    compare_steps: list[int] = field(default_factory=list)
    compare_samples: int = 0
    judge_tokens: int = 0
    eval_batch_size: int = 0
    seed: int = 0
    device: str = choices("auto", "cpu", "cuda", default="auto")
    #: role -> {file: a run file under ``configs``, <run-config values>}; see RUN_ROLES
    runs: dict[str, dict] = field(default_factory=dict)

    def validate(self) -> None:
        for key in ("mdlm_steps", "extra_steps", "ar_steps", "num_samples", "seeds",
                    "base_seeds", "compare_samples", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'demo.{key}' must be >= 1, got {getattr(self, key)}")
        if self.judge_tokens < 0:
            raise ConfigError(f"config key 'demo.judge_tokens' must be >= 0, got {self.judge_tokens}")
        if self.compare_samples < 2:
            raise ConfigError(f"config key 'demo.compare_samples' must be >= 2, got {self.compare_samples}")
        for key in ("steps", "compare_steps"):
            if any(t < 1 for t in getattr(self, key)):
                raise ConfigError(f"config key 'demo.{key}' must hold integers >= 1, got {getattr(self, key)}")
        for pair in self.compare:
            if len(pair.split(":")) != 2 or not all(pair.split(":")):
                raise ConfigError(f"config key 'demo.compare': '{pair}' is not DSL_SAMPLER:CONTROL_SAMPLER")
        for role in RUN_ROLES:
            if not isinstance(self.runs.get(role), dict) or not self.runs[role].get("file"):
                raise ConfigError(f"config key 'demo.runs.{role}' must be a mapping with a run "
                                  "'file' (e.g. tiny-mdlm.yaml)")
        if set(self.runs) - set(RUN_ROLES):
            raise ConfigError(f"config key 'demo.runs': unknown role '{sorted(set(self.runs) - set(RUN_ROLES))[0]}'"
                              f"; allowed: {', '.join(RUN_ROLES)}")

    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(p.split(":")) for p in self.compare]


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


def demo_file(name: str = "demo.yaml") -> Path:
    """``configs/<name>`` here or in the repository (``demo.yaml``, ``demo-quick.yaml``)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "configs" / name).is_file():
            return root / "configs" / name
    raise ConfigError(f"configs/{name} not found; run from the repository or pass --config FILE")


def load_demo_config(path: str | Path | None = None, overrides: list[str] = (), quick: bool = False,
                     flags: dict | None = None) -> DemoConfig:
    """configs/demo.yaml (or ``path``), then configs/demo-quick.yaml if ``quick``, then
    ``flags`` (the command's options), then ``key=value`` overrides; mappings merge key by key."""
    from dslm.config import merge, parse_overrides, read_yaml, update

    values = read_yaml(path or demo_file())
    if quick:
        values = merge(values, read_yaml(demo_file("demo-quick.yaml")))
    values = merge(merge(values, flags or {}), parse_overrides(list(overrides)))
    return update(DemoConfig(), values)


def _run_config(cfg: DemoConfig, role: str, out_dir: Path, steps: int, seed: int):
    """Stage ``role``'s run: its run file, then ``cfg.runs[role]``, then steps/seed/corpus/device."""
    from dslm.config import update
    from dslm.train.config import load_run_config

    values = {k: v for k, v in cfg.runs[role].items() if k != "file"}
    stage = {"train": {"steps": steps, "seed": seed, "checkpoint_every": max(50, steps // 4)}}
    if cfg.corpus:
        stage["data"] = {"source": cfg.corpus}
    if cfg.device != "auto":
        stage["train"]["device"] = cfg.device
    run = load_run_config(str(_configs_dir(cfg) / cfg.runs[role]["file"]), out_dir=str(out_dir))
    return update(update(run, values, prefix=f"runs.{role}"), stage)


class _Timer:
    """Stage wall and CPU times (``stages``, ``cpu_stages``), kept in ``demo.json`` across
    resumed runs. CPU time (user + sys) measures the work even on a shared machine."""

    def __init__(self, path: Path):
        self.path = path
        self.doc = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
        self.doc.setdefault("cpu_stages", {})
        self.doc["cpu_count"] = os.cpu_count()

    def run(self, name: str, fn):
        print(f"\n== demo stage: {name} ==", flush=True)
        start, cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        spent, cpu_spent = time.perf_counter() - start, cpu_seconds() - cpu
        for key, value in (("stages", spent), ("cpu_stages", cpu_spent)):
            self.doc[key][name] = round(self.doc[key].get(name, 0.0) + value, 1)
        atomic_write_json(self.path, self.doc)
        print(f"== {name}: {spent:.0f} s wall, {cpu_spent:.0f} s CPU ==", flush=True)
        return result


def _base_name(j: int) -> str:
    return "mdlm" if j == 0 else f"mdlm-b{j}"


def _continuations(cfg: DemoConfig) -> list[tuple[int, int, str]]:
    """(base index j, continuation index k, run-name suffix) of every DSL/control pair."""
    pairs = [(0, k, "" if k == 0 else f"-s{k}") for k in range(cfg.seeds)]
    return pairs + [(j, 0, f"-b{j}") for j in range(1, cfg.base_seeds)]


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage under ``dslm.demoguard`` (checks before any training,
    the folder's lock, stage fingerprints); returns the table sweep's results document."""
    from dslm.demoguard import guarded

    with guarded(cfg):
        return _run_demo(cfg, progress)


def _run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage; returns the table sweep's results document."""
    from dslm.train import train
    from dslm.models.checkpoint import open_checkpoint
    from dslm.train.starts import finetune_start
    from dslm.train.state import STATE_DIR

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer(out / "demo.json")

    for j in range(cfg.base_seeds):
        base_cfg = _run_config(cfg, "mdlm", out / _base_name(j), cfg.mdlm_steps, cfg.seed + j)
        timer.run(_base_name(j), lambda c=base_cfg: train(c, resume=True, progress=progress))

    def continuation(run_cfg, start):
        """Train ``run_cfg`` from ``start()`` (an MDLM-derived model), or resume its saved state."""
        fresh = not (Path(run_cfg.train.out_dir) / STATE_DIR).exists()
        return train(run_cfg, resume=True, init_model=start() if fresh else None, progress=progress)

    for j, k, suffix in _continuations(cfg):
        base, seed = out / _base_name(j), cfg.seed + j + k
        dsl_cfg = _run_config(cfg, "dsl", out / f"dsl{suffix}", cfg.extra_steps, seed)
        timer.run(f"dsl{suffix}", lambda c=dsl_cfg, b=base: continuation(
            c, lambda: finetune_start(b, dataclasses.asdict(c.model))))
        ctl_cfg = _run_config(cfg, "control", out / f"mdlm-control{suffix}", cfg.extra_steps, seed)
        timer.run(f"mdlm-control{suffix}", lambda c=ctl_cfg, b=base: continuation(
            c, lambda: open_checkpoint(b, expect_kind="mdlm")))
    ar_cfg = _run_config(cfg, "ar", out / "ar", cfg.ar_steps, cfg.seed)
    timer.run("ar", lambda: train(ar_cfg, resume=True, progress=progress))

    doc = timer.run("sweep", lambda: _table_sweep(cfg, out, progress))
    timer.run("compare", lambda: _compare(cfg, out, progress))
    from dslm.evidence import recipe_facts     # NELBO curves vs the corpus's unigram entropy

    timer.doc["recipe"] = recipe_facts(_run_config(cfg, "mdlm", out / "mdlm", 1, cfg.seed).data,
                                       {_base_name(j): out / _base_name(j) for j in range(cfg.base_seeds)})
    _report(cfg, out, timer)
    timer.doc["total_seconds"] = round(sum(timer.doc["stages"].values()), 1)
    timer.doc["total_cpu_seconds"] = round(sum(timer.doc["cpu_stages"].values()), 1)
    atomic_write_json(out / "demo.json", timer.doc)
    return doc


def _report(cfg: DemoConfig, out: Path, timer: _Timer) -> None:
    """Stages ``analyze`` (calibration and self-correction of the DSL model and its MDLM
    control, small: docs/ANALYSES.md) and ``traces`` (one short trace per sampler family),
    then ``report.html`` (dslm.report), which shows both."""
    from dslm.analyze import demo_analyses
    from dslm.evaluate import judges
    from dslm.processes import resolve_device
    from dslm.report.html import write_demo_report
    from dslm.report.traces import record_demo_traces

    # the judge of the changes: the pretrained one when installed, else the demo's AR model;
    # the demo's AR model defines the wrong tokens (it shares the models' tokenizer)
    judge = judges.SMOLLM2 if judges.available(judges.SMOLLM2) else str(out / "ar")
    timer.run("analyze", lambda: demo_analyses(
        str(out / "dsl"), str(out / "mdlm-control"), "validation", judge, out / "analyze",
        reference=str(out / "ar"), steps=tuple(sorted(cfg.steps)[:2]), seed=cfg.seed,
        device=str(resolve_device(cfg.device, what="demo.device"))))
    traces = timer.run("traces", lambda: record_demo_traces(cfg, out))
    write_demo_report(cfg, out, traces)


def _labels(cfg: DemoConfig) -> tuple[str, str]:
    total = cfg.mdlm_steps + cfg.extra_steps
    return (f"DSL ({cfg.mdlm_steps} MDLM + {cfg.extra_steps} DSL steps)", f"MDLM ({total} steps)")


def _sweep_config(cfg: DemoConfig, out: Path, models, samplers, steps, extra_points, num_samples,
                  ar_baseline: bool = True):
    from dslm.evaluate.sweep import SweepConfig

    from dslm.evaluate import judges

    ar = str(Path(cfg.out) / "ar")
    # the independent pretrained judge (SmolLM2) and MAUVE encoder (MiniLM) when installed;
    # else the demo's own AR model judges, which sweep.json / sweep.md then say
    judge = "" if judges.available(judges.SMOLLM2) else ar
    return SweepConfig(
        models=models, samplers=list(samplers), steps=list(steps), extra_points=list(extra_points),
        out=str(out), num_samples=num_samples, seed=cfg.seed, judge=judge, featurizer="",
        ar_baseline=ar if ar_baseline else "", truncate_tokens=cfg.judge_tokens,
        eval_batch_size=cfg.eval_batch_size,
        device="" if cfg.device == "auto" else cfg.device)


def _table_sweep(cfg: DemoConfig, out: Path, progress: bool) -> dict:
    """Every sampler at every T on the seed-``seed`` DSL model and MDLM control."""
    from dslm.evaluate.sweep import run_sweep

    dsl_label, mdlm_label = _labels(cfg)
    models = [(mdlm_label, str(out / "mdlm-control")), (dsl_label, str(out / "dsl"))]
    return run_sweep(_sweep_config(cfg, out / "sweep", models, cfg.samplers, cfg.steps,
                                   cfg.extra_points, cfg.num_samples), progress=progress)


def _compare(cfg: DemoConfig, out: Path, progress: bool) -> list:
    """Sample every continuation pair at the comparison points; verdicts and reading."""
    from dslm.evaluate import compare
    from dslm.evaluate.sweep import run_sweep
    from dslm.io import atomic_write_text

    from dslm.demo_compare import table_reuse

    models, seed_sweeps = [], []
    samplers = list(dict.fromkeys(s for pair in cfg.pairs() for s in pair))
    reuse = table_reuse(cfg, out, samplers)     # seed 0's pairs are the table sweep's points
    for j, k, suffix in _continuations(cfg):
        tag = f"base {cfg.seed + j} seed {cfg.seed + j + k}"
        dsl_label, ctl_label = f"DSL ({tag})", f"MDLM control ({tag})"
        if not suffix and reuse is not None:
            seed_sweeps.append((j, cfg.seed, *reuse))
            continue
        models += [(ctl_label, str(out / f"mdlm-control{suffix}")), (dsl_label, str(out / f"dsl{suffix}"))]
        seed_sweeps.append((j, cfg.seed + j + k, dsl_label, ctl_label, None, None))
    folder = out / "compare"
    doc = run_sweep(_sweep_config(cfg, folder, models, samplers, cfg.compare_steps, [],
                                  cfg.compare_samples, ar_baseline=False), progress=progress) \
        if models else {"settings": reuse[2]["settings"]}
    tables = {}
    for j in range(cfg.base_seeds):
        sweeps = [compare.SeedSweep(seed, d_doc or doc, d, c, d_folder or folder)
                  for b, seed, d, c, d_doc, d_folder in seed_sweeps if b == j]
        tables[j] = compare.compare(sweeps, cfg.pairs(), list(cfg.compare_steps), seed=cfg.seed)
    judge = doc.get("settings", {}).get("judge", "?")
    atomic_write_json(out / "verdicts.json", {
        "judge": judge, "compare_samples_per_seed": cfg.compare_samples,
        "seed0_samples": cfg.num_samples if reuse is not None else cfg.compare_samples,
        "tables": {f"base seed {cfg.seed + j}": [r.as_dict() for r in rows] for j, rows in tables.items()}})
    md = "".join(f"## Base MDLM seed {cfg.seed + j}\n\n" + compare.table_markdown(rows) + "\n"
                 for j, rows in tables.items())
    atomic_write_text(out / "verdicts.md", "# DSL vs the MDLM control: verdicts\n\n" + md)
    extra = [(f"Second base MDLM (seed {cfg.seed + j})", tables[j]) for j in range(1, cfg.base_seeds)]
    reading = compare.reading_markdown(tables[0], judge=f"`{judge}`",
                                       title="What the demo shows (generated from verdicts.json)",
                                       extra=extra)
    atomic_write_text(out / "reading.md", reading)
    return tables[0]
