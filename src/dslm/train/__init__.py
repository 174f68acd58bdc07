"""The one training loop (single process or DDP under torchrun) and its configs.

``train(RunConfig, resume=False, init_model=None, progress=True, data=None)`` writes a
run folder: ``checkpoint/`` (EMA weights + tokenizer + metadata, a normal dslm
checkpoint), ``train_state/`` (for ``resume``), ``run.yaml`` and ``metrics.jsonl``.

  config.py      TrainConfig, RunConfig (model, data, schedule, train)
  loop.py        train(): steps, validation, logging, checkpoints
  objectives.py  the loss of each model kind
  batches.py     deterministic data order and per-step seeds (exact resume, DDP = 1 process)
  ema.py         EMA of the weights
  optim.py       AdamW and the lr schedule
  state.py       run-folder files: train_state, run.yaml, metrics.jsonl
  starts.py      starting points: a checkpoint to continue, an MDLM to fine-tune into DSL
"""

from dslm.train.config import AUTO_VOCAB, RunConfig, RunModelConfig, TrainConfig
from dslm.train.loop import TrainResult, train

__all__ = ["AUTO_VOCAB", "RunConfig", "RunModelConfig", "TrainConfig", "TrainResult", "train"]
