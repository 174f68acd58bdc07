"""The OpenWebText protocol: MDLM framing, ReMDM's baselines as published, the final step,
ReMDM's text decoding and the two compute axes (docs/PROTOCOL.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from conftest import tiny_model_config
from dslm.config import load
from dslm.evaluate.protocol import apply_protocol
from dslm.evaluate.sweep import SweepConfig
from dslm.models import build_model
from dslm.sampling import sample
from dslm.sampling.masked import FINAL_EPS, noise_removal
from dslm.sampling.published import published_variant
from dslm.sampling.registry import sampler_options

ROOT = Path(__file__).resolve().parents[1]
EOS = 50256
WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from "
         "at which but have an they you were her she there been one all we their").split()


def _documents(n: int) -> list[str]:
    g = torch.Generator().manual_seed(0)
    docs = []
    for i in range(n):
        k = int(torch.randint(80, 400, (1,), generator=g))
        idx = torch.randint(0, len(WORDS), (k,), generator=g).tolist()
        docs.append(f"Document {i}. " + " ".join(WORDS[j] for j in idx) + ".")
    return docs


def _owt_copy(root: Path, layout: str) -> Path:
    """A local OpenWebText copy in the hub's format: one ``train`` split with a text column."""
    import datasets

    ds = datasets.Dataset.from_dict({"text": _documents(90)})
    path = root / f"owt-{layout}"
    if layout == "save_to_disk":
        datasets.DatasetDict({"train": ds}).save_to_disk(str(path))
    else:
        (path / "data").mkdir(parents=True)
        ds.to_parquet(str(path / "data" / "train-00000-of-00001.parquet"))
    return path


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_owt_protocol_data_is_mdlm_framed_and_references_are_framed_blocks(
        tmp_path, monkeypatch, gpt2_folder, layout):
    from dslm.data import prepare_data
    from dslm.evaluate.reference import reference_pair

    monkeypatch.setenv("DSLM_GPT2_TOKENIZER", str(gpt2_folder))
    cfg = apply_protocol(SweepConfig(models=[("m", "x")], samplers=[], steps=[], out="o"), "owt")
    data_cfg = dataclasses.replace(cfg.data_config, hf_local_path=str(_owt_copy(tmp_path, layout)),
                                   owt_val_documents=30, cache_dir=str(tmp_path / "cache"), num_proc=1)
    assert data_cfg.source == "hf:openwebtext" and data_cfg.mdlm_framing and data_cfg.seq_len == 1024
    prepared = prepare_data(data_cfg, progress=False)
    docs, tok = _documents(90), prepared.tokenizer
    for blocks, split in ((prepared.train, docs[:60]), (prepared.val, docs[60:])):
        assert len(blocks) >= 2 and blocks.shape[1] == 1024
        assert (blocks[:, 0] == EOS).all() and (blocks[:, -1] == EOS).all()   # BOS = EOS, EOS
        stream = [t for d in split for t in tok.encode(d) + [EOS]]   # doc EOS doc EOS ...
        body = blocks[:, 1:-1].reshape(-1).tolist()                   # 1022 tokens per block
        assert len(body) == len(blocks) * 1022 and body == stream[:len(body)]
    # references: decoded framed validation blocks with <|endoftext|> kept
    first, second = reference_pair("validation", 1, 0, data_config=data_cfg)
    val_texts = {prepared.tokenizer.decode(b.tolist()) for b in prepared.val}
    for text in first + second:
        assert text in val_texts
        assert text.startswith("<|endoftext|>") and text.endswith("<|endoftext|>")


def test_owt_configs_turn_framing_on():
    from dslm.train.config import RunConfig

    configs = sorted((ROOT / "configs").glob("owt-*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = load(RunConfig, str(path))
        assert cfg.data.source == "hf:openwebtext" and cfg.data.mdlm_framing, path.name
    protocol = apply_protocol(SweepConfig(models=[("m", "x")], samplers=[], steps=[], out="o"), "owt")
    assert protocol.data_config.mdlm_framing and protocol.data_config.source == "hf:openwebtext"


def test_protocol_sampler_rows_as_published():
    base = SweepConfig(models=[("m", "x")], samplers=[], steps=[], out="o",
                       sampler_options={"remdm-loop": {"eta": 0.01}})
    cfg = apply_protocol(base, "owt")
    opts = cfg.sampler_options
    for name in ("mdlm", "dsl-mdlm", "remdm-published", "remdm-loop", "dsl-remdm-loop"):
        assert name in cfg.samplers
        assert opts[name]["top_p"] == 0.9 and opts[name]["final_step"] == "argmax"
        sampler_options(name, opts[name])                 # every option exists and is valid
    assert opts["dsl-mdlm"]["top_p"] == opts["mdlm"]["top_p"]
    assert opts["remdm-published"]["cap_eta"] == 0.04
    for key, value in dict(eta=0.02, t_on=0.55, t_off=0.05, alpha_on=0.9).items():
        assert opts["remdm-published"][key] == value and opts["dsl-remdm-loop"][key] == value
    assert opts["remdm-loop"]["eta"] == 0.01 and opts["remdm-loop"]["t_on"] == 0.55  # user wins
    assert cfg.clean_up_spaces and cfg.truncate_tokens == 1024
    assert cfg.steps == [128, 256, 512, 1024] and cfg.seq_len == 1024


def test_published_remdm_is_cap_below_L_and_loop_from_L():
    assert [published_variant(t, 1024) for t in (128, 256, 512, 1024, 2048)] == \
        ["cap", "cap", "cap", "loop", "loop"]
    model = build_model(tiny_model_config("mdlm", vocab_size=12)).eval()
    length = 16
    for steps, other, extra in ((8, "remdm-cap", {"eta": 0.04}),
                                (16, "remdm-loop", {"eta": 0.02, "t_on": 0.55, "t_off": 0.05,
                                                    "alpha_on": 0.9})):
        pub = sample(model, "remdm-published", 4, length, steps, torch.Generator().manual_seed(3))
        same = sample(model, other, 4, length, steps, torch.Generator().manual_seed(3),
                      top_p=0.9, final_step="argmax", **extra)
        assert pub.stats[0]["variant"] == ("cap" if steps < length else "loop")
        assert torch.equal(pub.tokens, same.tokens) and pub.nfe == same.nfe


def test_final_argmax_call_fills_remaining_masks_and_counts():
    class Stub:
        mask_id = 5

        def __init__(self):
            self.calls = 0

        def scores(self, x, move_chance):
            self.calls += 1
            assert float(move_chance) == pytest.approx(FINAL_EPS)
            s = torch.zeros(*x.shape, 5)
            s[..., 2] = 1.0                               # argmax is token 2 everywhere
            return s

    x = torch.tensor([[0, 5, 1, 5], [5, 3, 5, 4]])
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[1, 0] = True                                    # a given position is never touched
    state = Stub()
    out, hits = noise_removal(state, x, fixed, None, 0)
    assert state.calls == 1 and hits == 0
    assert out.tolist() == [[0, 2, 1, 2], [5, 3, 2, 4]]
    cached = torch.zeros(2, 4, 5)
    cached[..., 4] = 1.0
    out, hits = noise_removal(state, x, fixed, cached, 0)  # cached scores of this very state
    assert state.calls == 1 and hits == 1 and out[0, 1] == 4

    model = build_model(tiny_model_config("mdlm", vocab_size=12)).eval()
    for name in ("mdlm", "remdm-cap", "remdm-loop"):
        plain = sample(model, name, 3, 16, 8, torch.Generator().manual_seed(0), cache=False)
        argmax = sample(model, name, 3, 16, 8, torch.Generator().manual_seed(0), cache=False,
                        final_step="argmax")
        assert plain.nfe == 8 and argmax.nfe == 9          # the extra call is an NFE
        assert int(argmax.tokens.max()) < 12               # no [MASK] left


def test_remdm_text_decoding_options():
    from dslm.evaluate.textproc import TruncatedLM, clean_up_spaces

    assert clean_up_spaces("Hello , world . It 's fine ! Is n't it ?") == \
        "Hello, world. It's fine! Isn't it?"
    try:                              # the rule is the Hugging Face tokenizers' own
        from transformers import PreTrainedTokenizerBase

        text = "a , b . c ! d ? e 's f n't g 've h 're i 'm j ' k"
        try:
            expected = PreTrainedTokenizerBase.clean_up_tokenization(text)
        except TypeError:
            expected = PreTrainedTokenizerBase.clean_up_tokenization(None, text)
        assert clean_up_spaces(text) == expected
    except ImportError:
        pass

    class LM:
        name = "stub"

        def encode(self, texts):
            return [list(range(len(t))) for t in texts]

        def nll(self, token_lists, batch_size=8, progress=False):
            return float(sum(map(len, token_lists))), sum(map(len, token_lists))

        def features(self, token_lists, batch_size=8, progress=False):
            return [len(t) for t in token_lists]

    lm = TruncatedLM(LM(), 4)
    assert lm.name == "stub"
    assert lm.encode(["abcdefgh", "ab"]) == [[0, 1, 2, 3], [0, 1]]
    assert lm.nll([[1] * 10, [1] * 2]) == (6.0, 6)
    assert lm.features([[1] * 10]) == [4]


def test_report_has_T_and_NFE_columns_and_axes():
    from dslm.evaluate.report import AXES, markdown_table, plot_png

    doc = {"plan": ["a", "b"], "points": {
        "a": {"key": "a", "model": "M", "sampler": "mdlm", "steps": 8, "nfe": 9, "mauve": 0.5,
              "gen_ppl": 100.0, "entropy": 4.0, "seconds": 1.0},
        "b": {"key": "b", "model": "M", "sampler": "mdlm", "steps": 16, "nfe": 17, "mauve": 0.6,
              "gen_ppl": 90.0, "entropy": 4.0, "seconds": 1.0}}}
    table = markdown_table(doc)
    assert "| T | NFE |" in table and "| M | mdlm | 8 | 9 |" in table
    assert [a[0] for a in AXES] == ["nfe", "steps"]
    assert plot_png(doc)[:4] == b"\x89PNG"


def test_cli_sampler_options_override_the_protocol_key_by_key(tmp_path):
    from dslm.cli import build_parser
    from dslm.commands.sweep import build_config

    args = build_parser().parse_args(["sweep", "--ckpt", "x", "--protocol", "owt", "--out",
                                      str(tmp_path), "--sampler-option", "mdlm.top_p=0.95"])
    cfg = build_config(args)
    assert cfg.sampler_options["mdlm"] == {"top_p": 0.95, "final_step": "argmax"}
    assert cfg.sampler_options["dsl-mdlm"]["top_p"] == 0.9
    assert cfg.data_config.mdlm_framing


def test_a_sweep_file_is_read_like_the_protocol_and_flags_override_it(tmp_path):
    from dslm.cli import build_parser
    from dslm.commands.sweep import build_config
    from dslm.errors import ConfigError

    parse = build_parser().parse_args
    by_name = build_config(parse(["sweep", "--ckpt", "x", "--protocol", "owt", "--out", str(tmp_path)]))
    by_file = build_config(parse(["sweep", "--ckpt", "x", "--config",
                                  str(ROOT / "configs" / "sweeps" / "owt-protocol.yaml"),
                                  "--steps", "8", "--out", str(tmp_path)]))
    assert by_file.steps == [8] and by_file.num_samples == by_name.num_samples == 5000
    assert by_file.sampler_options == by_name.sampler_options
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_sample: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'num_sample'"):
        build_config(parse(["sweep", "--ckpt", "x", "--config", str(bad), "--out", str(tmp_path)]))
