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

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml

from dslm.errors import CheckpointError, ConfigError, DSLMError, first_line
from dslm.io import (atomic_directory, atomic_write_text, describe_os_error,
                     jsonl_lines_tolerant, resolve_directory)

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
        raise CheckpointError(f"train state {path} cannot be read ({first_line(e)})") from None


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
        kept = [json.dumps(r, sort_keys=True) for r in read_metrics(self.path.parent)
                if _step_of(r) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as e:
            raise DSLMError(describe_os_error(e, "append to") + "; the last checkpoint is kept"
                            ) from None
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


def _step_of(record: dict[str, Any]) -> int:
    step = record.get("step", 0)
    return step if isinstance(step, int) and not isinstance(step, bool) else 0


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """All events of ``metrics.jsonl`` in a run folder.

    A crash can tear the last line (a partial JSON object): it is skipped with a note.
    Any other line that is not a JSON object with an integer ``step`` is an error.
    """
    path = Path(out_dir) / METRICS
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DSLMError(describe_os_error(e, "read")) from None
    out = []
    for n, record in jsonl_lines_tolerant(text, path, DSLMError, "; move the file away"):
        if not isinstance(record, dict) or not isinstance(record.get("step", 0), int):
            raise DSLMError(f"{path} line {n} is not a metrics record (a JSON object with an "
                            "integer 'step')")
        out.append(record)
    return out


# ---------------------------------------------------------------- before any work

def _local_inputs(cfg, init_model) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    ckpt = init_model.path if init_model is not None else None
    if ckpt is not None:
        inputs["the starting checkpoint"] = ckpt
        if Path(ckpt).name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old"):
            inputs["the starting checkpoint's run folder"] = Path(ckpt).parent
    src = cfg.data.source
    if src not in ("embedded", "synthetic") and not src.startswith("hf:"):
        inputs["the corpus (data.source)"] = src
    if cfg.data.hf_local_path:
        inputs["the corpus (data.hf_local_path)"] = cfg.data.hf_local_path
    if cfg.data.tokenizer not in ("char", "bpe", "gpt2"):
        inputs["the tokenizer (data.tokenizer)"] = cfg.data.tokenizer
    return inputs


def preflight(cfg, is_main: bool = True, init_model=None, needs_data: bool = True) -> None:
    """Everything a training run needs, checked before the first expensive step:
    optional packages, the hub (when the corpus or tokenizer lives there), an output
    folder that is writable and is none of the run's inputs."""
    import os

    from dslm.extras import require
    from dslm.io import check_disjoint, check_output_folder

    if needs_data:
        require("datasets", "corpus preparation")
        if cfg.data.tokenizer == "bpe" and init_model is None:
            require("tokenizers", "data.tokenizer=bpe")
        if cfg.data.tokenizer == "gpt2" and init_model is None:
            require("transformers", "data.tokenizer=gpt2")
            if not os.environ.get("DSLM_GPT2_TOKENIZER"):
                from dslm.hubnet import ensure_hub, in_hub_cache

                ensure_hub("the GPT-2 tokenizer (or set DSLM_GPT2_TOKENIZER to a local folder)",
                           cached=in_hub_cache("gpt2", "vocab.json"))
        if cfg.data.source.startswith("hf:") and not cfg.data.hf_local_path:
            from dslm.hubnet import ensure_hub

            ensure_hub(f"data.source={cfg.data.source} (or set data.hf_local_path)", cached=True)
    if init_model is None:
        from dslm.limits import check_model_memory

        vocab = cfg.model.vocab_size or {"bpe": cfg.data.bpe_vocab_size, "gpt2": 50257}.get(
            cfg.data.tokenizer, 256)
        check_model_memory(cfg.model.resolved(vocab), "the run config", copies=5)
    if not is_main:
        return
    out = Path(cfg.train.out_dir)
    check_disjoint(out, _local_inputs(cfg, init_model), what="the run folder (--out)")
    check_output_folder(out)


@contextlib.contextmanager
def guarded_run(cfg, is_main: bool = True, init_model=None, needs_data: bool = True,
                device_type: str = "cpu") -> Iterator[None]:
    """:func:`preflight`, then the run folder's lock (rank 0) and the reproducibility
    switches (``train.deterministic``, ``train.num_threads``) for the whole run."""
    from dslm.locks import folder_lock
    from dslm.repro import reproducible

    preflight(cfg, is_main, init_model, needs_data)
    with folder_lock(cfg.train.out_dir, enabled=is_main):
        with reproducible(cfg.train.deterministic, cfg.train.num_threads, device_type):
            yield


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
