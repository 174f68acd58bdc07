import json

import pytest
import torch

from conftest import tiny_model_config
from dslm.errors import CheckpointError
from dslm.models import build_model
from dslm.models import checkpoint as ck


def _rand(model, gen):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_round_trip_identical_logits(tmp_path, kind, gen):
    model = _rand(build_model(tiny_model_config(kind, embed_seed=7)), gen)
    ck.save(model, tmp_path / "ckpt", metadata={"note": "x"})
    opened = ck.open_checkpoint(tmp_path / "ckpt")
    back = opened.model
    inp = torch.randn(2, 5, 8, generator=gen) if kind == "dsl" else torch.randint(0, 12, (2, 5), generator=gen)
    assert torch.equal(model(inp), back(inp))
    assert opened.metadata == {"note": "x"} and opened.path == tmp_path / "ckpt"
    assert back.config == model.config
    if kind == "dsl":
        assert torch.equal(back.embeddings, model.embeddings)


def test_overwrite_keeps_one_complete_copy(tmp_path, gen):
    a = _rand(build_model(tiny_model_config("ar")), gen)
    ck.save(a, tmp_path / "c")
    b = _rand(build_model(tiny_model_config("ar")), gen)
    ck.save(b, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    x = torch.randint(0, 12, (1, 4))
    assert torch.equal(ck.open_checkpoint(tmp_path / "c").model(x), b(x))


def test_failed_save_keeps_previous(tmp_path, gen):
    a = _rand(build_model(tiny_model_config("ar")), gen)
    ck.save(a, tmp_path / "c")

    def boom(_):
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="no space left"):
        ck.save(build_model(tiny_model_config("ar")), tmp_path / "c", write_extra=boom)
    x = torch.randint(0, 12, (1, 4))
    assert torch.equal(ck.open_checkpoint(tmp_path / "c").model(x), a(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_crash_between_renames_is_recovered(tmp_path, gen):
    a = _rand(build_model(tiny_model_config("ar")), gen)
    ck.save(a, tmp_path / "c")
    (tmp_path / "c").rename(tmp_path / "c.old")          # as if killed mid-swap
    x = torch.randint(0, 12, (1, 4))
    assert torch.equal(ck.open_checkpoint(tmp_path / "c").model(x), a(x))


def test_clear_errors(tmp_path, gen):
    model = build_model(tiny_model_config("dsl"))
    with pytest.raises(CheckpointError, match="not found"):
        ck.open_checkpoint(tmp_path / "nope").model
    path = ck.save(model, tmp_path / "c")
    with pytest.raises(CheckpointError, match="holds a 'dsl' model"):
        ck.open_checkpoint(path, expect_kind="mdlm").model
    # truncated weights
    w = path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ck.open_checkpoint(path).model
    # shape mismatch: config says a bigger model than the weights
    path = ck.save(model, tmp_path / "d")
    doc = json.loads((path / "config.json").read_text())
    doc["model"]["hidden_size"] = 64
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="shape"):
        ck.open_checkpoint(path).model
    # unknown kind / not a dslm checkpoint / bad json
    doc["model"]["kind"] = "gpt"
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="kind|gpt"):
        ck.open_checkpoint(path).model
    (path / "config.json").write_text(json.dumps({"model_type": "mdlm"}))
    with pytest.raises(CheckpointError, match="not a dslm checkpoint"):
        ck.read_config(path)
    with pytest.raises(CheckpointError, match="needs an integer 'vocab_size'"):
        ck.open_checkpoint(path)                 # read as an MDLM folder: a clear error too
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="neither a dslm checkpoint"):
        ck.open_checkpoint(path)
    (path / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ck.open_checkpoint(path).model
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        ck.open_checkpoint(path).model


def test_nan_weights_refused(tmp_path):
    model = build_model(tiny_model_config("mdlm"))
    with torch.no_grad():
        model.backbone.blocks[0].attn_qkv.weight[0, 0] = float("nan")
    path = ck.save(model, tmp_path / "c")
    with pytest.raises(CheckpointError, match="NaN or inf.*attn_qkv|attn_qkv.*NaN or inf"):
        ck.open_checkpoint(path).model


def test_absurd_sizes_in_config_are_refused_without_allocating(tmp_path):
    path = ck.save(build_model(tiny_model_config("mdlm")), tmp_path / "c")
    doc = json.loads((path / "config.json").read_text())
    doc["model"]["hidden_size"] = 759250140
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="hidden_size"):
        ck.open_checkpoint(path).model
