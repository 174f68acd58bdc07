"""The run configuration: ``RunConfig(model, data, schedule, train)``.

YAML files under ``configs/`` hold a ``RunConfig``; read one with
``dslm.config.load(RunConfig, path, ["train.lr=1e-3", ...])``.

Global batch (sequences per optimizer step) =
``train.batch_size`` (per process) x world size x ``train.grad_accum``.
``model.vocab_size: 0`` (the default here) means "take |V| from the tokenizer".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dslm.config import choices
from dslm.data.config import DataConfig
from dslm.diffusion.schedules import ScheduleConfig
from dslm.errors import ConfigError
from dslm.models.config import ModelConfig

#: ``model.vocab_size`` value meaning "set |V| from the tokenizer".
AUTO_VOCAB = 0

#: Keys of ``train`` that may change when a run is resumed (they do not change the math).
#: ``grad_accum`` may change with the world size as long as world size x grad_accum stays.
RESUMABLE_KEYS = ("steps", "grad_accum", "log_every", "eval_every", "checkpoint_every", "out_dir",
                  "loggers", "compile", "compile_scope", "device", "num_threads", "deterministic")


@dataclass
class RunModelConfig(ModelConfig):
    """``ModelConfig`` whose ``vocab_size`` may be 0 (= |V| of the tokenizer)."""

    vocab_size: int = AUTO_VOCAB

    def validate(self) -> None:
        if self.vocab_size < 0:
            raise ConfigError(f"config key 'model.vocab_size' must be >= 1 or 0 (auto), "
                              f"got {self.vocab_size}")
        probe = self if self.vocab_size != AUTO_VOCAB else dataclasses.replace(self, vocab_size=1)
        ModelConfig.validate(probe)

    def resolved(self, vocab_size: int) -> ModelConfig:
        """A plain ``ModelConfig`` with |V| filled in (``vocab_size`` is the tokenizer's)."""
        values = dataclasses.asdict(self)
        if self.vocab_size == AUTO_VOCAB:
            values["vocab_size"] = vocab_size
        elif self.vocab_size != vocab_size:
            raise ConfigError(
                f"config key 'model.vocab_size' is {self.vocab_size} but the tokenizer has "
                f"{vocab_size} tokens; set model.vocab_size={vocab_size} or 0 (auto)")
        cfg = ModelConfig(**values)
        cfg.validate()
        return cfg


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing settings of one training run."""

    out_dir: str = "runs/run"
    seed: int = 0
    steps: int = 1000                 # optimizer steps in total
    batch_size: int = 16              # sequences per process and micro-batch
    grad_accum: int = 1               # micro-batches per optimizer step
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_schedule: str = choices("constant", "cosine", default="constant")
    warmup_steps: int = 0             # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1         # cosine: final lr = min_lr_ratio * lr
    grad_clip: float = 1.0            # max global grad norm; 0 = no clipping
    ema_decay: float = 0.999          # 0 = no EMA (checkpoints hold the raw weights)
    precision: str = choices("auto", "bf16", "fp32", default="auto")  # auto: bf16 on GPU
    compile: bool = False             # torch.compile the model on GPU (opt-in: NaN DSL loss seen compiled whole on an H200; DSLM_COMPILE=0/1 overrides)
    # blocks: each transformer block compiled on its own (one block's compile time; the
    # fused vocabulary-wide functions stay eager); model: the whole network (DSLM_COMPILE_SCOPE overrides)
    compile_scope: str = choices("blocks", "model", default="blocks")
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    num_threads: int = 0              # CPU threads for torch; 0 = torch's default
    deterministic: bool = True        # torch.use_deterministic_algorithms: bit-identical reruns
    # DSL objective (model.kind = dsl)
    loss_on_revealed: bool = False    # also score revealed positions (the reference code)
    mix_lambda: float = 0.0           # weight of an extra ROAR-only term
    # convex: (1 - lambda) CE + lambda ROAR (the reference code; docs/ABLATION.md: it edged
    # out add by 0.003 nats of ROAR CE in every seed); add: CE + lambda ROAR
    mix_formula: str = choices("convex", "add", default="convex")
    loss_exclude_eos: bool = False    # leave EOS positions out of the loss (reference: pad = EOS)
    # MDLM objective (model.kind = mdlm): nelbo (1/t-weighted) or flat (masked-token mean CE)
    mdlm_weighting: str = choices("nelbo", "flat", default="nelbo")
    # Logging and checkpoints (in optimizer steps; 0 = only at the end)
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 8             # validation batches of batch_size sequences
    checkpoint_every: int = 500
    loggers: list[str] = field(default_factory=list)   # tensorboard, wandb

    def validate(self) -> None:
        for key in ("steps", "batch_size", "grad_accum"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'train.{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("warmup_steps", "log_every", "eval_every", "eval_batches",
                    "checkpoint_every", "num_threads"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'train.{key}' must be >= 0, got {getattr(self, key)}")
        if self.eps <= 0:
            raise ConfigError(f"config key 'train.eps' must be > 0, got {self.eps}")
        if self.num_threads > 4096:
            raise ConfigError(f"config key 'train.num_threads' must be <= 4096, got {self.num_threads}")
        if self.lr <= 0:
            raise ConfigError(f"config key 'train.lr' must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"config key 'train.betas' must be two numbers in [0, 1), got {self.betas}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"config key 'train.ema_decay' must be in [0, 1), got {self.ema_decay}")
        for key in ("weight_decay", "grad_clip", "mix_lambda", "min_lr_ratio"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'train.{key}' must be >= 0, got {getattr(self, key)}")
        if self.mix_formula == "convex" and self.mix_lambda > 1:
            raise ConfigError(f"config key 'train.mix_lambda' must be in [0, 1] with "
                              f"mix_formula=convex, got {self.mix_lambda}")
        unknown = [name for name in self.loggers if name not in ("tensorboard", "wandb")]
        if unknown:
            raise ConfigError(f"config key 'train.loggers': unknown value '{unknown[0]}'; "
                              "allowed: tensorboard, wandb")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"config key 'train.device': unknown value '{self.device}'; "
                              "allowed: auto, cpu, cuda, cuda:N")


@dataclass
class RunConfig:
    """Everything one training run needs; the sections live beside their code."""

    model: RunModelConfig = field(default_factory=RunModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


#: model keys that only change how a fresh model is initialised (a DSL fine-tune inherits
#: its MDLM start's value, so the saved run and the stage's YAML may disagree on them)
INIT_ONLY_MODEL_KEYS = ("shared_embed_init",)


def resume_differences(saved: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ between two ``to_dict(RunConfig)`` dumps.

    Keys in :data:`RESUMABLE_KEYS` (under ``train``) are allowed to change, and so are
    the model keys of :data:`INIT_ONLY_MODEL_KEYS`, which only shape a freshly created
    model (a resumed run takes its weights from the saved state).
    """
    out = []
    for section in ("model", "data", "schedule", "train"):
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section == "train" and key in RESUMABLE_KEYS) or \
                    (section == "model" and key in INIT_ONLY_MODEL_KEYS):
                continue
            va, vb = a.get(key), b.get(key)
            if isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)):
                va, vb = list(va), list(vb)
            if va != vb:
                out.append(f"{section}.{key}")
    return out


def load_run_config(path: str | None, overrides: list[str] | None = None,
                    out_dir: str | None = None, resume: bool = False,
                    base: RunConfig | None = None) -> RunConfig:
    """defaults (or ``base``) -> YAML ``path`` -> ``key=value`` overrides -> ``out_dir``.

    Resuming without a YAML file reads the run's own ``<out_dir>/run.yaml``.
    """
    from pathlib import Path

    from dslm.config import load
    from dslm.train.state import RUN_CONFIG

    if path is None and resume and out_dir is not None and (Path(out_dir) / RUN_CONFIG).is_file():
        path = str(Path(out_dir) / RUN_CONFIG)
    cfg = load(RunConfig, path, overrides, base=base)
    if out_dir is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(out_dir)))
    return cfg
