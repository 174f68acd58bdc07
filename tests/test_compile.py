"""torch.compile scopes (``dslm.perf.compile_model``): each transformer block compiled on its
own (the default scope) or the whole model; training and the GPU inference wrapper use it."""

import copy
import warnings

import pytest
import torch

from dslm.errors import ConfigError
from dslm.models import build_model, preset
from dslm.perf import (FastNetwork, blocks_compiled, compile_model, compile_scope,
                       transformer_blocks, uncompile_blocks)
from dslm.train.config import TrainConfig


def _model(kind="dsl"):
    torch.manual_seed(0)
    return build_model(preset("micro", kind=kind, vocab_size=70)).eval()


def test_scope_comes_from_the_environment_then_the_setting(monkeypatch):
    monkeypatch.delenv("DSLM_COMPILE_SCOPE", raising=False)
    assert compile_scope() == "blocks" and compile_scope("model") == "model"
    monkeypatch.setenv("DSLM_COMPILE_SCOPE", "model")
    assert compile_scope("blocks") == "model"
    monkeypatch.setenv("DSLM_COMPILE_SCOPE", "layers")
    with pytest.raises(ConfigError, match="DSLM_COMPILE_SCOPE must be one of blocks, model"):
        compile_scope()
    assert TrainConfig().compile_scope == "blocks"


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_block_scope_compiles_every_block_in_place_and_changes_nothing_else(kind):
    model = _model(kind)
    ids = torch.randint(0, 70, (2, 16))
    inputs = (model.embeddings[ids] * 3.0,) if kind == "dsl" else (ids,)
    eager = model(*inputs)
    names = list(model.state_dict())
    same = compile_model(model, "blocks", backend="eager")
    assert same is model and blocks_compiled(model)
    assert all(b._compiled_call_impl is not None for b in transformer_blocks(model))
    assert list(model.state_dict()) == names                 # no "_orig_mod." prefixes
    torch.testing.assert_close(model(*inputs), eager, rtol=0, atol=0)
    assert not blocks_compiled(copy.deepcopy(model))         # a deep copy (EMA) runs eagerly
    uncompile_blocks(model)
    assert not blocks_compiled(model)


def test_model_scope_wraps_the_whole_model():
    model = _model()
    wrapped = compile_model(model, "model", backend="eager")
    assert wrapped is not model and wrapped._orig_mod is model and not blocks_compiled(model)


def test_a_module_without_blocks_is_compiled_whole():
    lin = torch.nn.Linear(3, 3)
    assert compile_model(lin, "blocks", backend="eager")._orig_mod is lin


def test_fast_network_falls_back_to_eager_blocks_when_compilation_fails(monkeypatch):
    """The GPU inference wrapper (used here on the CPU): a compiler error in the first
    call warns, un-compiles the blocks and returns the eager output."""
    monkeypatch.setenv("DSLM_COMPILE", "1")
    monkeypatch.delenv("DSLM_COMPILE_SCOPE", raising=False)

    def broken(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("inductor exploded")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    model = _model("mdlm")
    ids = torch.randint(0, 70, (2, 16))
    net = FastNetwork(model, torch.device("cpu"))
    assert net.compiled and blocks_compiled(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = net(ids)
    assert any("torch.compile failed (RuntimeError: inductor exploded)" in str(w.message)
               for w in caught)
    assert not net.compiled and not blocks_compiled(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(out, model(ids).float())


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_with_compiled_blocks_matches_eager(tmp_path, monkeypatch, checkpointing):
    """``train.compile=true`` (forced onto the CPU by DSLM_COMPILE=1, inductor) with the
    block scope: same losses as the eager run to float32 rounding, with and without
    activation checkpointing; the saved weights keep their names."""
    from dslm.config import update
    from dslm.models import checkpoint
    from dslm.train import train
    from dslm.train.state import read_metrics

    from test_train import run_config, synthetic_data

    monkeypatch.delenv("DSLM_COMPILE_SCOPE", raising=False)
    common = dict(kind="dsl", steps=3, batch_size=4, log_every=1, eval_every=3,
                  checkpoint_every=3)
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    for name, flag in (("eager", "0"), ("compiled", "1")):
        monkeypatch.setenv("DSLM_COMPILE", flag)
        cfg = update(run_config(tmp_path, name=name, **common),
                     {"model": {"activation_checkpointing": checkpointing}})
        train(cfg, data=synthetic_data(), progress=False)
        assert bool(counters["stats"]["unique_graphs"]) == (flag == "1")   # the blocks' graph(s)
    eager, compiled = read_metrics(tmp_path / "eager"), read_metrics(tmp_path / "compiled")
    assert [r["step"] for r in eager] == [r["step"] for r in compiled]
    for a, b in zip(eager, compiled):
        for key in ("loss", "val_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4), (a["step"], key)
    w1 = checkpoint.read_weights(tmp_path / "eager" / "checkpoint")
    w2 = checkpoint.read_weights(tmp_path / "compiled" / "checkpoint")
    assert sorted(w1) == sorted(w2)
