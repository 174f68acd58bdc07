"""Entropy, repetition, MAUVE and the sample/reference file formats."""

import json
import math

import mauve  # noqa: F401  (imported at collection: it pulls in sklearn and transformers)
import numpy as np
import pytest

from dslm.errors import DataError, DSLMError
from dslm.evaluate.entropy import (distinct_n, mean_unigram_entropy, repetition_stats,
                                   unigram_entropy)
from dslm.evaluate.mauve import compute_mauve
from dslm.evaluate.samples import read_reference_file, read_samples, sample_records, write_samples


def test_unigram_entropy_exact_values():
    assert unigram_entropy([5, 5, 5, 5]) == 0.0
    assert unigram_entropy([1, 2, 3, 4]) == pytest.approx(math.log(4))
    # counts 2, 1, 1 of 4: -(1/2 log 1/2 + 2 * 1/4 log 1/4) = 1.5 log 2
    assert unigram_entropy([7, 7, 8, 9]) == pytest.approx(1.5 * math.log(2))
    assert mean_unigram_entropy([[1, 1], [1, 2]]) == pytest.approx(math.log(2) / 2)
    assert unigram_entropy([]) == 0.0


def test_entropy_of_no_samples_is_an_error():
    with pytest.raises(DSLMError, match="no sequences"):
        mean_unigram_entropy([])


def test_repetition_stats_known_sequences():
    assert distinct_n([1, 2, 1, 2, 1, 2], 2) == pytest.approx(2 / 5)   # (1,2),(2,1) of 5
    stats = repetition_stats([[1, 2, 3, 4], [1, 2, 3, 4]], orders=(1, 2))
    assert stats["distinct_1"] == 1.0 and stats["distinct_2"] == 1.0
    # identical samples: inside each nothing repeats, across them everything does
    assert stats["corpus_distinct_1"] == pytest.approx(0.5)
    assert stats["corpus_distinct_2"] == pytest.approx(0.5)
    assert repetition_stats([[3, 3, 3, 3]], orders=(1,))["distinct_1"] == pytest.approx(0.25)
    with pytest.raises(DSLMError, match="order"):
        repetition_stats([[1]], orders=(0,))


def test_mauve_identical_features_is_one():
    feats = np.random.default_rng(0).normal(size=(200, 16))
    assert compute_mauve(feats, feats.copy()).mauve > 0.99


def test_mauve_disjoint_distributions_is_near_zero():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(200, 16))
    q = rng.normal(size=(200, 16)) + 20.0
    res = compute_mauve(p, q)
    assert res.mauve < 0.05
    assert res.num_buckets == 20    # n / 10 clusters (field protocol)


def test_mauve_same_distribution_beats_shifted_one():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(300, 8))
    same = compute_mauve(rng.normal(size=(300, 8)), q).mauve
    shifted = compute_mauve(rng.normal(size=(300, 8)) + 1.5, q).mauve
    assert same > 0.8 > shifted


def test_mauve_rejects_bad_features():
    with pytest.raises(DSLMError, match="widths differ"):
        compute_mauve(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(DSLMError, match="NaN"):
        compute_mauve(np.full((10, 3), np.nan), np.zeros((10, 3)))
    with pytest.raises(DSLMError, match="shape"):
        compute_mauve(np.zeros(10), np.zeros((10, 3)))


def test_samples_jsonl_round_trip(tmp_path):
    path = tmp_path / "s.jsonl"
    write_samples(path, sample_records(["ab", "cd"], [[1, 2], [3, 4]], nfe=8, sampler="mdlm",
                                       steps=8, seed=3))
    rows = read_samples(path)
    assert [r["text"] for r in rows] == ["ab", "cd"]
    assert rows[1] == {"text": "cd", "tokens": [3, 4], "nfe": 8, "sampler": "mdlm", "steps": 8,
                       "seed": 3}


def test_bad_samples_files_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_samples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_samples(bad)
    bad.write_text('{"tokens": [1]}\n')
    with pytest.raises(DataError, match="no 'text'"):
        read_samples(bad)
    bad.write_text('{"text": "a", "tokens": ["x"]}\n')
    with pytest.raises(DataError, match="list of integers"):
        read_samples(bad)


def test_reference_files_txt_and_jsonl(tmp_path):
    txt = tmp_path / "ref.txt"
    txt.write_text("one\n\ntwo\nthree\n")
    assert read_reference_file(txt) == ["one", "two", "three"]
    drawn = read_reference_file(txt, n=2, seed=0)
    assert len(drawn) == 2 and set(drawn) <= {"one", "two", "three"}
    assert drawn == read_reference_file(txt, n=2, seed=0)
    jl = tmp_path / "ref.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t}) for t in ["x", "y"]) + "\n")
    assert read_reference_file(jl) == ["x", "y"]
    with pytest.raises(DataError, match=".txt or .jsonl"):
        read_reference_file(tmp_path / "ref.csv")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="no texts"):
        read_reference_file(tmp_path / "empty.txt")


def test_reference_pair_is_disjoint_when_the_source_is_large_enough(tmp_path):
    from dslm.evaluate.reference import reference_pair

    path = tmp_path / "ref.txt"
    path.write_text("\n".join(f"text {i}" for i in range(50)) + "\n")
    first, second = reference_pair(str(path), 20, seed=0)
    assert len(first) == len(second) == 20 and not set(first) & set(second)
    first, second = reference_pair(str(path), 30, seed=0)       # 50 < 2 x 30: two draws
    assert len(first) == len(second) == 30 and first != second
