"""The one training loop: DSL, MDLM and AR models, one process or DDP under torchrun.

Per optimizer step t: ``grad_accum`` micro-batches (``dslm.train.batches`` fixes their
blocks and seeds), loss / grad_accum backpropagated (DDP all-reduces on the last one),
global-norm clipping, AdamW, the lr schedule, the EMA update. The step never
synchronises host and device; losses, gradient norms and a non-finite flag
accumulate on the device and are read only at log, validation and checkpoint steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dslm.config import to_dict
from dslm.errors import ConfigError, DataError, TrainingError
from dslm import processes as distributed
from dslm.train.batches import BlockStream, train_seed, val_batches, val_seed
from dslm.train.config import RunConfig, RunModelConfig, resume_differences
from dslm.train.ema import EMA
from dslm.train.objectives import TrainingView, objective_for
from dslm.train.cpu_memory import keep_freed_memory
from dslm.train.optim import build_optimizer
from dslm.train.state import (CHECKPOINT_DIR, STATE_DIR, MetricsLog, guarded_run,
                              load_train_state, save_train_state, write_run_config)


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path          # <out_dir>/checkpoint (EMA weights, tokenizer, metadata)
    step: int                 # optimizer steps done
    metrics: dict[str, Any]   # the last training and validation figures


def train(cfg: RunConfig, resume: bool = False, init_model=None,
          progress: bool = True, data=None) -> TrainResult:
    """Train the model of ``cfg`` (or ``init_model``) and write the run folder ``cfg.train.out_dir``.

    ``data`` (a ``PreparedData``) defaults to ``dslm.data.prepare_data(cfg.data)``;
    ``init_model`` (a ``Checkpoint``, whose tokenizer the run reuses, or a bare model)
    starts from given weights (fine-tuning, or more steps of a checkpoint) with a fresh
    optimizer; ``resume`` continues the run saved in ``out_dir/train_state`` exactly
    (or starts it if there is none).
    """
    from dslm.models.checkpoint import Checkpoint

    if isinstance(init_model, torch.nn.Module):
        init_model = Checkpoint(init_model, init_model.config)
    dist = distributed.setup(cfg.train.device, "config key 'train.device'")
    try:
        with guarded_run(cfg, dist.is_main, init_model, data is None, dist.device.type):
            return _Training(cfg, dist, resume, init_model, progress, data).run()
    finally:
        distributed.teardown(dist)


def _prepare(cfg: RunConfig, init_model, dist: distributed.Dist, resume: bool, progress: bool):
    """PreparedData for the run; rank 0 builds the cache first, the others then read it."""
    from dslm.data import prepare_data

    tokenizer = _init_tokenizer(init_model) or (_run_tokenizer(cfg) if resume else None)
    if dist.is_main:
        data = prepare_data(cfg.data, tokenizer=tokenizer, progress=progress)
        distributed.barrier(dist)
    else:
        distributed.barrier(dist)
        data = prepare_data(cfg.data, tokenizer=tokenizer, progress=False)
    return data


def _init_tokenizer(start):
    """The tokenizer the starting checkpoint records, if it records one."""
    return start.tokenizer() if start is not None and start.tokenizer_spec is not None else None


def _run_tokenizer(cfg: RunConfig):
    """The tokenizer of an existing run folder's checkpoint (so a resumed run keeps it)."""
    ckpt = Path(cfg.train.out_dir) / CHECKPOINT_DIR
    if not (ckpt / "config.json").is_file():
        return None
    from dslm.models.checkpoint import open_checkpoint

    return open_checkpoint(ckpt, weights=False).tokenizer()


def _check_data(cfg: RunConfig, data, model_seq_len: int) -> None:
    for split in ("train", "val"):
        blocks = getattr(data, split)
        if getattr(blocks, "ndim", 0) != 2:
            raise DataError(f"prepared {split} data must be a [N, seq_len] array")
    if len(data.train) == 0:
        raise DataError("the prepared data holds no training blocks; use a larger corpus "
                        "or a smaller data.seq_len")
    if cfg.train.eval_every and len(data.val) == 0:
        raise DataError("the prepared data holds no validation blocks; raise data.val_fraction "
                        "or set train.eval_every=0")
    check_seq_len(int(data.train.shape[1]), model_seq_len)


def check_seq_len(data_len: int, model_len: int) -> None:
    """Blocks must fit the model (its rotary table and attention are built for model.seq_len)."""
    if data_len > model_len:
        raise ConfigError(f"data.seq_len ({data_len}) is larger than model.seq_len "
                          f"({model_len}); lower data.seq_len or raise model.seq_len")


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _Training:
    """One training run's state; ``run()`` executes it."""

    def __init__(self, cfg: RunConfig, dist, resume: bool, init_model, progress: bool, data):
        self.dist = dist
        self.device = dist.device
        tcfg = cfg.train
        if tcfg.num_threads and self.device.type == "cpu":
            torch.set_num_threads(tcfg.num_threads)
        if self.device.type == "cpu":
            keep_freed_memory()             # each step's temporaries reuse the heap (cpu_memory)
        if init_model is None:                          # fail before preparing any data
            check_seq_len(cfg.data.seq_len, cfg.model.seq_len)
        self.data = data if data is not None else _prepare(cfg, init_model, dist, resume, progress)
        self.tokenizer = self.data.tokenizer
        self.model = self._build_model(cfg, init_model)
        self.cfg = dataclasses.replace(cfg, model=RunModelConfig(**to_dict(self.model.config)))
        _check_data(self.cfg, self.data, self.model.config.seq_len)
        self.out_dir = Path(tcfg.out_dir)
        self.progress = progress and dist.is_main
        self.ema = EMA(self.model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
        self.optimizer, self.scheduler = build_optimizer(self.model, tcfg, self.device)
        self.step = 0
        self.last: dict[str, Any] = {}
        self._restore(resume)
        self.forward = self._wrap()
        self.objective = objective_for(self.model.config.kind, cfg.schedule, tcfg,
                                       eos_id=getattr(self.tokenizer, "eos_id", None))
        micro = dist.world_size * tcfg.grad_accum
        self.stream = BlockStream(self.data.train, tcfg.batch_size, micro, tcfg.seed)
        self.micro_ids = [dist.rank * tcfg.grad_accum + m for m in range(tcfg.grad_accum)]
        self.val_sets = val_batches(self.data.val, tcfg.batch_size, tcfg.eval_batches)
        self.unigram = self._unigram() if len(self.val_sets) and tcfg.eval_every else None
        self.plateau: dict[int, torch.Tensor] = {}      # val batch -> val_unigram term
        self.generator = torch.Generator(device=self.device)
        bf16 = tcfg.precision == "bf16" or (tcfg.precision == "auto" and self.device.type == "cuda")
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")

    # ------------------------------------------------------------------ setup

    def _build_model(self, cfg: RunConfig, init_model):
        from dslm.models import build_model

        vocab = int(self.tokenizer.vocab_size)
        if init_model is not None:
            kind = init_model.config.kind
            if kind != cfg.model.kind:
                raise ConfigError(f"the starting checkpoint holds a '{kind}' model but "
                                  f"model.kind is '{cfg.model.kind}'")
            if init_model.config.vocab_size != vocab:
                raise ConfigError(f"the starting checkpoint has vocab_size "
                                  f"{init_model.config.vocab_size} but the tokenizer has {vocab} "
                                  "tokens; use the tokenizer the model was trained with")
            model = init_model.model
        else:
            torch.manual_seed(cfg.train.seed)
            model = build_model(cfg.model.resolved(vocab))
        return model.to(self.device).train()

    def _unigram(self):
        """MDLM runs: the plateau's denoiser, scored on the validation draws (``val_unigram``)."""
        if self.model.config.kind != "mdlm":
            return None
        from dslm.train.unigram import UnigramDenoiser, token_counts

        counts = token_counts(self.data.train, int(self.tokenizer.vocab_size))
        return UnigramDenoiser(counts, self.model.mask_id).to(self.device).eval()

    def _restore(self, resume: bool) -> None:
        tcfg = self.cfg.train
        state = load_train_state(self.out_dir) if resume else None
        if state is None:
            if not resume and (self.out_dir / STATE_DIR).exists():
                raise ConfigError(f"run folder {self.out_dir} already holds a training run; "
                                  "pass --resume to continue it or choose another --out")
            return
        diff = resume_differences(state["run_config"], to_dict(self.cfg))
        if diff:
            raise ConfigError(f"cannot resume {self.out_dir}: config key '{diff[0]}' differs from "
                              "the saved run" + (f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""))
        saved, now = state["layout"], self.dist.world_size * tcfg.grad_accum
        if saved["micro_per_step"] != now:
            raise ConfigError(f"cannot resume {self.out_dir}: it ran {saved['micro_per_step']} "
                              f"micro-batches per step (world size x train.grad_accum), now {now}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.last = dict(state.get("metrics", {}))

    def _wrap(self):
        """The callable the losses run: DDP and/or torch.compile around the raw model."""
        wrapper = self.model
        self.ddp = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapper = self.ddp = DDP(self.model, device_ids=ids)
        from dslm.perf import compile_enabled, compile_model, compile_scope

        if compile_enabled(self.device, self.cfg.train.compile):
            # blocks: compiled in place inside the (DDP-wrapped) model; model: one graph around it
            wrapper = compile_model(wrapper, compile_scope(self.cfg.train.compile_scope))
        return TrainingView(wrapper, self.model)

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        tcfg = self.cfg.train
        log = MetricsLog(self.out_dir, tcfg.loggers, _json_safe(to_dict(self.cfg)),
                         enabled=self.dist.is_main)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_run_config(self.out_dir, _json_safe(to_dict(self.cfg)))
            log.truncate_after(self.step)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=tcfg.steps, initial=self.step, unit="step", dynamic_ncols=True,
                       desc=f"train {self.model.config.kind}")
        try:
            self._loop(log, bar)
        finally:
            if bar is not None:
                bar.close()
            log.close()
        return TrainResult(self.out_dir, self.out_dir / CHECKPOINT_DIR, self.step, self.last)

    def _loop(self, log: MetricsLog, bar) -> None:
        tcfg = self.cfg.train
        self._sums = torch.zeros(3, device=self.device)        # loss, nll, grad norm
        self._first_bad = torch.full((), math.inf, device=self.device)
        if self.step == 0 and tcfg.eval_every and len(self.val_sets):
            log.write({"step": 0, **self._validate()})           # the starting point of the curve
        self._window = (time.perf_counter(), self.step)
        while self.step < tcfg.steps:
            self._train_step()
            self.step += 1
            if bar is not None:
                bar.update(1)
            end = self.step == tcfg.steps
            if end or (tcfg.log_every and self.step % tcfg.log_every == 0):
                record = self._log_record()
                log.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}",
                                    tok_s=f"{record['tokens_per_s']:.0f}")
            if end or (tcfg.eval_every and self.step % tcfg.eval_every == 0):
                if len(self.val_sets):
                    paused = time.perf_counter()
                    self._check_finite()
                    record = {"step": self.step, **self._validate()}
                    self.last.update(record)
                    log.write(record)
                    self._pause_window(paused)
            if end or (tcfg.checkpoint_every and self.step % tcfg.checkpoint_every == 0):
                paused = time.perf_counter()
                self._check_finite()
                if self.dist.is_main:
                    self._save()
                distributed.barrier(self.dist)
                self._pause_window(paused)

    def _train_step(self) -> None:
        tcfg = self.cfg.train
        accum = tcfg.grad_accum
        step_loss = torch.zeros((), device=self.device)
        step_nll = torch.zeros((), device=self.device)
        for m, micro in enumerate(self.micro_ids):
            x0 = self.stream.batch(self.step, micro, self.device)
            seed = train_seed(tcfg.seed, self.step, micro)
            self.generator.manual_seed(seed)
            torch.manual_seed(seed)                                 # dropout
            last = m == accum - 1
            sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with sync:
                with self.autocast:
                    out = self.objective(self.forward, x0, self.generator)
                (out.loss / accum).backward()
            step_loss += out.loss.detach().float() / accum
            step_nll += out.nll.detach().float() / accum
        clip = tcfg.grad_clip if tcfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        bad = ~(torch.isfinite(step_loss) & torch.isfinite(grad_norm))
        self._first_bad = torch.where(bad & torch.isinf(self._first_bad),
                                      torch.full_like(self._first_bad, self.step + 1), self._first_bad)
        self._sums += torch.stack([step_loss, step_nll, grad_norm.float()])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model, self.step + 1)

    # ------------------------------------------------------------------ reporting

    def _check_finite(self) -> None:
        """Stop with a TrainingError naming the first step whose loss or gradient was not finite."""
        first_bad = distributed.all_reduce(self._first_bad.clone(), self.dist,
                                           op=torch.distributed.ReduceOp.MIN)
        bad = float(first_bad)
        if math.isfinite(bad):
            kept = self.out_dir / CHECKPOINT_DIR
            where = (f"the last good checkpoint is kept in {kept}" if kept.exists()
                     else "no checkpoint was written")
            raise TrainingError(f"the loss or gradient became NaN/inf at step {int(bad)}; training "
                                f"stopped and {where} (try a lower train.lr or train.grad_clip)")

    def _log_record(self) -> dict[str, Any]:
        tcfg = self.cfg.train
        self._check_finite()
        sums = distributed.all_reduce(self._sums.clone(), self.dist) / self.dist.world_size
        start_time, start_step = self._window
        steps = self.step - start_step
        loss, nll, grad_norm = (v / max(steps, 1) for v in sums.tolist())
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        tokens = self.stream.global_batch * int(self.data.train.shape[1])
        record = {"step": self.step, "loss": loss, "nll": nll, "grad_norm": grad_norm,
                  "lr": self.scheduler.get_last_lr()[0], "tokens": tokens * self.step,
                  "tokens_per_s": tokens * steps / elapsed}
        self._sums.zero_()
        self._window = (time.perf_counter(), self.step)
        self.last.update(record)
        return record

    def _pause_window(self, since: float) -> None:
        """Leave validation and checkpoint time out of the tokens/s window."""
        start_time, start_step = self._window
        self._window = (start_time + time.perf_counter() - since, start_step)

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Mean loss and NLL over the fixed validation batches, on the EMA weights.

        The noise of validation batch i (t, masks, SNRs) is seeded by i alone, not by
        ``train.seed``: every run of a corpus is scored on the same draws, so curves of
        different seeds compare. MDLM runs also report ``val_unigram``, the NELBO of the
        frequencies-only denoiser on those draws (dslm.train.unigram).
        """
        model = self.ema.module if self.ema is not None else self.model.eval()
        sums = torch.zeros(4, device=self.device)
        for i, idx in enumerate(self.val_sets):
            if i % self.dist.world_size != self.dist.rank:
                continue
            x0 = torch.from_numpy(np.asarray(self.data.val[idx], dtype=np.int64)).to(self.device)
            self.generator.manual_seed(val_seed(i))
            with self.autocast:
                out = self.objective(model, x0, self.generator)
            plateau = torch.zeros((), device=self.device)
            if self.unigram is not None:          # same draws, no weights: once per run
                plateau = self.plateau.get(i)
                if plateau is None:
                    self.generator.manual_seed(val_seed(i))
                    plateau = self.objective(self.unigram, x0, self.generator).loss.detach()
                    self.plateau[i] = plateau
            sums += torch.stack([out.loss.float(), out.nll.float(), plateau.float(),
                                 torch.ones((), device=self.device)])
        self.model.train()
        loss, nll, plateau, count = distributed.all_reduce(sums, self.dist).tolist()
        if not (math.isfinite(loss) and math.isfinite(nll)):
            raise TrainingError(f"the validation loss became NaN/inf at step {self.step}; "
                                "training stopped (try a lower train.lr or train.grad_clip)")
        record = {"val_loss": loss / count, "val_nll": nll / count}
        if self.unigram is not None:
            record["val_unigram"] = plateau / count
        return record

    def _save(self) -> None:
        """Write checkpoint/ (EMA weights, tokenizer, metadata), then train_state/.

        In this order a train_state/ at step k implies a checkpoint/ of step k or later,
        so a run killed between the two writes (even at its last step) resumes from the
        older state, replays the step deterministically and rewrites both.
        """
        from dslm.models import checkpoint

        run_config = _json_safe(to_dict(self.cfg))
        from dslm.provenance import environment

        metadata = {"tokenizer": self.tokenizer.spec(), "run_config": run_config,
                    "environment": environment(),
                    "step": self.step, "metrics": self.last,
                    "data": _json_safe(getattr(self.data, "meta", {}) or {})}
        tokenizer = self.tokenizer
        checkpoint.save(self.model, self.out_dir / CHECKPOINT_DIR, metadata=metadata,
                        write_extra=lambda tmp: tokenizer.save(Path(tmp) / "tokenizer"),
                        state_dict=self.ema.state_dict() if self.ema is not None else None)
        save_train_state(self.out_dir, {
            "step": self.step,
            "data_position": self.step * self.stream.global_batch,
            "layout": {"micro_per_step": self.stream.micro_per_step,
                       "batch_size": self.cfg.train.batch_size},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "run_config": run_config,
            "metrics": self.last,
        })
