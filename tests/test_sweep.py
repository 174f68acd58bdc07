"""Sweeps: files written, resumable, skipped samplers noted, clear errors; sharding."""

import json
import random
from types import SimpleNamespace

import pytest
import torch

from conftest import free_port, gloo_threads, tiny_model_config
from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
from dslm.errors import ConfigError
from dslm import processes as dd
from dslm.evaluate.sweep import SweepConfig, run_sweep
from dslm.models import build_model
from dslm.models import checkpoint as ck

ALPHABET = "abcdefghij"


class FakeSampling:
    """Stands in for dslm.sampling: uniform random tokens, NFE = steps, calls counted."""

    SAMPLERS = {"draft": None, "draft-dsl": None, "ar": None}
    FITS = {"mdlm": ["draft"], "dsl": ["draft", "draft-dsl"], "ar": ["ar"]}

    def __init__(self):
        self.calls = []

    def available_samplers(self, model):
        return self.FITS[model.kind]

    def sample(self, model, name, num_samples, seq_len, steps, generator, batch_size=None,
               progress=False, **options):
        self.calls.append((model.kind, name, steps))
        tokens = torch.randint(2, model.vocab_size, (num_samples, seq_len), generator=generator)
        return SimpleNamespace(tokens=tokens, nfe=steps, stats=[])


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny random mdlm, dsl and ar checkpoints with a character tokenizer, and a reference file."""
    root = tmp_path_factory.mktemp("sweep")
    tok = CharTokenizer(ALPHABET)
    paths = {}
    for kind in ("mdlm", "dsl", "ar"):
        torch.manual_seed(0)
        model = build_model(tiny_model_config(kind, vocab_size=tok.vocab_size))
        paths[kind] = str(ck.save(model, root / kind, metadata={"tokenizer": tok.spec()},
                                  write_extra=tokenizer_writer(tok)))
    rng = random.Random(0)
    ref = root / "reference.txt"
    ref.write_text("\n".join("".join(rng.choice(ALPHABET[:5]) for _ in range(16))
                             for _ in range(60)) + "\n")
    paths["reference"] = str(ref)
    return paths


def _config(ckpts, out, **kw):
    base = dict(models=[("M", ckpts["mdlm"]), ("D", ckpts["dsl"])], samplers=["draft", "draft-dsl"],
                steps=[2, 4], out=str(out), num_samples=20, reference=ckpts["reference"],
                ar_baseline=ckpts["ar"], device="cpu")
    base.update(kw)
    return SweepConfig(**base)


def test_sweep_writes_files_and_resumes(ckpts, tmp_path):
    fake = FakeSampling()
    doc = run_sweep(_config(ckpts, tmp_path), progress=False, sampling=fake)
    for name in ("sweep.json", "sweep.md", "sweep.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = doc["points"]
    assert sorted((p["model"], p["sampler"], p["steps"]) for p in points.values()) == [
        ("D", "draft", 2), ("D", "draft", 4), ("D", "draft-dsl", 2), ("D", "draft-dsl", 4),
        ("M", "draft", 2), ("M", "draft", 4)]
    for p in points.values():
        assert p["nfe"] == p["steps"] and 0.0 <= p["mauve"] <= 1.0
        assert p["gen_ppl"] > 1.0 and p["entropy"] > 0.0 and p["seconds"] >= 0.0
    assert doc["skipped"] == [{"model": "M", "sampler": "draft-dsl",
                               "reason": "does not fit a 'mdlm' model"}]
    assert doc["ar_baseline"]["sampler"] == "ar" and doc["ar_baseline"]["nfe"] == 16
    assert doc["reference"]["gen_ppl"] > 1.0 and doc["reference"]["mauve"] > 0.0
    table = (tmp_path / "sweep.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6 + 2                 # header, points, AR baseline, reference data
    assert "M / draft-dsl: does not fit a 'mdlm' model" in table
    samples = (tmp_path / "samples" / "D__draft-dsl__T4__n20__L16__seed0.jsonl").read_text().splitlines()
    assert len(samples) == 20 and json.loads(samples[0])["steps"] == 4
    n_calls = len(fake.calls)
    assert n_calls == 7
    again = run_sweep(_config(ckpts, tmp_path), progress=False, sampling=fake)
    assert len(fake.calls) == n_calls             # nothing recomputed
    assert again["points"] == points and again["skipped"] == doc["skipped"]
    more = run_sweep(_config(ckpts, tmp_path, steps=[2, 4, 8]), progress=False, sampling=fake)
    assert len(fake.calls) == n_calls + 3         # only the new T = 8 points
    assert len(more["points"]) == 9


def test_sweep_refuses_unknown_sampler_and_changed_judge(ckpts, tmp_path):
    with pytest.raises(ConfigError, match="unknown sampler 'nope'; allowed: ar, draft, draft-dsl"):
        run_sweep(_config(ckpts, tmp_path, samplers=["nope"]), progress=False, sampling=FakeSampling())
    with pytest.raises(ConfigError, match="extra point 'hybrid' must look like sampler:steps"):
        run_sweep(_config(ckpts, tmp_path, extra_points=["hybrid"]), sampling=FakeSampling())
    with pytest.raises(ConfigError, match="needs a judge"):
        run_sweep(_config(ckpts, tmp_path, ar_baseline=""), sampling=FakeSampling())
    (tmp_path / "sweep.json").write_text(json.dumps({"settings": {"judge": "other"}}))
    with pytest.raises(ConfigError, match="judge='other'"):
        run_sweep(_config(ckpts, tmp_path), progress=False, sampling=FakeSampling())


def test_shard_split_and_merge():
    assert dd.shard_sizes(10, 3) == [4, 3, 3]
    assert dd.shard_sizes(2, 4) == [1, 1, 0, 0]
    assert sum(dd.shard_sizes(5000, 8)) == 5000
    seeds = {dd.rank_seed(7, r) for r in range(8)}
    assert len(seeds) == 8 and dd.rank_seed(7, 0) == 7
    items = list(range(10))
    sizes = dd.shard_sizes(10, 3)
    shards = [items[sum(sizes[:r]):sum(sizes[:r + 1])] for r in range(3)]
    assert dd.merge_shards(shards) == items
    with pytest.raises(ConfigError):
        dd.shard_sizes(4, 0)


def _gloo_worker(rank, world, port, out):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    from dslm.evaluate.sweep import generate

    torch.set_num_threads(1)
    ctx = dd.setup("cpu")
    model = SimpleNamespace(kind="dsl", vocab_size=12, parameters=lambda: iter([torch.zeros(1)]))
    tokens, nfe, _ = generate(FakeSampling().sample, model, "draft", 5, 4, 3, seed=11,
                              batch_size=0, options={}, ctx=ctx)
    torch.save({"rank": ctx.rank, "tokens": tokens, "nfe": nfe}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_gather(tmp_path):
    """Two ranks each sample their share with their own seed; every rank gets all 5, in rank order."""
    import torch.multiprocessing as mp

    mp.spawn(_gloo_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["tokens"] == r1["tokens"] and len(r0["tokens"]) == 5 and r0["nfe"] == 3
    want = []
    for rank, n in enumerate(dd.shard_sizes(5, 2)):
        g = torch.Generator().manual_seed(dd.rank_seed(11, rank))
        want += torch.randint(2, 12, (n, 4), generator=g).tolist()
    assert r0["tokens"] == want


def test_sweep_with_real_samplers(ckpts, tmp_path):
    """The registry's samplers on tiny random checkpoints: dsl-only samplers skipped for MDLM."""
    cfg = _config(ckpts, tmp_path, samplers=["mdlm", "dsl-mdlm"], steps=[4], num_samples=12,
                  seq_len=8, ar_baseline="", judge=ckpts["ar"])
    doc = run_sweep(cfg, progress=False)
    assert sorted((p["model"], p["sampler"]) for p in doc["points"].values()) == [
        ("D", "dsl-mdlm"), ("M", "mdlm")]
    assert {(n["model"], n["sampler"]) for n in doc["skipped"]} == {("M", "dsl-mdlm"), ("D", "mdlm")}
    assert all(1 <= p["nfe"] <= 4 for p in doc["points"].values())
    with pytest.raises(ConfigError, match="mdlm.no_such_option"):
        run_sweep(_config(ckpts, tmp_path / "x", samplers=["mdlm"],
                          sampler_options={"mdlm": {"no_such_option": 1}}), progress=False)


def _sweep_worker(rank, world, port, out, ckpts):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = _config(ckpts, out, samplers=["mdlm"], models=[("M", ckpts["mdlm"])], steps=[4],
                  num_samples=6, seq_len=8, ar_baseline="", judge=ckpts["ar"])
    doc = run_sweep(cfg, progress=False)
    torch.save({"doc": doc, "group_left": not torch.distributed.is_initialized(),
                "threads": gloo_threads()}, f"{out}/rank{rank}.pt")


@pytest.mark.slow
def test_a_two_process_sweep_writes_one_document_and_leaves_its_group(ckpts, tmp_path):
    """``run_sweep`` under torchrun (2 gloo ranks): rank 0 returns and writes the document
    of all N samples, rank 1 returns {}; both leave the process group they joined, so no
    collective's thread outlives the interpreter (it can abort the process at exit)."""
    import torch.multiprocessing as mp

    mp.spawn(_sweep_worker, args=(2, free_port(), str(tmp_path), ckpts), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r1["doc"] == {} and list(r0["doc"]["points"]) == list(
        json.loads((tmp_path / "sweep.json").read_text())["points"])
    (point,) = r0["doc"]["points"].values()
    assert (point["model"], point["sampler"], point["num_samples"]) == ("M", "mdlm", 6)
    for r in (r0, r1):
        assert r["group_left"] and not r["threads"], r["threads"]


def test_models_from_an_mdlm_hub_folder_are_read_through_the_hub_loader(tmp_path):
    """A folder in the hub's MDLM layout loads (no tokenizer recorded at this vocab size:
    a clear error), and a sweep over it reads the sample length from it."""
    from safetensors.torch import save_file

    from dslm.errors import CheckpointError
    from dslm.evaluate.sweep import _model_seq_len
    from dslm.models.checkpoint import open_checkpoint

    model = build_model(tiny_model_config("mdlm", vocab_size=12))
    folder = tmp_path / "mdlm-hf"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "mdlm", "vocab_size": 13, "hidden_dim": 32, "n_blocks": 2, "n_heads": 2,
         "cond_dim": 16, "model_length": 16}))
    with pytest.raises(CheckpointError, match="records no tokenizer"):
        open_checkpoint(str(folder)).tokenizer()
    cfg = SweepConfig(models=[("hf", str(folder))], samplers=["draft"], steps=[2],
                      out=str(tmp_path / "out"), judge="unused")
    assert _model_seq_len(cfg, str(folder)) == 16             # the MDLM folder's own length
