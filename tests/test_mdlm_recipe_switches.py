"""The MDLM recipe switches: ``train.mdlm_weighting`` and ``model.shared_embed_init``."""

from __future__ import annotations

import pytest
import torch

from dslm.diffusion.losses import mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.errors import ConfigError
from dslm.models import build_model
from dslm.models.config import ModelConfig, preset
from dslm.train.config import TrainConfig
from dslm.train.objectives import objective_for


def _model(**kw):
    torch.manual_seed(0)
    return build_model(preset("micro", kind="mdlm", vocab_size=20, n_blocks=1, **kw))


def test_flat_weighting_is_the_masked_token_mean_and_validation_keeps_the_nelbo():
    model = _model()
    x0 = torch.randint(0, 20, (8, 16), generator=torch.Generator().manual_seed(1))
    nelbo = mdlm_loss(model, x0, torch.Generator().manual_seed(2))
    flat = mdlm_loss(model, x0, torch.Generator().manual_seed(2), weighting="flat")
    assert torch.allclose(flat.loss, flat.nll) and torch.allclose(flat.nll, nelbo.nll)
    assert not torch.allclose(flat.loss, nelbo.loss)
    objective = objective_for("mdlm", ScheduleConfig(), TrainConfig(mdlm_weighting="flat"))
    model.train()
    assert torch.allclose(objective(model, x0, torch.Generator().manual_seed(2)).loss, flat.loss)
    model.eval()                                      # validation runs in eval mode: the NELBO
    assert torch.allclose(objective(model, x0, torch.Generator().manual_seed(2)).loss, nelbo.loss)


def test_shared_embed_init_adds_one_common_direction():
    plain = _model().backbone.vocab_embed.embedding.detach()
    shared = _model(shared_embed_init=1.0).backbone.vocab_embed.embedding.detach()
    diff = shared - plain                              # the same vector on every row
    assert torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-6)
    assert diff.norm() > 0
    # the rows now share a direction: mean pairwise cosine similarity jumps from ~0
    def mean_cos(t):
        u = torch.nn.functional.normalize(t, dim=1)
        return (u @ u.T).fill_diagonal_(0).sum() / (len(t) * (len(t) - 1))
    assert abs(float(mean_cos(plain))) < 0.1 < float(mean_cos(shared))
    with pytest.raises(ConfigError, match="shared_embed_init"):
        ModelConfig(kind="mdlm", shared_embed_init=-1.0).validate()
