"""What made a result: content hashes, fingerprints and the environment.

* :func:`content_hash` of a checkpoint: sha256 over its ``config.json``, weight files
  and tokenizer files (names and bytes), remembered per process by (path, size,
  mtime), so a sweep hashes each checkpoint once. A moved or copied checkpoint has
  the same hash; a retrained one a different one.
* :func:`identity` of a model spec (checkpoint folder, run folder, hub name) or a
  reference file: a content hash for local things, ``hub:<name>`` otherwise.
* :func:`fingerprint` of a dict of parts: a short sha256 of its canonical JSON.
  Cached results (sweep points, demo stages, prepared corpora) store the parts and
  the fingerprint, are reused only when it matches, and :func:`changed_parts` names
  what differs.
* :func:`environment`: library versions, threads, CPU/GPU, dslm version and git
  commit, recorded in every result file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

_HASHES: dict[tuple, str] = {}
_CHUNK = 1 << 22


def _files_of(folder: Path) -> list[Path]:
    """The files that define a model folder (weights, configs, tokenizer), sorted."""
    keep = (".safetensors", ".json", ".txt", ".model", ".bin", ".pt", ".ckpt")
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in keep
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)
             and "README" not in p.name]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def file_hash(path: Path) -> str:
    """sha256 of one file's bytes, remembered by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def content_hash(path: str | Path) -> str:
    """sha256 over the defining files of a checkpoint folder (or of one file)."""
    from dslm.io import resolve_directory

    path = Path(path)
    if path.is_dir():
        from dslm.models.checkpoint import resolve

        path = resolve(path)
    else:
        path = resolve_directory(path)
    if path.is_file():
        return file_hash(path)
    h = hashlib.sha256()
    for f in _files_of(path):
        h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
        h.update(file_hash(f).encode("ascii"))
    return h.hexdigest()


def identity(spec: str | Path | None) -> str | None:
    """What a model / file spec denotes: ``sha256:<hash>`` for local paths, ``hub:<name>``
    for hub names, None for an empty spec. Special words (``validation``) stay as they are."""
    if spec is None or str(spec) == "":
        return None
    path = Path(spec)
    if path.exists() or Path(str(spec) + ".old").exists():
        return "sha256:" + content_hash(path)[:32]
    if str(spec) in ("validation",):
        return str(spec)
    return f"hub:{spec}"


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(parts: dict[str, Any]) -> str:
    """A short stable hash of ``parts`` (JSON-serialisable)."""
    return hashlib.sha256(canonical(parts).encode("utf-8")).hexdigest()[:24]


def changed_parts(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two parts dicts (all of ``new``'s when ``old`` is None)."""
    if not isinstance(old, dict):
        return sorted(new)
    keys = sorted(set(old) | set(new))
    return [k for k in keys if canonical(old.get(k)) != canonical(new.get(k))]


# ------------------------------------------------------------------ the environment

@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    try:
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=2).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return commit + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The software and hardware a result was made with (recorded in every result file)."""
    import numpy
    import torch

    from dslm import __version__

    env = {"dslm": __version__, "dslm_commit": _git_commit(),
           "python": sys.version.split()[0], "torch": torch.__version__,
           "numpy": numpy.__version__, "platform": platform.platform(),
           "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
           "cuda": torch.version.cuda if torch.cuda.is_available() else None,
           "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)}
    return env


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its finished children
    (data workers): what a stage cost, whatever else shares the machine."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
