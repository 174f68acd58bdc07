import dataclasses

import pytest

from dslm.config import load, parse_overrides, to_dict, update, from_dict
from dslm.errors import ConfigError
from dslm.models.config import ModelConfig, preset


def test_overrides_typed_and_nested(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("kind: mdlm\nn_blocks: 3\n")
    cfg = load(ModelConfig, p, ["hidden_size=64", "dropout=0.1", "freeze_embed=false"])
    assert (cfg.kind, cfg.n_blocks, cfg.hidden_size, cfg.dropout, cfg.freeze_embed) == ("mdlm", 3, 64, 0.1, False)
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}


@pytest.mark.parametrize("pairs,match", [
    (["hidden_sise=3"], "unknown config key 'hidden_sise'.*did you mean 'hidden_size'"),
    (["kind=gpt"], "'kind'.*allowed: dsl, mdlm, ar"),
    (["n_blocks=two"], "'n_blocks'.*integer"),
    (["dropout=nan"], "NaN"),
    (["hidden_size=100", "n_heads=3"], "divisible"),
    (["novalue"], "key=value"),
])
def test_config_errors_name_the_key(pairs, match):
    with pytest.raises(ConfigError, match=match):
        load(ModelConfig, None, pairs)


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(ModelConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(ModelConfig, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(ModelConfig, lst)


def test_round_trip_and_presets():
    cfg = preset("small", kind="mdlm")
    assert (cfg.n_blocks, cfg.hidden_size, cfg.n_heads, cfg.seq_len, cfg.vocab_size) == (12, 768, 12, 1024, 50257)
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")
    assert dataclasses.replace(cfg) == update(cfg, {})


def test_run_files_name_a_size_preset_and_overrides_win():
    from pathlib import Path

    from dslm.models.config import PRESETS
    from dslm.train.config import load_run_config

    root = Path(__file__).resolve().parents[1]
    tiny = load_run_config(str(root / "configs" / "tiny-dsl.yaml"))
    assert {k: getattr(tiny.model, k) for k in PRESETS["tiny"]} == PRESETS["tiny"]
    small = load_run_config(str(root / "configs" / "tiny-dsl.yaml"),
                            ["model.preset=small", "model.n_blocks=2"])
    assert small.model.hidden_size == 768 and small.model.n_blocks == 2
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        load_run_config(None, ["model.preset=huge"])
