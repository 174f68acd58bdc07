"""Judges and featurizers: a local Hugging Face GPT-2 and dslm AR checkpoints."""

import math
import random

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from conftest import tiny_model_config
from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
from dslm.errors import CheckpointError, DSLMError
from dslm.evaluate.genppl import generative_perplexity, judge_token_ids
from dslm.evaluate.lm import (DslmCausalLM, HFCausalLM, load_lm, pad_batch,
                              split_windows)
from dslm.models import build_model
from dslm.models import checkpoint as ck

ALPHABET = "abcdefghij"          # CharTokenizer: EOS 0, UNK 1, letters 2..11 -> |V| = 12


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A randomly initialised 2-layer GPT-2 and a byte-level BPE tokenizer, saved locally."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(["the cat sat on the mat", "a dog ran in the park"] * 20, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    eos = tok.eos_token_id
    cfg = GPT2Config(vocab_size=len(tok), n_positions=24, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(cfg).eval().save_pretrained(folder)
    return folder


def test_windows_and_padding():
    assert split_windows(range(5), 2) == [[0, 1], [2, 3], [4]]
    assert split_windows([], 4) == []
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_hf_judge_matches_transformers_loss(hf_folder):
    lm = HFCausalLM(str(hf_folder))
    text = "the cat sat on the mat"
    ids = lm.encode([text])[0]
    with torch.no_grad():
        ref = lm.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    out = generative_perplexity(lm, [text])
    assert out["judge_tokens"] == len(ids) - 1          # the first token has no context
    assert out["judge_nll"] == pytest.approx(ref, rel=1e-5)
    assert out["gen_ppl"] == pytest.approx(math.exp(ref), rel=1e-5)


def test_hf_judge_batching_windows_and_features(hf_folder):
    lm = HFCausalLM(str(hf_folder))
    texts = ["the cat", "a dog ran in the park and the cat sat on the mat " * 3, "mat"]
    ids = lm.encode(texts)
    assert len(ids[1]) > lm.max_length == 24         # split into windows
    total, count = lm.nll(ids, batch_size=2)
    parts = [lm.nll([i], batch_size=1) for i in ids]
    assert total == pytest.approx(sum(p[0] for p in parts), rel=1e-5)
    assert count == sum(len(w) - 1 for i in ids for w in split_windows(i, 24))
    feats = lm.features(ids, batch_size=3)
    assert feats.shape == (3, 32) and feats.dtype == np.float32
    with torch.no_grad():
        h = lm.model(input_ids=torch.tensor([ids[0]]), output_hidden_states=True).hidden_states[-1]
    np.testing.assert_allclose(feats[0], h[0, -1].numpy(), rtol=1e-4, atol=1e-5)


def test_unknown_hub_model_is_a_one_line_error():
    with pytest.raises(DSLMError, match="could not load the causal LM"):
        load_lm("no-such-org/no-such-model-xyz")


def _ar(vocab=12, seq_len=16, seed=0):
    torch.manual_seed(seed)
    return build_model(tiny_model_config("ar", vocab_size=vocab, seq_len=seq_len)).eval()


def test_dslm_judge_batching_equals_direct_likelihood():
    model, tok = _ar(), CharTokenizer(ALPHABET)
    lm = DslmCausalLM(model, tok, tokenizer_spec=tok.spec())
    seqs = [[2, 3, 4], [5] * 20, [7, 8, 9, 10, 11]]          # 20 > seq_len: two windows
    total, count = lm.nll(seqs, batch_size=2)
    want = 0.0
    for s in seqs:
        for w in split_windows(s, 16):
            want -= float(model.log_likelihood(torch.tensor([w])).sum())
    assert count == 28                                        # the BOS slot scores every token
    assert total == pytest.approx(want, rel=1e-5)
    feats = lm.features(seqs, batch_size=3)
    direct = model.hidden_features(torch.tensor([seqs[2]]))[0, -1].detach().numpy()
    np.testing.assert_allclose(feats[2], direct, rtol=1e-4, atol=1e-5)


def test_only_the_first_eos_of_a_window_is_scored(hf_folder):
    """MDLM's rule: runs of EOS padding are not scored (the AR judge scores position 0 too)."""
    tok = CharTokenizer(ALPHABET)
    lm = DslmCausalLM(_ar(), tok, tokenizer_spec=tok.spec())
    eos = tok.eos_id
    assert lm.nll([[eos, 2, 3, eos, eos, 4]])[1] == 4           # positions 0, 1, 2, 5
    hf = HFCausalLM(str(hf_folder))
    a, b = hf.encode(["cat"])[0][0], hf.encode(["dog"])[0][0]
    e = hf.eos_id
    assert hf.nll([[e, a, b, e, e, a]])[1] == 3                  # targets 1, 2, 5


def test_token_ids_used_only_when_the_tokenizer_matches():
    tok = CharTokenizer(ALPHABET)
    lm = DslmCausalLM(_ar(), tok, tokenizer_spec=tok.spec())
    ids = [[2, 2, 2]]
    assert judge_token_ids(lm, ["abc"], ids, tok.spec()) == ids               # as they are
    assert judge_token_ids(lm, ["abc"], ids, {"kind": "char", "chars": "xyz"}) == [[2, 3, 4]]
    assert judge_token_ids(lm, ["abc"], ids, None) == [[2, 3, 4]]
    gpt2 = DslmCausalLM(_ar(), tok, tokenizer_spec={"kind": "gpt2", "name": "gpt2"})
    assert gpt2.accepts_token_ids({"kind": "gpt2", "name": "/local/gpt2-folder"})


def test_ar_checkpoint_loads_as_judge_and_other_kinds_are_refused(tmp_path):
    tok = CharTokenizer(ALPHABET)
    ck.save(_ar(), tmp_path / "ar", metadata={"tokenizer": tok.spec()},
            write_extra=tokenizer_writer(tok))
    assert ck.is_dslm_checkpoint(tmp_path / "ar") and not ck.is_dslm_checkpoint(tmp_path)
    lm = load_lm(str(tmp_path / "ar"))
    assert isinstance(lm, DslmCausalLM) and lm.accepts_token_ids(tok.spec())
    assert generative_perplexity(lm, ["abcabc"])["judge_tokens"] == 6
    mdlm = build_model(tiny_model_config("mdlm", vocab_size=12))
    ck.save(mdlm, tmp_path / "mdlm", metadata={"tokenizer": tok.spec()},
            write_extra=tokenizer_writer(tok))
    with pytest.raises(CheckpointError, match="needs 'ar'"):
        load_lm(str(tmp_path / "mdlm"))


def _chain(rng: random.Random, n: int) -> str:
    """A Markov chain on 10 letters: next = current + 1 or + 3 (mod 10), each with p = 1/2."""
    x = [rng.randrange(10)]
    for _ in range(n - 1):
        x.append((x[-1] + rng.choice((1, 3))) % 10)
    return "".join(ALPHABET[i] for i in x)


@pytest.mark.slow
def test_gen_ppl_of_held_out_text_matches_the_judges_validation_ppl():
    """A judge trained on the chain: gen PPL of held-out chain text (re-tokenised, of mixed
    lengths, windowed and padded) ~ its validation PPL ~ the chain's true PPL."""
    tok, rng = CharTokenizer(ALPHABET), random.Random(0)
    model = _ar(seq_len=32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        x = torch.tensor([tok.encode(_chain(rng, 32)) for _ in range(32)])
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 12), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    val = torch.tensor([tok.encode(_chain(rng, 32)) for _ in range(64)])
    val_ppl = math.exp(-float(model.log_likelihood(val).mean()))
    true_ppl = math.exp((math.log(10) + 31 * math.log(2)) / 32)      # first letter uniform
    assert val_ppl == pytest.approx(true_ppl, rel=0.08)
    lm = DslmCausalLM(model, tok)
    held_out = [_chain(rng, 32) for _ in range(48)] + [_chain(rng, 64) for _ in range(8)]
    gen = generative_perplexity(lm, held_out, batch_size=16)["gen_ppl"]
    assert gen == pytest.approx(val_ppl, rel=0.05)
    noise = ["".join(rng.choice(ALPHABET) for _ in range(32)) for _ in range(32)]
    assert generative_perplexity(lm, noise)["gen_ppl"] > 3 * val_ppl
