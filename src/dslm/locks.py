"""One writer per folder: an exclusive advisory lock on every output a command writes.

``folder_lock(path)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on a lock file and
writes the holder's pid, host, start time and command line into it:

* a folder output (a run folder, a sweep or demo folder) is locked through
  ``<folder>/.dslm.lock``;
* a file output, or a folder that is replaced as a whole (``dslm export``), through
  the sibling ``<parent>/.<name>.dslm.lock``.

The kernel releases a flock when its process dies, so a crashed holder never blocks
the next run: the lock file it left is *stale*, and the next writer reports it
(naming the dead pid) and takes over. A live holder makes the second writer fail at
once with a one-line error naming the holder's pid. The lock is re-entrant within a
process (``dslm demo`` holds its folder while its stages lock their own sub-folders).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from dslm.errors import DSLMError

LOCK_NAME = ".dslm.lock"

#: resolved lock path -> (open file, depth) for the locks this process holds
_HELD: dict[str, list] = {}


class LockError(DSLMError):
    """Another live process writes the same folder."""


def lock_path(target: str | Path, kind: str = "folder") -> Path:
    """Where the lock of ``target`` lives: inside a ``folder``, beside a ``file`` or a
    ``whole`` folder (one replaced as a whole)."""
    target = Path(os.path.abspath(target))
    if kind == "folder":
        return target / LOCK_NAME
    return target.parent / f".{target.name}.dslm.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> dict:
    """The holder record of a lock file ({} when absent or unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


#: How long a writer that found the lock taken waits for the holder's record to appear.
RECORD_WAIT_SECONDS = 2.0


def _live_holder(path: Path) -> dict:
    """The record of the live process holding ``path``'s lock ({} if none shows up).

    A holder writes its record just after taking the lock, so a writer that lost the race
    can read the lock file before that (empty) or while it still holds a dead previous
    holder's record: it reads again for up to ``RECORD_WAIT_SECONDS`` until the record
    names a live process (or one on another host, which cannot be checked)."""
    deadline = time.monotonic() + RECORD_WAIT_SECONDS
    while True:
        holder = read_holder(path)
        pid = holder.get("pid")
        if isinstance(pid, int) and (holder.get("host") != socket.gethostname()
                                     or _pid_alive(pid)):
            return holder
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.01)


def _describe(holder: dict) -> str:
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("command"):
        parts.append(f"running '{holder['command'][:120]}'")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return " ".join(parts)


def _open_locked(path: Path, target: Path):
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DSLMError(f"cannot create the lock file {path} for {target}: "
                            f"{e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _live_holder(path)
            who = _describe(holder) if holder else "it has not written its pid into the lock file yet"
            raise LockError(f"{target} is in use by another dslm process ({who}); "
                            "wait for it to finish or choose another output") from None
        except OSError as e:   # a file system without flock
            os.close(fd)
            raise DSLMError(f"cannot lock {path}: {e.strerror or e}") from None
        # the file may have been unlinked by its previous holder between open and flock
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def folder_lock(target: str | Path, kind: str = "folder", command: str | None = None,
                enabled: bool = True) -> Iterator[Path | None]:
    """Hold the exclusive lock of output ``target`` for the ``with`` block.

    ``kind``: ``folder`` (created first; the lock lives inside it), ``file`` or
    ``whole`` (a folder replaced as a whole): the lock sits next to the target. Raises :class:`LockError`
    when a live process holds it; a stale lock of a dead process is reported on stderr
    and taken over.
    """
    if not enabled:
        yield None
        return
    target = Path(target)
    path = lock_path(target, kind)
    key = str(path)
    if key in _HELD:                       # re-entrant within one process
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    from dslm.io import ensure_folder

    ensure_folder(path.parent)
    previous = read_holder(path) if path.exists() else {}
    fd = _open_locked(path, target)
    if previous.get("pid") and previous.get("pid") != os.getpid():
        same_host = previous.get("host") == socket.gethostname()
        if not same_host or not _pid_alive(int(previous["pid"])):
            print(f"dslm: note: {target} held a stale lock of {_describe(previous)} "
                  "(that process is gone); taking it over", file=sys.stderr)
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    record = (json.dumps(holder) + "\n").encode("utf-8")
    try:                # written over the old record, then cut to length: never empty between
        os.pwrite(fd, record, 0)
        os.ftruncate(fd, len(record))
    except OSError:
        pass        # the lock itself holds; the record is only informative
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)    # leave no holder record behind: the lock is free
        os.close(fd)


def held(target: str | Path, kind: str = "folder") -> bool:
    """Whether this process holds the lock of ``target``."""
    return str(lock_path(target, kind)) in _HELD
