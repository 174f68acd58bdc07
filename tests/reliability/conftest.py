"""Shared pieces of the fault and abuse suite: tiny checkpoints, a samples file, a
reference file, a trained run folder, and helpers that fake a read-only or full disk."""

import builtins
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import char_world

ALPHABET = "abcdefghij"
TINY_RUN = ["model.hidden_size=32", "model.n_blocks=1", "model.n_heads=2", "model.cond_dim=16",
            "model.seq_len=32", "model.embed_dim=8", "data.source=synthetic", "data.tokenizer=char",
            "data.seq_len=32", "data.max_documents=200", "train.batch_size=2",
            "train.eval_every=0", "train.num_threads=1"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """AR / MDLM / DSL checkpoints (char tokenizer, a local corpus recorded as their data),
    a reference file, a samples file and a trained run folder."""
    from dslm.config import load
    from dslm.train import RunConfig, train

    root = tmp_path_factory.mktemp("world")
    world = char_world(root, ("ar", "mdlm", "dsl"), n_ref=40, n_texts=12, alphabet=ALPHABET)
    cfg = load(RunConfig, None, TINY_RUN + ["model.kind=mdlm", "train.steps=2",
                                            f"data.cache_dir={root / 'cache'}",
                                            f"train.out_dir={root / 'run'}"])
    train(cfg, progress=False)
    return {**world, "run": str(root / "run")}


def fails(capsys, argv, *needles):
    """Run the CLI in-process; it must print one `dslm: error:` line naming ``needles``."""
    from dslm.cli import main

    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("dslm: error: ")]
    assert len(errors) == 1, err                  # (a progress bar may redraw after it)
    last = errors[0]
    for needle in needles:
        assert needle.lower() in last.lower(), (needle, last)
    return last


def readonly(monkeypatch, folder):
    """Make ``folder`` refuse writes: chmod when not root, else fake EROFS at the OS layer
    (root ignores permissions)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    root = os.path.realpath(folder)

    def inside(p):
        try:
            return os.path.realpath(os.fspath(p)).startswith(root)
        except TypeError:
            return False

    def deny(p):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(p))

    real_open, real_mkdir, real_bopen = os.open, os.mkdir, builtins.open

    def os_open(p, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(p):
            deny(p)
        return real_open(p, flags, *a, **k)

    def mkdir(p, *a, **k):
        if inside(p) and not os.path.isdir(p):
            deny(p)
        return real_mkdir(p, *a, **k)

    def bopen(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") \
                and inside(file):
            deny(file)
        return real_bopen(file, mode, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", bopen)
    monkeypatch.setattr(io, "open", bopen)


def cli(args, env=None, timeout=120, **kw):
    """``python -m dslm ARGS`` in a subprocess with this tree on the path."""
    full = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dslm", *map(str, args)], capture_output=True,
                          text=True, env=full, timeout=timeout, **kw)


def popen(args, env=None, **kw):
    full = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full, **kw)


def hold_lock(target, kind="folder"):
    """A subprocess holding the dslm lock of ``target`` until killed; returns it once held."""
    code = ("import sys, time\nfrom dslm.locks import folder_lock\n"
            f"with folder_lock({str(target)!r}, kind={kind!r}, command='holder'):\n"
            "    print('held', flush=True)\n    time.sleep(120)\n")
    proc = popen(["-c", code])
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def read_json(path):
    return json.loads(Path(path).read_text())
