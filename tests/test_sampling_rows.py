"""Row-restricted scores (``dslm.sampling.rows``): the rows equal the full forward's, bit
for bit, and the samplers draw the same tokens with and without them."""

from __future__ import annotations

import pytest
import torch

from conftest import random_model
from dslm.sampling import SAMPLERS, sample
from dslm.sampling import rows as rows_mod
from dslm.sampling.common import Network
from dslm.sampling.states import token_state

VOCAB, B, L = 150, 8, 16          # B * L = 128 >= MIN_ROWS: the row path is taken


def _subsets(x: torch.Tensor, mask_id: int):
    gen = torch.Generator().manual_seed(3)
    n = x.numel()
    yield x == mask_id                                           # the masked positions
    yield torch.ones_like(x, dtype=torch.bool)                   # every row (carry-over too)
    for k in (1, 3, 5, 13, 70):
        pick = torch.zeros(n, dtype=torch.bool)
        pick[torch.randperm(n, generator=gen)[:k]] = True
        yield pick.view_as(x)


def _state_x(model, mask_id: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, VOCAB, (B, L), generator=gen)
    return torch.where(torch.rand(B, L, generator=gen) < 0.6, mask_id, x)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["mdlm", "dsl"])
def test_rows_equal_the_full_forward_bitwise(kind, threads):
    model = random_model(kind, VOCAB)
    state = token_state(model, Network(model, torch.device("cpu")), torch.Generator())
    x = _state_x(model, state.mask_id)
    with torch.inference_mode():
        full = state.scores(x, 0.5)
        lazy = state.row_scores(x, 0.5)
        assert isinstance(lazy, rows_mod.RowScores)
        assert state.net.nfe == 2                     # one counted call each
        for where in _subsets(x, state.mask_id):
            assert torch.equal(lazy[where], full[where])
            assert torch.equal(lazy[where.nonzero(as_tuple=True)], full[where])
        # a second state: DSL reuses the converter rows of the first call (same keys)
        x2 = torch.where(x == state.mask_id, torch.arange(x.numel()).view_as(x) % VOCAB, x)
        x2[0, :5] = state.mask_id
        full2, lazy2 = state.scores(x2, 0.2), state.row_scores(x2, 0.2)
        for where in _subsets(x2, state.mask_id):
            assert torch.equal(lazy2[where], full2[where])


def test_dsl_soft_remask_rows_equal_the_full_forward():
    torch.set_num_threads(1)
    model = random_model("dsl", VOCAB)
    state = token_state(model, Network(model, torch.device("cpu")), torch.Generator().manual_seed(0),
                        renoise_snr=1.0)
    x_old = torch.randint(0, VOCAB, (B, L), generator=torch.Generator().manual_seed(2))
    remask = torch.rand(B, L, generator=torch.Generator().manual_seed(4)) < 0.3
    state.remasked(x_old, remask)
    x = torch.where(remask, state.mask_id, x_old)
    with torch.inference_mode():
        full, lazy = state.scores(x), state.row_scores(x)
        for where in _subsets(x, state.mask_id):
            assert torch.equal(lazy[where], full[where])


def test_small_calls_and_traced_runs_keep_the_full_forward():
    model = random_model("mdlm", VOCAB)
    net = Network(model, torch.device("cpu"))
    assert rows_mod.enabled(model, net, rows_mod.MIN_ROWS)
    assert not rows_mod.enabled(model, net, rows_mod.MIN_ROWS - 1)
    assert not rows_mod.enabled(model, Network(model, torch.device("cpu"), observer=print), 128)
    handle = model.register_forward_hook(lambda *a: None)
    assert not rows_mod.enabled(model, net, 128)        # a hook must see the real forward
    handle.remove()
    model.train()
    assert not rows_mod.enabled(model, net, 128)


CASES = [("mdlm", {}), ("mdlm", {"final_step": "argmax", "top_p": 0.8}), ("remdm-loop", {}),
         ("remdm-conf", {}), ("dsl-mdlm", {}), ("dsl-mdlm", {"carry_over": False}),
         ("dsl-remdm-loop", {}), ("dsl-remdm-loop", {"renoise_snr": 1.0, "carry_over": False}),
         ("hybrid", {})]


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}{o}" for n, o in CASES])
def test_samplers_draw_the_same_tokens_with_and_without_row_scores(monkeypatch, name, options):
    torch.set_num_threads(1)
    model = random_model(SAMPLERS[name].kinds[0], VOCAB)
    runs = []
    for flag in ("0", "1"):
        monkeypatch.setenv("DSLM_ROW_SCORES", flag)
        res = sample(model, name, B, L, 8, torch.Generator().manual_seed(11), **options)
        runs.append(res)
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert runs[0].nfe == runs[1].nfe
