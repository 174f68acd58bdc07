"""The run folder: ``checkpoint/``, ``train_state/``, ``run.yaml``, ``metrics.jsonl``.

* ``checkpoint/``: a normal dslm checkpoint (``dslm.models.checkpoint``) holding the
  EMA weights, the tokenizer in ``checkpoint/tokenizer/``, and metadata with the
  tokenizer spec (key ``"tokenizer"``), the run config and the last metrics.
* ``train_state/state.pt``: what ``resume`` needs: raw weights, optimizer, EMA,
  scheduler, step and data position. The data order and every random draw are
  functions of (seed, step) (``dslm.train.batches``), so no RNG state is needed.
  Written atomically (``dslm.io.atomic_directory``) and read with
  ``torch.load(weights_only=True)`` only.
* ``run.yaml``: the resolved run config (``dslm train --resume --out DIR`` reads it).
* ``metrics.jsonl``: one JSON object per log or validation event, each with ``step``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from dslm.errors import CheckpointError, ConfigError
from dslm.io import atomic_directory, atomic_write_text, resolve_directory

STATE_DIR = "train_state"
STATE_FILE = "state.pt"
CHECKPOINT_DIR = "checkpoint"
RUN_CONFIG = "run.yaml"
METRICS = "metrics.jsonl"


def save_train_state(out_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, nested dicts/lists) atomically."""
    with atomic_directory(out_dir / STATE_DIR) as tmp:
        torch.save(state, tmp / STATE_FILE)


def load_train_state(out_dir: Path) -> dict[str, Any] | None:
    """The saved train state of the run in ``out_dir``, or None if there is none."""
    path = resolve_directory(out_dir / STATE_DIR) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, unpickling refused, ...
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise CheckpointError(f"train state {path} cannot be read ({msg})") from None


def write_run_config(out_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(out_dir / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))


class MetricsLog:
    """Append-only ``metrics.jsonl``, plus TensorBoard / wandb when asked for."""

    def __init__(self, out_dir: Path, loggers: list[str], run_config: dict[str, Any],
                 enabled: bool = True):
        self.path = out_dir / METRICS
        self.enabled = enabled
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        if "tensorboard" in loggers:
            self._tb = _tensorboard_writer(out_dir / "tensorboard")
        if "wandb" in loggers:
            self._wandb = _wandb_run(out_dir, run_config)

    def truncate_after(self, step: int) -> None:
        """Drop events past ``step`` (written by a run that was killed after its last save)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        step = record.get("step", 0)
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """All events of ``metrics.jsonl`` in a run folder."""
    path = Path(out_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.loggers asks for tensorboard, which is not installed "
                          "(pip install tensorboard)") from None
    return SummaryWriter(str(path))


def _wandb_run(out_dir: Path, run_config: dict[str, Any]):
    try:
        import wandb
    except ImportError:
        raise ConfigError("train.loggers asks for wandb, which is not installed "
                          "(pip install wandb)") from None
    return wandb.init(project="dslm", name=out_dir.name, dir=str(out_dir), config=run_config)
