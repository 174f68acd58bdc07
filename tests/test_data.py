"""Tokenise-and-pack, the cache, local files, HF datasets in the hub's format, bad input."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dslm.config import update
from dslm.data import DataConfig, prepare_data
from dslm.data import packing
from dslm.data.detokenize import lm1b, wikitext
from dslm.data.hf import load_hub_splits
from dslm.data.sources import embedded_documents, resolve_source
from dslm.data.synthetic import synthetic_documents
from dslm.data.tokenizers import CharTokenizer
from dslm.errors import ConfigError, DataError

CHARS = CharTokenizer("abcdefghijklmnopqrstuvwxyz .")


@pytest.fixture(autouse=True, scope="module")
def quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _pack(docs, seq_len, tmp_path, num_proc=1, framed=False):
    from datasets import Dataset

    ids = packing.tokenize(Dataset.from_dict({"text": docs}), CHARS, num_proc, "t", "tok")
    dtype = packing.token_dtype(CHARS.vocab_size)
    counts = packing.write_stream(ids, CHARS.eos_id, seq_len, tmp_path / "x.bin", dtype, framed=framed)
    return counts, packing.open_blocks(tmp_path / "x.bin", dtype, counts["blocks"], seq_len)


def _stream(docs):
    out = []
    for d in docs:
        out += CHARS.encode(d) + [CHARS.eos_id]
    return out


@settings(max_examples=25, deadline=None, derandomize=True)
@given(docs=st.lists(st.text(alphabet="abc .", min_size=0, max_size=40), min_size=1, max_size=12),
       seq_len=st.integers(2, 17))
def test_packing_keeps_every_token_once_with_eos_between_documents(tmp_path_factory, docs, seq_len):
    counts, blocks = _pack(docs, seq_len, tmp_path_factory.mktemp("pack"))
    stream = _stream(docs)
    assert counts["tokens"] == len(stream) and counts["documents"] == len(docs)
    assert counts["blocks"] == len(stream) // seq_len
    # block k is exactly stream[k L : (k + 1) L]: nothing lost or repeated across boundaries
    assert blocks.reshape(-1).tolist() == stream[:counts["blocks"] * seq_len]
    eos_at = np.flatnonzero(np.asarray(stream) == CHARS.eos_id)
    assert eos_at.tolist() == (np.cumsum([len(d) + 1 for d in docs]) - 1).tolist()


@settings(max_examples=15, deadline=None, derandomize=True)
@given(docs=st.lists(st.text(alphabet="ab .", min_size=0, max_size=30), min_size=1, max_size=10),
       seq_len=st.integers(3, 12))
def test_mdlm_framing_wraps_each_block_in_bos_and_eos(tmp_path_factory, docs, seq_len):
    folder = tmp_path_factory.mktemp("frame")
    counts, blocks = _pack(docs, seq_len, folder, framed=True)
    stream = _stream(docs)
    assert counts["blocks"] == len(stream) // (seq_len - 2) == len(blocks)
    assert (blocks[:, 0] == CHARS.eos_id).all() and (blocks[:, -1] == CHARS.eos_id).all()
    assert blocks[:, 1:-1].reshape(-1).tolist() == stream[:counts["blocks"] * (seq_len - 2)]
    assert sorted(p.name for p in folder.iterdir()) == ["x.bin"]   # the raw stream is removed


def test_packing_in_worker_processes_matches_one_process(tmp_path):
    docs = synthetic_documents(300)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, one = _pack(docs, 32, tmp_path / "a", num_proc=1)
    _, two = _pack(docs, 32, tmp_path / "b", num_proc=2)
    assert np.array_equal(one, two) and len(one) > 100


def _cfg(tmp_path, **kw):
    base = dict(source="synthetic", tokenizer="char", seq_len=32, cache_dir=str(tmp_path / "cache"),
                num_proc=1, max_documents=200, val_fraction=0.1)
    base.update(kw)
    return update(DataConfig(), base)


def test_prepare_synthetic_is_cached_and_reused(tmp_path, monkeypatch):
    first = prepare_data(_cfg(tmp_path), progress=False)
    assert not first.meta["from_cache"]
    assert first.train.dtype == np.uint16 and first.train.shape[1] == 32 and len(first.val) > 0
    train, val = np.array(first.train), np.array(first.val)

    def no_tokenising(*a, **k):
        raise AssertionError("the cache was not reused")
    monkeypatch.setattr(packing, "tokenize", no_tokenising)
    monkeypatch.setattr(CharTokenizer, "train", no_tokenising)
    second = prepare_data(_cfg(tmp_path), progress=False)
    assert second.meta["from_cache"] and isinstance(second.train, np.memmap)
    assert np.array_equal(second.train, train) and np.array_equal(second.val, val)
    assert second.tokenizer.spec() == first.tokenizer.spec()
    assert second.meta["cache_key"] == first.meta["cache_key"]
    with pytest.raises(AssertionError, match="not reused"):   # another seq_len is another key
        prepare_data(_cfg(tmp_path, seq_len=16), progress=False)


def test_train_and_validation_are_disjoint_whole_documents(tmp_path):
    cfg = _cfg(tmp_path)
    train_ds, val_ds = resolve_source(cfg).load()
    train, val = list(train_ds["text"]), list(val_ds["text"])
    docs = synthetic_documents(200)
    assert len(val) == 20 and sorted(train + val) == sorted(docs)
    assert not set(train) & set(val)
    data = prepare_data(cfg, progress=False)
    # the validation blocks are exactly the held-out documents' stream
    stream = data.val.reshape(-1).tolist()
    assert stream == _stream_with(data.tokenizer, val)[:len(stream)]
    texts = data.reference_texts(3, 7)
    assert texts == data.reference_texts(3, 7) and len(set(texts)) == 3
    with pytest.raises(DataError, match="validation split has"):
        data.reference_texts(len(data.val) + 1, 0)


def _stream_with(tok, docs):
    out = []
    for d in docs:
        out += tok.encode(d) + [tok.eos_id]
    return out


def test_bpe_tokenizer_is_trained_once_and_cached(tmp_path):
    data = prepare_data(_cfg(tmp_path, tokenizer="bpe", bpe_vocab_size=300), progress=False)
    assert data.tokenizer.spec()["kind"] == "bpe" and data.tokenizer.vocab_size <= 300
    folders = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert folders == ["data", "tokenizer"]
    again = prepare_data(_cfg(tmp_path, tokenizer="bpe", bpe_vocab_size=300), progress=False)
    assert again.meta["from_cache"] and again.tokenizer.spec() == data.tokenizer.spec()


def test_local_files_txt_jsonl_parquet_and_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [f"document number {i} says hello." for i in range(12)]
    (tmp_path / "c.txt").write_text("\n\n  \n".join(docs) + "\n")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    pq.write_table(pa.table({"body": docs}), tmp_path / "c.parquet")
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, d in enumerate(docs):
        (folder / f"{i:02d}.txt").write_text(d + "\n\nsame document\n")
    for source, field, expect in ((tmp_path / "c.txt", "text", docs), (tmp_path / "c.jsonl", "body", docs),
                                  (tmp_path / "c.parquet", "body", docs),
                                  (folder, "text", [d + "\n\nsame document" for d in docs])):
        cfg = _cfg(tmp_path, source=str(source), text_field=field, max_documents=0, seq_len=8)
        train, val = resolve_source(cfg).load()
        assert sorted(list(train["text"]) + list(val["text"])) == sorted(expect), source
        assert len(val) == 1
        assert prepare_data(cfg, progress=False).train.shape[1] == 8


def test_hf_dataset_from_a_local_save_to_disk_copy(tmp_path):
    from datasets import Dataset, DatasetDict

    wiki = DatasetDict({"train": Dataset.from_dict({"text": ["", " = Title = ", "1 @,@ 000 , ok"] * 5}),
                        "validation": Dataset.from_dict({"text": ["delta epsilon", "  "]})})
    wiki.save_to_disk(str(tmp_path / "wiki"))
    train, val = load_hub_splits("hf:wikitext-103", local_path=str(tmp_path / "wiki"))
    assert len(train) == 10 and list(val["text"]) == ["delta epsilon"]   # blank rows dropped
    assert list(train["text"])[:2] == [" = Title = ", "1,000, ok"]   # WikiText detokenised
    cfg = _cfg(tmp_path, source="hf:wikitext-103", hf_local_path=str(tmp_path / "wiki"),
               max_documents=0, seq_len=4)
    data = prepare_data(cfg, progress=False)
    assert data.meta["identity"]["hub"] == "Salesforce/wikitext"
    tok = data.tokenizer   # trained on the training split: 'd' and 's' are unknown symbols
    assert data.val.reshape(-1).tolist() == (tok.encode("delta epsilon") + [tok.eos_id])[:12]
    assert tok.decode(data.val[0]) == "\ufffdelt"


def test_openwebtext_holds_out_the_last_documents(tmp_path):
    from datasets import Dataset

    docs = [f"web page {i} text" for i in range(30)]
    Dataset.from_dict({"text": docs}).save_to_disk(str(tmp_path / "owt"))
    train, val = load_hub_splits("hf:openwebtext", local_path=str(tmp_path / "owt"), owt_val_documents=5)
    assert list(train["text"]) == docs[:25] and list(val["text"]) == docs[25:]
    with pytest.raises(DataError, match="too few to hold out the last 30"):
        load_hub_splits("hf:openwebtext", local_path=str(tmp_path / "owt"), owt_val_documents=30)
    cfg = _cfg(tmp_path, source="hf:openwebtext", hf_local_path=str(tmp_path / "owt"),
               owt_val_documents=5, max_documents=0, seq_len=8)
    data = prepare_data(cfg, progress=False)
    assert data.meta["val"]["documents"] == 5 and data.meta["train"]["documents"] == 25
    assert prepare_data(cfg, progress=False).meta["from_cache"]   # datasets' own cache files ignored


def test_hub_layout_parquet_files_text8_chunking_and_lm1b_test_split(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "lm1b" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a sentence .", "another one ."]}),
                   tmp_path / "lm1b" / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"text": ["held out ."]}),
                   tmp_path / "lm1b" / "data" / "test-00000-of-00001.parquet")
    train, val = load_hub_splits("hf:lm1b", local_path=str(tmp_path / "lm1b"))
    assert list(train["text"]) == ["a sentence.", "another one."] and list(val["text"]) == ["held out."]

    from datasets import Dataset, DatasetDict
    words = " ".join(f"w{i}" for i in range(60000))   # one long row, as text8 ships
    text8 = DatasetDict({"train": Dataset.from_dict({"text": [words]}),
                         "test": Dataset.from_dict({"text": ["short test split"]})})
    text8.save_to_disk(str(tmp_path / "t8"))
    train, val = load_hub_splits("hf:text8", local_path=str(tmp_path / "t8"))
    assert len(train) > 1 and " ".join(list(train["text"])) == words   # cut at spaces only
    with pytest.raises(DataError, match="no split 'validation'"):
        load_hub_splits("hf:wikitext-103", local_path=str(tmp_path / "t8"))
    with pytest.raises(DataError, match="no column 'content'"):
        load_hub_splits("hf:text8", text_field="content", local_path=str(tmp_path / "t8"))


@pytest.mark.parametrize("detok, raw, clean", [
    (wikitext, " = = Early life = = ", " == Early life == "),
    (wikitext, "In 1 @,@ 000 , the ( old ) man 's dog was n't 5 @.@ 5 m tall .",
     "In 1,000, the (old) man's dog wasn't 5.5 m tall."),
    (wikitext, 'He said " yes " ; well @-@ known !', 'He said "yes"; well-known!'),
    (lm1b, "He said : \" it 's $ 5 . \" See http : / / x.org / a .", 'He said: "it\'s $5." See http://x.org/a.'),
    (lm1b, "Growth was 3 % , they said ?", "Growth was 3%, they said?"),
])
def test_detokenizers(detok, raw, clean):
    assert detok(raw) == clean


def test_embedded_corpus_is_natural_english_of_several_megabytes(tmp_path):
    docs = embedded_documents()
    assert len(docs) == 269 and sum(map(len, docs)) > 4_000_000
    assert docs[0].startswith("The family of Dashwood had long been settled in Sussex.")
    data = prepare_data(_cfg(tmp_path, source="embedded", max_documents=10, seq_len=64), progress=False)
    assert data.meta["val"]["documents"] == 1 and data.meta["train"]["documents"] == 9


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n\n   \n\t\n", "is empty"),
    (b"caf\xe9 au lait\n\nsecond", "not valid UTF-8 \\(bad byte at offset 3\\)"),
    (b"one document only", "1 document"),
])
def test_bad_text_files(tmp_path, content, message):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(DataError, match=message):
        prepare_data(_cfg(tmp_path, source=str(tmp_path / "bad.txt")), progress=False)


def test_bad_sources_and_settings(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.txt .*embedded, synthetic"):
        prepare_data(_cfg(tmp_path, source=str(tmp_path / "nope.txt")))
    with pytest.raises(DataError, match="data file not found: wikipedia"):
        prepare_data(_cfg(tmp_path, source="wikipedia"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported data file type '.csv'"):
        prepare_data(_cfg(tmp_path, source=str(tmp_path / "x.csv")))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        prepare_data(_cfg(tmp_path, source=str(tmp_path / "bad.jsonl")))
    (tmp_path / "f.jsonl").write_text('{"body": "ok"}\n')
    with pytest.raises(DataError, match="line 1 has no string field 'text'"):
        prepare_data(_cfg(tmp_path, source=str(tmp_path / "f.jsonl")))
    with pytest.raises(DataError, match="local dataset not found"):
        prepare_data(_cfg(tmp_path, source="hf:openwebtext", hf_local_path=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="unknown tokenizer 'sentencepiece'"):
        prepare_data(_cfg(tmp_path, tokenizer="sentencepiece"))
    with pytest.raises(ConfigError, match="val_fraction"):
        _cfg(tmp_path, val_fraction=1.5)
    with pytest.raises(DataError, match="fewer than one block of seq_len 4096"):
        prepare_data(_cfg(tmp_path, max_documents=20, seq_len=4096), progress=False)


@pytest.mark.slow
def test_default_config_prepares_the_embedded_corpus_quickly(tmp_path):
    import time

    start = time.perf_counter()
    data = prepare_data(DataConfig(cache_dir=str(tmp_path)), progress=False)
    first = time.perf_counter() - start
    assert data.tokenizer.vocab_size == 4096 and data.train.shape[1] == 128
    assert len(data.train) > 5000 and len(data.val) > 200
    assert first < 45, f"first preparation took {first:.1f} s"
    start = time.perf_counter()
    again = prepare_data(DataConfig(cache_dir=str(tmp_path)), progress=False)
    assert again.meta["from_cache"] and time.perf_counter() - start < 2.0
    assert np.array_equal(again.train, data.train)
    assert all("<|endoftext|>" in t or len(t) > 200 for t in data.reference_texts(5, 0))


def test_given_or_saved_tokenizer_replaces_training_one(tmp_path):
    trained = prepare_data(_cfg(tmp_path), progress=False)
    trained.tokenizer.save(tmp_path / "tok")
    from_folder = prepare_data(_cfg(tmp_path, tokenizer=str(tmp_path / "tok")), progress=False)
    given = prepare_data(_cfg(tmp_path, tokenizer="bpe"), tokenizer=trained.tokenizer, progress=False)
    assert from_folder.meta["from_cache"] and given.meta["from_cache"]   # same ids -> same cache
    assert np.array_equal(from_folder.train, trained.train) and np.array_equal(given.val, trained.val)


def test_unreachable_hub_dataset_is_a_one_line_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot load split 'train' of hub dataset dslm-tests/absent") as err:
        load_hub_splits("hf:dslm-tests/absent")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="names no dataset"):
        load_hub_splits("hf:")
