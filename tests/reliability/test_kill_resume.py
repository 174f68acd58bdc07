"""Fault injection: SIGKILL a training process at random points, resume, compare.

Every resumed run must end with the same weights and the same loss curve as an
uninterrupted run with the same seed; a checkpoint write interrupted mid-way never
replaces the last good checkpoint.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

STEPS = 24
ARGS = ["model.kind=mdlm", "model.hidden_size=32", "model.n_blocks=2", "model.n_heads=2",
        "model.cond_dim=16", "model.seq_len=32", "data.source=synthetic", "data.tokenizer=char",
        "data.seq_len=32", "data.max_documents=300", f"train.steps={STEPS}", "train.batch_size=4",
        "train.checkpoint_every=1", "train.eval_every=0", "train.log_every=1", "train.seed=3",
        "train.num_threads=1"]


def _cmd(out: Path, cache: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "dslm", "train", "--out", str(out), "--no-progress",
           *ARGS, f"data.cache_dir={cache}"]
    return cmd + (["--resume"] if resume else [])


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return sorted({(r["step"], r["loss"]) for r in rows if "loss" in r})


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoint" / "model.safetensors"))


def _steps_logged(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"loss"' in line)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    out, cache = root / "run", root / "cache"
    subprocess.run(_cmd(out, cache, False), check=True, env=_env(), capture_output=True, timeout=300)
    return out, cache


@pytest.mark.parametrize("trial", [0, 1])
def test_sigkill_then_resume_matches_uninterrupted(reference, tmp_path, trial):
    ref_out, cache = reference
    out = tmp_path / "run"
    rng = random.Random(100 + trial)
    kill_after = rng.randint(2, STEPS - 4)          # logged steps before the kill
    proc = subprocess.Popen(_cmd(out, cache, False), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _steps_logged(out) < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(rng.random() * 0.2)                  # land anywhere inside a step or a write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint").exists() or (out / "checkpoint.old").exists()
    done = subprocess.run(_cmd(out, cache, True), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _losses(out) == _losses(ref_out)
    a, b = _weights(out), _weights(ref_out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
