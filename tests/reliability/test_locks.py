"""Class 1: one writer per folder. Every writing command refuses a folder a live process
holds (naming its pid); a lock left by a dead process is reported and taken over."""

import os
import signal
import subprocess

import pytest

from .conftest import TINY_RUN, cli, fails, hold_lock, popen


def _commands(world, out):
    """(argv, lock target, lock kind) of every writing command, all writing ``out``."""
    return {
        "train": (["train", "--out", out, *TINY_RUN, "train.steps=1",
                   f"data.cache_dir={world['root'] / 'cache'}"], out, "folder"),
        "finetune": (["finetune", "--from", world["mdlm"], "--out", out, *TINY_RUN,
                      "train.steps=1", f"data.cache_dir={world['root'] / 'cache'}"], out, "folder"),
        "sample": (["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                    "--num-samples", 2, "--out", out / "s.jsonl"], out / "s.jsonl", "file"),
        "eval": (["eval", "--samples", world["samples"], "--judge", world["ar"], "--reference",
                  world["ref"], "--out", out / "m.json"], out / "m.json", "file"),
        "sweep": (["sweep", "--ckpt", f"m={world['mdlm']}", "--samplers", "mdlm", "--steps", 2,
                   "--num-samples", 4, "--judge", world["ar"], "--reference", world["ref"],
                   "--out", out], out, "folder"),
        "demo": (["demo", "--out", out, "--quick"], out, "folder"),
        "export": (["export", "--ckpt", world["mdlm"], "--out", out / "exp"], out / "exp", "whole"),
    }


@pytest.mark.parametrize("command", ["train", "finetune", "sample", "eval", "sweep", "demo", "export"])
def test_a_live_holder_stops_every_writing_command(world, tmp_path, capsys, command):
    argv, target, kind = _commands(world, tmp_path / "out")[command]
    holder = hold_lock(target, kind)
    try:
        msg = fails(capsys, argv, "in use by another dslm process", f"pid {holder.pid}")
        assert "holder" in msg                         # the holder's command line is named
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_reported_and_taken_over(world, tmp_path, capsys):
    from dslm.cli import main

    out = tmp_path / "out"
    holder = hold_lock(out / "s.jsonl", "file")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    rc = main(["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", "2",
               "--num-samples", "2", "--out", str(out / "s.jsonl")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"stale lock of pid {holder.pid}" in err


def test_two_concurrent_trains_into_one_folder(world, tmp_path):
    """Started together: exactly one trains, the other stops at once naming the first's pid."""
    out = tmp_path / "run"
    args = ["-m", "dslm", "train", "--out", out, "--no-progress", *TINY_RUN, "train.steps=30",
            f"data.cache_dir={world['root'] / 'cache'}"]
    procs = [popen(args), popen(args)]
    results = [(p.pid, p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(r[1] for r in results)
    assert codes == [0, 2], results
    winner = next(r for r in results if r[1] == 0)[0]
    loser_err = next(r for r in results if r[1] == 2)[2]
    # overlapping: the lock names the winner; if the second process started only after
    # the first had saved its run (a slow start on a loaded machine), the run-folder
    # check refuses it instead. Two runs both training would give codes [0, 0] above.
    assert (f"pid {winner}" in loser_err and "in use" in loser_err) or \
        "already holds a training run" in loser_err, loser_err
    # the folder holds one coherent run that resumes
    done = cli(["train", "--out", out, "--resume", "--no-progress", "train.steps=31"])
    assert done.returncode == 0, done.stderr


def _taken(path):
    """Take the flock of ``path`` from this process without a holder record (a separate
    open file description conflicts with folder_lock's, as another process's would)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@pytest.mark.parametrize("old_record", [None, "dead"])
def test_the_loser_of_a_race_names_the_holder_that_writes_its_record_late(tmp_path, old_record):
    """The holder has the lock but has not written its pid yet (the lock file is empty, or
    still names a dead earlier holder): the second writer waits for the record."""
    import json
    import socket
    import threading

    from dslm.locks import LockError, folder_lock, lock_path

    out = tmp_path / "out"
    path = lock_path(out)
    fd = _taken(path)
    if old_record == "dead":
        dead = subprocess.Popen(["true"])
        dead.wait()
        path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": "late writer"}
    timer = threading.Timer(0.3, lambda: path.write_text(json.dumps(record)))
    timer.start()
    try:
        with pytest.raises(LockError, match=f"in use by another dslm process \\(pid {os.getpid()} "
                                            ".*late writer"):
            with folder_lock(out):
                pass
    finally:
        timer.join()
        os.close(fd)


def test_a_holder_that_never_writes_its_record_is_still_reported(tmp_path, monkeypatch):
    from dslm import locks

    monkeypatch.setattr(locks, "RECORD_WAIT_SECONDS", 0.05)
    out = tmp_path / "out"
    fd = _taken(locks.lock_path(out))
    try:
        with pytest.raises(locks.LockError, match="has not written its pid into the lock file yet"):
            with locks.folder_lock(out):
                pass
    finally:
        os.close(fd)
