"""Integration: the shipped tiny configs on the real default corpus (``source: embedded``)."""

from pathlib import Path

import pytest

from dslm.config import load
from dslm.models import checkpoint
from dslm.train import RunConfig, train
from dslm.train.state import read_metrics

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.slow
def test_tiny_dsl_config_on_the_embedded_corpus(tmp_path):
    cfg = load(RunConfig, CONFIGS / "tiny-dsl.yaml", [
        f"train.out_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.bpe_vocab_size=1024", "data.seq_len=64", "model.seq_len=64", "model.n_blocks=2",
        "model.hidden_size=64", "train.batch_size=8", "train.steps=30", "train.warmup_steps=5",
        "train.eval_every=15", "train.eval_batches=4", "train.log_every=15", "train.lr=3e-3"])
    result = train(cfg, progress=False)
    val = [r["val_loss"] for r in read_metrics(result.out_dir) if "val_loss" in r]
    assert len(val) == 3 and val[2] < val[1] < val[0]             # steps 0, 15, 30
    opened = checkpoint.open_checkpoint(result.checkpoint, expect_kind="dsl")
    assert opened.config.vocab_size == 1024
    assert opened.tokenizer_spec["kind"] == "bpe"
    assert opened.metadata["data"]["train"]["blocks"] > 100

    tok = opened.tokenizer()
    assert tok.decode(tok.encode("It is a truth universally acknowledged")) == \
        "It is a truth universally acknowledged"
