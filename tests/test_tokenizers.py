"""Tokenizers: exact GPT-2 ids from hub-format files, char/BPE round trips, checkpoint storage."""

import json
import shutil

import pytest

from conftest import tiny_model_config
from dslm.data.synthetic import synthetic_documents
from dslm.data.tokenizers import (EOS_TEXT, UNK_TEXT, BPETokenizer, CharTokenizer, GPT2Tokenizer,
                                  check_tokenizer_name, check_vocab, fingerprint, load_tokenizer,
                                  tokenizer_from_path, tokenizer_writer)
from dslm.errors import CheckpointError, ConfigError, DataError
from dslm.models.checkpoint import open_checkpoint

TEXT = "It is a truth universally acknowledged — naïve café, 10% off!\n\nNew paragraph."


@pytest.fixture(scope="module")
def gpt2(gpt2_folder):
    return GPT2Tokenizer(str(gpt2_folder))


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(synthetic_documents(300) + [TEXT], vocab_size=400)


def test_gpt2_from_hub_format_folder_gives_exact_ids(gpt2):
    tok = gpt2
    assert tok.encode("Hello world") == [15496, 995]
    assert (tok.vocab_size, tok.eos_id) == (50257, 50256)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.decode([15496, 995, 50256]) == "Hello world" + EOS_TEXT   # special tokens kept
    assert tok.encode_batch(["Hello world", "Hello"]) == [[15496, 995], [15496]]


def test_gpt2_save_and_reload_from_spec(gpt2, tmp_path):
    tok = gpt2
    tok.save(tmp_path / "saved")
    again = load_tokenizer(tok.spec(), tmp_path / "saved")
    assert again.encode(TEXT) == tok.encode(TEXT)
    assert tokenizer_from_path(tmp_path / "saved").encode("Hello world") == [15496, 995]
    # the file location is not part of what identifies the ids (the cache key)
    assert fingerprint(again) == fingerprint(tok)


def test_gpt2_by_name_uses_the_folder_named_by_the_environment(gpt2_folder, monkeypatch):
    monkeypatch.setenv("DSLM_GPT2_TOKENIZER", str(gpt2_folder))
    spec = {"kind": "gpt2", "name": "gpt2", "vocab_size": 50257}   # as MDLM hub checkpoints record it
    tok = load_tokenizer(spec)
    assert tok.encode("Hello world") == [15496, 995] and tok.spec()["name"] == "gpt2"


def test_gpt2_bad_folder_or_unreachable_hub_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="holds neither vocab.json"):
        GPT2Tokenizer(str(tmp_path))
    with pytest.raises(DataError, match="cannot load the GPT-2 tokenizer 'dslm-tests/absent'"):
        GPT2Tokenizer("dslm-tests/absent")


def test_char_round_trip_unknown_and_spec():
    tok = CharTokenizer.train(["abc", "cab d"])
    assert tok.chars == " abcd" and tok.vocab_size == 7 and tok.eos_id == 0
    ids = tok.encode("a dz")
    assert ids == [2 + 1, 2 + 0, 2 + 4, CharTokenizer.UNK_ID]
    assert tok.decode(ids + [tok.eos_id]) == "a d" + UNK_TEXT + EOS_TEXT
    assert load_tokenizer(json.loads(json.dumps(tok.spec()))).encode("bad") == tok.encode("bad")


def test_char_empty_training_text_is_a_data_error():
    with pytest.raises(DataError, match="empty"):
        CharTokenizer.train(["", ""])


def test_bpe_round_trip_and_vocab(bpe):
    assert 258 <= bpe.vocab_size <= 400
    assert bpe.eos_id == 0
    for text in (TEXT, "The quiet cat sees a red dog.", "漢字 and emoji 🙂 (unseen bytes)"):
        assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe.encode("The quiet cat sees a red dog.")) < len("The quiet cat sees a red dog.")
    assert bpe.decode([bpe.eos_id]) == EOS_TEXT


def test_bpe_save_load_and_tampered_file(bpe, tmp_path):
    bpe.save(tmp_path)
    again = load_tokenizer(bpe.spec(), tmp_path)
    assert again.encode(TEXT) == bpe.encode(TEXT)
    other = BPETokenizer.train(synthetic_documents(50, seed=3), vocab_size=300)
    other.backend.save(str(tmp_path / "tokenizer.json"))   # different merges behind the same spec
    with pytest.raises(DataError, match="do not match"):
        load_tokenizer(bpe.spec(), tmp_path)
    with pytest.raises(DataError, match="needs its folder"):
        load_tokenizer(bpe.spec())


def test_unknown_kinds_and_names():
    with pytest.raises(DataError, match="unknown tokenizer kind 'sentencepiece'"):
        load_tokenizer({"kind": "sentencepiece"})
    with pytest.raises(ConfigError, match="unknown tokenizer 'wordpiece'"):
        check_tokenizer_name("wordpiece")
    check_tokenizer_name("bpe")


def _save_checkpoint(path, tokenizer, vocab_size, metadata=None):
    from dslm.models import build_model
    from dslm.models.checkpoint import save

    model = build_model(tiny_model_config(vocab_size=vocab_size))
    meta = {"tokenizer": tokenizer.spec()} if metadata is None else metadata
    save(model, path, metadata=meta, write_extra=tokenizer_writer(tokenizer))


def test_tokenizer_round_trips_through_a_checkpoint(bpe, tmp_path):
    _save_checkpoint(tmp_path / "run" / "checkpoint", bpe, bpe.vocab_size)
    for where in (tmp_path / "run" / "checkpoint", tmp_path / "run"):   # checkpoint or run folder
        tok = open_checkpoint(where).tokenizer()
        assert tok.encode(TEXT) == bpe.encode(TEXT)
    assert tokenizer_from_path(tmp_path / "run").spec() == bpe.spec()


def test_checkpoint_vocab_mismatch_is_a_clear_error(bpe, tmp_path):
    _save_checkpoint(tmp_path / "ckpt", bpe, bpe.vocab_size + 3)
    with pytest.raises(CheckpointError, match=f"{bpe.vocab_size} tokens but the model expects "
                                              f"vocab_size {bpe.vocab_size + 3}"):
        open_checkpoint(tmp_path / "ckpt").tokenizer()
    with pytest.raises(CheckpointError):
        check_vocab(bpe, bpe.vocab_size - 1)
    check_vocab(bpe, bpe.vocab_size)


def test_checkpoint_without_tokenizer_is_a_clear_error(bpe, tmp_path):
    _save_checkpoint(tmp_path / "nometa", bpe, bpe.vocab_size, metadata={})
    with pytest.raises(CheckpointError, match="records no tokenizer"):
        open_checkpoint(tmp_path / "nometa").tokenizer()
    _save_checkpoint(tmp_path / "nofiles", bpe, bpe.vocab_size)
    shutil.rmtree(tmp_path / "nofiles" / "tokenizer")
    with pytest.raises(CheckpointError, match="needs its folder"):
        open_checkpoint(tmp_path / "nofiles").tokenizer()
    with pytest.raises(CheckpointError, match="not found"):
        open_checkpoint(tmp_path / "missing").tokenizer()
