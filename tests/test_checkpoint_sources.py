"""Every command takes the same checkpoint sources: `dslm sample`, `dslm eval` and
`dslm sweep` run on a dslm folder, an exported folder, a local MDLM folder in the hub's
layout and MDLM's Lightning ``.ckpt`` (which pickles its tokenizer: trust needed)."""

import json
import types

import pytest

from conftest import char_checkpoints
from dslm.cli import main
from dslm.models.export import export
from test_hub import gpt2_files, lightning_ckpt, mdlm_state_dict, write_hf_folder

ALPHABET = "abcdefghij"          # + EOS and unknown: |V| = 12 (the MDLM folder's 13 - [MASK])
SOURCES = ["dslm", "exported", "mdlm-hf", "lightning"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    tok, paths = char_checkpoints(root, ("ar", "mdlm"), ALPHABET)
    paths["dslm"] = paths.pop("mdlm")
    paths["exported"] = export(paths["dslm"], root / "exported")
    hf = write_hf_folder(root / "mdlm-hf", mdlm_state_dict(1))
    tok.save(hf / "tokenizer")                       # a hub folder may ship dslm's tokenizer/
    paths["mdlm-hf"] = hf
    sd = mdlm_state_dict(2, v=50258, d=16, n=1, c=4)  # GPT-2's vocabulary, as MDLM's OWT run
    paths["lightning"] = lightning_ckpt(root / "last.ckpt", sd, ema_sd=sd,
                                        extra={"tokenizer": types.SimpleNamespace(name="gpt2")})
    paths["gpt2"] = gpt2_files(root / "gpt2")
    (root / "ref.txt").write_text("\n".join(ALPHABET[i:] + ALPHABET[:i] for i in range(10)) + "\n")
    return {k: str(v) for k, v in paths.items()} | {"ref": str(root / "ref.txt")}


@pytest.mark.parametrize("source", SOURCES)
def test_sample_eval_and_sweep_read_every_source(world, source, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DSLM_GPT2_TOKENIZER", world["gpt2"])   # GPT-2's files, offline
    ckpt = world[source]
    trust = ["--trust-checkpoint"] if source == "lightning" else []
    samples = tmp_path / "s.jsonl"
    sample = ["sample", "--ckpt", ckpt, "--sampler", "mdlm", "--steps", "2", "--num-samples", "3",
              "--device", "cpu", "--out", str(samples)]
    if trust:
        assert main(sample) == 2                      # a pickled tokenizer: refused untrusted
        assert "--trust-checkpoint" in capsys.readouterr().err
    assert main(sample + trust) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["tokens"]) == 16 and r["text"] for r in rows)

    metrics = tmp_path / "m.json"
    assert main(["eval", "--samples", str(samples), "--model", ckpt, *trust, "--judge", world["ar"],
                 "--no-mauve", "--device", "cpu", "--out", str(metrics)]) == 0
    m = json.loads(metrics.read_text())["metrics"]
    assert m["gen_ppl"] > 1.0 and m["num_samples"] == 3

    out = tmp_path / "sweep"
    assert main(["sweep", "--ckpt", f"m={ckpt}", *trust, "--samplers", "mdlm", "--steps", "2",
                 "--num-samples", "4", "--judge", world["ar"], "--reference", world["ref"],
                 "--device", "cpu", "--out", str(out)]) == 0
    point, = json.loads((out / "sweep.json").read_text())["points"].values()
    assert point["model"] == "m" and point["steps"] == 2 and 0.0 <= point["mauve"] <= 1.0
