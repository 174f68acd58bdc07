"""`dslm export` and `dslm.from_pretrained`: hub-ready folders that load back exactly."""

import json

import pytest
import torch
import yaml

import dslm
from conftest import tiny_model_config
from dslm.cli import main
from dslm.errors import CheckpointError
from dslm.models import build_model, checkpoint
from dslm.models.export import export
from test_hub import hub_cache, mdlm_state_dict, write_hf_folder

#: The metadata keys dslm.train writes into a run's checkpoint.
METADATA = {"tokenizer": {"kind": "char", "chars": "ab"},
            "run_config": {"train": {"lr": 0.0003, "steps": 10}}, "step": 10,
            "metrics": {"val_nll": 2.5, "tokens_per_s": 1200}, "data": {"source": "embedded"}}


def trained_like(kind, seed=0):
    """A small model with every weight moved off its initial value."""
    model = build_model(tiny_model_config(kind, embed_seed=3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def save_run(model, run_dir):
    """A training-run folder: checkpoint/ with a tokenizer folder, plus training state."""
    def tokenizer(tmp):
        (tmp / "tokenizer").mkdir()
        (tmp / "tokenizer" / "vocab.json").write_text('{"a": 0}')

    checkpoint.save(model, run_dir / "checkpoint", metadata=METADATA, write_extra=tokenizer)
    (run_dir / "train_state").mkdir()
    return run_dir


def model_input(kind, g):
    if kind == "dsl":
        return torch.randn(2, 7, 8, generator=g)
    return torch.randint(0, 12, (2, 7), generator=g)


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_export_round_trip_gives_identical_logits(tmp_path, capsys, kind):
    model = trained_like(kind)
    run = save_run(model, tmp_path / "run")
    assert main(["export", "--ckpt", str(run), "--out", str(tmp_path / "hub")]) == 0
    assert f"exported a '{kind}' model" in capsys.readouterr().out
    out = tmp_path / "hub"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json",
                                                     "model.safetensors", "tokenizer"]
    assert (out / "tokenizer" / "vocab.json").read_text() == '{"a": 0}'
    back = dslm.from_pretrained(out)
    x = model_input(kind, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert dslm.open_checkpoint(out).metadata == METADATA


def test_model_card_states_config_training_and_metrics(tmp_path):
    run = save_run(trained_like("dsl"), tmp_path / "run")
    card = (export(run, tmp_path / "my-dsl") / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "dslm" and "dsl" in front["tags"]
    assert 'dslm.from_pretrained("my-dsl")' in card
    assert "## Model config" in card and "embed_dim: 8" in card and "n_blocks: 2" in card
    assert "## Training config" in card and "lr: 0.0003" in card
    assert "## Training steps\n\n`10`" in card and "## Data" in card
    assert "| val_nll | 2.5 |" in card and "| tokens_per_s | 1200 |" in card
    assert "## Tokenizer" in card and "kind: char" in card


def test_export_converts_an_mdlm_hub_folder(tmp_path):
    sd = mdlm_state_dict(30)
    src = write_hf_folder(tmp_path / "mdlm-owt", sd)
    out = export(src, tmp_path / "converted")
    doc = json.loads((out / "config.json").read_text())
    assert doc["format"] == "dslm" and doc["model"]["kind"] == "mdlm"
    assert doc["metadata"]["source"] == str(src)
    original = dslm.from_pretrained(src)
    back = dslm.from_pretrained(out, expect_kind="mdlm")
    ids = torch.randint(0, 13, (2, 9), generator=torch.Generator().manual_seed(2))
    assert torch.equal(back(ids), original(ids))


def test_export_refuses_to_overwrite_without_the_flag(tmp_path, capsys):
    run = save_run(trained_like("ar"), tmp_path / "run")
    out = tmp_path / "hub"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--ckpt", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dslm: error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["export", "--ckpt", str(run), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists()


def test_export_of_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert main(["export", "--ckpt", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_from_pretrained_reads_a_hub_repo_id(tmp_path):
    model = trained_like("dsl", seed=4)
    out = export(save_run(model, tmp_path / "run"), tmp_path / "hub")
    cache = hub_cache(tmp_path / "cache", "dslm-tests/tiny-dsl", out)
    back = dslm.from_pretrained("dslm-tests/tiny-dsl", cache_dir=cache)
    y = torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(back(y), model(y))
    with pytest.raises(CheckpointError, match="holds a 'dsl' model"):
        dslm.from_pretrained("dslm-tests/tiny-dsl", cache_dir=cache, expect_kind="mdlm")
    mdlm_cache = hub_cache(tmp_path / "cache2", "dslm-tests/tiny-mdlm",
                           write_hf_folder(tmp_path / "mdlm", mdlm_state_dict(31)))
    with pytest.raises(CheckpointError, match="holds a 'mdlm' model, this needs 'dsl'"):
        dslm.from_pretrained("dslm-tests/tiny-mdlm", cache_dir=mdlm_cache, expect_kind="dsl")
    converted = dslm.open_checkpoint("dslm-tests/tiny-mdlm", cache_dir=mdlm_cache)
    assert converted.path is None and converted.metadata["source"] == "dslm-tests/tiny-mdlm"


def test_from_pretrained_offline_without_a_cache_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="could not fetch 'dslm-tests/nothing-here'"):
        dslm.from_pretrained("dslm-tests/nothing-here", cache_dir=tmp_path / "c")
