"""The training loop: objectives, run folder, exact resume, EMA, schedules, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dslm.config import load, to_dict, update
from dslm.data.config import PreparedData
from dslm.data.synthetic import synthetic_documents
from dslm.data.tokenizers import CharTokenizer
from dslm.errors import CheckpointError, ConfigError, DataError, TrainingError
from dslm.models import build_model, checkpoint
from dslm.train import RunConfig, TrainConfig, train
from dslm.train.batches import BlockStream, val_batches
from dslm.train.ema import EMA
from dslm.train.optim import lr_factor
from dslm.train.state import read_metrics

SEQ = 16
TINY_MODEL = dict(preset="micro", seq_len=SEQ)


def synthetic_data(seq_len=SEQ, documents=300, val_blocks=24) -> PreparedData:
    """The synthetic grammar corpus, char-tokenised and packed with EOS between documents."""
    docs = synthetic_documents(documents, seed=0)
    tok = CharTokenizer.train(docs)
    ids = []
    for doc in docs:
        ids.extend(tok.encode(doc) + [tok.eos_id])
    n = len(ids) // seq_len
    blocks = np.asarray(ids[: n * seq_len], dtype=np.uint16).reshape(n, seq_len)
    return PreparedData(tok, blocks[val_blocks:], blocks[:val_blocks], {"source": "synthetic"})


def run_config(tmp_path, kind="dsl", name="run", **train):
    values = dict(out_dir=str(tmp_path / name), steps=12, batch_size=8, lr=3e-3, log_every=2,
                  eval_every=6, eval_batches=2, checkpoint_every=6, ema_decay=0.9)
    values.update(train)
    return update(RunConfig(), {"model": dict(kind=kind, **TINY_MODEL), "data": {"seq_len": SEQ},
                                "train": values})


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def _curve(out_dir, keys=("loss", "nll", "grad_norm", "lr", "val_loss", "val_nll")):
    return [{k: r[k] for k in keys if k in r} | {"step": r["step"]} for r in read_metrics(out_dir)]


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_each_kind_trains_and_writes_a_run_folder(tmp_path, data, kind):
    cfg = run_config(tmp_path, kind, steps=40, eval_every=20, checkpoint_every=20, log_every=20)
    result = train(cfg, data=data, progress=False)
    assert result.step == 40 and result.checkpoint == tmp_path / "run" / "checkpoint"
    events = read_metrics(result.out_dir)
    losses = [r["loss"] for r in events if "loss" in r]
    val = [r["val_loss"] for r in events if "val_loss" in r]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert len(val) == 3 and val[2] < val[0] and all(math.isfinite(v) for v in val)  # steps 0, 20, 40
    opened = checkpoint.open_checkpoint(result.checkpoint, expect_kind=kind)
    model, meta = opened.model, opened.metadata
    assert meta["tokenizer"] == data.tokenizer.spec() and meta["step"] == 40
    assert meta["run_config"]["model"]["vocab_size"] == data.tokenizer.vocab_size  # auto
    assert meta["metrics"]["val_loss"] == pytest.approx(val[2])
    assert (result.checkpoint / "tokenizer" / "dslm_tokenizer.json").is_file()
    state = torch.load(result.out_dir / "train_state" / "state.pt", weights_only=True)
    assert state["step"] == 40 and state["data_position"] == 40 * 8
    # the checkpoint holds the EMA weights, train_state the raw ones
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["ema"][name])
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])


def test_kill_and_resume_repeats_the_uninterrupted_run(tmp_path, data, monkeypatch):
    from dslm.train import loop

    full = train(run_config(tmp_path, "dsl", "full", steps=12, checkpoint_every=4), data=data,
                 progress=False)
    original = loop._Training._train_step
    calls = {"n": 0}

    def killed_after_ten(self):
        calls["n"] += 1
        if calls["n"] > 10:         # killed during step 11, after the step-8 save
            raise KeyboardInterrupt
        original(self)

    cfg = run_config(tmp_path, "dsl", "killed", steps=12, checkpoint_every=4)
    monkeypatch.setattr(loop._Training, "_train_step", killed_after_ten)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data=data, progress=False)
    assert read_metrics(tmp_path / "killed")[-1]["step"] > 8          # logged past the save
    monkeypatch.setattr(loop._Training, "_train_step", original)
    resumed = train(cfg, resume=True, data=data, progress=False)
    assert resumed.step == 12
    assert _curve(tmp_path / "killed") == _curve(tmp_path / "full")
    a = torch.load(full.out_dir / "train_state" / "state.pt", weights_only=True)
    b = torch.load(resumed.out_dir / "train_state" / "state.pt", weights_only=True)
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    ckpt_a = checkpoint.read_weights(full.checkpoint)
    ckpt_b = checkpoint.read_weights(resumed.checkpoint)
    assert all(torch.equal(ckpt_a[k], ckpt_b[k]) for k in ckpt_a)


def test_same_seed_same_run_other_seed_other_run(tmp_path, data):
    a = train(run_config(tmp_path, "mdlm", "a", steps=4, seed=3), data=data, progress=False)
    b = train(run_config(tmp_path, "mdlm", "b", steps=4, seed=3), data=data, progress=False)
    c = train(run_config(tmp_path, "mdlm", "c", steps=4, seed=4), data=data, progress=False)
    assert _curve(a.out_dir) == _curve(b.out_dir) != _curve(c.out_dir)


def test_validation_draws_do_not_depend_on_the_training_seed(tmp_path, data):
    """Every run is scored on the same validation draws: the unigram model's NELBO on them
    (val_unigram, model-free) is equal across seeds and steps, and it estimates H_1."""
    from dslm.diffusion.losses import mdlm_loss
    from dslm.train.batches import val_batches, val_seed
    from dslm.train.unigram import UnigramDenoiser, token_counts, unigram_entropy

    runs = [train(run_config(tmp_path, "mdlm", f"s{seed}", steps=4, eval_every=2, seed=seed),
                  data=data, progress=False) for seed in (3, 4)]
    plateau = [[r["val_unigram"] for r in read_metrics(run.out_dir) if "val_loss" in r] for run in runs]
    assert len(plateau[0]) == 3 and len(set(plateau[0] + plateau[1])) == 1
    counts = token_counts(data.train, data.tokenizer.vocab_size)
    unigram = UnigramDenoiser(counts, data.tokenizer.vocab_size).eval()
    g, values = torch.Generator(), []
    for i, idx in enumerate(val_batches(data.val, 8, 2)):
        g.manual_seed(val_seed(i))
        values.append(mdlm_loss(unigram, torch.from_numpy(data.val[idx].astype(np.int64)), g).loss.item())
    assert plateau[0][0] == pytest.approx(np.mean(values), rel=1e-5)
    # the estimate's expectation is the cross-entropy of the validation tokens under p
    many = []
    for seed in range(200):
        g.manual_seed(seed)
        many.append(mdlm_loss(unigram, torch.from_numpy(data.val.astype(np.int64)), g).loss.item())
    val_ce = float(-unigram.log_p[torch.from_numpy(data.val.astype(np.int64))].mean())
    assert np.mean(many) == pytest.approx(val_ce, rel=0.03)
    assert abs(val_ce - unigram_entropy(counts)) < 0.1
    # DSL and AR runs report no val_unigram
    ar = train(run_config(tmp_path, "ar", "ar", steps=2, eval_every=2), data=data, progress=False)
    assert all("val_unigram" not in r for r in read_metrics(ar.out_dir))


def test_plateau_gap_script_pairs_the_draws(tmp_path, data):
    """scripts/plateau_gap.py: the unigram model against itself has gap exactly 0; a
    checkpoint's gap is its NELBO minus the unigram model's on the same draws."""
    import importlib.util

    from dslm.train.unigram import UnigramDenoiser, token_counts

    spec = importlib.util.spec_from_file_location(
        "plateau_gap", Path(__file__).resolve().parents[1] / "scripts" / "plateau_gap.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    unigram = UnigramDenoiser(token_counts(data.train, data.tokenizer.vocab_size), data.tokenizer.vocab_size)
    same = script.plateau_gap(unigram.eval(), data, draws=2, batches=2, batch_size=8)
    assert same["gap"] == 0.0 and same["gap_se"] == 0.0 and same["batches"] == 4
    run = train(run_config(tmp_path, "mdlm", steps=4), data=data, progress=False)
    model = checkpoint.open_checkpoint(run.checkpoint, expect_kind="mdlm").model.eval()
    got = script.plateau_gap(model, data, draws=2, batches=2, batch_size=8)
    assert got["unigram"] == same["unigram"]
    assert got["gap"] == pytest.approx(got["model"] - got["unigram"], abs=2e-4) and got["gap_se"] > 0


def test_init_model_continues_a_checkpoint(tmp_path, data):
    first = train(run_config(tmp_path, "ar", "first", steps=6), data=data, progress=False)
    start = checkpoint.open_checkpoint(first.out_dir, expect_kind="ar")
    more = train(run_config(tmp_path, "ar", "more", steps=6), data=data, init_model=start,
                 progress=False)
    first_val = [r["val_loss"] for r in read_metrics(first.out_dir) if "val_loss" in r]
    more_val = [r["val_loss"] for r in read_metrics(more.out_dir) if "val_loss" in r]
    assert more_val[0] == pytest.approx(first_val[-1])      # step 0 of "more" = the end of "first"
    assert more_val[-1] < first_val[-1]
    with pytest.raises(CheckpointError, match="holds a 'ar' model"):
        checkpoint.open_checkpoint(first.out_dir, expect_kind="mdlm")


def test_finetune_start_copies_the_mdlm_backbone(tmp_path, data):
    from dslm.train.starts import finetune_start

    mdlm = train(run_config(tmp_path, "mdlm", "mdlm", steps=2), data=data, progress=False)
    start = finetune_start(mdlm.checkpoint, {"embed_dim": 12, "hidden_size": 999})
    dsl = start.model
    source = checkpoint.open_checkpoint(mdlm.checkpoint).model
    assert start.path == mdlm.checkpoint and start.config == dsl.config
    assert dsl.config.kind == "dsl" and dsl.config.embed_dim == 12
    assert dsl.config.hidden_size == source.config.hidden_size          # not a DSL field
    for name, tensor in dsl.backbone.blocks.state_dict().items():
        assert torch.equal(tensor, source.backbone.blocks.state_dict()[name])
    tuned = train(run_config(tmp_path, "dsl", "tuned", steps=4), data=data, init_model=start,
                  progress=False)
    assert checkpoint.open_checkpoint(tuned.checkpoint).model.config.embed_dim == 12


# ---------------------------------------------------------------- the parts


def test_block_stream_layout_and_epochs():
    blocks = np.arange(10 * 4).reshape(10, 4)
    stream = BlockStream(blocks, batch_size=3, micro_per_step=2, seed=0)
    first_epoch = np.concatenate([stream.indices(0, 0), stream.indices(0, 1),
                                  stream.indices(1, 0)[:1]])
    assert len(set(first_epoch.tolist())) == 7                        # no repeats in an epoch
    seen = np.concatenate([stream.indices(s, m) for s in range(5) for m in range(2)])
    assert sorted(seen[:10].tolist()) == list(range(10))             # epoch 0 is a permutation
    assert sorted(seen[10:20].tolist()) == list(range(10))           # and so is epoch 1
    assert not np.array_equal(seen[:10], seen[10:20])
    again = BlockStream(blocks, batch_size=3, micro_per_step=2, seed=0)
    assert np.array_equal(again.indices(3, 1), stream.indices(3, 1))
    assert stream.batch(0, 0, torch.device("cpu")).dtype == torch.int64
    assert [len(b) for b in val_batches(blocks, 4, 8)] == [4, 4, 2]


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, steps=110, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    constant = TrainConfig(lr=1.0, steps=110, warmup_steps=0)
    assert {lr_factor(s, constant) for s in (0, 50, 109)} == {1.0}


def test_ema_math():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.99)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1)
    d1 = min(0.99, 2 / 11)
    assert torch.allclose(ema.module.weight, d1 * start + (1 - d1) * model.weight)
    assert ema.decay_at(10_000) == 0.99
    assert not ema.module.weight.requires_grad


# ---------------------------------------------------------------- bad input


def test_unknown_key_and_bad_values_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr'.*did you mean 'lr'"):
        load(RunConfig, p)
    with pytest.raises(ConfigError, match="'train.lr_schedule'.*allowed: constant, cosine"):
        load(RunConfig, None, ["train.lr_schedule=linear"])
    with pytest.raises(ConfigError, match="'train.loggers'.*allowed: tensorboard, wandb"):
        load(RunConfig, None, ["train.loggers=[mlflow]"])
    with pytest.raises(ConfigError, match="'train.ema_decay'"):
        load(RunConfig, None, ["train.ema_decay=1.5"])
    with pytest.raises(ConfigError, match="'model.vocab_size'"):
        load(RunConfig, None, ["model.vocab_size=-3"])


def test_data_longer_than_the_model(tmp_path, data):
    cfg = run_config(tmp_path)
    with pytest.raises(ConfigError, match=r"data.seq_len \(32\) is larger than model.seq_len \(16\)"):
        train(update(cfg, {"data": {"seq_len": 32}}), data=data, progress=False)
    with pytest.raises(ConfigError, match=r"data.seq_len \(32\).*model.seq_len \(16\)"):
        train(cfg, data=synthetic_data(seq_len=32), progress=False)


def test_vocab_size_auto_or_checked(tmp_path, data):
    v = data.tokenizer.vocab_size
    wrong = update(run_config(tmp_path), {"model": {"vocab_size": v + 5}})
    with pytest.raises(ConfigError, match=f"'model.vocab_size' is {v + 5} but the tokenizer has {v}"):
        train(wrong, data=data, progress=False)
    right = update(run_config(tmp_path, steps=1), {"model": {"vocab_size": v}})
    assert train(right, data=data, progress=False).step == 1
    other = build_model(update(run_config(tmp_path), {"model": {"vocab_size": v + 1}}).model.resolved(v + 1))
    with pytest.raises(ConfigError, match="starting checkpoint has vocab_size"):
        train(run_config(tmp_path, name="other"), data=data, init_model=other, progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data):
    cfg = run_config(tmp_path, "ar", steps=12, checkpoint_every=4, log_every=1)
    torch.manual_seed(0)
    model = build_model(cfg.model.resolved(data.tokenizer.vocab_size))
    calls = {"n": 0}

    def poison(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] >= 7:                     # the forward of step 7
                if not torch.is_tensor(output):     # the fused loss: HeadLoss(total, ce)
                    return type(output)(*(t * float("nan") for t in output))
                return output * float("nan")
        return output

    model.register_forward_hook(poison)
    with pytest.raises(TrainingError, match=r"NaN/inf at step 7;.*last good checkpoint"):
        train(cfg, data=data, init_model=model, progress=False)
    opened = checkpoint.open_checkpoint(tmp_path / "run")
    kept = opened.model
    assert opened.step == 4
    assert all(torch.isfinite(t).all() for t in kept.state_dict().values())


def test_run_folder_guards(tmp_path, data):
    cfg = run_config(tmp_path, "mdlm", steps=2)
    train(cfg, data=data, progress=False)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        train(cfg, data=data, progress=False)
    changed = update(cfg, {"schedule": {"mu": 1.0}, "train": {"steps": 4}})
    with pytest.raises(ConfigError, match="config key 'schedule.mu' differs"):
        train(changed, resume=True, data=data, progress=False)
    longer = update(cfg, {"train": {"steps": 4}})                       # steps may change
    assert train(longer, resume=True, data=data, progress=False).step == 4
    empty_val = PreparedData(data.tokenizer, data.train, data.val[:0], {})
    with pytest.raises(DataError, match="no validation blocks"):
        train(run_config(tmp_path, name="nov"), data=empty_val, progress=False)


def test_run_config_round_trips_through_yaml(tmp_path, data):
    from dslm.train.config import load_run_config

    result = train(run_config(tmp_path, "dsl", steps=2), data=data, progress=False)
    cfg = load_run_config(None, ["train.steps=3"], out_dir=str(result.out_dir), resume=True)
    assert cfg.model.kind == "dsl" and cfg.model.vocab_size == data.tokenizer.vocab_size
    assert cfg.model.input_beta > 0                                   # the resolved converter
    assert train(cfg, resume=True, data=data, progress=False).step == 3
    saved = json.loads((result.checkpoint / "config.json").read_text())["metadata"]["run_config"]
    assert saved["train"]["steps"] == 3 and to_dict(cfg)["schedule"] == saved["schedule"]


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["tiny-mdlm", "tiny-dsl", "tiny-ar", "owt-small-mdlm",
                                  "owt-small-dsl-finetune"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = load(RunConfig, Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    assert cfg.model.kind == name.split("-")[-1].replace("finetune", "dsl")
    assert cfg.data.seq_len <= cfg.model.seq_len


def test_finetune_config_is_the_paper_recipe():
    from pathlib import Path

    cfg = load(RunConfig, Path(__file__).resolve().parents[1] / "configs" / "owt-small-dsl-finetune.yaml")
    t, s = cfg.train, cfg.schedule
    assert (t.lr, tuple(t.betas), t.weight_decay, t.lr_schedule, t.warmup_steps) == (3e-4, (0.9, 0.999), 0.0, "constant", 0)
    assert (t.ema_decay, t.grad_clip, t.steps, t.batch_size) == (0.999, 1.0, 10_000, 40)
    assert (s.name, s.p_roar, s.mu, s.sigma) == ("mixed", 0.25, 2.69, 1.41)
    assert cfg.model.embed_dim == 64 and cfg.data.seq_len == 1024
    d = RunConfig().train                            # the built-in defaults are the same recipe
    assert (d.lr, tuple(d.betas), d.weight_decay, d.lr_schedule, d.ema_decay, d.grad_clip) == \
        (t.lr, tuple(t.betas), t.weight_decay, t.lr_schedule, t.ema_decay, t.grad_clip)


def test_tensorboard_logger_only_when_installed(tmp_path, data):
    import importlib.util

    cfg = run_config(tmp_path, "ar", steps=2, loggers=["tensorboard"])
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ConfigError, match="tensorboard, which is not installed"):
            train(cfg, data=data, progress=False)
    else:
        train(cfg, data=data, progress=False)
        assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_resume_ignores_init_only_model_keys():
    """A DSL fine-tune inherits its MDLM start's `shared_embed_init`; resuming it with the
    stage's own YAML (where it is 0) must not be refused (regression: the demo's resume)."""
    from dslm.train.config import resume_differences

    saved = {"model": {"shared_embed_init": 1.0, "hidden_size": 128}}
    assert resume_differences(saved, {"model": {"shared_embed_init": 0.0, "hidden_size": 128}}) == []
    assert resume_differences(saved, {"model": {"shared_embed_init": 0.0, "hidden_size": 64}}) == ["model.hidden_size"]
