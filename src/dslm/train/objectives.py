"""The training objective of each model kind (docs/MATH.md §5), owned by its model class:

* ``dsl``:  ``dsl_loss`` with the run's SNR schedule (``mixed`` by default), the
  ``loss_on_revealed``, ``mix_lambda`` / ``mix_formula`` and ``loss_exclude_eos`` flags;
* ``mdlm``: ``mdlm_loss``, MDLM's NELBO under the log-linear schedule with SUBS
  (``train.mdlm_weighting=flat`` trains on the masked-token mean CE; validation, in
  eval mode, always reports the NELBO);
* ``ar``:   ``ar_loss``, next-token NLL (the offline judge and the AR baseline).

Each objective maps ``(model, x0 [B, L], generator) -> LossOutput``.
"""

from __future__ import annotations

from typing import Callable

import torch

from dslm.diffusion.losses import LossOutput
from dslm.diffusion.schedules import ScheduleConfig
from dslm.errors import ConfigError
from dslm.train.config import TrainConfig

Objective = Callable[[object, torch.Tensor, torch.Generator], LossOutput]


def objective_for(kind: str, schedule: ScheduleConfig, train: TrainConfig,
                  eos_id: int | None = None) -> Objective:
    """The loss function the model class of ``kind`` trains with (``eos_id``: for
    ``train.loss_exclude_eos``); see each class's ``objective``."""
    from dslm.models import MODEL_KINDS

    if kind not in MODEL_KINDS:
        raise ConfigError(f"config key 'model.kind': unknown value '{kind}'; allowed: dsl, mdlm, ar")
    return MODEL_KINDS[kind].objective(schedule, train, eos_id)


class TrainingView:
    """The model as the losses see it: calls run through the training wrapper (DDP,
    ``torch.compile``), attributes (``embeddings``, ``mask_id``, ...) come from the raw model."""

    def __init__(self, wrapper, raw):
        self._wrapper = wrapper
        self._raw = raw

    def __call__(self, *args, **kwargs):
        return self._wrapper(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._raw, name)
