"""The notebook API (dslm.api): generate / infill / score / samplers, the CLI on the same path,
and the README's Python example run as written."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest
import torch

import dslm
from conftest import tiny_model_config
from dslm.cli import main
from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
from dslm.errors import DSLMError, SamplingError
from dslm.models import build_model
from dslm.models.checkpoint import save
from dslm.sampling.registry import SAMPLERS

ALPHABET = "abcdefghij ."
README = Path(__file__).resolve().parents[1] / "README.md"


def make_checkpoint(path, kind, seed=0, seq_len=16):
    """A tiny checkpoint with a character tokenizer; weights perturbed so outputs vary."""
    tok = CharTokenizer(ALPHABET)
    torch.manual_seed(seed)
    model = build_model(tiny_model_config(kind, vocab_size=tok.vocab_size, seq_len=seq_len))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return save(model, path, metadata={"tokenizer": tok.spec()}, write_extra=tokenizer_writer(tok))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return {kind: make_checkpoint(root / kind, kind) for kind in ("dsl", "mdlm", "ar")}


@pytest.mark.parametrize("kind", ["dsl", "mdlm", "ar"])
def test_generate_is_text_in_text_out_and_seeded(ckpts, kind):
    m = dslm.from_pretrained(ckpts[kind])
    assert m.kind == kind and m.seq_len == 16
    one = m.generate("abc", steps=4, num_samples=3, seed=5)
    assert len(one) == 3 and all(t.startswith("abc") for t in one)
    assert m.generate("abc", steps=4, num_samples=3, seed=5) == one
    many = m.generate(["ab", "j."], steps=4, num_samples=2, seed=5)
    assert [len(x) for x in many] == [2, 2]
    assert all(t.startswith("ab") for t in many[0]) and all(t.startswith("j.") for t in many[1])
    assert len(m.generate(steps=4, num_samples=2)) == 2


def test_the_module_still_answers_as_a_torch_module(ckpts):
    m = dslm.from_pretrained(ckpts["mdlm"])
    x = torch.zeros(1, 5, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(m(x), m.model(x))
    assert m.config.seq_len == 16 and m.vocab_size == m.model.vocab_size


@pytest.mark.parametrize("kind,sampler", [("mdlm", "remdm-loop"), ("dsl", "dsl-remdm-loop"),
                                          ("ar", "ar")])
def test_cli_sample_gives_the_api_texts(ckpts, tmp_path, kind, sampler):
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--ckpt", str(ckpts[kind]), "--sampler", sampler, "--steps", "6",
                 "--num-samples", "4", "--seed", "7", "--prompt", "ba", "--out", str(out)]) == 0
    cli = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    api = dslm.from_pretrained(ckpts[kind]).generate("ba", sampler=sampler, steps=6,
                                                     num_samples=4, seed=7)
    assert cli == api


def test_infill_clamps_the_given_text_and_counts_one_token_per_mask(ckpts):
    m = dslm.from_pretrained(ckpts["dsl"])
    texts = m.generate(infill="ab[MASK]c[MASK]*3j.", sampler="dsl-mdlm", steps=4,
                       num_samples=5, seed=1)
    assert len(texts) == 5
    one = r"(?:<\|endoftext\|>|.)"             # one decoded token of the char tokenizer
    for t in texts:
        assert re.fullmatch(f"ab{one}c{one}{{3}}j\\.", t, flags=re.S), t
    tok = m.tokenizer
    fixed, ids = dslm.api.parse_infill("ab[MASK]c[MASK]*3j.", tok)
    assert fixed.tolist() == [True, True, False, True, False, False, False, True, True]
    assert ids[fixed].tolist() == tok.encode("abcj.")
    fixed, _ = dslm.api.parse_infill("a[MASK]", tok, seq_len=5)
    assert fixed.tolist() == [True, False, False, False, False]


def test_infill_errors_are_one_line(ckpts, tmp_path, capsys):
    m = dslm.from_pretrained(ckpts["ar"])
    with pytest.raises(SamplingError, match="sampler 'ar' cannot infill"):
        m.generate(infill="a[MASK]b", steps=4)
    d = dslm.from_pretrained(ckpts["dsl"])
    with pytest.raises(SamplingError, match="at least one \\[MASK\\]"):
        d.generate(infill="no masks here", steps=4)
    with pytest.raises(SamplingError, match="longer than the model's 16 positions"):
        d.generate(infill="[MASK]*40", steps=4)
    with pytest.raises(SamplingError, match="has 5 tokens, more than seq_len 3"):
        d.generate(infill="[MASK]*5", seq_len=3, steps=4)
    with pytest.raises(SamplingError, match="not both"):
        d.generate("a", infill="a[MASK]", steps=4)
    code = main(["sample", "--ckpt", str(ckpts["ar"]), "--sampler", "ar", "--steps", "2",
                 "--infill", "a[MASK]b", "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("dslm: error: sampler 'ar' cannot infill")


def test_cli_infill_writes_the_template(ckpts, tmp_path):
    out = tmp_path / "i.jsonl"
    assert main(["sample", "--ckpt", str(ckpts["mdlm"]), "--sampler", "mdlm", "--steps", "3",
                 "--num-samples", "2", "--infill", "a[MASK]*2d", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(len(r["tokens"]) == 4 and r["text"][0] == "a" and r["text"][-1] == "d" for r in rows)


def test_score_ar_is_the_exact_log_likelihood(ckpts):
    m = dslm.from_pretrained(ckpts["ar"])
    text = "abc.ja"
    ids = torch.tensor([m.tokenizer.encode(text)])
    exact = float(m.model.log_likelihood(ids).double().sum())
    assert m.score([text])[0] == pytest.approx(exact, abs=1e-5)
    assert m.score(text, per_token=True)[0] == pytest.approx(exact / 6, abs=1e-5)


def _order_terms(model, x0):
    """log p(x_sigma(k) | x_sigma(<k)) summed over k, for every order sigma (brute force)."""
    from dslm.scoring import masked_log_probs

    n = len(x0)
    out = []
    for order in itertools.permutations(range(n)):
        total = 0.0
        for k in range(n):
            masked = torch.ones(n, dtype=torch.bool)
            masked[list(order[:k])] = False
            xt = torch.where(masked, torch.tensor(model.vocab_size), torch.tensor(x0))[None]
            logp = masked_log_probs(model, xt, torch.tensor([(n - k) / n]))
            total += float(logp[0, order[k], x0[order[k]]])
        out.append(total)
    return out


@pytest.mark.parametrize("kind", ["mdlm", "dsl"])
def test_score_masked_models_is_minus_the_nelbo_a_lower_bound(ckpts, kind):
    m = dslm.from_pretrained(ckpts[kind])
    x0 = m.tokenizer.encode("a.j")
    with torch.no_grad():
        terms = _order_terms(m.model, x0)
    elbo = sum(terms) / len(terms)                                    # -NELBO, exactly
    mixture = math.log(sum(math.exp(t) for t in terms) / len(terms))  # log p(x), exactly
    assert elbo <= mixture + 1e-9
    est = m.score("a.j", num_draws=2000, seed=3)[0]
    assert est == pytest.approx(elbo, abs=0.02 * abs(elbo))
    assert m.score("ab.j", num_draws=16, seed=3) == m.score("ab.j", num_draws=16, seed=3)


def test_score_rejects_bad_texts(ckpts):
    m = dslm.from_pretrained(ckpts["mdlm"])
    with pytest.raises(SamplingError, match="no tokens"):
        m.score([""])
    with pytest.raises(SamplingError, match="more than the model's 16 positions"):
        m.score(["a" * 17])


def test_samplers_come_from_the_registry(monkeypatch):
    listed = {s["name"]: s for s in dslm.samplers()}
    assert list(listed) == list(SAMPLERS)
    loop = listed["dsl-remdm-loop"]
    assert loop["kinds"] == ["dsl"] and loop["infill"] is True
    assert loop["options"]["eta"] == {"default": 0.02, "type": "float"}
    assert loop["options"]["carry_over"] == {"default": True, "type": "bool"}
    assert listed["mdlm"]["options"]["final_step"]["choices"] == ["sample", "argmax"]
    assert listed["ar"]["infill"] is False
    assert [s["name"] for s in dslm.samplers("ar")] == ["ar"]
    monkeypatch.setitem(SAMPLERS, "fake", SAMPLERS["mdlm"])
    assert "fake" in {s["name"] for s in dslm.samplers("mdlm")}
    with pytest.raises(DSLMError, match="unknown model kind"):
        dslm.samplers("gpt")


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ours = [b for b in blocks if "dslm.from_pretrained(\"runs/tiny-dsl\")" in b]
    assert len(ours) == 1, "the README must hold one Python API example"
    return ours[0]


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    make_checkpoint(tmp_path / "runs" / "tiny-dsl", "dsl", seed=2, seq_len=32)
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_example(), "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "dsl-remdm-loop" in out
