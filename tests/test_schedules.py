import math

import pytest
import torch
from scipy import stats

from dslm.config import update
from dslm.diffusion.schedules import (LogLinearSchedule, ScheduleConfig, lognormal, mixed, roar,
                                      sample_snr)
from dslm.errors import ConfigError


def test_roar_shapes_values_and_uniform_fraction(gen):
    b, length = 20000, 8
    s = roar((b, length), gen)
    assert s.shape == (b, length)
    assert set(torch.unique(s).tolist()) <= {0.0, float("inf")}
    k = torch.isinf(s).sum(-1)
    assert k.max() <= length - 1                       # at least one masked position
    counts = torch.bincount(k, minlength=length).numpy()
    assert len(counts) == length
    assert stats.chisquare(counts).pvalue > 1e-3       # k ~ U{0..L-1}
    # every position is equally likely to be revealed (random order)
    per_pos = torch.isinf(s).float().mean(0)
    assert (per_pos - per_pos.mean()).abs().max() < 0.02


def test_roar_fraction_test_can_fail():
    """The same statistic rejects a non-uniform reveal count (so the test above has teeth)."""
    g = torch.Generator().manual_seed(0)
    k = torch.clamp(torch.randint(0, 8, (20000,), generator=g) + torch.randint(0, 2, (20000,), generator=g), max=7)
    assert stats.chisquare(torch.bincount(k, minlength=8).numpy()).pvalue < 1e-3


def test_lognormal_moments(gen):
    s = lognormal((400, 100), gen, mu=2.69, sigma=1.41)
    assert (s > 0).all() and torch.isfinite(s).all()
    ls = s.log()
    assert abs(ls.mean().item() - 2.69) < 0.02
    assert abs(ls.std().item() - 1.41) < 0.02
    # per-token draws are independent across positions
    assert ls[:, 0].sub(ls[:, 1]).std().item() > 1.5
    seq = lognormal((400, 10), gen, per_token=False)
    assert torch.equal(seq, seq[:, :1].expand_as(seq))


def test_mixed_share_and_combine(gen):
    s = mixed((20000, 6), gen, p_roar=0.25)
    roar_rows = (s == 0).any(-1) | torch.isinf(s).any(-1)
    assert abs(roar_rows.float().mean().item() - 0.25) < 0.015
    c = mixed((5000, 6), gen, p_roar=1.0, combine=True)
    assert not (c == 0).any()                          # unrevealed tokens carry evidence
    assert torch.isinf(c).any()


def test_sample_snr_dispatch_and_config_errors(gen):
    assert sample_snr(ScheduleConfig(name="roar"), (3, 4), gen).shape == (3, 4)
    with pytest.raises(ConfigError, match="schedule.name|allowed"):
        update(ScheduleConfig(), {"name": "cosine"}, prefix="schedule")
    with pytest.raises(ConfigError, match="p_roar"):
        update(ScheduleConfig(), {"p_roar": 1.5})


def test_loglinear_schedule():
    sch = LogLinearSchedule(eps=1e-3)
    t = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(sch.move_chance(t), (1 - 1e-3) * t)
    assert torch.allclose(sch.alpha(t), torch.exp(-sch.sigma(t)))
    assert torch.allclose(sch.loss_weight(t), 1 / t, rtol=1e-5)
    ts = LogLinearSchedule.sample_t(8, torch.Generator().manual_seed(0))
    assert ((ts >= 1e-3) & (ts <= 1)).all()
    # stratified: one sample in each eighth of [0, 1)
    strata = ((ts - 1e-3) / (1 - 1e-3) * 8).floor().long().sort().values
    assert strata.tolist() == list(range(8))
