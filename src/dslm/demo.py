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
6. ``compare<suffix>`` sample each continuation pair with the matched samplers of
                     ``compare`` at ``compare_steps`` (``compare_samples`` per seed):
                     ``compare/<s0|s1|..|b1>/`` (gen PPL, entropy); ``mauve``: MAUVE of
                     the first base's seeds' samples pooled (``mauve_pooled.json``); at the
                     end, here, ``verdicts``: a paired bootstrap over the seeds
                     (:mod:`dslm.evaluate.compare`), ``verdicts.{json,md}`` and
                     ``reading.md``, the plain-language reading;
7. ``analyze``, ``traces``: calibration and self-correction of the DSL model and its
                     control, one short trace per sampler family, then ``report.html``:
                     every result above on one self-contained page (:mod:`dslm.report.html`).

The stages run on ``workers`` processes at once (:mod:`dslm.stagepool`; auto: one
single-threaded process per core, up to 2), each as soon as the stages it needs are done;
each stage's output goes to ``<out>/logs/<stage>.log``. ``workers=1`` runs them here, in
order, with progress bars.

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
    extra_base_samples: int = 0         # per point for base seeds after the first; 0 = compare_samples
    judge_tokens: int = 0
    judge_dtype: str = choices("float32", "bfloat16", "auto", default="float32")   # the judge's compute dtype
    eval_batch_size: int = 0
    workers: int = 0                    # stage processes at once; 0 = auto (demo_workers)
    seed: int = 0
    device: str = choices("auto", "cpu", "cuda", default="auto")
    #: role -> {file: a run file under ``configs``, <run-config values>}; see RUN_ROLES
    runs: dict[str, dict] = field(default_factory=dict)

    def validate(self) -> None:
        for key in ("mdlm_steps", "extra_steps", "ar_steps", "num_samples", "seeds",
                    "base_seeds", "compare_samples", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'demo.{key}' must be >= 1, got {getattr(self, key)}")
        if self.extra_base_samples < 0 or self.extra_base_samples == 1:
            raise ConfigError("config key 'demo.extra_base_samples' must be 0 (= compare_samples) or >= 2, "
                              f"got {self.extra_base_samples}")
        if self.workers < 0:
            raise ConfigError(f"config key 'demo.workers' must be >= 0 (0 = auto), got {self.workers}")
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
        self.doc["wall_before"] = self.doc.get("wall_seconds", 0.0)   # earlier (resumed) runs
        self.began = time.perf_counter()

    def start(self, stage) -> None:
        print(f"\n== demo stage: {stage.name} ({time.strftime('%H:%M:%S')}) ==", flush=True)

    def record(self, done) -> None:
        """Add one finished stage's wall and CPU seconds (``dslm.stagepool.Finished``)."""
        for key, value in (("stages", done.wall), ("cpu_stages", done.cpu)):
            self.doc[key][done.name] = round(self.doc[key].get(done.name, 0.0) + value, 1)
        atomic_write_json(self.path, self.doc)
        print(f"== {done.name}: {done.wall:.0f} s wall, {done.cpu:.0f} s CPU ==", flush=True)

    def run(self, name: str, fn):
        from dslm.stagepool import Finished, Stage

        self.start(Stage(name, fn))
        start, cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        self.record(Finished(name, result, time.perf_counter() - start, cpu_seconds() - cpu))
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


def demo_workers(cfg: DemoConfig) -> int:
    """``cfg.workers``, or for 0: one process per CPU core up to 2 (1 on a GPU)."""
    if cfg.workers > 0:
        return cfg.workers
    if cfg.device not in ("auto", "cpu"):
        return 1
    if cfg.device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    return max(1, min(2, os.cpu_count() or 1))


def demo_stages(cfg: DemoConfig, progress: bool = False) -> list:
    """Every stage of the demo as :class:`dslm.stagepool.Stage`, in the order the pool
    starts them when ready: the first base MDLM and the AR model, the other bases, every
    continuation (short), then the long sampling stages (the first base's comparison
    samples and the table sweep, the other bases' comparisons), MAUVE of the pooled
    samples, the analyses and traces (short, last: they fill the tail). With two workers
    this keeps both busy to the end (the default demo's stages, in CPU-seconds, are in
    the README's Budget)."""
    from dslm.stagepool import Stage

    out = Path(cfg.out)
    bases = [Stage(_base_name(j), _train_base, (cfg, j, progress)) for j in range(cfg.base_seeds)]
    stages = bases[:1] + [Stage("ar", _train_ar, (cfg, progress))] + bases[1:]
    conts = {j: [] for j in range(cfg.base_seeds)}
    compares = {j: [] for j in range(cfg.base_seeds)}
    for j, k, suffix in _continuations(cfg):
        for name in (f"dsl{suffix}", f"mdlm-control{suffix}"):
            conts[j].append(Stage(name, _train_continuation, (cfg, name, j, k, progress),
                                  needs=(_base_name(j),)))
        if not suffix and _reuses_table(cfg):
            continue
        compares[j].append(Stage(f"compare{suffix}", _compare_seed, (cfg, j, k, suffix, progress),
                                 needs=(f"dsl{suffix}", f"mdlm-control{suffix}", "ar")))
    sweep = Stage("sweep", _table_sweep, (cfg, out, progress), needs=("dsl", "mdlm-control", "ar"))
    for j in range(cfg.base_seeds):                  # short training stages first
        stages += conts[j]
    stages += compares[0][:1] + [sweep] + compares[0][1:]
    for j in range(1, cfg.base_seeds):
        stages += compares[j]
    first = tuple(s.name for s in compares[0]) + (("sweep",) if _reuses_table(cfg) else ())
    stages.append(Stage("mauve", _pooled_mauve_stage, (cfg,), needs=first))
    stages.append(Stage("analyze", _analyze, (cfg,), needs=("dsl", "mdlm-control", "ar")))
    stages.append(Stage("traces", _traces, (cfg,), needs=("dsl", "mdlm-control", "ar")))
    return stages


def _run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage on ``demo_workers(cfg)`` processes, then the verdicts
    and the report here; returns the table sweep's results document."""
    from dslm.stagepool import run_stages

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer(out / "demo.json")
    workers = demo_workers(cfg)
    timer.doc["workers"] = workers
    if workers > 1:
        timer.doc["stage_threads"] = 1          # dslm.stagepool's worker processes
    else:
        import torch

        timer.doc["stage_threads"] = torch.get_num_threads()
    if workers > 1:
        print(f"running the demo's stages on {workers} processes (1 thread each); "
              f"each stage's output: {out / 'logs'}/<stage>.log", flush=True)
    timer.run("data", lambda: _prepare_data(cfg, progress))
    done = run_stages(demo_stages(cfg, progress=progress and workers == 1), workers, out / "logs",
                      on_start=timer.start, on_done=timer.record)
    timer.run("verdicts", lambda: _verdicts(cfg, out))
    from dslm.evidence import recipe_facts     # NELBO curves vs the corpus's unigram entropy

    timer.doc["recipe"] = recipe_facts(_run_config(cfg, "mdlm", out / "mdlm", 1, cfg.seed).data,
                                       {_base_name(j): out / _base_name(j) for j in range(cfg.base_seeds)})
    from dslm.report.html import write_demo_report

    write_demo_report(cfg, out, done["traces"].result)
    timer.doc["total_seconds"] = round(sum(timer.doc["stages"].values()), 1)
    timer.doc["total_cpu_seconds"] = round(sum(timer.doc["cpu_stages"].values()), 1)
    timer.doc["wall_seconds"] = round(time.perf_counter() - timer.began + timer.doc.get("wall_before", 0.0), 1)
    atomic_write_json(out / "demo.json", timer.doc)
    return done["sweep"].result


def _prepare_data(cfg: DemoConfig, progress: bool) -> None:
    """Tokenizer and tokenised blocks of every role's data, here, once: the stages that
    then run side by side only read the cache (no two processes build the same folder)."""
    from dslm.data.prepare import prepare_data

    seen = set()
    for role in RUN_ROLES:
        data = _run_config(cfg, role, Path(cfg.out) / role, 1, cfg.seed).data
        key = json.dumps(dataclasses.asdict(data), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            prepare_data(data, progress=progress)


# -- the stages (module-level functions: a worker process runs them) ------------------
def _train_base(cfg: DemoConfig, j: int, progress: bool):
    from dslm.train import train

    train(_run_config(cfg, "mdlm", Path(cfg.out) / _base_name(j), cfg.mdlm_steps, cfg.seed + j),
          resume=True, progress=progress)


def _train_continuation(cfg: DemoConfig, name: str, j: int, k: int, progress: bool):
    """``dsl<suffix>`` (DSL fine-tune of base ``j``) or ``mdlm-control<suffix>`` (the same
    MDLM continued for as many updates), seed ``seed + j + k``; resumes a saved state."""
    from dslm.models.checkpoint import open_checkpoint
    from dslm.train import train
    from dslm.train.starts import finetune_start
    from dslm.train.state import STATE_DIR

    out, base = Path(cfg.out), Path(cfg.out) / _base_name(j)
    role = "dsl" if name.startswith("dsl") else "control"
    run_cfg = _run_config(cfg, role, out / name, cfg.extra_steps, cfg.seed + j + k)
    fresh = not (Path(run_cfg.train.out_dir) / STATE_DIR).exists()
    start = None
    if fresh:
        start = (finetune_start(base, dataclasses.asdict(run_cfg.model)) if role == "dsl"
                 else open_checkpoint(base, expect_kind="mdlm"))
    train(run_cfg, resume=True, init_model=start, progress=progress)


def _train_ar(cfg: DemoConfig, progress: bool):
    from dslm.train import train

    train(_run_config(cfg, "ar", Path(cfg.out) / "ar", cfg.ar_steps, cfg.seed), resume=True,
          progress=progress)


def _analyze(cfg: DemoConfig):
    """Calibration and self-correction of the DSL model and its MDLM control (small:
    docs/ANALYSES.md). The judge of the changes is the pretrained one when installed,
    else the demo's AR model, which also defines the wrong tokens (same tokenizer)."""
    from dslm.analyze import demo_analyses
    from dslm.evaluate import judges
    from dslm.processes import resolve_device

    out = Path(cfg.out)
    judge = judges.SMOLLM2 if judges.available(judges.SMOLLM2) else str(out / "ar")
    device = str(resolve_device(cfg.device, what="demo.device"))
    steps = tuple(sorted(cfg.steps)[:2])
    # a finished stage is not redone: same settings, same checkpoints (by their files' times)
    stamp = out / "analyze" / "made_from.json"
    made_from = {"judge": judge, "steps": list(steps), "seed": cfg.seed, "device": device,
                 "checkpoints": {name: _weights_time(out / name) for name in ("dsl", "mdlm-control", "ar")}}
    outputs = [out / "analyze" / f for f in ("calibration.json", "self_correction.json")]
    if stamp.is_file() and all(f.is_file() for f in outputs) and \
            json.loads(stamp.read_text(encoding="utf-8")) == made_from:
        return
    demo_analyses(str(out / "dsl"), str(out / "mdlm-control"), "validation", judge, out / "analyze",
                  reference=str(out / "ar"), steps=steps, seed=cfg.seed, device=device)
    atomic_write_json(stamp, made_from)


def _weights_time(run: Path) -> int:
    """When a run's checkpoint weights were written (ns; 0 if absent)."""
    path = run / "checkpoint" / "model.safetensors"
    return path.stat().st_mtime_ns if path.is_file() else 0


def _traces(cfg: DemoConfig) -> list[dict]:
    """One short trace per sampler family (``traces/``) for the report."""
    from dslm.report.traces import record_demo_traces

    return record_demo_traces(cfg, Path(cfg.out))


def _labels(cfg: DemoConfig) -> tuple[str, str]:
    total = cfg.mdlm_steps + cfg.extra_steps
    return (f"DSL ({cfg.mdlm_steps} MDLM + {cfg.extra_steps} DSL steps)", f"MDLM ({total} steps)")


def _sweep_config(cfg: DemoConfig, out: Path, models, samplers, steps, extra_points, num_samples,
                  ar_baseline: bool = True, mauve: bool = True):
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
        eval_batch_size=cfg.eval_batch_size, mauve=mauve, judge_dtype=cfg.judge_dtype,
        device="" if cfg.device == "auto" else cfg.device)


def _table_sweep(cfg: DemoConfig, out: Path, progress: bool) -> dict:
    """Every sampler at every T on the seed-``seed`` DSL model and MDLM control."""
    from dslm.evaluate.sweep import run_sweep

    dsl_label, mdlm_label = _labels(cfg)
    models = [(mdlm_label, str(out / "mdlm-control")), (dsl_label, str(out / "dsl"))]
    return run_sweep(_sweep_config(cfg, out / "sweep", models, cfg.samplers, cfg.steps,
                                   cfg.extra_points, cfg.num_samples), progress=progress)


def _reuses_table(cfg: DemoConfig) -> bool:
    """Seed 0's pairs come from the table sweep when it samples the compared samplers at
    the compared T with at least ``compare_samples`` per point (``dslm.demo_compare``)."""
    from dslm.demo_compare import table_covers

    return table_covers(cfg)


def _pair_labels(cfg: DemoConfig, j: int, k: int) -> tuple[str, str]:
    tag = f"base {cfg.seed + j} seed {cfg.seed + j + k}"
    return f"DSL ({tag})", f"MDLM control ({tag})"


def _compare_folder(cfg: DemoConfig, suffix: str) -> Path:
    return Path(cfg.out) / "compare" / (suffix.lstrip("-") or "s0")


def _compare_samplers(cfg: DemoConfig) -> list[str]:
    return list(dict.fromkeys(s for pair in cfg.pairs() for s in pair))


def _compare_seed(cfg: DemoConfig, j: int, k: int, suffix: str, progress: bool) -> None:
    """Stage ``compare<suffix>``: sample one continuation pair (DSL and its control) with
    the compared samplers at ``compare_steps``, ``compare_samples`` each, and score them
    (gen PPL, entropy; MAUVE is scored later on the seeds' samples pooled)."""
    from dslm.evaluate.sweep import run_sweep

    out = Path(cfg.out)
    dsl_label, ctl_label = _pair_labels(cfg, j, k)
    models = [(ctl_label, str(out / f"mdlm-control{suffix}")), (dsl_label, str(out / f"dsl{suffix}"))]
    n = cfg.extra_base_samples if j > 0 and cfg.extra_base_samples else cfg.compare_samples
    run_sweep(_sweep_config(cfg, _compare_folder(cfg, suffix), models, _compare_samplers(cfg),
                            cfg.compare_steps, [], n, ar_baseline=False, mauve=False),
              progress=progress)


def _seed_sweeps(cfg: DemoConfig, out: Path, base: int | None = None) -> tuple[dict[int, list], str]:
    """Per base seed j, the :class:`dslm.evaluate.compare.SeedSweep` of each continuation
    seed (its comparison sweep, or for seed 0 the table sweep when it covers the points);
    and the judge they name. ``base``: only that base seed's."""
    from dslm.demo_compare import table_reuse
    from dslm.evaluate import compare

    reuse = table_reuse(cfg, out) if _reuses_table(cfg) else None
    seed_sweeps: dict[int, list] = {}
    judge = "?"
    for j, k, suffix in _continuations(cfg):
        if base is not None and j != base:
            continue
        if not suffix and reuse is not None:
            dsl_label, ctl_label, doc, folder = reuse
        else:
            folder = _compare_folder(cfg, suffix)
            doc = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
            dsl_label, ctl_label = _pair_labels(cfg, j, k)
        judge = doc.get("settings", {}).get("judge", judge)
        seed_sweeps.setdefault(j, []).append(
            compare.SeedSweep(cfg.seed + j + k, doc, dsl_label, ctl_label, folder))
    return seed_sweeps, judge


def _pooled_mauve_stage(cfg: DemoConfig) -> None:
    """Stage ``mauve``: MAUVE of the first base seed's pooled comparison samples
    (``mauve_pooled.json``, read by the verdicts)."""
    out = Path(cfg.out)
    path = out / "mauve_pooled.json"
    sweeps = _seed_sweeps(cfg, out, base=0)[0][0]
    inputs = [Path(sw.folder) / "sweep.json" for sw in sweeps]
    if path.is_file() and all(f.stat().st_mtime <= path.stat().st_mtime for f in inputs):
        return                                   # resumed: its samples have not changed
    atomic_write_json(path, _pooled_mauve(cfg, out, sweeps))


def _verdicts(cfg: DemoConfig, out: Path) -> list:
    """The paired bootstrap over every continuation seed's samples at the comparison
    points (:mod:`dslm.evaluate.compare`): ``verdicts.{json,md}`` and ``reading.md``,
    with the pooled MAUVE of stage ``mauve``."""
    from dslm.evaluate import compare
    from dslm.io import atomic_write_text

    seed_sweeps, judge = _seed_sweeps(cfg, out)
    reuse = _reuses_table(cfg)
    tables = {j: compare.compare(sweeps, cfg.pairs(), list(cfg.compare_steps), seed=cfg.seed)
              for j, sweeps in sorted(seed_sweeps.items())}
    # three or more base MDLMs: their ratios as draws (with two, a t-interval is too wide to say anything)
    bases = (compare.across_bases({cfg.seed + j: rows for j, rows in tables.items()})
             if len(tables) >= 3 else [])
    pooled = json.loads((out / "mauve_pooled.json").read_text(encoding="utf-8"))
    atomic_write_json(out / "verdicts.json", {
        "judge": judge, "compare_samples_per_seed": cfg.compare_samples,
        "extra_base_samples": cfg.extra_base_samples or cfg.compare_samples,
        "seed0_samples": cfg.num_samples if reuse else cfg.compare_samples,
        "tables": {f"base seed {cfg.seed + j}": [r.as_dict() for r in rows] for j, rows in tables.items()},
        "across_bases": [r.as_dict() for r in bases],
        "pooled_mauve": pooled})
    from dslm.evaluate.pooled import markdown as pooled_markdown

    md = "".join(f"## Base MDLM seed {cfg.seed + j}\n\n" + compare.table_markdown(rows) + "\n"
                 for j, rows in tables.items())
    if bases:
        md += "## Across base MDLM seeds\n\n" + compare.across_bases_markdown(bases) + "\n"
    md += f"## MAUVE, base MDLM seed {cfg.seed}, continuation seeds pooled\n\n" + pooled_markdown(pooled)
    atomic_write_text(out / "verdicts.md", "# DSL vs the MDLM control: verdicts\n\n" + md)
    extra = [(f"{'Second base MDLM' if j == 1 else f'Base MDLM {j + 1}'} (seed {cfg.seed + j})",
              tables[j]) for j in range(1, cfg.base_seeds)]
    reading = compare.reading_markdown(tables[0], judge=f"`{judge}`",
                                       title="What the demo shows (generated from verdicts.json)",
                                       extra=extra, bases=bases)
    atomic_write_text(out / "reading.md", reading)
    return tables[0]


def _pooled_mauve(cfg: DemoConfig, out: Path, sweeps: list) -> dict:
    """MAUVE of the base seed's continuation seeds' samples pooled per comparison point
    (``dslm.evaluate.pooled``), with the sweeps' featurizer and text truncation, against
    as many held-out texts; and MAUVE by sample count."""
    from dslm.evaluate import judges, pooled
    from dslm.evaluate.reference import reference_pair
    from dslm.evaluate.textproc import TruncatedLM

    sets = pooled.pooled_sets(sweeps, cfg.pairs(), list(cfg.compare_steps))
    settings = sweeps[0].doc.get("settings", {})
    featurizer = judges.load_named(settings.get("featurizer") or str(out / "ar"))   # MiniLM if installed
    cut = int((settings.get("text_decoding") or {}).get("truncate_tokens") or 0)
    if cut > 0:
        featurizer = TruncatedLM(featurizer, cut)
    n = min(len(texts) for pair in sets.values() for texts in pair)
    reference, second = reference_pair(settings.get("reference") or "validation", n, cfg.seed,
                                       str(out / "mdlm-control"))
    return pooled.pooled_mauve(sets, featurizer, reference, second, cfg.eval_batch_size)
