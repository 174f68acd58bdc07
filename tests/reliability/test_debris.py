"""Class 8: readers tolerate what a crashed writer leaves (temporaries, a torn last
JSON-lines line, a checkpoint only under its ``.old`` name) and the next writer cleans it."""

import json
import random
import shutil
import signal
import time

from dslm.models import checkpoint as ck

from .conftest import TINY_RUN, cli, popen


def _debris(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


def test_kill_at_a_random_point_then_resume_cleans_up(world, tmp_path):
    cache = f"data.cache_dir={world['root'] / 'cache'}"
    out = tmp_path / "run"
    args = ["-m", "dslm", "train", "--out", out, "--no-progress", *TINY_RUN, "train.steps=40",
            "train.checkpoint_every=1", "train.log_every=1", cache]
    proc = popen(args)
    deadline = time.time() + 120
    while not (out / "train_state").exists() and time.time() < deadline:   # started saving
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0.0, 1.5))          # a random point of the save loop
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a crash in the middle of a swap: add the kinds of debris a kill can leave
    (out / ".checkpoint.999999999.abcd.tmp").mkdir()
    (out / ".run.yaml.999999999.x.tmp").write_text("half")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "loss": 1.2')                 # a torn last line
    done = cli(["train", "--out", out, "--resume", "--no-progress", "train.steps=41"])
    assert done.returncode == 0, done.stderr
    assert "torn line" in done.stderr
    assert _debris(out) == []                                # the next writer cleaned up
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 41
    ck.open_checkpoint(out).model


def test_checkpoint_only_under_its_old_name(world, tmp_path, capsys):
    from dslm.cli import main

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    (run / "checkpoint").rename(run / "checkpoint.old")     # killed between the two renames
    assert ck.open_checkpoint(run).path.name == "checkpoint.old"          # readers find it
    assert main(["sample", "--ckpt", str(run), "--sampler", "mdlm", "--steps", "2",
                 "--num-samples", "2", "--out", str(tmp_path / "s.jsonl")]) == 0
    assert main(["export", "--ckpt", str(run), "--out", str(tmp_path / "exp")]) == 0
    assert main(["train", "--out", str(run), "--resume", "--no-progress", "train.steps=3"]) == 0
    assert (run / "checkpoint").is_dir() and not (run / "checkpoint.old").exists()


def test_torn_samples_file_is_read_up_to_the_tear(world, tmp_path, capsys):
    from dslm.evaluate.samples import read_samples

    path = tmp_path / "s.jsonl"
    text = open(world["samples"]).read()
    path.write_text(text + '{"text": "abc", "tok')
    rows = read_samples(path)
    assert len(rows) == len(text.splitlines())
    assert "torn line" in capsys.readouterr().err


def test_stale_lock_and_partial_file_of_a_killed_sample(world, tmp_path):
    out = tmp_path / "s.jsonl"
    args = ["-m", "dslm", "sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps",
            "200", "--num-samples", "400", "--batch-size", "1", "--out", out]
    proc = popen(args)
    partial = tmp_path / "s.jsonl.partial"
    deadline = time.time() + 120
    while (not partial.exists() or partial.stat().st_size == 0) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = partial.read_text()
    assert kept and all(json.loads(line)["index"] >= 0 for line in kept.splitlines()[:-1])
    done = cli(["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                "--num-samples", 3, "--out", out])
    assert done.returncode == 0, done.stderr
    assert f"pid {proc.pid}" in done.stderr and "stale lock" in done.stderr
    assert len(out.read_text().splitlines()) == 3 and not partial.exists()
