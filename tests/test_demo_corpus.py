"""``dslm demo --corpus FILE``: every stage reads the file; its tokenizer is cached by content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dslm.data.prepare import prepare_data
from dslm.demo import _run_config, load_demo_config
from dslm.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _corpus(path: Path, word: str) -> Path:
    docs = [f"The {word} number {i} walks to the market and buys {i % 7} apples." for i in range(60)]
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def test_corpus_flag_reaches_every_stage_and_tokenizer_is_cached_by_content(tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl", "farmer")
    cfg = load_demo_config(None, [f"corpus={corpus}", f"configs={CONFIGS}"])
    runs = {}
    for name in ("mdlm", "dsl", "control", "ar"):
        run = _run_config(cfg, name, tmp_path / name, 10, 0)
        assert run.data.source == str(corpus)
        runs[name] = run
    data_cfg = runs["mdlm"].data
    data_cfg.cache_dir = str(tmp_path / "cache")
    data_cfg.bpe_vocab_size = 300
    data_cfg.seq_len = 16
    first = prepare_data(data_cfg, progress=False)
    again = prepare_data(data_cfg, progress=False)
    assert not first.meta["from_cache"] and again.meta["from_cache"]
    assert len(list((tmp_path / "cache").glob("tokenizer-*"))) == 1
    _corpus(corpus, "weaver")                      # same file name, new content: a new tokenizer
    changed = prepare_data(data_cfg, progress=False)
    assert not changed.meta["from_cache"]
    assert len(list((tmp_path / "cache").glob("tokenizer-*"))) == 2


def test_bad_compare_pair_is_a_config_error():
    with pytest.raises(ConfigError, match="DSL_SAMPLER:CONTROL_SAMPLER"):
        load_demo_config(None, ["compare=[dsl-mdlm]"])
    with pytest.raises(ConfigError, match="demo.seeds"):
        load_demo_config(None, ["seeds=0"])
