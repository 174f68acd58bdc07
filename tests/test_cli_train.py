"""``dslm train`` and ``dslm finetune`` through ``dslm.cli.main``."""

from pathlib import Path

from dslm.cli import main
from dslm.models import checkpoint
from dslm.train.state import read_metrics

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _small(tmp_path, steps=3):
    """Overrides that shrink a tiny config to seconds on the synthetic corpus."""
    return ["data.source=synthetic", "data.tokenizer=char", "data.seq_len=32",
            f"data.cache_dir={tmp_path / 'cache'}", "model.seq_len=32", "model.hidden_size=32",
            "model.n_blocks=1", "model.n_heads=2", "model.cond_dim=16", "train.batch_size=4",
            f"train.steps={steps}", "train.eval_every=0", "train.checkpoint_every=0"]


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert err.startswith("dslm: error: ") and "\n" not in err and needle in err, err


def test_unknown_key_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stpes: 3\n")
    assert main(["train", "--config", str(bad)]) == 2
    _one_line_error(capsys, "unknown config key 'train.stpes' (did you mean 'steps'?)")
    assert main(["train", "--config", str(CONFIGS / "tiny-dsl.yaml"), "schedule.name=cosine"]) == 2
    _one_line_error(capsys, "'schedule.name': unknown value 'cosine'; allowed: roar, lognormal, mixed")


def test_data_longer_than_model_exit_2(tmp_path, capsys):
    args = ["train", "--config", str(CONFIGS / "tiny-mdlm.yaml"), "--out", str(tmp_path / "r"),
            *_small(tmp_path), "model.seq_len=16"]
    assert main(args) == 2
    _one_line_error(capsys, "data.seq_len (32) is larger than model.seq_len (16)")


def test_train_resume_init_and_finetune(tmp_path, capsys):
    mdlm = tmp_path / "mdlm"
    small = _small(tmp_path)
    assert main(["train", "--config", str(CONFIGS / "tiny-mdlm.yaml"), "--out", str(mdlm),
                 "--no-progress", *small]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    # resume from the run's own run.yaml, with more steps
    assert main(["train", "--resume", "--out", str(mdlm), "--no-progress", "train.steps=5"]) == 0
    assert [r["step"] for r in read_metrics(mdlm) if "loss" in r][-1] == 5
    # the MDLM control run: the same checkpoint, more steps, a fresh optimizer
    control = tmp_path / "control"
    assert main(["train", "--init", str(mdlm), "--out", str(control), "--no-progress",
                 "train.steps=2"]) == 0                        # the checkpoint's own run config
    assert checkpoint.open_checkpoint(control).model.config.kind == "mdlm"
    assert [r["step"] for r in read_metrics(control) if "loss" in r][-1] == 2
    assert main(["train", "--config", str(CONFIGS / "tiny-dsl.yaml"), "--init", str(mdlm),
                 "--out", str(tmp_path / "x"), *small]) == 2
    _one_line_error(capsys, "holds a 'mdlm' model, this needs 'dsl'")
    # fine-tune DSL from the MDLM checkpoint; its tokenizer comes with it
    tuned = tmp_path / "tuned"
    assert main(["finetune", "--from", str(mdlm), "--out", str(tuned), "--no-progress",
                 *small, "model.embed_dim=8"]) == 0
    opened = checkpoint.open_checkpoint(tuned)
    assert opened.kind == "dsl" and opened.config.embed_dim == 8
    assert opened.tokenizer_spec == checkpoint.open_checkpoint(mdlm).tokenizer_spec
    assert main(["finetune", "--from", str(mdlm), "--out", str(tmp_path / "y"),
                 *small, "model.kind=mdlm"]) == 2
    _one_line_error(capsys, "dslm finetune trains a DSL model")
    assert main(["finetune", "--from", str(tmp_path / "missing"), *small]) == 2
    _one_line_error(capsys, "missing")



def test_overrides_may_follow_options(tmp_path, capsys):
    """`a=1 --flag b=2`: the trailing override is read as an override, not rejected by argparse."""
    import pytest

    from dslm.cli import main

    rc = main(["train", "--out", str(tmp_path / "r"), "train.steps=1", "--no-progress", "train.bogus=2"])
    assert rc == 2
    assert "unknown config key 'train.bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--bogus-flag"])
