"""DDP: 2 processes on gloo reproduce 1 process with the same global batch."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from dslm.models import checkpoint
from dslm.train import train
from dslm.train.state import read_metrics

from conftest import free_port, gloo_threads
from test_train import run_config, synthetic_data


def _worker(rank: int, world_size: int, port: int, tmp_path, overrides: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    train(run_config(tmp_path, **overrides), data=synthetic_data(), progress=False)
    (tmp_path / f"threads-{rank}.txt").write_text("\n".join(gloo_threads()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dsl", "mdlm"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, kind):
    common = dict(kind=kind, steps=6, batch_size=4, log_every=1, eval_every=3, checkpoint_every=3)
    train(run_config(tmp_path, name="one", grad_accum=2, **common), data=synthetic_data(),
          progress=False)
    mp.spawn(_worker, args=(2, free_port(), tmp_path, dict(name="two", grad_accum=1, **common)),
             nprocs=2, join=True)
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        for key in ("loss", "nll", "grad_norm", "val_loss", "val_nll"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)
    # train() left no process-group threads behind: one that outlives the interpreter
    # can abort the process at exit (SIGABRT after a successful run)
    for rank in range(2):
        threads = (tmp_path / f"threads-{rank}.txt").read_text().split()
        assert not threads, (rank, threads)
    w1 = checkpoint.read_weights(tmp_path / "one" / "checkpoint")
    w2 = checkpoint.read_weights(tmp_path / "two" / "checkpoint")
    for name, tensor in w1.items():
        torch.testing.assert_close(w2[name], tensor, rtol=1e-4, atol=1e-5)
