"""Class 9: a fixed seed on a fixed machine gives bit-identical results, and every result
file records the environment that made it."""

import json

from safetensors.torch import load_file

from dslm.config import load
from dslm.train import RunConfig, train

from .conftest import TINY_RUN, read_json


def _run(tmp_path, name, kind, threads):
    cfg = load(RunConfig, None, TINY_RUN + [
        f"model.kind={kind}", "train.steps=6", f"train.num_threads={threads}",
        f"data.cache_dir={tmp_path / 'cache'}", f"train.out_dir={tmp_path / name}"])
    train(cfg, progress=False)
    return load_file(str(tmp_path / name / "checkpoint" / "model.safetensors"))


def test_two_identical_runs_are_bit_identical(tmp_path):
    """MDLM's embedding backward accumulates in thread order unless deterministic
    algorithms are on (the default, train.deterministic=true); 2 threads exposed it."""
    for kind in ("mdlm", "dsl"):
        a = _run(tmp_path, f"{kind}-a", kind, 2)
        b = _run(tmp_path, f"{kind}-b", kind, 2)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].equal(b[k]), (kind, k)


def test_every_result_records_its_environment(world, tmp_path):
    import torch

    from dslm.cli import main

    meta = read_json(f"{world['run']}/checkpoint/config.json")["metadata"]
    assert meta["environment"]["torch"] == torch.__version__
    assert {"python", "numpy", "torch_threads", "cpu", "dslm", "dslm_commit"} <= set(meta["environment"])
    s = tmp_path / "s.jsonl"
    assert main(["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", "2",
                 "--num-samples", "2", "--out", str(s)]) == 0
    first = json.loads(s.read_text().splitlines()[0])
    assert first["environment"]["torch"] == torch.__version__
    assert first["checkpoint"].startswith("sha256:") and "temperature" in first["options"]
    m = tmp_path / "m.json"
    assert main(["eval", "--samples", str(s), "--judge", world["ar"], "--reference", world["ref"],
                 "--out", str(m)]) == 0
    doc = read_json(m)
    assert doc["environment"]["torch"] == torch.__version__
    assert doc["provenance"]["judge"].startswith("sha256:")
